"""The observer extension against sipp playing the PBX: an INVITE rings it (180, never
answered), the caller ID and the dialled number become CallStarted; a CANCEL with
``Reason: SIP;cause=200`` means answered elsewhere, a plain one (or the caller's Q.850 cause)
that the caller gave up. Garbage, cut and oversized datagrams are survived."""

from __future__ import annotations

import asyncio
import socket

import pytest

from callcenter.line_events import (
    Answered,
    CallEnded,
    CallStarted,
    EndState,
    MissReason,
    RingingChanged,
)
from sip.sip_line import SipLine, SipLineConfig
from tests.sip.sipp import free_udp_port, run_sipp

ANSWERED_ELSEWHERE = 'Reason: SIP;cause=200;text="Call completed elsewhere"'


async def started_line(sink, **kw) -> SipLine:
    line = SipLine(SipLineConfig(name="office", listen_host="127.0.0.1",
                                 listen_port=free_udp_port(), ring_extensions=("101", "102"),
                                 **kw), sink)
    await line.start()
    assert line.local is not None
    return line


def keys(reason: str, caller: str = "+79161234567") -> dict[str, str]:
    return {"reason": reason, "caller": caller, "caller_name": "Romashka", "called": "74951234567"}


async def test_answered_elsewhere() -> None:
    events: list = []
    line = await started_line(events.append)
    try:
        run = await run_sipp("carrier_cancel.xml", f"127.0.0.1:{line.local[1]}",
                             keys(ANSWERED_ELSEWHERE))
        assert run.rc == 0, run.output
    finally:
        await line.stop()
    start = events[0]
    assert isinstance(start, CallStarted)
    assert (start.caller_num, start.caller_name, start.called_num, start.withheld) == (
        "+79161234567", "Romashka", "74951234567", False)
    assert events[1] == RingingChanged(start.call_key, events[1].at, ("101", "102"))
    assert isinstance(events[2], Answered) and events[2].extension is None
    end = events[3]
    assert isinstance(end, CallEnded) and end.state is EndState.ANSWERED
    assert len(events) == 4


@pytest.mark.parametrize("reason", ["Subject: no reason", 'Reason: Q.850;cause=16;text="x"'])
async def test_caller_gave_up(reason: str) -> None:
    events: list = []
    line = await started_line(events.append)
    try:
        run = await run_sipp("carrier_cancel.xml", f"127.0.0.1:{line.local[1]}", keys(reason))
        assert run.rc == 0, run.output
    finally:
        await line.stop()
    end = events[-1]
    assert isinstance(end, CallEnded)
    assert (end.state, end.reason) == (EndState.MISSED, MissReason.ABANDONED)
    assert not any(isinstance(e, Answered) for e in events)


async def test_malformed_datagrams_are_survived() -> None:
    events: list = []
    line = await started_line(events.append)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    target = ("127.0.0.1", line.local[1])
    good = (b"INVITE sip:crm@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"
            b"From: <sip:1@x>;tag=1\r\nTo: <sip:crm@x>\r\nCall-ID: cut\r\nCSeq: 1 INVITE\r\n"
            b"Content-Length: 500\r\n\r\nv=0\r\n")
    try:
        for junk in (b"\x00\xff garbage", b"INVITE\r\n\r\n", good,  # body cut short
                     b"OPTIONS sip:x SIP/2.0\r\nVia: x\r\n\r\n",  # missing headers
                     b"INVITE sip:a SIP/2.0\r\nX: " + b"X" * 65_000):
            await loop.sock_sendto(sock, junk, target)
        # A well-formed call afterwards still rings and ends: the line is alive.
        run = await run_sipp("carrier_cancel.xml", f"127.0.0.1:{line.local[1]}",
                             keys("Subject: after junk"))
        assert run.rc == 0, run.output
        replies = []
        while True:
            try:
                replies.append(sock.recv(70_000))
            except BlockingIOError:
                break
        assert line.endpoint is not None and line.endpoint.stats.malformed >= 4
    finally:
        sock.close()
        await line.stop()
    assert [type(e) for e in events] == [CallStarted, RingingChanged, RingingChanged, CallEnded]
    assert any(r.startswith(b"SIP/2.0 400") for r in replies)


async def test_cancel_on_cue_waits_for_the_test() -> None:
    from tests.sip.sipp import cue

    events: list = []
    seen = asyncio.Event()
    line = await started_line(lambda e: (events.append(e), seen.set()))
    port = free_udp_port()
    try:
        run = asyncio.create_task(run_sipp(
            "carrier_cancel_on_cue.xml", f"127.0.0.1:{line.local[1]}", keys("Subject: cue"),
            port=port, extra=("-cid_str", "cue%u")))
        await asyncio.wait_for(seen.wait(), 20)
        assert [type(e) for e in events] == [CallStarted, RingingChanged]
        cue(port, "cue1")
        result = await run
        assert result.rc == 0, result.output
    finally:
        await line.stop()
    assert isinstance(events[-1], CallEnded)
