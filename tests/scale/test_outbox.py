"""Live events across instances through the PostgreSQL outbox (callcenter/cluster/outbox.py)."""

from __future__ import annotations

import json

import asyncpg
import pytest

from callcenter.bus import EventBus
from callcenter.cluster.outbox import ClusterBus, OutboxRelay
from tests.scale.conftest import Seen


async def _instance(url: str, name: str) -> tuple[ClusterBus, OutboxRelay, str]:
    bus = ClusterBus()
    relay = OutboxRelay(url, bus, name)
    boot = await relay.start()
    bus.relay = relay
    return bus, relay, boot


async def test_events_reach_every_instance_with_one_global_order(pg_url: str) -> None:
    a, relay_a, boot_a = await _instance(pg_url, "a")
    b, relay_b, boot_b = await _instance(pg_url, "b")
    seen_a, seen_b = Seen(a), Seen(b)
    try:
        assert boot_a == boot_b  # resume tokens mean the same on both
        for i in range(50):
            (a if i % 3 else b).publish("call.updated", {"call": {"id": f"c{i}"}, "n": i})
        await seen_a.count(50)
        await seen_b.count(50)
        # The same sequence numbers, topics, data and JSON text on both instances.
        assert [e.seq for e in seen_a.events] == list(range(1, 51))
        assert [(e.seq, e.text) for e in seen_a.events] == [(e.seq, e.text)
                                                             for e in seen_b.events]
        # What each instance published is in the order it published it.
        for bus_seen in (seen_a, seen_b):
            ns = [e.data["n"] for e in bus_seen.events]
            assert [n for n in ns if n % 3] == sorted(n for n in ns if n % 3)
            assert [n for n in ns if not n % 3] == sorted(n for n in ns if not n % 3)
        event = seen_b.events[0]
        assert json.loads(event.text) == event.to_json()
        # Resume across instances: the events after 40 from either bus are the same.
        assert [e.text for e in a.since(40)] == [e.text for e in b.since(40)]
    finally:
        await relay_a.stop()
        await relay_b.stop()


async def test_a_listener_that_reconnects_catches_up_in_order(pg_url: str) -> None:
    a, relay_a, _ = await _instance(pg_url, "a")
    b, relay_b, _ = await _instance(pg_url, "b")
    seen_b = Seen(b)
    admin = await asyncpg.connect(pg_url)
    try:
        a.publish("sms.status", {"n": 0})
        await seen_b.count(1)
        listener_pid = relay_b._listener.get_server_pid()
        # B's listener is cut off (the database restarted it, a network blip) ...
        await admin.execute("SELECT pg_terminate_backend($1)", listener_pid)
        for n in range(1, 21):
            a.publish("sms.status", {"n": n})
        # ... and gets everything it missed, once, in order, on its new connection.
        await seen_b.count(21)
        assert [e.data["n"] for e in seen_b.events] == list(range(21))
        assert [e.seq for e in seen_b.events] == list(range(1, 22))
        assert relay_b.reconnects >= 1
        assert relay_b._listener.get_server_pid() != listener_pid
    finally:
        await admin.close()
        await relay_a.stop()
        await relay_b.stop()


