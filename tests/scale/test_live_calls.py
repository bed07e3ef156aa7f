"""The calls up on other instances' lines, from their events (callcenter/cluster/live_calls.py)."""

from __future__ import annotations

from callcenter.bus import EventBus
from callcenter.cluster.live_calls import RemoteLiveCalls


def _call(call_id: str, state: str) -> dict:
    return {"call": {"id": call_id, "state": state}, "match": {"kind": "unknown"}}


def test_live_until_ended_latest_event_wins_and_local_calls_left_out() -> None:
    bus = EventBus()
    bus.publish("call.ringing", _call("a", "ringing"), at=100.0)  # before the mirror started
    remote = RemoteLiveCalls(bus, clock=lambda: 200.0)
    bus.publish("call.answered", _call("a", "answered"), at=150.0)
    bus.publish("call.ringing", _call("b", "ringing"), at=160.0)
    bus.publish("sms.status", {"sms": {"id": 1}})
    assert [s["call"]["state"] for s in remote.snapshots(set())] == ["answered", "ringing"]
    assert [s["call"]["id"] for s in remote.snapshots({"b"})] == ["a"]
    bus.publish("call.ended", _call("a", "answered"), at=170.0)
    bus.publish("call.missed", _call("b", "missed"), at=170.0)
    assert remote.snapshots(set()) == []


def test_stale_and_too_many_calls_are_dropped() -> None:
    bus = EventBus()
    now = [1000.0]
    remote = RemoteLiveCalls(bus, stale_after=60.0, max_calls=2, clock=lambda: now[0])
    for i, at in enumerate((900.0, 990.0, 995.0)):
        bus.publish("call.ringing", _call(f"c{i}", "ringing"), at=at)
    assert [s["call"]["id"] for s in remote.snapshots(set())] == ["c1", "c2"]  # at most 2
    now[0] = 1052.0  # c1 unheard of for 62 s: its instance died, the call ended meanwhile
    assert [s["call"]["id"] for s in remote.snapshots(set())] == ["c2"]
