"""Sans-I/O AMI: bytes in, typed items out. No sockets, no asyncio, no clocks.

Two independent pieces, both fed by the caller (``connection.py``, tests, benchmarks):

* ``AmiProtocol`` frames the server's byte stream: the one-line banner, then messages ending in a
  blank line. It splits raw bytes on ``\\r\\n\\r\\n`` and decodes only whole messages, so a UTF-8
  character cut by a TCP read survives, and it caps the size of one message so a broken or
  hostile peer cannot make it buffer forever.
* ``ActionTracker`` correlates answers with the actions we sent, by ActionID: plain responses,
  list actions (``EventList: start`` … ``EventList: Complete``) and a follow-up event such as the
  ``OriginateResponse`` of an async Originate. A snapshot list (``hold_events``) holds back the
  events that arrive while it is being collected and releases them right after its
  ``ActionCompleted``, so the snapshot can be applied at its place in the stream.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pbx.ami.codec import parse_message
from pbx.ami.message import Message

MAX_MESSAGE_SIZE = 1 << 20
# Wire bytes of the events held back while a snapshot list is collected. A held event costs
# about 6 times its wire size once parsed (measured over every fixture: 420 bytes on the wire,
# 2.6 KB in memory), so 8 MiB is about 50 MB held and 20,000 typical events, 4 s of a PBX at
# 5,000 events/s. Beyond that the snapshot is given up (ListAbandoned) rather than memory. A
# count would not do: a few messages near MAX_MESSAGE_SIZE hold as much as 100,000 small ones.
MAX_HELD_BYTES = 8 << 20
TERMINATOR = b"\r\n\r\n"
BANNER_PREFIX = b"Asterisk Call Manager/"
# The banner is a short line; anything longer without CRLF is not a banner.
_MAX_BANNER = 256


class ProtocolState(enum.Enum):
    BANNER = "banner"  # waiting for "Asterisk Call Manager/x.y.z\r\n"
    OPEN = "open"  # framing messages


class ProtocolErrorKind(enum.StrEnum):
    OVERSIZED = "oversized"  # a message above max_message_size, dropped up to its terminator
    UNROUTABLE = "unroutable"  # a message with neither Event: nor Response: (garbage)
    BAD_BANNER = "bad_banner"  # the first line is not an AMI banner
    TRUNCATED = "truncated"  # the stream ended inside a message


@dataclass(frozen=True, slots=True)
class Banner:
    line: str  # "Asterisk Call Manager/11.0.0"
    version: str  # "11.0.0": the AMI protocol version, not the Asterisk version


@dataclass(slots=True)
class EventReceived:
    message: Message
    # Bytes on the wire (terminator included); 0 when not framed from bytes (tests), then
    # estimated from the headers where a budget needs it.
    size: int = field(default=0, compare=False)


@dataclass(slots=True)
class ResponseReceived:
    message: Message


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """Something the framer dropped. Carries the size only: the content may be a secret echo,
    a customer's data or megabytes of garbage, none of which belongs in a log."""

    kind: ProtocolErrorKind
    size: int


ProtocolItem = Banner | EventReceived | ResponseReceived | ProtocolError