async def test_a_listener_that_hears_no_notification_still_catches_up(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener's connection can die without a word (a half-open TCP connection behind a
    firewall that dropped its state): no NOTIFY comes and no termination is seen. The
    listener reads the outbox now and then all the same."""
    from callcenter.cluster import outbox

    monkeypatch.setattr(outbox, "POLL_SECONDS", 0.2, raising=False)
    a, relay_a, _ = await _instance(pg_url, "a")
    b, relay_b, _ = await _instance(pg_url, "b")
    seen_b = Seen(b)
    try:
        await relay_b._listener.remove_listener(outbox.CHANNEL, relay_b._notified)
        a.publish("sms.status", {"n": 1})
        await seen_b.count(1, timeout=10.0)
        assert seen_b.events[0].data == {"n": 1}
    finally:
        await relay_a.stop()
        await relay_b.stop()


async def test_an_instance_that_starts_later_holds_the_replay_window(pg_url: str) -> None:
    a, relay_a, boot = await _instance(pg_url, "a")
    seen_a = Seen(a)
    try:
        for n in range(10):
            a.publish("fax.status", {"n": n})
        await seen_a.count(10)
        b, relay_b, boot_b = await _instance(pg_url, "b")
        try:
            assert boot_b == boot and b.last_seq == 10
            # A console that saw up to 6 on A resumes on B with 7..10, the same text.
            assert [e.text for e in b.since(6)] == [e.text for e in seen_a.events[6:]]
            seen_b = Seen(b)
            b.publish("fax.status", {"n": 10})
            await seen_a.count(11)
            await seen_b.count(1)
            assert seen_b.events[0].seq == seen_a.events[10].seq == 11
        finally:
            await relay_b.stop()
    finally:
        await relay_a.stop()


async def test_pruning_keeps_the_newest_row(pg_url: str) -> None:
    a, relay_a, _ = await _instance(pg_url, "a")
    seen = Seen(a)
    try:
        for n in range(5):
            a.publish("sms.status", {"n": n}, at=1000.0 + n)  # long past the retention
        await seen.count(5)
        assert await relay_a.prune() == 4
        a.publish("sms.status", {"n": 5})
        await seen.count(6)
        assert seen.events[-1].seq == 6  # the sequence carries on after pruning
    finally:
        await relay_a.stop()


async def test_events_published_while_the_database_is_away_are_written_later(
        pg_url: str) -> None:
    a, relay_a, _ = await _instance(pg_url, "a")
    b, relay_b, _ = await _instance(pg_url, "b")
    seen_b = Seen(b)
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute("SELECT pg_terminate_backend($1)",
                            relay_a._writer.get_server_pid())
        for n in range(5):
            a.publish("sms.status", {"n": n})
        await seen_b.count(5)
        assert [e.data["n"] for e in seen_b.events] == list(range(5))
    finally:
        await admin.close()
        await relay_a.stop()
        await relay_b.stop()


def test_without_a_relay_the_cluster_bus_is_the_local_bus() -> None:
    bus = ClusterBus()
    event = bus.publish("sms.status", {"n": 1})
    assert event.seq == 1 and bus.since(0)[0].text == event.text


def test_applied_events_are_framed_as_published_ones_and_a_gap_resets_resume() -> None:
    local, applied = EventBus(), EventBus()
    published = local.publish("call.ringing", {"call": {"id": "x"}, "n": "é"}, at=12.5)
    event = applied.apply(1, "call.ringing", 12.5, {"call": {"id": "x"}, "n": "é"})
    assert event.text == published.text
    applied.apply(2, "call.updated", 13.0, {"n": 2})
    assert [e.seq for e in applied.since(0)] == [1, 2]
    applied.apply(5, "call.updated", 14.0, {"n": 5})  # 3 and 4 were lost to this bus
    assert applied.since(1) is None and [e.seq for e in applied.since(4)] == [5]
    with pytest.raises(ValueError):
        applied.apply(5, "call.updated", 14.0, {})
    applied.preload([(8, "{}"), (9, "{}")])
    assert applied.last_seq == 9 and applied.oldest_seq == 8


async def test_a_redaction_reaches_every_instances_replay_window(pg_url: str) -> None:
    a, relay_a, _ = await _instance(pg_url, "a")
    b, relay_b, _ = await _instance(pg_url, "b")
    seen_a, seen_b = Seen(a), Seen(b)
    try:
        a.publish("call.ringing", {"call": {"id": "c1", "caller": "+79161234567"}})
        a.publish("call.ringing", {"call": {"id": "c2", "caller": "+79035550000"}})
        await seen_b.count(2)

        def withheld(data: dict) -> dict | None:
            if data["call"]["id"] != "c1":
                return None
            return {**data, "call": {**data["call"], "caller": ""}}

        assert a.redact('"c1"', withheld) == 1
        b.publish("call.updated", {"call": {"id": "c2"}})  # after the redaction's row
        await seen_b.count(3)
        await seen_a.count(3)
        for bus in (a, b):
            texts = [e.text for e in bus.since(0)]
            assert not any("+79161234567" in t for t in texts)
            assert any("+79035550000" in t for t in texts)
        # Subscribers (the consoles live) never get the redaction row itself.
        assert [e.topic for e in seen_b.events] == ["call.ringing"] * 2 + ["call.updated"]
        # An instance that starts later preloads the window as redacted.
        c, relay_c, _ = await _instance(pg_url, "c")
        try:
            assert not any("+79161234567" in e.text for e in c.since(0))
        finally:
            await relay_c.stop()
    finally:
        await relay_a.stop()
        await relay_b.stop()
