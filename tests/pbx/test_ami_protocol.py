"""The sans-I/O framer and action tracker, fed with the recorded Asterisk 22 byte streams."""

from __future__ import annotations

import random

import pytest

from pbx.ami.codec import parse_message
from pbx.ami.message import Message
from pbx.ami.protocol import (
    ActionCompleted,
    ActionTracker,
    AmiProtocol,
    Banner,
    EventReceived,
    FollowUpReceived,
    ListAbandoned,
    ProtocolError,
    ProtocolErrorKind,
    ProtocolState,
    ResponseReceived,
    UnexpectedResponse,
)
from pbx.ami.trace import Block, BlockKind
from tests.pbx.conftest import load, trace_names

TRACES = trace_names()


def session_stream(blocks: list[Block]) -> tuple[bytes, list[Message]]:
    recv = [b for b in blocks if b.kind is BlockKind.RECV]
    expected = [
        parse_message(b.data) for b in recv if not b.data.startswith(b"Asterisk Call Manager/")
    ]
    return b"".join(b.data for b in recv), expected


def feed(protocol: AmiProtocol, data: bytes, cuts: list[int]) -> list:
    items = []
    previous = 0
    for cut in [*cuts, len(data)]:
        protocol.receive_data(data[previous:cut])
        items.extend(protocol.messages_received())
        previous = cut
    return items


def messages(items: list) -> list[Message]:
    return [i.message for i in items if isinstance(i, EventReceived | ResponseReceived)]


def random_cuts(size: int, rng: random.Random, largest: int) -> list[int]:
    cuts, pos = [], 0
    while True:
        pos += rng.randint(1, largest)
        if pos >= size:
            return cuts
        cuts.append(pos)


def utf8_split_cuts(data: bytes) -> list[int]:
    """Cut inside every multi-byte character (between a lead byte and its continuation)."""
    return [i for i in range(1, len(data)) if 0x80 <= data[i] < 0xC0 and data[i - 1] >= 0xC0]


@pytest.mark.parametrize("name", TRACES)
def test_every_trace_frames_like_the_per_block_parse(name: str) -> None:
    trace = load(name)
    rng = random.Random(name)
    for blocks in trace.sessions():
        data, expected = session_stream(blocks)
        for largest in (7, 300, 5000):
            protocol = AmiProtocol()
            items = feed(protocol, data, random_cuts(len(data), rng, largest))
            assert messages(items) == expected
            banners = [i for i in items if isinstance(i, Banner)]
            assert banners == [Banner("Asterisk Call Manager/11.0.0", "11.0.0")]
            assert not [i for i in items if isinstance(i, ProtocolError)]
            assert protocol.buffered == 0


@pytest.mark.parametrize("name", ["00_basics", "05c_click_to_call_no_answer"])
def test_one_byte_reads(name: str) -> None:
    data, expected = session_stream(load(name).sessions()[0])
    protocol = AmiProtocol()
    assert messages(feed(protocol, data, list(range(1, len(data))))) == expected


def test_reads_that_split_cyrillic_characters() -> None:
    data, expected = session_stream(load("08a_callerid_cyrillic").sessions()[0])
    cuts = utf8_split_cuts(data)
    assert len(cuts) > 1000  # the trace is full of Cyrillic names
    items = feed(AmiProtocol(), data, cuts)
    assert messages(items) == expected
    names = {m.get("CallerIDName") for m in messages(items)}
    assert 'Иван Петров (ООО \\\\\\"Ромашка\\\\\\") №5' in names
    assert not any("\ufffd" in (n or "") for n in names)


def test_banner_is_reported_once_with_its_version() -> None:
    protocol = AmiProtocol()
    assert protocol.state is ProtocolState.BANNER
    for byte in b"Asterisk Call Manager/11.0.0\r\n":
        protocol.receive_data(bytes([byte]))
    protocol.receive_data(b"Response: Success\r\nActionID: 1\r\n\r\n")
    items = protocol.messages_received()
    assert items[0] == Banner("Asterisk Call Manager/11.0.0", "11.0.0")
    assert isinstance(items[1], ResponseReceived)
    assert protocol.state is ProtocolState.OPEN
    assert protocol.banner is not None and protocol.banner.version == "11.0.0"


