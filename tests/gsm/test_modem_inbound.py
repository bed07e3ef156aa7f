"""Acknowledgement rules of direct +CDS / +CMT (AT+CNMA), on a recording stand-in for the port."""

from __future__ import annotations

import asyncio
from typing import Any

from callcenter.sms.events import ReportStatus, SmsStatusReport
from gsm.at import AtResponse, Final
from gsm.modem_inbound import InboundSms, report_status

REPORT = "0006D60B911326880736F4111011719551401110117195714000"  # [pgm] status report, MR 214


class RecordingPort:
    def __init__(self) -> None:
        self.commands: list[str] = []

    async def command(self, text: str, **kw: Any) -> AtResponse:
        self.commands.append(text)
        return AtResponse(text, Final.OK)


async def run(ack: bool, fail: int) -> tuple[list[str], list[Any], InboundSms]:
    port = RecordingPort()
    got: list[Any] = []
    failures = [fail]

    async def sink(ev: Any) -> None:
        if failures[0]:
            failures[0] -= 1
            raise RuntimeError("store down")
        got.append(ev)

    inbound = InboundSms("gsm1", port, sink)  # type: ignore[arg-type]
    inbound.start()
    inbound.direct(REPORT, 24, ack=ack)
    await asyncio.wait_for(inbound.idle.wait(), 5)
    await inbound.stop()
    return port.commands, got, inbound


async def test_cnma_after_the_sink_returned():
    commands, got, _ = await run(ack=True, fail=0)
    assert commands == ["AT+CNMA"]
    assert isinstance(got[0], SmsStatusReport) and got[0].message_ref == 214


async def test_a_refused_report_is_nacked_so_the_smsc_sends_it_again():
    commands, got, _ = await run(ack=True, fail=1)
    assert commands == ["AT+CNMA=2"] and got == []


async def test_without_cnma_a_refused_report_waits_in_memory_for_the_next_sweep():
    port = RecordingPort()
    got: list[Any] = []
    fail = [1]

    async def sink(ev: Any) -> None:
        if fail[0]:
            fail[0] -= 1
            raise RuntimeError("store down")
        got.append(ev)

    inbound = InboundSms("gsm1", port, sink)  # type: ignore[arg-type]
    inbound.start()
    inbound.direct(REPORT, 24, ack=False)
    await asyncio.wait_for(inbound.idle.wait(), 5)
    assert got == [] and inbound.sink_failed
    inbound.sweep()
    await asyncio.wait_for(inbound.idle.wait(), 5)
    await inbound.stop()
    assert [g.message_ref for g in got] == [214] and port.commands == ["AT+CMGL=4"]


def test_tp_st_classes():
    assert [report_status(s) for s in (0, 0x1F, 0x20, 0x3F, 0x40, 0x60, 0x7F)] == [
        ReportStatus.DELIVERED,
        ReportStatus.DELIVERED,
        ReportStatus.PENDING,
        ReportStatus.PENDING,
        ReportStatus.FAILED,
        ReportStatus.FAILED,
        ReportStatus.FAILED,
    ]


async def test_a_full_retry_list_counts_and_names_each_drop(monkeypatch):
    monkeypatch.setattr("gsm.modem_inbound.MAX_RETRY_EVENTS", 2)

    async def sink(ev: Any) -> None:
        raise RuntimeError("store down")

    inbound = InboundSms("gsm1", RecordingPort(), sink)  # type: ignore[arg-type]
    inbound.start()
    for _ in range(3):
        inbound.direct(REPORT, 24, ack=False)
    await asyncio.wait_for(inbound.idle.wait(), 5)
    await inbound.stop()
    assert inbound.retry_dropped == 1 and len(inbound._retry) == 2
    assert "1 acknowledged inbound message(s) lost" in inbound.last_error


async def test_an_undecodable_direct_pdu_the_modem_acknowledged_is_kept():
    async def sink(ev: Any) -> None:
        raise AssertionError("nothing decodable was handed over")

    port = RecordingPort()
    inbound = InboundSms("gsm1", port, sink)  # type: ignore[arg-type]
    inbound.start()
    inbound.direct(REPORT[:20], 24, ack=False)
    await asyncio.wait_for(inbound.idle.wait(), 5)
    await inbound.stop()
    assert inbound.kept_direct == [REPORT[:20]] and port.commands == []


async def test_a_report_carries_its_smsc_time_for_matching_past_the_mr_wrap():
    _, got, _ = await run(ack=True, fail=0)
    # TP-SCTS of REPORT: 2011-01-11 17:59:15 +01:00 ([pgm] example)
    assert got[0].submitted_time == 1294765155.0


async def test_a_cdsi_in_a_storage_of_its_own_is_swept_there_and_mem1_put_back():
    port = RecordingPort()

    async def sink(ev: Any) -> None:
        pass

    inbound = InboundSms("gsm1", port, sink)  # type: ignore[arg-type]
    inbound.start()
    inbound.notice("SR", 1, report=True)
    await asyncio.wait_for(inbound.idle.wait(), 5)
    port.commands.clear()
    inbound.sweep()
    await asyncio.wait_for(inbound.idle.wait(), 5)
    await inbound.stop()
    assert port.commands == ["AT+CMGL=4", 'AT+CPMS="SR"', "AT+CMGL=4", 'AT+CPMS="SM"']
