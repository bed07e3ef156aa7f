"""Sans-I/O AT command layer: bytes in, typed items out. No serial port, no asyncio, no clock.

Two pieces, fed by the caller (``gsm/port.py``, tests, the emulator's tests):

* :class:`~gsm.at_framer.AtFramer` cuts the modem's byte stream into lines, the ``> `` prompt
  of ``+CMGS`` (no line end, reported only while expected) and dropped garbage; a ``+CUSD:``
  text spanning several lines stays one line; bytes that are not UTF-8 are replaced and counted,
  never raised; a line is capped so a broken modem cannot make it buffer forever.
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

from gsm.at_framer import (
    CTRL_Z,
    ESC,
    MAX_LINE,
    AtFramer,
    FramerItem,
    Garbage,
    GarbageKind,
    LineReceived,
    PromptReceived,
)

__all__ = [
    "CTRL_Z", "ESC", "ESC_QUIET", "MAX_LINE", "Abandon", "AtCommand", "AtEngine", "AtFramer",
    "AtResponse",
    "CommandDone", "CommandFailed", "EngineEvent", "FailReason", "Final", "FramerItem",
    "Garbage", "GarbageKind", "LineReceived", "PromptReceived", "Urc", "command_name",
    "line_prefix", "parse_final", "split_args", "split_values",
]  # fmt: skip

_HEX = re.compile(r"[0-9A-Fa-f]+")

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
        *("+QUSIM", "+PBREADY", "+CGEV", "+CTZV", "+CTZE", "+CUSATP", "VOICE CALL"),
    }
)
URC_LINES = frozenset(
    {
        *("RING", "Call Ready", "SMS Ready", "RDY", "NORMAL POWER DOWN", "^SYSSTART"),
        *("^SHUTDOWN", "SMS DONE", "PB DONE", "MO RING", "MO CONNECTED"),
    }
)
# Prefixes that are a reply to their own query and a URC otherwise.
DUAL_PREFIXES = frozenset({"+CREG", "+CGREG", "+CEREG", "+CUSD", "+CLIP", "+CPIN", "+CFUN"})
# URCs followed by one more line: the PDU (+CMT: [<alpha>],<len> / +CDS: <len>).
PDU_URCS = frozenset({"+CMT", "+CDS", "+CBM"})


def line_prefix(text: str) -> str:
    """``"+CMTI"`` for ``'+CMTI: "SM",3'``, ``"^RSSI"`` for ``"^RSSI:17"``, ``"RING"``."""
    if text[:1] in "+^" and ":" in text:
        return text.split(":", 1)[0].strip()
    if text.startswith("VOICE CALL:"):  # SIM7600: "VOICE CALL: BEGIN", "VOICE CALL: END: 0010"
        return "VOICE CALL"
    return text


def _split(body: str, keep_quotes: bool) -> list[str]:
    # one pass: a regex with a quote-balancing lookahead is quadratic on a hostile 4 KB line
    out: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in body.strip():
        if ch == '"':
            quoted = not quoted
            if keep_quotes:
                cur.append(ch)
        elif ch == "," and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def split_values(body: str) -> list[str]:
    """``1,"a,b",15`` → ``["1", "a,b", "15"]`` (no prefix to skip)."""
    return _split(body, keep_quotes=False)


def split_args(text: str) -> list[str]:
    """The comma-separated values after ``PREFIX:``; quotes removed, commas inside kept."""
    return _split(text.split(":", 1)[1] if ":" in text else text, keep_quotes=False)


def _raw_args(text: str) -> list[str]:
    return _split(text.split(":", 1)[1], keep_quotes=True) if ":" in text else [""]


def _is_reply_shape(prefix: str, text: str, command: str = "") -> bool:
    """Tell the reply to a query from the URC of the same prefix."""
    args = _raw_args(text)
    if prefix in ("+CREG", "+CGREG", "+CEREG"):
        # reply: <n>,<stat>[,...]; URC: <stat>[,<lac>,<ci>[,act]], <lac> quoted or not
        # ("+CREG: 1,00A1,1B2C" on some firmware), never one digit like <stat>
        return len(args) >= 2 and len(args[1]) == 1 and args[1].isdigit()
    if prefix == "+CLIP":
        # reply: <n>,<m>; URC: "<number>",<type>,...
        return bool(args) and not args[0].startswith('"')
    if prefix == "+CUSD":
        # only AT+CUSD? has a reply, <n> (0 or 1) alone; during AT+CUSD=1,"*100#" a textless
        # "+CUSD: 0" is the network's answer
        return command.rstrip().endswith("?") and len(args) == 1 and args[0] in ("0", "1")
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
    ABANDONED = "abandoned"  # its caller gave up; the modem was told (ESC) or had answered


class Abandon(enum.StrEnum):
    """What :meth:`AtEngine.abandon` did."""

    DROPPED = "dropped"  # not written yet: as if never asked
    CANCELLED = "cancelled"  # AT+CMGS before its "> ": ESC written, the PDU never will be
    IN_DOUBT = "in doubt"  # the PDU was written: the SMS may go out, its answer is dropped
    ANSWER_DROPPED = "answer dropped"  # written (no PDU): it runs, its answer is dropped
    UNKNOWN = "unknown"  # no such command (already answered)


# After ESC cancels the text entry of an abandoned AT+CMGS, some modems answer (OK, ERROR) and
# some say nothing: wait this long for it before the next command, so that answer is not
# taken for the next command's.
ESC_QUIET = 1.0


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
    abandoned: bool = False  # its caller gave up: never write the PDU
    escaped: bool = False  # abandoned at the prompt: ESC written instead of the PDU


class AtEngine:
    """One command at a time, in submission order (urgent ones first), over :class:`AtFramer`.

    Use: ``submit()`` commands; feed bytes with ``receive_data()``; call ``advance(now)`` after
    each of those and when ``next_deadline()`` passes; write out ``data_to_send()``; handle
    ``events()``. After a timeout the engine writes nothing until ``reset()``: a late answer
    would otherwise be taken for the next command's."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.framer = AtFramer(max_line)
        self.framer.ends_text = _ends_text
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

    def abandon(self, token: int) -> Abandon:
        """The caller of ``token`` gave up (its own timeout, a cancelled task). Queued: dropped.
        AT+CMGS waiting for its ``> ``: ESC now and again in place of the PDU, so the SMS is
        never sent. Written otherwise: it keeps its slot until its answer (dropped) so the next
        command is not answered by it; for a PDU already written the outcome is unknown."""
        if self.cancel(token):
            return Abandon.DROPPED
        cur = self._cur
        if cur is None or cur.token != token:
            return Abandon.UNKNOWN
        cur.abandoned = True
        if cur.pdu_written:
            return Abandon.IN_DOUBT
        if cur.cmd.pdu is not None:
            self._out += ESC
            return Abandon.CANCELLED
        return Abandon.ANSWER_DROPPED

    def drop_queue(self) -> list[int]:
        """Forget every command not written yet (the port stopped or gave up); their tokens."""
        tokens = [t for t, _ in self._queue]
        self._queue.clear()
        return tokens

    def drop_urgent(self) -> list[int]:
        """Forget the urgent commands not written yet (the init of a link just lost)."""
        tokens = [t for t, c in self._queue if c.urgent]
        self._queue = deque((t, c) for t, c in self._queue if not c.urgent)
        return tokens

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
                cur.deadline = now + (ESC_QUIET if cur.escaped else cur.cmd.timeout)
            elif now >= cur.deadline and cur.escaped:
                # the modem said nothing to the ESC: the stream is in step, go on
                self._fail(FailReason.ABANDONED, f"{_name(cur.cmd)} cancelled before the PDU")
                self._phase = _Phase.IDLE
            elif now >= cur.deadline and self._phase in (_Phase.PROMPT, _Phase.REPLY):
                if self._phase is _Phase.PROMPT:
                    self._out += ESC  # leave the text-entry mode if it is in it
                detail = f"no answer to {_name(cur.cmd)} ({self._phase.value})"
                self._fail(FailReason.TIMEOUT, detail)
                self._phase = _Phase.BLOCKED
            if self._cur is not None:
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
        if self._pending_pdu_urc is not None:
            # the header came, its PDU line did not: the handler still learns of the report
            self._emit_urc(self._pending_pdu_urc)
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
        if cur.abandoned:
            self._out += ESC  # its caller is gone: nobody would learn whether it was sent
            cur.escaped = True
        else:
            self._out += cur.cmd.pdu.encode("ascii") + CTRL_Z
            cur.pdu_written = True
        cur.rearm = True
        self._phase = _Phase.REPLY

    def _on_line(self, item: LineReceived) -> None:
        text = item.text
        if self._pending_pdu_urc is not None:
            urc, self._pending_pdu_urc = self._pending_pdu_urc, None
            if _is_pdu_of(urc.line, text):
                self._emit_urc(Urc(urc.name, urc.line, pdu=text))
                return
            # the PDU line never came (a reset, a cut line): keep the header, read this line
            self._emit_urc(urc)
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
            expected = cur.cmd.prefixes()
            if self._route_urc(text, prefix, expected=expected, command=cur.cmd.text):
                return
            if expected and prefix != text and prefix not in expected:
                # a "+X:"/"^X:" line the command does not answer with: a URC we do not know
                # (^HCSQ2 of newer firmware), or a late answer of another command (+CMGS: 5)
                self._emit_urc(Urc(prefix, text, known=False))
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

    def _route_urc(
        self, text: str, prefix: str, expected: tuple[str, ...], command: str = ""
    ) -> bool:
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
            if prefix in expected and _is_reply_shape(prefix, text, command):
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


def _ends_text(text: str) -> bool:
    # a line no +CUSD text continues into: a final code, a URC, the start of another +CUSD
    prefix = line_prefix(text)
    return (
        parse_final(text) is not None
        or text in URC_LINES
        or prefix in URC_PREFIXES
        or prefix in DUAL_PREFIXES
    )


def _is_pdu_of(header: str, text: str) -> bool:
    """``text`` is the PDU a ``+CDS: <length>`` / ``+CMT: [<alpha>],<length>`` announces:
    hex of <length> TPDU octets, after the SMSC part (its first octet is its length) or,
    as some modems send it, without one."""
    if not _HEX.fullmatch(text) or len(text) % 2:
        return False
    length = _raw_args(header)[-1].strip()
    if not length.isdigit():
        return True  # a header we cannot read: the hex shape is all there is
    octets, tpdu = len(text) // 2, int(length)
    return octets == tpdu or octets == 1 + int(text[:2], 16) + tpdu


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