def test_missing_banner_is_an_error_but_messages_still_parse() -> None:
    protocol = AmiProtocol()
    protocol.receive_data(b"Response: Success\r\nActionID: 1\r\n\r\nEvent: X\r\n\r\n")
    items = protocol.messages_received()
    assert items[0] == ProtocolError(ProtocolErrorKind.BAD_BANNER, len(b"Response: Success"))
    assert [m.response or m.event for m in messages(items)] == ["Success", "X"]


def test_originate_response_is_an_event() -> None:
    data, _ = session_stream(load("05_click_to_call").sessions()[0])
    protocol = AmiProtocol()
    protocol.receive_data(data)
    items = protocol.messages_received()
    originate = [
        i for i in items if not isinstance(i, Banner) and i.message.event == "OriginateResponse"
    ]
    assert len(originate) == 1
    assert isinstance(originate[0], EventReceived)
    assert originate[0].message.response == "Success"  # carries Response: too


def test_garbage_without_colon_is_reported_and_skipped() -> None:
    protocol = AmiProtocol()
    protocol.receive_data(
        b"Asterisk Call Manager/11.0.0\r\n"
        b"hello there\r\n\x00\x01\x02 junk\r\n\r\n"
        b"\r\n\r\n"
        b"Event: Next\r\nA: 1\r\n\r\n"
    )
    items = protocol.messages_received()[1:]
    assert isinstance(items[0], ProtocolError)
    assert items[0].kind is ProtocolErrorKind.UNROUTABLE
    assert [m.event for m in messages(items)] == ["Next"]


def test_missing_blank_line_merges_only_the_two_messages() -> None:
    protocol = AmiProtocol()
    protocol.receive_data(
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Event: Broken\r\nA: 1\r\n"  # no blank line
        b"Event: Second\r\nB: 2\r\n\r\n"
        b"Event: Third\r\n\r\n"
        b"Event: Dangling\r\n"
    )
    found = messages(protocol.messages_received())
    assert found[0].event == "Broken" and found[0].get_all("Event") == ["Broken", "Second"]
    assert found[1].event == "Third"
    protocol.receive_eof()
    assert protocol.messages_received() == [
        ProtocolError(ProtocolErrorKind.TRUNCATED, len(b"Event: Dangling\r\n"))
    ]


def test_ten_megabyte_header_is_dropped_with_bounded_memory() -> None:
    cap = 1 << 20
    protocol = AmiProtocol(max_message_size=cap)
    protocol.receive_data(b"Asterisk Call Manager/11.0.0\r\nEvent: Before\r\n\r\n")
    huge = b"Event: Huge\r\nData: " + b"x" * (10 * 1024 * 1024) + b"\r\n\r\n"
    stream = huge + b"Event: After\r\nA: \xd0\r\n\r\n"  # the terminator arrives split below
    chunk = 64 * 1024
    largest_buffer = 0
    items = []
    for pos in range(0, len(stream), chunk):
        protocol.receive_data(stream[pos : pos + chunk])
        largest_buffer = max(largest_buffer, protocol.buffered)
        items.extend(protocol.messages_received())
    assert largest_buffer <= cap + chunk
    errors = [i for i in items if isinstance(i, ProtocolError)]
    assert errors == [ProtocolError(ProtocolErrorKind.OVERSIZED, len(huge))]
    assert [m.event for m in messages(items)] == ["Before", "After"]


