"""Sans-I/O AT command layer: bytes in, typed items out. No serial port, no asyncio, no clock.

Two pieces, fed by the caller (``gsm/port.py``, tests, the emulator's tests):

* :class:`AtFramer` cuts the modem's byte stream into lines. It splits raw bytes on ``\\r`` or
  ``\\n`` and decodes one whole line at a time (a UTF-8 character cut by a read survives; bytes
  that are not UTF-8 are replaced and counted, never raised). It reports the ``> `` prompt of
  ``+CMGS``, which has no line ending, only while a prompt is expected. It keeps a ``+CUSD:``
  line whose quoted text spans several lines as one line, and it caps the length of a line so
  a broken modem cannot make it buffer forever.
* :class:`AtEngine` runs one command at a time, in order, and sorts every line into the reply of
  the command in flight or an unsolicited result code (URC). A URC that arrives in the middle of
  a reply, or between the ``> `` prompt and the answer, is routed as a URC and never taken for
  the reply; a final code is taken only when it can end the command in flight (``NO CARRIER``
  ends ``ATD``, but during ``AT+CSQ`` it is the caller hanging up). Deadlines are absolute times
  of the caller's clock, passed to :meth:`AtEngine.advance`.

Prefixes that can be both a reply and a URC (``+CREG:``, ``+CGREG:``, ``+CUSD:``, ``+CLIP:``,
``+CPIN:``, ``+CFUN:``) are a reply only while the command in flight asks for that prefix *and*
the line has the reply's shape (``+CREG: <n>,<stat>`` vs the URC ``+CREG: <stat>[,"lac",...]``).
"""

from __future__ import annotations

import enum
import itertools
import re
from collections import deque
from dataclasses import dataclass, field

MAX_LINE = 4096  # a +CMGL line of a 140-octet PDU is ~400 chars; a UCS2 +CUSD ~800
CTRL_Z = b"\x1a"
ESC = b"\x1b"
# C0 controls other than the line ends: a NUL at boot, a Ctrl-Z echoed after the PDU.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
                if self.expect_prompt and self._cusd is None and self._buf[:1] == b">":
                    # "> " has no line end: it is the whole point of the prompt.
                    items.append(PromptReceived())
                    rest = bytes(self._buf[1:])
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
            self._cusd += b"\n" + raw
            if self._cusd.count(b'"') % 2 == 0:
                raw, self._cusd = bytes(self._cusd), None
                items.append(self._decode(raw))
            return
        if not raw.strip():
            return
        if self.expect_prompt and raw.lstrip()[:1] == b">":
            # the prompt with a line end after it, or a URC cut into it ("\r\n>\r\n+CMTI…")
            items.append(PromptReceived())
            self.expect_prompt = False
            raw = raw.lstrip()[1:].strip()
            if not raw:
                return
        if raw.lstrip().startswith(b"+CUSD:") and raw.count(b'"') % 2 == 1:
            self._cusd = bytearray(raw)
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


# --- result codes and URCs ---------------------------------------------------------------------


class Final(enum.StrEnum):
    OK = "OK"
    ERROR = "ERROR"
    CME_ERROR = "+CME ERROR"
    CMS_ERROR = "+CMS ERROR"
    NOT_SUPPORTED = "COMMAND NOT SUPPORT"  # Huawei's answer to a command it does not know
    NO_CARRIER = "NO CARRIER"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    NO_DIALTONE = "NO DIALTONE"
    CONNECT = "CONNECT"


_PLAIN_FINALS = {f.value: f for f in Final if not f.value.startswith("+")}
_PLAIN_FINALS["NO DIAL TONE"] = Final.NO_DIALTONE
# These end a call attempt (ATD, ATA); during any other command they are URCs.
_CALL_FINALS = {Final.NO_CARRIER, Final.BUSY, Final.NO_ANSWER, Final.NO_DIALTONE, Final.CONNECT}

# URCs that are never a reply (the whole line, or the text before ":").
URC_PREFIXES = frozenset(
    {
        *("+CMTI", "+CMT", "+CDS", "+CDSI", "+CBM", "+CRING", "+CIEV", "+CCWA", "+CSSU"),
        *("^RSSI", "^HCSQ", "^MODE", "^BOOT", "^ORIG", "^CONF", "^CONN", "^CEND", "^SRVST"),
        *("^SIMST", "^DSFLOWRPT", "^STIN", "^SYSSTART", "^SMOND", "^SCKS", "+WIND", "+QIND"),
        *("+QUSIM", "+PBREADY", "+CGEV", "+CTZV", "+CTZE", "+CUSATP"),
    }
)
URC_LINES = frozenset({"RING", "Call Ready", "SMS Ready", "RDY", "NORMAL POWER DOWN", "^SYSSTART"})
# Prefixes that are a reply to their own query and a URC otherwise.
DUAL_PREFIXES = frozenset({"+CREG", "+CGREG", "+CEREG", "+CUSD", "+CLIP", "+CPIN", "+CFUN"})
# URCs followed by one more line: the PDU (+CMT: [<alpha>],<len> / +CDS: <len>).
PDU_URCS = frozenset({"+CMT", "+CDS", "+CBM"})


