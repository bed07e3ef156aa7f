"""Reader for AMITRACE v1 files: byte-exact recordings of an AMI session (see shared fixtures)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from pbx.ami.message import Message


class BlockKind(enum.StrEnum):
    RECV = "RECV"  # bytes the client received from Asterisk
    SEND = "SEND"  # bytes the client sent (an action)
    RECONNECT = "RECONNECT"  # the TCP connection was closed and a new one opened


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    t: float
    data: bytes = b""


@dataclass(slots=True)
class Trace:
    scenario: str
    description: str
    meta: dict[str, str]
    blocks: list[Block] = field(default_factory=list)

    def received(self) -> bytes:
        """Every RECV byte of every connection, concatenated (reconnects ignored)."""
        return b"".join(b.data for b in self.blocks if b.kind is BlockKind.RECV)

    def sessions(self) -> list[list[Block]]:
        """The blocks split at each reconnect: one list per TCP connection."""
        out: list[list[Block]] = [[]]
        for block in self.blocks:
            if block.kind is BlockKind.RECONNECT:
                out.append([])
            else:
                out[-1].append(block)
        return out


class TraceFormatError(ValueError):
    pass


def parse_trace(data: bytes, name: str = "<trace>") -> Trace:
    meta: dict[str, str] = {}
    blocks: list[Block] = []
    pos = 0
    last_t = 0.0
    size = len(data)
    while pos < size:
        eol = data.find(b"\n", pos)
        if eol < 0:
            eol = size
        line = data[pos:eol]
        pos = eol + 1
        if not line.strip():
            continue
        if line.startswith(b"# reconnect"):
            blocks.append(Block(BlockKind.RECONNECT, last_t))
            continue
        if line.startswith(b"#"):
            text = line[1:].decode("utf-8", "replace").strip()
            key, sep, value = text.partition(":")
            if sep and key.strip() and " " not in key.strip():
                meta.setdefault(key.strip(), value.strip())
            continue
        if line.startswith(b"--- "):
            parts = line.decode("ascii", "replace").split()
            try:
                kind = BlockKind(parts[1])
                t = float(parts[2].removeprefix("t="))
                n = int(parts[3].removeprefix("n="))
            except (IndexError, ValueError) as exc:
                raise TraceFormatError(f"{name}: bad block header {line!r}") from exc
            payload = data[pos : pos + n]
            if len(payload) != n:
                raise TraceFormatError(f"{name}: block at byte {pos} is truncated")
            pos += n + 1  # the payload is followed by one newline
            last_t = t
            blocks.append(Block(kind, t, payload))
            continue
        raise TraceFormatError(f"{name}: unexpected line {line[:80]!r}")
    return Trace(meta.get("scenario", name), meta.get("description", ""), meta, blocks)


def load_trace(path: str | Path) -> Trace:
    path = Path(path)
    return parse_trace(path.read_bytes(), path.name)


def trace_messages(trace: Trace, kind: BlockKind = BlockKind.RECV) -> list[Message]:
    """The decoded messages of one direction, banners skipped (test and benchmark support)."""
    from pbx.ami.codec import parse_message

    return [
        parse_message(b.data)
        for b in trace.blocks
        if b.kind is kind and not b.data.startswith(b"Asterisk Call Manager/")
    ]