def test_oversized_message_in_one_read_and_terminator_split_across_reads() -> None:
    protocol = AmiProtocol(max_message_size=64)
    protocol.receive_data(b"Asterisk Call Manager/11.0.0\r\n")
    protocol.receive_data(b"Event: Big\r\nX: " + b"y" * 100 + b"\r\n\r\nEvent: Ok\r\n\r\n")
    items = protocol.messages_received()
    assert [type(i) for i in items[1:]] == [ProtocolError, EventReceived]
    big = b"Event: Big\r\nX: " + b"y" * 200 + b"\r\n\r"
    protocol.receive_data(big)
    protocol.receive_data(b"\nEvent: Ok2\r\n\r\n")
    items = protocol.messages_received()
    assert items[0] == ProtocolError(ProtocolErrorKind.OVERSIZED, len(big) + 1)
    assert items[1].message.event == "Ok2"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    protocol = AmiProtocol()
    protocol.receive_data(
        b"Asterisk Call Manager/11.0.0\r\n"
        b"Event: Bad\r\nName: \xff\xfe\xd0\r\n\r\n"
        b"Event: Good\r\n\r\n"
    )
    found = messages(protocol.messages_received())
    assert found[0].get("Name") == "\ufffd\ufffd\ufffd"
    assert found[1].event == "Good"


# -- tracker -------------------------------------------------------------------------------------


def track_trace(name: str) -> tuple[ActionTracker, list, dict[str, str]]:
    """Feed a whole trace, expecting every recorded action as if we had sent it."""
    trace = load(name)
    tracker = ActionTracker()
    sent: dict[str, str] = {}
    out = []
    for blocks in trace.sessions():
        protocol = AmiProtocol()
        for block in blocks:
            if block.kind is BlockKind.SEND:
                action = parse_message(block.data)
                sent[action.action_id] = action["Action"]
                follow = "OriginateResponse" if action["Action"] == "Originate" else None
                tracker.expect(action.action_id, follow_event=follow)
                continue
            protocol.receive_data(block.data)
            for item in protocol.messages_received():
                if isinstance(item, EventReceived | ResponseReceived):
                    out.extend(tracker.receive(item))
    return tracker, out, sent


@pytest.mark.parametrize(
    ("name", "action", "items", "first"),
    [
        ("01_inbound_answered", "01-2", 2, "CoreShowChannel"),
        ("00_basics", "00-9", 2, "QueueParams"),
        ("11_queue_two_agents_ringall", "11-3", 3, "QueueParams"),
        ("09_fax_send", "09-3", 2, "FAXSessionsEntry"),  # EventList: Start
        ("12_ami_reconnect_midcall", "12-4", 2, "Status"),
        ("00_basics", "00-11", 0, None),  # an empty list
    ],
)
def test_list_actions_are_collected(name: str, action: str, items: int, first: str | None) -> None:
    _, out, _ = track_trace(name)
    done = [o for o in out if isinstance(o, ActionCompleted) and o.action_id == action]
    assert len(done) == 1
    assert done[0].ok
    assert len(done[0].events) == items
    if first:
        assert done[0].events[0].event == first
    assert done[0].complete is not None
    assert done[0].complete.get("ListItems") == str(items)
    # list items are consumed, never reported as plain events
    plain = [o.message for o in out if isinstance(o, EventReceived)]
    assert not [m for m in plain if m.action_id == action and m.get("EventList") is None]


@pytest.mark.parametrize("name", TRACES)
def test_every_recorded_action_completes_once(name: str) -> None:
    tracker, out, sent = track_trace(name)
    completed = [o.action_id for o in out if isinstance(o, ActionCompleted)]
    answered = set(sent)
    if name == "00_basics_badlogin":
        answered.discard("00-2")  # the server hung up before the Logoff
    assert sorted(completed) == sorted(answered)
    assert not [o for o in out if isinstance(o, UnexpectedResponse)]
    for action_id, action in sent.items():
        if action == "Originate":
            follow = [o for o in out if isinstance(o, FollowUpReceived)]
            assert [f.action_id for f in follow] == [action_id]
            assert follow[0].event.event == "OriginateResponse"
            # still delivered to event handlers
            assert follow[0].event in [o.message for o in out if isinstance(o, EventReceived)]
    assert not any(tracker.is_pending(a) for a in answered)