def line_prefix(text: str) -> str:
    """``"+CMTI"`` for ``'+CMTI: "SM",3'``, ``"^RSSI"`` for ``"^RSSI:17"``, ``"RING"``."""
    if text[:1] in "+^" and ":" in text:
        return text.split(":", 1)[0].strip()
    return text


def split_args(text: str) -> list[str]:
    """The comma-separated values after ``PREFIX:``; quotes removed, commas inside kept."""
    body = text.split(":", 1)[1] if ":" in text else text
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in body.strip():
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _raw_args(text: str) -> list[str]:
    body = text.split(":", 1)[1] if ":" in text else ""
    return [a.strip() for a in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', body.strip())]


def _is_reply_shape(prefix: str, text: str) -> bool:
    """Tell the reply to a query from the URC of the same prefix."""
    args = _raw_args(text)
    if prefix in ("+CREG", "+CGREG", "+CEREG"):
        # reply: <n>,<stat>[,...]; URC: <stat>[,"lac","ci"[,act]]
        return len(args) >= 2 and args[1].isdigit()
    if prefix == "+CLIP":
        # reply: <n>,<m>; URC: "<number>",<type>,...
        return bool(args) and not args[0].startswith('"')
    if prefix == "+CUSD":
        # reply to AT+CUSD?: <n> (0 or 1) alone; a URC carries <m>[,"text",dcs]
        return len(args) == 1 and args[0] in ("0", "1")
    return True


@dataclass(frozen=True, slots=True)
class Urc:
    """An unsolicited result code. ``name`` is the prefix subscribers choose by."""

    name: str  # "+CMTI", "RING", "^RSSI", "Call Ready", or the whole line when unknown
    line: str
    pdu: str | None = None  # the second line of +CMT / +CDS
    known: bool = True

    @property
    def args(self) -> list[str]:
        return split_args(self.line) if ":" in self.line else []


# --- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AtCommand:
    """One command. ``pdu`` makes it the two-step ``AT+CMGS=<len>`` → ``> `` → PDU + Ctrl-Z."""

    text: str  # "AT+CSQ", without the \r
    timeout: float = 5.0  # for the final code (after the PDU, for AT+CMGS)
    pdu: str | None = None
    prompt_timeout: float = 5.0  # AT+CMGS: for the "> "
    expect: tuple[str, ...] | None = None  # reply prefixes; default: the command's own name
    urgent: bool = False  # run before ordinary queued work (probe, init after a reopen)

    def prefixes(self) -> tuple[str, ...]:
        if self.expect is not None:
            return self.expect
        m = re.match(r"(?i)AT([+^$%][A-Z0-9]+)", self.text)
        return (m.group(1).upper(),) if m else ()

    @property
    def is_call(self) -> bool:
        t = self.text.upper()
        return t.startswith(("ATD", "ATA"))


@dataclass(frozen=True, slots=True)
class AtResponse:
    command: str
    final: Final
    code: int | None = None  # +CME/+CMS ERROR: <n>
    lines: tuple[str, ...] = ()  # the information lines, in order
    final_text: str = ""  # "+CMS ERROR: 500", or the text of +CME ERROR: SIM not inserted

    @property
    def ok(self) -> bool:
        return self.final is Final.OK

    def values(self, prefix: str) -> list[list[str]]:
        """The arguments of every line starting with ``prefix:``."""
        return [split_args(ln) for ln in self.lines if line_prefix(ln) == prefix]

    def first(self, prefix: str) -> list[str] | None:
        v = self.values(prefix)
        return v[0] if v else None


class FailReason(enum.StrEnum):
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection lost"


@dataclass(frozen=True, slots=True)
class CommandDone:
    token: int
    response: AtResponse


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """No final code came. ``written``: the command line left us; ``pdu_written``: the PDU too
    (for AT+CMGS this means the SMS may have gone out: never re-send it blindly)."""

    token: int
    command: str
    reason: FailReason
    written: bool
    pdu_written: bool
    detail: str = ""


EngineEvent = CommandDone | CommandFailed | Urc | Garbage


def parse_final(text: str) -> tuple[Final, int | None] | None:
    f = _PLAIN_FINALS.get(text)
    if f is not None:
        return f, None
    for f in (Final.CME_ERROR, Final.CMS_ERROR):
        if text.startswith(f.value + ":"):
            rest = text.split(":", 1)[1].strip()
            return f, int(rest) if rest.isdigit() else None
    return None


class _Phase(enum.Enum):
    IDLE = "idle"
    PROMPT = "waiting for the > prompt"
    REPLY = "waiting for the final code"
    BLOCKED = "blocked after a timeout"  # the stream may be out of step until reset()


@dataclass(slots=True)
class _InFlight:
    token: int
    cmd: AtCommand
    deadline: float
    lines: list[str] = field(default_factory=list)
    pdu_written: bool = False
    rearm: bool = False  # the prompt came: the reply deadline starts at the next advance()


class AtEngine:
    """One command at a time, in submission order (urgent ones first), over :class:`AtFramer`.

    Use: ``submit()`` commands; feed bytes with ``receive_data()``; call ``advance(now)`` after
    each of those and when ``next_deadline()`` passes; write out ``data_to_send()``; handle
    ``events()``. After a timeout the engine writes nothing until ``reset()``: a late answer
    would otherwise be taken for the next command's."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.framer = AtFramer(max_line)
        self._queue: deque[tuple[int, AtCommand]] = deque()
        self._tokens = itertools.count(1)
        self._out = bytearray()
        self._events: list[EngineEvent] = []
        self._cur: _InFlight | None = None
        self._phase = _Phase.IDLE
        self._pending_pdu_urc: Urc | None = None  # +CDS: header seen, PDU line next
        self.urcs = 0
        self.stray = 0

    # -- input
    def submit(self, cmd: AtCommand) -> int:
        """Queue ``cmd``; raises ValueError for text that cannot go on the wire as one command
        (a line end or Ctrl-Z inside would end it early and start another)."""
        if not cmd.text.isascii() or not cmd.text.isprintable():
            raise ValueError(f"{command_name(cmd.text)}: not one printable ASCII command line")
        if cmd.pdu is not None and not re.fullmatch(r"[0-9A-Fa-f]+", cmd.pdu):
            raise ValueError(f"{command_name(cmd.text)}: the PDU is not hex")
        token = next(self._tokens)
        if cmd.urgent:
            # after the other urgent ones, before ordinary work
            idx = sum(1 for _, c in self._queue if c.urgent)
            self._queue.insert(idx, (token, cmd))
        else:
            self._queue.append((token, cmd))
        return token

    def cancel(self, token: int) -> bool:
        """Drop a command not written yet (its waiter gave up). In flight: False."""
        for i, (t, _) in enumerate(self._queue):
            if t == token:
                del self._queue[i]
                return True
        return False

    def receive_data(self, data: bytes) -> None:
        for item in self.framer.feed(data):
            if isinstance(item, PromptReceived):
                self._on_prompt()
            elif isinstance(item, Garbage):
                self._events.append(item)
            else:
                self._on_line(item)

    def advance(self, now: float, *, urgent_only: bool = False) -> None:
        cur = self._cur
        if cur is not None:
            if cur.rearm:
                cur.rearm = False
                cur.deadline = now + cur.cmd.timeout
            elif now >= cur.deadline and self._phase in (_Phase.PROMPT, _Phase.REPLY):
                if self._phase is _Phase.PROMPT:
                    self._out += ESC  # leave the text-entry mode if it is in it
                detail = f"no answer to {_name(cur.cmd)} ({self._phase.value})"
                self._fail(FailReason.TIMEOUT, detail)
                self._phase = _Phase.BLOCKED
            return
        if self._phase is _Phase.BLOCKED or not self._queue:
            return
        if urgent_only and not self._queue[0][1].urgent:
            return
        token, cmd = self._queue.popleft()
        self._cur = _InFlight(token, cmd, now + (cmd.prompt_timeout if cmd.pdu else cmd.timeout))
        self._out += cmd.text.encode("ascii", "strict") + b"\r"
        if cmd.pdu is not None:
            self._phase = _Phase.PROMPT
            self.framer.expect_prompt = True
        else:
            self._phase = _Phase.REPLY

    def reset(self, reason: FailReason = FailReason.CONNECTION_LOST, detail: str = "") -> None:
        """The link was closed or reopened: fail what is in flight, keep the queue."""
        if self._cur is not None:
            self._fail(reason, detail or reason.value)
        self._phase = _Phase.IDLE
        self._pending_pdu_urc = None
        self.framer.reset()
        self._out.clear()

    # -- output
    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def events(self) -> list[EngineEvent]:
        ev, self._events = self._events, []
        return ev

    def next_deadline(self) -> float | None:
        return self._cur.deadline if self._cur is not None and not self._cur.rearm else None

    @property
    def busy(self) -> bool:
        return self._cur is not None

    @property
    def blocked(self) -> bool:
        return self._phase is _Phase.BLOCKED

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- internals
    def _on_prompt(self) -> None:
        cur = self._cur
        if cur is None or self._phase is not _Phase.PROMPT or cur.cmd.pdu is None:
            return
        self._out += cur.cmd.pdu.encode("ascii") + CTRL_Z
        cur.pdu_written = True
        cur.rearm = True
        self._phase = _Phase.REPLY

    def _on_line(self, item: LineReceived) -> None:
        text = item.text
        if self._pending_pdu_urc is not None:
            urc, self._pending_pdu_urc = self._pending_pdu_urc, None
            self._emit_urc(Urc(urc.name, urc.line, pdu=text))
            return
        cur = self._cur
        prefix = line_prefix(text)
        if cur is not None and self._phase in (_Phase.PROMPT, _Phase.REPLY):
            if _is_echo(text, cur):
                return
            final = parse_final(text)
            if final is not None and (final[0] not in _CALL_FINALS or cur.cmd.is_call):
                self._done(final[0], final[1], text)
                return
            if final is not None:
                self._emit_urc(Urc(text, text))  # NO CARRIER during AT+CSQ: a call ended
                return
            if self._route_urc(text, prefix, expected=cur.cmd.prefixes()):
                return
            if item.bad_bytes and not _known_prefix(prefix, cur.cmd.prefixes()):
                self._events.append(self._garbage(item))
                return
            cur.lines.append(text)
            return
        if self._route_urc(text, prefix, expected=()):
            return
        final = parse_final(text)
        if final is not None and final[0] in _CALL_FINALS:
            self._emit_urc(Urc(text, text))  # NO CARRIER: the other side hung up
            return
        if final is not None or item.bad_bytes:
            # a late OK after a timeout, an echo we no longer wait for, or noise
            self.stray += 1
            kind = GarbageKind.STRAY if final is not None else GarbageKind.UNDECODABLE
            self._events.append(Garbage(kind, len(text.encode("utf-8"))))
            return
        if text.upper().startswith("AT"):
            return  # the echo of a command that already timed out
        self._emit_urc(Urc(prefix, text, known=False))

    def _route_urc(self, text: str, prefix: str, expected: tuple[str, ...]) -> bool:
        if text in URC_LINES:
            self._emit_urc(Urc(text, text))
            return True
        if prefix in URC_PREFIXES:
            if prefix in PDU_URCS:
                self._pending_pdu_urc = Urc(prefix, text)
            else:
                self._emit_urc(Urc(prefix, text))
            return True
        if prefix in DUAL_PREFIXES:
            if prefix in expected and _is_reply_shape(prefix, text):
                return False
            self._emit_urc(Urc(prefix, text))
            return True
        return False

    def _emit_urc(self, urc: Urc) -> None:
        self.urcs += 1
        self._events.append(urc)

    def _garbage(self, item: LineReceived) -> Garbage:
        self.framer.garbage += 1
        return Garbage(GarbageKind.UNDECODABLE, len(item.text.encode("utf-8")))

    def _done(self, final: Final, code: int | None, text: str) -> None:
        cur = self._cur
        assert cur is not None
        self._events.append(
            CommandDone(cur.token, AtResponse(cur.cmd.text, final, code, tuple(cur.lines), text))
        )
        self._cur = None
        self._phase = _Phase.IDLE
        self.framer.expect_prompt = False

    def _fail(self, reason: FailReason, detail: str) -> None:
        cur = self._cur
        assert cur is not None
        self._events.append(
            CommandFailed(cur.token, cur.cmd.text, reason, True, cur.pdu_written, detail)
        )
        self._cur = None
        self.framer.expect_prompt = False


def _name(cmd: AtCommand) -> str:
    # the command without its arguments: a number or PIN has no place in a log line
    m = re.match(r"(?i)(AT[+^$%]?[A-Z0-9]*)", cmd.text)
    return m.group(1).upper() if m else "AT"


def _is_echo(text: str, cur: _InFlight) -> bool:
    if text.upper() == cur.cmd.text.upper():
        return True
    pdu = cur.cmd.pdu
    return pdu is not None and cur.pdu_written and text.lstrip("> ").upper() == pdu.upper()


def _known_prefix(prefix: str, expected: tuple[str, ...]) -> bool:
    return prefix in expected or prefix in URC_PREFIXES or prefix in DUAL_PREFIXES


def command_name(text: str) -> str:
    """The command without its arguments, for logs and reasons (``AT+CPIN`` for a PIN entry)."""
    return _name(AtCommand(text))