class AmiProtocol:
    """Frames the byte stream of one AMI connection (make a new one per TCP connection)."""

    def __init__(self, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 16:
            raise ValueError("max_message_size is too small for any AMI message")
        self.max_message_size = max_message_size
        self.state = ProtocolState.BANNER
        self.banner: Banner | None = None
        self.errors = 0
        self._buffer = bytearray()
        self._items: list[ProtocolItem] = []
        # While dropping an oversized message: bytes dropped so far, and the last 3 bytes seen
        # so that a terminator split across two reads is still found.
        self._discarded: int | None = None
        self._discard_tail = b""

    # -- input ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        if not data:
            return
        if self._discarded is not None:
            data = self._skip_oversized(data)
            if not data:
                return
        if self.state is ProtocolState.BANNER:
            data = self._take_banner(data)
            if not data:
                return
        buffer = self._buffer
        if buffer:
            # Only the new bytes (plus 3 for a terminator split across reads) need scanning:
            # keeps 1-byte reads linear instead of quadratic.
            start = len(buffer) - 3 if len(buffer) > 3 else 0
            buffer += data
            if buffer.find(TERMINATOR, start) < 0:
                self._check_buffer()
                return
            data = bytes(buffer)
            buffer.clear()
        blocks = data.split(TERMINATOR)
        tail = blocks.pop()
        cap = self.max_message_size
        items = self._items
        append = items.append
        for block in blocks:
            if len(block) > cap:
                self._error(ProtocolErrorKind.OVERSIZED, len(block) + 4)
                continue
            message = parse_message(block)
            headers = message.headers
            # Event first: OriginateResponse carries both Event: and Response:.
            if "Event" in headers:
                append(EventReceived(message, len(block) + 4))
            elif "Response" in headers:
                append(ResponseReceived(message))
            elif block.strip(b"\r\n"):
                self._error(ProtocolErrorKind.UNROUTABLE, len(block) + 4)
        if tail:
            buffer += tail
            self._check_buffer()

    def receive_eof(self) -> None:
        """The peer closed: whatever is buffered will never be completed."""
        if self._buffer.strip(b"\r\n"):
            self._error(ProtocolErrorKind.TRUNCATED, len(self._buffer))
        self._buffer.clear()
        self._discarded = None

    # -- output --------------------------------------------------------------------------------

    def messages_received(self) -> list[ProtocolItem]:
        """Items parsed since the last call, in stream order."""
        items, self._items = self._items, []
        return items

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete message (bounded by max_message_size)."""
        return len(self._buffer)

    # -- internals -----------------------------------------------------------------------------

    def _error(self, kind: ProtocolErrorKind, size: int) -> None:
        self.errors += 1
        self._items.append(ProtocolError(kind, size))

    def _check_buffer(self) -> None:
        if len(self._buffer) > self.max_message_size:
            self._discarded = len(self._buffer)
            self._discard_tail = bytes(self._buffer[-3:])
            self._buffer.clear()

    def _skip_oversized(self, data: bytes) -> bytes:
        assert self._discarded is not None
        tail = self._discard_tail
        probe = tail + data
        index = probe.find(TERMINATOR)
        if index < 0:
            self._discarded += len(data)
            self._discard_tail = probe[-3:]
            return b""
        consumed = index + len(TERMINATOR) - len(tail)
        self._error(ProtocolErrorKind.OVERSIZED, self._discarded + consumed)
        self._discarded = None
        self._discard_tail = b""
        return data[consumed:]

    def _take_banner(self, data: bytes) -> bytes:
        buffer = self._buffer
        buffer += data
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) <= _MAX_BANNER and BANNER_PREFIX.startswith(bytes(buffer[:22])):
                return b""
            # Not a banner: frame whatever this is as messages.
            self._error(ProtocolErrorKind.BAD_BANNER, len(buffer))
            self.state = ProtocolState.OPEN
            rest = bytes(buffer)
            buffer.clear()
            return rest
        line = bytes(buffer[:end])
        self.state = ProtocolState.OPEN
        if line.startswith(BANNER_PREFIX) and end <= _MAX_BANNER:
            rest = bytes(buffer[end + 2 :])
            text = line.decode("utf-8", "replace")
            self.banner = Banner(text, text[len(BANNER_PREFIX) :].strip())
            self._items.append(self.banner)
        else:
            self._error(ProtocolErrorKind.BAD_BANNER, end)
            rest = bytes(buffer)
        buffer.clear()
        return rest


# -- action correlation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionCompleted:
    """The answer to one of our actions is complete. For a list action ``events`` holds the
    list's items and ``complete`` the closing ``...Complete`` event."""

    action_id: str
    response: Message
    events: tuple[Message, ...] = ()
    complete: Message | None = None

    @property
    def ok(self) -> bool:
        return self.response.response != "Error"


@dataclass(frozen=True, slots=True)
class FollowUpReceived:
    """The awaited follow-up event of an action (``OriginateResponse`` of an async Originate).
    The event is also reported as a plain ``EventReceived``: it is call state other code needs."""

    action_id: str
    event: Message


@dataclass(frozen=True, slots=True)
class UnexpectedResponse:
    """A response nobody waits for: no ActionID, or one that timed out or is not ours."""

    message: Message


@dataclass(frozen=True, slots=True)
class ListAbandoned:
    """A snapshot list given up: the events that arrived while it was being collected came to
    more than ``max_held_bytes``. The held events follow it, in order; the list's own items are
    dropped."""

    action_id: str
    held: int  # how many events were held


TrackerItem = (
    EventReceived | ActionCompleted | FollowUpReceived | UnexpectedResponse | ListAbandoned
)


@dataclass(slots=True)
class _Pending:
    follow_event: str | None
    hold_events: bool = False
    response: Message | None = None
    events: list[Message] | None = None  # not None while a list is being collected
    early_follow: Message | None = None  # follow-up that overtook its response


def _estimated_size(message: Message) -> int:
    """Wire size of a message that was not framed from bytes: ``Key: value\r\n`` per header."""
    size = 2 + sum(len(k) + len(v) + 4 for k, v in message.headers.items())
    return size + sum(len(k) + len(v) + 4 for k, vs in message.repeated.items() for v in vs[1:])


_LIST_START = "start"  # FAXSessions says "Start": compared lower-cased
_LIST_END = frozenset({"complete", "cancelled"})


class ActionTracker:
    """Matches responses and list events to the actions we sent, by ActionID.

    Anything carrying an ActionID we are not waiting for (another AMI session's
    ``OriginateResponse`` such as ``harness-10-2``, the single event after a ``FAXSession``
    response) is passed through as a plain event, never taken for our answer.

    A list expected with ``hold_events`` is a snapshot (CoreShowChannels after a login): every
    event that arrives between its ``EventList: start`` response and its ``...Complete`` is held
    back and returned right after its ``ActionCompleted``. Applying the snapshot when its
    completion comes out, then the events that follow, gives every event its place relative to
    the snapshot: a Hangup inside or after the list ends the channel the list still showed.
    """

    def __init__(self, max_held_bytes: int = MAX_HELD_BYTES) -> None:
        self._pending: dict[str, _Pending] = {}
        self._follow: dict[str, str] = {}  # action id -> awaited event name, after the response
        self.max_held_bytes = max_held_bytes
        self._holding: set[str] = set()  # snapshot lists being collected
        self._held: list[EventReceived] = []
        self._held_bytes = 0

    def expect(
        self, action_id: str, *, follow_event: str | None = None, hold_events: bool = False
    ) -> None:
        """Register an action before its bytes are written. Only one snapshot list
        (``hold_events``) may be open at a time: with two, the events held for the later one
        (a Hangup from before its start) would be applied after the earlier one's snapshot,
        which still shows the channel. The product never runs two resyncs at once."""
        if action_id in self._pending or action_id in self._follow:
            raise ValueError(f"ActionID {action_id!r} is already pending")
        if hold_events:
            open_ = next((a for a, p in self._pending.items() if p.hold_events), None)
            if open_ is not None:
                raise ValueError(
                    f"snapshot list {action_id!r} refused: snapshot list {open_!r} is still "
                    "open (one at a time)"
                )
        self._pending[action_id] = _Pending(follow_event, hold_events)

    def forget(self, action_id: str) -> None:
        """Stop waiting (timeout, cancellation). A late answer becomes an UnexpectedResponse.
        Events it held are then waiting in :meth:`take_released`."""
        self._pending.pop(action_id, None)
        self._follow.pop(action_id, None)
        self._holding.discard(action_id)

    def take_released(self) -> list[EventReceived]:
        """Held events no snapshot list waits for any more (after ``forget`` or
        ``connection_lost``): they arrived, so they must still be delivered, in order."""
        if self._holding or not self._held:
            return []
        return self._release()

    def _release(self) -> list[EventReceived]:
        held, self._held = self._held, []
        self._held_bytes = 0
        return held

    def is_pending(self, action_id: str) -> bool:
        return action_id in self._pending or action_id in self._follow

    def connection_lost(self) -> list[str]:
        """Drop every action still waiting for its response (they cannot be answered on a new
        connection). Follow-ups are kept: Asterisk delivers another session's
        ``OriginateResponse`` to every session, so ours can still arrive after a reconnect."""
        lost = list(self._pending)
        self._pending.clear()
        self._holding.clear()
        return lost

    def receive(self, item: EventReceived | ResponseReceived) -> tuple[TrackerItem, ...]:
        out = self._receive(item)
        if self._holding:
            return self._hold(out)
        if self._held:  # the last snapshot list just completed: its events follow it
            return (*out, *self._release())
        return out

    def _hold(self, out: tuple[TrackerItem, ...]) -> tuple[TrackerItem, ...]:
        passed: list[TrackerItem] = []
        for o in out:
            if isinstance(o, EventReceived):
                self._held.append(o)
                self._held_bytes += o.size or _estimated_size(o.message)
            else:
                passed.append(o)  # answers and follow-ups are not call state: never held
        if self._held_bytes > self.max_held_bytes:
            for action_id in sorted(self._holding):
                self._pending.pop(action_id, None)
                passed.append(ListAbandoned(action_id, len(self._held)))
            self._holding.clear()
            passed.extend(self._release())
        return tuple(passed)

    def _receive(self, item: EventReceived | ResponseReceived) -> tuple[TrackerItem, ...]:
        message = item.message
        action_id = message.headers.get("ActionID")
        if isinstance(item, ResponseReceived):
            return self._response(action_id, message)
        if action_id is None:
            return (item,)
        pending = self._pending.get(action_id)
        if pending is not None:
            if pending.events is not None:
                return self._list_event(action_id, pending, item)
            if pending.follow_event is not None and message.event == pending.follow_event:
                pending.early_follow = message
        else:
            follow = self._follow.get(action_id)
            if follow is not None and message.event == follow:
                del self._follow[action_id]
                return (FollowUpReceived(action_id, message), item)
        return (item,)

    def _response(self, action_id: str | None, message: Message) -> tuple[TrackerItem, ...]:
        pending = self._pending.get(action_id) if action_id is not None else None
        if pending is None or action_id is None:
            return (UnexpectedResponse(message),)
        event_list = message.headers.get("EventList")
        if event_list is not None and event_list.lower() == _LIST_START:
            pending.response = message
            pending.events = []
            if pending.hold_events:
                self._holding.add(action_id)
            return ()
        del self._pending[action_id]
        done = ActionCompleted(action_id, message)
        if pending.follow_event is None or message.response == "Error":
            return (done,)
        if pending.early_follow is not None:
            return (done, FollowUpReceived(action_id, pending.early_follow))
        self._follow[action_id] = pending.follow_event
        return (done,)

    def _list_event(
        self, action_id: str, pending: _Pending, item: EventReceived
    ) -> tuple[TrackerItem, ...]:
        message = item.message
        assert pending.events is not None and pending.response is not None
        event_list = message.headers.get("EventList")
        if event_list is not None and event_list.lower() in _LIST_END:
            del self._pending[action_id]
            self._holding.discard(action_id)
            return (ActionCompleted(action_id, pending.response, tuple(pending.events), message),)
        pending.events.append(message)
        return ()