def test_foreign_originate_response_is_a_plain_event() -> None:
    _, out, _ = track_trace("10_fax_receive")
    foreign = [
        o for o in out if isinstance(o, EventReceived) and o.message.event == "OriginateResponse"
    ]
    assert [o.message.action_id for o in foreign] == ["harness-10-2"]
    assert not [o for o in out if isinstance(o, FollowUpReceived)]


def msg(**headers: str) -> Message:
    return Message(dict(headers))


def test_foreign_action_id_while_ours_is_pending() -> None:
    tracker = ActionTracker()
    tracker.expect("cc-1", follow_event="OriginateResponse")
    event = EventReceived(
        msg(Event="OriginateResponse", ActionID="harness-10-2", Response="Success")
    )
    assert tracker.receive(event) == (event,)
    response = ResponseReceived(msg(Response="Success", ActionID="harness-10-2"))
    assert tracker.receive(response) == (UnexpectedResponse(response.message),)
    assert tracker.is_pending("cc-1")


def test_follow_up_that_overtakes_its_response() -> None:
    tracker = ActionTracker()
    tracker.expect("cc-1", follow_event="OriginateResponse")
    early = EventReceived(msg(Event="OriginateResponse", ActionID="cc-1", Response="Failure"))
    assert tracker.receive(early) == (early,)
    queued = msg(Response="Success", ActionID="cc-1", Message="Originate successfully queued")
    out = tracker.receive(ResponseReceived(queued))
    assert out == (ActionCompleted("cc-1", queued), FollowUpReceived("cc-1", early.message))
    assert not tracker.is_pending("cc-1")


def test_error_response_ends_a_list_action_and_forget_makes_late_answers_unexpected() -> None:
    tracker = ActionTracker()
    tracker.expect("cc-1")
    error = msg(Response="Error", ActionID="cc-1", Message="No Contacts found")
    (done,) = tracker.receive(ResponseReceived(error))
    assert isinstance(done, ActionCompleted) and not done.ok
    tracker.expect("cc-2")
    tracker.forget("cc-2")  # timed out
    late = msg(Response="Success", ActionID="cc-2")
    assert tracker.receive(ResponseReceived(late)) == (UnexpectedResponse(late),)


def test_connection_lost_drops_in_flight_actions_but_keeps_follow_ups() -> None:
    tracker = ActionTracker()
    tracker.expect("cc-1", follow_event="OriginateResponse")
    tracker.receive(ResponseReceived(msg(Response="Success", ActionID="cc-1")))
    tracker.expect("cc-2")
    assert tracker.connection_lost() == ["cc-2"]
    result = msg(Event="OriginateResponse", ActionID="cc-1", Response="Success")
    out = tracker.receive(EventReceived(result))
    assert out[0] == FollowUpReceived("cc-1", result)


def _snapshot_start(tracker: ActionTracker, action_id: str = "cc-1") -> None:
    tracker.expect(action_id, hold_events=True)
    start = msg(Response="Success", ActionID=action_id, EventList="start")
    assert tracker.receive(ResponseReceived(start)) == ()


def test_snapshot_list_holds_events_until_it_completes() -> None:
    tracker = ActionTracker()
    before = EventReceived(msg(Event="Newchannel", Uniqueid="1"))
    tracker.expect("cc-1", hold_events=True)
    assert tracker.receive(before) == (before,)  # before the list starts: not held
    start = msg(Response="Success", ActionID="cc-1", EventList="start")
    assert tracker.receive(ResponseReceived(start)) == ()
    entry = msg(Event="CoreShowChannel", ActionID="cc-1", Uniqueid="1")
    assert tracker.receive(EventReceived(entry)) == ()
    hangup = EventReceived(msg(Event="Hangup", Uniqueid="1"))
    assert tracker.receive(hangup) == ()  # inside the list: held
    pong = msg(Response="Success", ActionID="cc-2", Ping="Pong")
    tracker.expect("cc-2")
    assert tracker.receive(ResponseReceived(pong)) == (ActionCompleted("cc-2", pong),)
    complete = msg(Event="CoreShowChannelsComplete", ActionID="cc-1", EventList="Complete")
    out = tracker.receive(EventReceived(complete))
    assert out == (ActionCompleted("cc-1", start, (entry,), complete), hangup)
    after = EventReceived(msg(Event="Newchannel", Uniqueid="2"))
    assert tracker.receive(after) == (after,)
    assert tracker.take_released() == []


