"""The call log's journal: the writes it still held when the process had to stop.

The call log retries a failing write for as long as the process lives; when it must stop
with writes still queued (a locked or broken database at shutdown) it spools them here, and
the next start replays them before any line is connected. Every call-log write is idempotent
(calls are keyed by the call id, the card's interaction and the callback task by the call id
as ``ref``), so a journal replayed twice - a crash during the replay - stores each call once.

The call log also keeps it while the database fails at run time: on a write's first failure
it spools that write and everything queued behind it, then appends each new write as it is
queued, and clears the journal once the queue is written. So a process killed outright
(SIGKILL, power loss) during a long lock loses nothing either, and the journal is always a
tail of the write order: replaying it never puts an older state of a call after a newer one.

The file is JSON lines, one write per line. A spool replaces it atomically (written beside,
fsync'd, renamed, the folder fsync'd): after a crash it holds either the old or the new
content, never half of one; an append is one fsync'd ``O_APPEND`` line. Calls are encoded
field by field from their dataclasses, so a field added to
:class:`~callcenter.calls.model.LiveCall` travels without touching this module.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import os
import types
import typing
from pathlib import Path
from typing import Any

from callcenter.calls.model import LiveCall

log = logging.getLogger(__name__)

VERSION = 1

Write = tuple[str, Any]  # (kind, item) as queued by the call log


def encode(value: Any) -> Any:
    """A JSON-able form of dataclasses, enums, sets, tuples, lists and dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple | set | frozenset):
        items = [encode(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    return value


def decode(hint: Any, data: Any) -> Any:
    """The inverse of :func:`encode`, guided by the type hint of where the value goes."""
    if data is None or hint is Any or hint is object:
        return data
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        return decode(options[0], data) if len(options) == 1 else data
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint)
        return hint(**{f.name: decode(hints[f.name], data[f.name])
                       for f in dataclasses.fields(hint) if f.init and f.name in data})
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(data)
    if origin is list:
        return [decode(args[0], v) for v in data]
    if origin in (set, frozenset):
        return origin(decode(args[0], v) for v in data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], v) for v in data)
        return tuple(decode(a, v) for a, v in zip(args, data, strict=True))
    if origin is dict:
        return {k: decode(args[1], v) for k, v in data.items()}
    return data


def _line(kind: str, item: Any) -> str:
    return json.dumps({"v": VERSION, "kind": kind, "item": encode(item)}, ensure_ascii=False,
                      default=str)


def _parse(line: str) -> Write:
    record = json.loads(line)
    kind, item = record["kind"], record["item"]
    if kind == "finish":
        return kind, decode(LiveCall, item)
    if kind == "recording":
        return kind, tuple(item)
    return kind, item


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def spool(self, writes: list[Write]) -> None:
        """Add ``writes`` after what the journal already holds, atomically and durably."""
        lines = self._lines() + [_line(kind, item) for kind, item in writes]
        self._replace(lines)

    def append(self, kind: str, item: Any) -> None:
        """Add one write at the end, durably: one ``O_APPEND`` line, fsync'd. A crash while
        writing leaves at worst a torn last line, which :meth:`load` keeps aside."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        data = (_line(kind, item) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # end a line torn by an earlier crash first
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_dir(self.path.parent)

    def load(self) -> list[Write]:
        """The writes held, in order. A line that cannot be read is kept aside, not lost."""
        writes, bad = [], []
        for line in self._lines():
            try:
                writes.append(_parse(line))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("call log journal %s: unreadable line kept aside (%s)", self.path, exc)
                bad.append(line)
        if bad:
            with self.path.with_suffix(".unreadable").open("a", encoding="utf-8") as fh:
                fh.writelines(line + "\n" for line in bad)
                fh.flush()
                os.fsync(fh.fileno())
        return writes

    def clear(self) -> None:
        if self.path.exists():
            self.path.unlink()
            _fsync_dir(self.path.parent)

    def _lines(self) -> list[str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line for line in text.splitlines() if line.strip()]

    def _replace(self, lines: list[str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.writelines(line + "\n" for line in lines)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
