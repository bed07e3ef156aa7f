from __future__ import annotations

import json

from callcenter.bus import BusEvent, EventBus


def test_publish_numbers_events_and_subscribers_get_them() -> None:
    bus = EventBus()
    got: list[BusEvent] = []
    unsubscribe = bus.subscribe(got.append)
    first = bus.publish("call.ringing", {"call": {"id": "a", "caller": {"name": "Иван"}}}, 1.5)
    bus.publish("call.ended", {"call": {"id": "a"}})
    assert [e.seq for e in got] == [1, 2] and bus.last_seq == 2
    assert json.loads(first.text) == {"seq": 1, "type": "call.ringing", "at": 1.5,
                                      "data": {"call": {"id": "a", "caller": {"name": "Иван"}}}}
    assert "Иван" in first.text  # UTF-8 kept, not \\u-escaped
    unsubscribe()
    bus.publish("call.updated", {})
    assert len(got) == 2


def test_since_replays_from_json_and_reports_a_gap() -> None:
    bus = EventBus(history=3)
    for i in range(5):
        bus.publish("call.updated", {"n": i})
    assert bus.since(5) == []
    replay = bus.since(3)
    assert [(e.seq, e.topic, e.data) for e in replay] == [(4, "call.updated", {"n": 3}),
                                                          (5, "call.updated", {"n": 4})]
    assert bus.since(2) is not None and len(bus.since(2) or []) == 3
    assert bus.since(1) is None  # event 2 left the window: the console must reload


def test_a_failing_subscriber_does_not_starve_the_others() -> None:
    bus = EventBus()
    got: list[int] = []

    def broken(event: BusEvent) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(lambda e: got.append(e.seq))
    bus.publish("x", {})
    assert got == [1]


def test_since_decides_by_sequence_before_parsing(monkeypatch) -> None:
    from callcenter import bus as bus_module

    bus = EventBus(history=100)
    assert bus.oldest_seq == 1  # empty: the next event is the oldest
    for i in range(150):
        bus.publish("call.updated", {"n": i})
    assert bus.oldest_seq == 51
    parsed: list[int] = []
    real = bus_module._load_event
    monkeypatch.setattr(bus_module, "_load_event",
                        lambda number, text: parsed.append(number) or real(number, text))
    assert bus.since(10) is None and bus.since(100, limit=49) is None and parsed == []
    assert [e.data["n"] for e in bus.since(147, limit=3) or []] == [147, 148, 149]
    assert parsed == [148, 149, 150]


def test_redact_replaces_matching_events_in_the_replay_window_keeping_their_numbers() -> None:
    bus = EventBus(history=10)
    for i in range(12):  # the first two leave the window
        bus.publish("call.updated", {"call": {"id": f"c{i % 3}"}, "number": f"+7916000{i:04d}"},
                    at=float(i))
    assert bus.since(0) is None
    before = bus.since(2) or []
    assert len(before) == 10

    def hide(data: dict) -> dict | None:
        return {**data, "number": ""} if data["call"]["id"] == "c1" else None

    # "c1" is in every event's text of c1 (and in none of the others): 3 of them in the window
    assert bus.redact('"c1"', hide) == 3
    after = bus.since(2) or []
    assert [(e.seq, e.topic, e.at) for e in after] == [(e.seq, e.topic, e.at) for e in before]
    for old, new in zip(before, after, strict=True):
        if old.data["call"]["id"] == "c1":
            assert new.data["number"] == "" and old.data["number"] not in new.text
            assert json.loads(new.text)["seq"] == new.seq
        else:
            assert new.text == old.text
    assert bus.redact('"nobody"', hide) == 0