def test_held_events_are_released_when_the_snapshot_is_given_up() -> None:
    tracker = ActionTracker()
    _snapshot_start(tracker)
    held = [EventReceived(msg(Event="Newchannel", Uniqueid=str(i))) for i in range(3)]
    for item in held:
        assert tracker.receive(item) == ()
    assert tracker.take_released() == []  # still collecting
    tracker.forget("cc-1")  # timed out
    assert tracker.take_released() == held
    later = EventReceived(msg(Event="Hangup", Uniqueid="0"))
    assert tracker.receive(later) == (later,)

    _snapshot_start(tracker, "cc-2")
    assert tracker.receive(later) == ()
    assert tracker.connection_lost() == ["cc-2"]
    assert tracker.take_released() == [later]


def test_snapshot_list_is_abandoned_rather_than_holding_without_bound() -> None:
    held = [EventReceived(msg(Event="Newexten", Uniqueid=str(i)), 1000) for i in range(3)]
    tracker = ActionTracker(max_held_bytes=2500)  # bytes on the wire, not a count
    _snapshot_start(tracker)
    assert tracker.receive(held[0]) == ()
    assert tracker.receive(held[1]) == ()
    assert tracker.receive(held[2]) == (ListAbandoned("cc-1", 3), *held)
    assert not tracker.is_pending("cc-1")
    entry = msg(Event="CoreShowChannel", ActionID="cc-1", Uniqueid="1")
    assert tracker.receive(EventReceived(entry)) == (EventReceived(entry),)
    # the budget starts afresh for the next snapshot
    _snapshot_start(tracker, "cc-2")
    assert tracker.receive(held[0]) == ()
    assert tracker.receive(held[1]) == ()


def test_the_held_budget_counts_framed_bytes() -> None:
    """A few big events exhaust the budget as surely as many small ones; a message built by
    hand (no wire size) is estimated from its headers."""
    protocol = AmiProtocol()
    big = b"Event: VarSet\r\nUniqueid: 1\r\nValue: " + b"x" * 100_000 + b"\r\n\r\n"
    protocol.receive_data(b"Asterisk Call Manager/11.0.0\r\n" + big * 3)
    _, *events = protocol.messages_received()
    assert [e.size for e in events] == [len(big)] * 3
    tracker = ActionTracker(max_held_bytes=250_000)
    _snapshot_start(tracker)
    assert tracker.receive(events[0]) == tracker.receive(events[1]) == ()
    assert tracker.receive(events[2])[0] == ListAbandoned("cc-1", 3)
    small = EventReceived(msg(Event="Hangup", Uniqueid="1"))  # 30 bytes if it were sent
    tracker = ActionTracker(max_held_bytes=30 * 2)
    _snapshot_start(tracker)
    assert tracker.receive(small) == tracker.receive(small) == ()
    assert tracker.receive(small)[0] == ListAbandoned("cc-1", 3)


def test_the_default_budget_bites_before_a_resync_times_out() -> None:
    """10 s (the default action timeout) of a PBX at 5,000 recorded events/s is more than the
    budget: the snapshot is given up, the held memory stays bounded."""
    data = all_fixture_streams()
    protocol = AmiProtocol()
    protocol.receive_data(data)
    events = [i for i in protocol.messages_received() if isinstance(i, EventReceived)]
    tracker = ActionTracker()
    _snapshot_start(tracker)
    received = 0
    for received in range(1, 50_001):
        out = tracker.receive(events[received % len(events)])
        if out:
            break
    assert isinstance(out[0], ListAbandoned)
    assert 10_000 < received < 50_000
    assert tracker.take_released() == []


