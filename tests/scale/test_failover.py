"""Failover: two instances (separate ``callcenter serve`` processes) on one PostgreSQL and the
AMI emulator replaying a recorded Asterisk 22 call. Instance A owns the line; the call rings
and is answered; A is killed with SIGKILL mid-call; B takes the line over, resyncs with the
PBX (CoreShowChannels, Status) and follows the call to its end. The call is in the log once,
the console on B saw every event, and the console that was on A resumes on B."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg

from callcenter.models import ClientKind, Role
from callcenter.passwords import hash_password
from callcenter.phones import normalize
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.postgres import PostgresStore
from pbx.ami.emulator import AmiEmulator, is_banner, segments_from_trace
from pbx.ami.trace import BlockKind, load_trace
from tests.conftest import FIXTURES
from tests.scale.instances import Console, Instance

CALL = "office:1795389569.49"  # 12_ami_reconnect_midcall
PASSWORD = "failover-test-password"
TAKEOVER_CAUSE = "the instance running the line stopped during the call"


async def _seed(url: str) -> None:
    store = await PostgresStore.open(url)
    try:
        await store.create_user("admin", "Admin", Role.ADMIN, None, hash_password(PASSWORD))
        await store.import_clients([ClientInput("Petrov LLC", ClientKind.COMPANY, contacts=[
            ContactInput("Ivan Petrov", phones=[PhoneInput("+79161234567",
                                                           normalize("+79161234567"))])])])
    finally:
        await store.close()


def _pauses(trace) -> tuple[int, int]:
    """Trace block indexes to hold the stream at: before the call's first event (consoles
    connect meanwhile), and at the end of the first connection (where A gets killed)."""
    first = segments_from_trace(trace)[0]
    call_starts = next(i for i, b in enumerate(first.blocks)
                       if b.data.startswith(b"Event: Newchannel"))
    before = max(i for i, b in enumerate(first.blocks[:call_starts])
                 if b.kind is BlockKind.RECV and not is_banner(b))
    end = max(i for i, b in enumerate(first.blocks) if b.kind is BlockKind.RECV)
    return first.first_index + before, first.first_index + end


async def test_sigkill_of_the_line_owner_mid_call(tmp_path: Path, pg_url: str) -> None:
    await _seed(pg_url)
    trace = load_trace(FIXTURES / "12_ami_reconnect_midcall.log")
    before_call, end_of_a = _pauses(trace)
    async with AmiEmulator(trace, action_wait=1.0, auth_failure_delay=0) as pbx:
        pbx.pause_after_block(before_call)
        pbx.pause_after_block(end_of_a)
        a = Instance(tmp_path, "a", pg_url, pbx.port)
        b = Instance(tmp_path, "b", pg_url, pbx.port)
        consoles: list[Console] = []
        try:
            await a.start()  # first: it seeds the line and takes its lease
            async with asyncio.timeout(20):
                await pbx.paused.wait()  # A is logged in to the PBX, no call yet
            await b.start()
            assert (await a.until_ready())["lines"]["owned"] == 1
            assert (await b.until_ready())["lines"]["owned"] == 0
            cookie = await a.login("admin", PASSWORD)
            on_a, on_b = Console(cookie), Console(cookie)  # one session, valid on both
            consoles += [on_a, on_b]
            await on_a.open(a)
            await on_b.open(b)
            assert on_a.hello["boot"] == on_b.hello["boot"]

            pbx.resume()  # the call rings on A's line and is answered by 101
            for console in (on_a, on_b):
                await console.until(lambda c=console: c.saw("call.answered", CALL))
            await asyncio.wait_for(pbx.paused.wait(), 20)  # the end of A's connection
            # B runs no line, yet lists the call up on A's (a console reloading on B).
            live_on_b = await b.get("/api/calls/live", cookie)
            assert [c["call"]["id"] for c in live_on_b] == [CALL]

            a.kill()  # mid-call: no Logoff, no lease given back, nothing flushed
            killed = time.monotonic()
            resyncs = len(pbx.actions_named("CoreShowChannels"))
            pbx.resume()
            await on_a.until(lambda: on_a.closed.is_set())
            # B's line connects and resyncs; 10 s is the Done-when's bound for the takeover.
            await pbx.wait_for_action("CoreShowChannels", resyncs + 1, timeout=10)
            took = time.monotonic() - killed
            print(f"line taken over by B {took:.1f} s after A's SIGKILL")
            await on_b.until(lambda: on_b.saw("call.ended", CALL))
            assert (await b.until_ready())["lines"]["owned"] == 1

            # The console that was on A reconnects to B and resumes where it was.
            seen_on_a = [e["seq"] for e in on_a.events]
            await on_a.open(b, resume=True)
            await on_a.until(lambda: on_a.last_seq >= on_b.last_seq)
            assert on_a.resets == 0
            assert [e["seq"] for e in on_a.events][:len(seen_on_a)] == seen_on_a
            # Both consoles saw every event of the cluster, in order, without a gap.
            first = on_b.events[0]["seq"]
            assert [e["seq"] for e in on_b.events] == list(range(first, on_b.last_seq + 1))
            assert [(e["seq"], e["type"]) for e in on_a.events if e["seq"] >= first] == [
                (e["seq"], e["type"]) for e in on_b.events]
            topics = [e["type"] for e in on_b.events if e["data"].get("call", {}).get("id")
                      == CALL]
            assert "call.ringing" in topics and topics[-1] == "call.ended"
            # A's events before the kill and B's after the takeover, on the same console.
            assert topics.index("call.ringing") < topics.index("call.answered")
            assert topics.count("call.ended") == 1

            # The call is in the log exactly once, ended by B, with one card interaction.
            db = await asyncpg.connect(pg_url)
            try:
                calls = await db.fetch("SELECT id, state, ended_at, cause FROM calls")
                assert len(calls) == 1 and calls[0]["id"] == CALL
                assert calls[0]["state"] == "answered" and calls[0]["ended_at"] is not None
                assert calls[0]["cause"] != TAKEOVER_CAUSE
                cards = await db.fetchval("SELECT COUNT(*) FROM interactions WHERE kind = "
                                          "'call'")
                assert cards == 1
                owner = await db.fetchval("SELECT owner FROM line_leases WHERE line = "
                                          "'office'")
                assert owner.startswith("b/")
            finally:
                await db.close()
        finally:
            for console in consoles:
                await console.close()
            await b.stop()
            await a.stop()
