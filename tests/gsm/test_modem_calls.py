"""Incoming GSM calls on the Modem over the pty emulator: RING/+CLIP to line events, each family's
way of saying answered and ended."""

from __future__ import annotations

import pytest

from callcenter.line_events import CallEnded, CallStarted, EndState, MissReason, RingingChanged
from gsm.emulator import ModemEmulator
from gsm.emulator_families import ModemConfig
from gsm.modem import Modem
from tests.gsm.modem_harness import Sinks

# --- calls -----------------------------------------------------------------------------------


async def test_incoming_call_nobody_answers_is_missed(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    emu.ring("+79161112233", rings=2)
    await sinks.wait(lambda: any(isinstance(e, CallEnded) for e in sinks.calls))
    started, ringing = sinks.calls[0], sinks.calls[1]
    assert isinstance(started, CallStarted)
    assert (started.line, started.caller_num, started.direction.value) == (
        "gsm1",
        "+79161112233",
        "inbound",
    )
    assert ringing == RingingChanged(started.call_key, ringing.at, ("101",))
    end = sinks.calls[-1]
    assert (end.call_key, end.state, end.reason) == (
        started.call_key,
        EndState.MISSED,
        MissReason.ABANDONED,
    )
    assert sum(isinstance(e, CallStarted) for e in sinks.calls) == 1


async def test_rings_that_just_stop_end_the_call(modem: Modem, emu: ModemEmulator, sinks: Sinks):
    emu.urc("RING")
    emu.urc('+CLIP: "89161234567",129,,,,0')
    await sinks.wait(lambda: any(isinstance(e, CallEnded) for e in sinks.calls))
    assert sinks.calls[0].caller_num == "89161234567"  # national: no "+" added
    assert sinks.calls[-1].cause == "ringing stopped"


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.001, family="huawei")])
async def test_answered_with_ata_then_huawei_cend(modem: Modem, emu: ModemEmulator, sinks: Sinks):
    emu.ring("+79161112233", rings=10_000)
    await sinks.wait(lambda: any(isinstance(e, CallStarted) for e in sinks.calls))
    await modem.answer()
    emu.caller_hangs_up()
    await sinks.wait(lambda: any(isinstance(e, CallEnded) for e in sinks.calls))
    kinds = [type(e).__name__ for e in sinks.calls]
    assert kinds.count("Answered") == 1  # ATA and ^CONN are one answer
    assert sinks.calls[-1].state is EndState.ANSWERED
    assert sinks.calls[-1].cause.startswith("^CEND")


@pytest.mark.parametrize(
    "config",
    [
        ModemConfig(time_scale=0.001, family="sim7600"),  # VOICE CALL: BEGIN / END
        ModemConfig(time_scale=0.001, family="wavecom"),  # +WIND: 5 / +WIND: 6
    ],
    ids=["sim7600", "wavecom"],
)
async def test_answered_call_ends_once_whatever_the_family_says(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    emu.ring("+79161112233", rings=10_000)
    await sinks.wait(lambda: any(isinstance(e, CallStarted) for e in sinks.calls))
    await modem.answer()
    emu.caller_hangs_up()  # NO CARRIER and the family's own release line: one end
    await sinks.wait(lambda: any(isinstance(e, CallEnded) for e in sinks.calls))
    ends = [e for e in sinks.calls if isinstance(e, CallEnded)]
    assert len(ends) == 1 and ends[0].state is EndState.ANSWERED
    assert [type(e).__name__ for e in sinks.calls].count("Answered") == 1


async def test_sim7600_voice_call_and_wavecom_wind_lines_are_understood(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    emu.urc("RING")
    emu.urc('+CLIP: "+79161112233",145,,,,0')
    emu.urc("VOICE CALL: BEGIN")  # answered on the modem itself, not by our ATA
    emu.urc("VOICE CALL: END: 000010")
    await sinks.wait(lambda: any(isinstance(e, CallEnded) for e in sinks.calls))
    assert [type(e).__name__ for e in sinks.calls].count("Answered") == 1
    end = sinks.calls[-1]
    assert (end.state, end.cause) == (EndState.ANSWERED, "VOICE CALL: END: 000010")
    sinks.calls.clear()
    emu.urc("RING")
    emu.urc('+CLIP: "+79161112233",145,,,,0')
    emu.urc("+WIND: 6,1")  # Wavecom: call 1 released before anyone answered
    await sinks.wait(lambda: any(isinstance(e, CallEnded) for e in sinks.calls))
    end = sinks.calls[-1]
    assert (end.state, end.reason, end.cause) == (
        EndState.MISSED,
        MissReason.ABANDONED,
        "+WIND: 6,1",
    )


async def test_a_fax_or_data_call_opens_no_card(modem: Modem, emu: ModemEmulator, sinks: Sinks):
    emu.urc("+CRING: FAX")
    emu.urc('+CLIP: "+74950000001",145,,,,0')
    emu.urc("+CRING: REL ASYNC")
    await modem.ussd("*100#")  # its answer comes after those lines: they were handled
    assert sinks.calls == []
    emu.urc("+CRING: VOICE")
    emu.urc('+CLIP: "+79161112233",145,,,,0')
    await sinks.wait(lambda: any(isinstance(e, CallEnded) for e in sinks.calls))
    started = [e for e in sinks.calls if isinstance(e, CallStarted)]
    assert len(started) == 1 and started[0].caller_num == "+79161112233"
