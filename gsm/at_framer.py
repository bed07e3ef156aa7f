"""Framing of a modem's byte stream into lines, the ``> `` prompt and dropped garbage (sans-I/O).

Split on raw ``\\r``/``\\n`` bytes and decode one whole line at a time: a UTF-8 character cut
by a read survives, bytes that are not UTF-8 are replaced and counted, never raised. The ``> ``
of ``AT+CMGS`` has no line end, so it is reported only while the engine expects it. A ``+CUSD:``
line whose quoted text spans several lines stays one line, and a line is capped at ``max_line``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

MAX_LINE = 4096  # a +CMGL line of a 140-octet PDU is ~400 chars; a UCS2 +CUSD ~800
CTRL_Z = b"\x1a"
ESC = b"\x1b"
# C0 controls other than the line ends: a NUL at boot, a Ctrl-Z echoed after the PDU.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0x20])
# A +CUSD text ends with its closing quote and <dcs>: '…",15'. A quote inside the text ('Tariff
# "Smart"' sent unescaped) leaves the count odd, so this, not the count, says the text is over.
_CUSD_END = re.compile(rb'",\s*\d+\s*$')
CUSD_MAX_LINES = 24  # a USSD text is at most 182 characters; a menu is a dozen lines
_FINALS = re.compile(r"OK|ERROR|\+CM[ES] ERROR:.*|COMMAND NOT SUPPORT|NO CARRIER|BUSY|NO ANSWER")


def _is_final(text: str) -> bool:
    return _FINALS.fullmatch(text) is not None


# --- framing -----------------------------------------------------------------------------------


class GarbageKind(enum.StrEnum):
    OVERSIZED = "oversized"  # a line above max_line, dropped up to its end
    UNDECODABLE = "undecodable"  # a line that is not UTF-8 and not any code we know
    STRAY = "stray"  # a final code with no command in flight (a late OK after a timeout)


@dataclass(frozen=True, slots=True)
class LineReceived:
    text: str  # stripped of the line end, surrounding blanks and control characters
    bad_bytes: int = 0  # bytes that were not UTF-8 (replaced by U+FFFD)


@dataclass(frozen=True, slots=True)
class PromptReceived:
    """The ``> `` of ``AT+CMGS``: the modem waits for the PDU and Ctrl-Z."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """Something dropped. Carries the size only: the content may be a customer's text."""

    kind: GarbageKind
    size: int


FramerItem = LineReceived | PromptReceived | Garbage


class AtFramer:
    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self.expect_prompt = False  # set by the engine while an AT+CMGS waits for "> "
        self._buf = bytearray()
        self._skipping = 0  # >0: inside an oversized line, bytes dropped so far
        self._cusd: bytearray | None = None  # a +CUSD line whose quoted text is still open
        self._cusd_lines = 0
        # a line that cannot be part of a +CUSD text (a final code, a known URC): it ends an
        # unclosed one; the engine sets its own, which knows the URCs
        self.ends_text: Callable[[str], bool] = _is_final
        self._eat_space = False  # the " " after a ">" that came in an earlier read
        self.bad_bytes = 0  # totals, for the port's status
        self.garbage = 0

    def reset(self) -> None:
        self._buf.clear()
        self._skipping = 0
        self._cusd = None
        self._eat_space = False
        self.expect_prompt = False

    def feed(self, data: bytes) -> list[FramerItem]:
        items: list[FramerItem] = []
        i, n = 0, len(data)
        while i < n:
            if self._eat_space:
                self._eat_space = False
                if data[i] == 0x20:
                    i += 1
                    continue
            j = _next_eol(data, i)
            chunk = data[i:n] if j < 0 else data[i:j]
            if self._skipping:
                self._skipping += len(chunk)
                if j >= 0:
                    items.append(self._garbage(GarbageKind.OVERSIZED, self._skipping))
                    self._skipping = 0
                    i = j + 1
                else:
                    i = n
                continue
            self._buf += chunk
            if len(self._buf) + (len(self._cusd) if self._cusd is not None else 0) > self.max_line:
                self._skipping = len(self._buf) + (len(self._cusd or b""))
                self._buf.clear()
                self._cusd = None
                if j < 0:
                    break
                items.append(self._garbage(GarbageKind.OVERSIZED, self._skipping))
                self._skipping = 0
                i = j + 1
                continue
            if j < 0:
                i = n
                head = self._buf.lstrip(_CONTROL_BYTES)  # a NUL a modem puts before it
                if self.expect_prompt and self._cusd is None and head[:1] == b">":
                    # "> " has no line end: it is the whole point of the prompt.
                    items.append(PromptReceived())
                    rest = bytes(head[1:])
                    self._buf.clear()
                    self.expect_prompt = False
                    if rest[:1] == b" ":
                        rest = rest[1:]
                    elif not rest:
                        self._eat_space = True
                    if rest:
                        items.extend(self.feed(rest))
                break
            i = j + 1
            self._end_line(data[j : j + 1], items)
        return items

    def _end_line(self, eol: bytes, items: list[FramerItem]) -> None:
        raw = bytes(self._buf)
        self._buf.clear()
        if self._cusd is not None:
            # inside the quoted text of a +CUSD: keep the line break, blank lines too
            if eol == b"\n" and not raw:
                return  # the \n of a \r\n pair
            line = raw.decode("utf-8", errors="replace")
            if self.ends_text(_CONTROL.sub("", line).strip()):
                # the text was never closed: emit it as it is, then read this line
                items.append(self._decode(bytes(self._cusd).rstrip(b"\n")))
                self._cusd = None
            else:
                self._cusd += b"\n" + raw
                self._cusd_lines += 1
                if (
                    self._cusd.count(b'"') % 2 == 0
                    or _CUSD_END.search(raw)
                    or self._cusd_lines >= CUSD_MAX_LINES
                ):
                    raw, self._cusd = bytes(self._cusd), None
                    items.append(self._decode(raw))
                return
        if not raw.strip():
            return
        if self.expect_prompt and raw.lstrip(_CONTROL_BYTES)[:1] == b">":
            # the prompt with a line end after it, or a URC cut into it ("\r\n>\r\n+CMTI…")
            items.append(PromptReceived())
            self.expect_prompt = False
            raw = raw.lstrip(_CONTROL_BYTES)[1:].strip()
            if not raw:
                return
        if (
            raw.lstrip().startswith(b"+CUSD:")
            and raw.count(b'"') % 2 == 1
            and not _CUSD_END.search(raw)
        ):
            self._cusd = bytearray(raw)
            self._cusd_lines = 0
            return
        item = self._decode(raw)
        if isinstance(item, LineReceived) and not item.text:
            return
        items.append(item)

    def _decode(self, raw: bytes) -> FramerItem:
        text = raw.decode("utf-8", errors="replace")
        bad = 0
        if "\ufffd" in text:
            # count how many bytes were dropped: the replaced characters, roughly
            bad = max(1, len(raw) - len(text.replace("\ufffd", "").encode("utf-8")))
            self.bad_bytes += bad
        text = _CONTROL.sub("", text).strip()
        return LineReceived(text, bad)

    def _garbage(self, kind: GarbageKind, size: int) -> Garbage:
        self.garbage += 1
        return Garbage(kind, size)


def _next_eol(data: bytes, start: int) -> int:
    r = data.find(b"\r", start)
    n = data.find(b"\n", start)
    if r < 0:
        return n
    if n < 0:
        return r
    return min(r, n)