def test_only_one_snapshot_list_at_a_time() -> None:
    """Two open at once would apply a Hangup held for the second after the first's snapshot."""
    tracker = ActionTracker()
    tracker.expect("cc-1", hold_events=True)
    with pytest.raises(ValueError, match="snapshot list 'cc-1' is still open"):
        tracker.expect("cc-2", hold_events=True)
    assert not tracker.is_pending("cc-2")
    tracker.expect("cc-3")  # plain actions and lists are not affected
    start = msg(Response="Success", ActionID="cc-1", EventList="start")
    tracker.receive(ResponseReceived(start))
    with pytest.raises(ValueError):
        tracker.expect("cc-4", hold_events=True)
    complete = msg(Event="CoreShowChannelsComplete", ActionID="cc-1", EventList="Complete")
    tracker.receive(EventReceived(complete))
    tracker.expect("cc-4", hold_events=True)  # the first one is closed
    tracker.forget("cc-4")
    tracker.expect("cc-5", hold_events=True)
    tracker.connection_lost()
    tracker.expect("cc-6", hold_events=True)


def test_follow_up_is_not_held_by_a_snapshot_list() -> None:
    tracker = ActionTracker()
    tracker.expect("cc-9", follow_event="OriginateResponse")
    tracker.receive(ResponseReceived(msg(Response="Success", ActionID="cc-9")))
    _snapshot_start(tracker)
    result = msg(Event="OriginateResponse", ActionID="cc-9", Response="Success")
    assert tracker.receive(EventReceived(result)) == (FollowUpReceived("cc-9", result),)
    complete = msg(Event="CoreShowChannelsComplete", ActionID="cc-1", EventList="Complete")
    assert tracker.receive(EventReceived(complete))[1:] == (EventReceived(result),)


def test_duplicate_action_id_is_refused() -> None:
    tracker = ActionTracker()
    tracker.expect("cc-1")
    with pytest.raises(ValueError):
        tracker.expect("cc-1")


def all_fixture_streams() -> bytes:
    parts = []
    for name in TRACES:
        for blocks in load(name).sessions():
            data, _ = session_stream(blocks)
            parts.append(data.removeprefix(b"Asterisk Call Manager/11.0.0\r\n"))
    return b"Asterisk Call Manager/11.0.0\r\n" + b"".join(parts)


def framed_and_tracked(data: bytes, step: int) -> list[object]:
    """The framer's items fed ``step`` bytes at a time, each message also through a tracker."""
    protocol, tracker = AmiProtocol(), ActionTracker()
    out: list[object] = []
    for pos in range(0, len(data), step):
        protocol.receive_data(data[pos : pos + step])
        for item in protocol.messages_received():
            out.append(item)
            if isinstance(item, EventReceived | ResponseReceived):
                out.extend(tracker.receive(item))
    return out


@pytest.mark.parametrize("step", [7, 4093, 65536])
def test_chunked_feeding_of_every_trace_gives_the_same_messages(step: int) -> None:
    """Every recorded stream, cut in reads of odd sizes (terminators and UTF-8 characters cut
    anywhere) and in 64 KiB reads (as the socket delivers them), and fed whole, yields the same
    messages and sizes in the same order. Speed is measured by benchmarks/ami_ingest.py, never
    here."""
    data = all_fixture_streams()
    chunked = framed_and_tracked(data, step)
    assert len(chunked) > 2500
    whole = framed_and_tracked(data, len(data))
    assert chunked == whole
    sizes = [i.size for i in whole if isinstance(i, EventReceived)]
    assert sizes == [i.size for i in chunked if isinstance(i, EventReceived)]


def test_chunked_feeding_one_byte_at_a_time() -> None:
    """1-byte reads, on one trace to stay quick (the Cyrillic one: characters cut in two)."""
    data, _ = session_stream(load("08a_callerid_cyrillic").sessions()[0])
    chunked = framed_and_tracked(data, 1)
    assert len(chunked) > 150
    assert chunked == framed_and_tracked(data, len(data))
