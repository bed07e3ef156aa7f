"""The Modem on gsm.emulator over a real pseudo-terminal: init, send, receive, reports, calls,
USSD, faults. Every wait is on an event (the emulator's ``changed``, the sinks' condition)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from callcenter.errors import LineUnavailable
from callcenter.lines.lifecycle import LineState
from callcenter.sms.events import (
    Address,
    AddressKind,
    ReportStatus,
    SmsEncoding,
    SmsPartReceived,
    SmsStatusReport,
)
from callcenter.sms.ports import SmsSendError, SmsSendUnknown
from callcenter.sms.segments import outbound_parts
from gsm.emulator import ModemEmulator
from gsm.emulator_families import ModemConfig
from gsm.modem import Modem
from tests.gsm.modem_harness import TO, PinEntries, Sinks, settings, up

# --- init ------------------------------------------------------------------------------------


async def test_init_learns_the_modem_and_becomes_ready(modem: Modem, emu: ModemEmulator):
    info = modem.info()
    assert (info.model, info.imei, info.operator, info.smsc) == (
        "GSM MODEM",
        "867123456789012",
        "MTS RUS",
        "+79168999100",
    )
    assert info.signal_dbm == -73 and info.registered and info.sim_ready
    st = modem.status()
    assert st.state is LineState.UP and st.kind == "gsm"
    assert "signal -73 dBm" in st.detail and "MTS RUS" in st.detail
    for cmd in ("ATE", "AT+CMEE", "AT+CMGF", "AT+CNMI", "AT+CPMS", "AT+CSCA", "AT+CLIP"):
        assert cmd in emu.commands
    assert emu.state.cmgf == 0 and emu.state.cnmi_mt == 1 and emu.state.cnmi_ds == 2


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.001, pin="1234")])
async def test_sim_pin_from_the_settings(emu: ModemEmulator, sinks: Sinks):
    m = Modem(settings(emu.path, pin="1234"), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink)
    assert "1234" not in repr(m.config)  # a secret is not shown
    await m.start()
    try:
        await up(m)
        assert emu.state.pin_ok
    finally:
        await m.stop()


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.001, pin="1234")])
async def test_a_wrong_pin_is_never_tried_twice(emu: ModemEmulator, sinks: Sinks):
    pins = PinEntries(emu)
    m = Modem(
        settings(emu.path, pin="9999", poll_interval=0.02),
        sms_sink=sinks.sms_sink,
        call_sink=sinks.call_sink,
    )
    await m.start()
    try:
        await m.wait_up(10)
        # the polls re-run the SIM part of the init while the SIM is not ready
        await emu.wait_for(lambda: emu.commands.count("AT+CPIN") >= 6)
        assert m.status().state is LineState.DEGRADED
        assert "PIN rejected" in m.status().detail and not m.ready
        emu.unplug()
        emu.plug()  # a reboot asks for the PIN again
        queries = emu.commands.count("AT+CPIN")
        await emu.wait_for(lambda: emu.commands.count("AT+CPIN") >= queries + 4)
        assert pins.lines == ['AT+CPIN="9999"']
        with pytest.raises(LineUnavailable, match="PIN rejected"):
            await m.send_part(outbound_parts(TO, "x", concat_ref=1)[0])
    finally:
        await m.stop()


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.001, pin="1234")])
@pytest.mark.parametrize("answer", ["silent", "ok"])
async def test_a_pin_without_a_clear_answer_is_sent_once(
    emu: ModemEmulator, sinks: Sinks, answer: str
):
    # silent: the entry times out, the port is reopened and the init runs again; ok: the modem
    # says OK yet AT+CPIN? keeps saying SIM PIN. Either way a second entry could lock the SIM.
    pins = PinEntries(emu, answer)
    m = Modem(
        settings(emu.path, pin="1234", poll_interval=0.02, command_timeout=0.3,
                 sim_ready_tries=2, sim_ready_wait=0.01),
        sms_sink=sinks.sms_sink,
        call_sink=sinks.call_sink,
    )  # fmt: skip
    await m.start()
    try:
        await emu.wait_for(lambda: len(pins.lines) == 1)
        queries = emu.commands.count("AT+CPIN")
        await emu.wait_for(lambda: emu.commands.count("AT+CPIN") >= queries + 6)
        assert pins.lines == ['AT+CPIN="1234"']
        assert "not tried again" in m.status().detail and not m.ready
    finally:
        await m.stop()


# --- sending ---------------------------------------------------------------------------------

CYRILLIC_200 = (
    "Здравствуйте, Иван Петрович! Ваш заказ №4711 готов. Заберите его в офисе на "
    "улице Ленина, 5, с 9 до 18 часов. Спасибо, что выбрали нас! "
) * 2


async def test_cyrillic_200_goes_out_as_three_ucs2_parts_each_report_matched_by_mr(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    text = CYRILLIC_200[:200]
    parts = outbound_parts(TO, text, concat_ref=9)
    assert len(parts) == 3 and all(p.encoding is SmsEncoding.UCS2 for p in parts)
    mrs = [await modem.send_part(p) for p in parts]
    assert len(set(mrs)) == 3
    # The emulator decodes with its own, separate PDU code.
    assert [(s.mr, s.ref, s.seq, s.total, s.status_report) for s in emu.sent] == [
        (mrs[i], 9, i + 1, 3, True) for i in range(3)
    ]
    assert "".join(s.text for s in emu.sent) == text
    assert all(s.destination == "+79161234567" for s in emu.sent)
    await sinks.wait(lambda: len(sinks.of(SmsStatusReport)) == 3)
    reports = sinks.of(SmsStatusReport)
    assert sorted(r.message_ref for r in reports) == sorted(mrs)
    assert all(r.status is ReportStatus.DELIVERED and r.line == "gsm1" for r in reports)
    assert all(r.recipient == TO for r in reports)
    await modem.wait_inbound_idle()
    assert emu.sim == {}  # each stored report was deleted after the sink took it


async def test_emoji_on_a_part_boundary_arrives_whole(modem: Modem, emu: ModemEmulator):
    text = "я" * 66 + "😀" + "я" * 70 + "👍🏽"
    for p in outbound_parts(TO, text, concat_ref=200):
        await modem.send_part(p)
    assert len(emu.sent) == 3 and "".join(s.text for s in emu.sent) == text


async def test_failed_report_names_the_part(tmp_path, sinks: Sinks):
    cfg = ModemConfig(time_scale=0.001, failed_destinations=frozenset({"+79160000001"}))
    async with ModemEmulator(str(tmp_path / "m"), cfg) as emu:
        m = Modem(settings(emu.path), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink)
        await m.start()
        try:
            await up(m)
            bad = Address(AddressKind.INTERNATIONAL, "+79160000001")
            mr = await m.send_part(outbound_parts(bad, "hi", concat_ref=1)[0])
            await sinks.wait(lambda: len(sinks.of(SmsStatusReport)) == 1)
            (r,) = sinks.of(SmsStatusReport)
            assert (r.message_ref, r.status, r.status_code) == (mr, ReportStatus.FAILED, 0x41)
        finally:
            await m.stop()


async def test_direct_cds_reports_when_configured(emu: ModemEmulator, sinks: Sinks):
    m = Modem(
        settings(emu.path, status_reports="cds"), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink
    )
    await m.start()
    try:
        await up(m)
        assert emu.state.cnmi_ds == 1
        mr = await m.send_part(outbound_parts(TO, "hello", concat_ref=1)[0])
        await sinks.wait(lambda: len(sinks.of(SmsStatusReport)) == 1)
        assert sinks.of(SmsStatusReport)[0].message_ref == mr
    finally:
        await m.stop()


async def test_cms_errors_say_permanent_or_not(modem: Modem, emu: ModemEmulator):
    part = outbound_parts(TO, "hello", concat_ref=1)[0]
    emu.fault("error", command="AT+CMGS", text="+CMS ERROR: 42")
    with pytest.raises(SmsSendError) as exc:
        await modem.send_part(part)
    assert (exc.value.code, exc.value.permanent) == (42, False)
    emu.fault("error", command="AT+CMGS", text="+CMS ERROR: 1")
    with pytest.raises(SmsSendError) as exc:
        await modem.send_part(part)
    assert exc.value.permanent and "unassigned" in exc.value.reason
    assert emu.sent == []
    assert isinstance(await modem.send_part(part), int)  # still up after two refusals


@pytest.mark.parametrize(
    "answer",
    ["+CMS ERROR: 500", "+CMS ERROR: 513", "+CMS ERROR: Network timeout", "+CMS ERROR: odd"],
)
async def test_an_unclear_error_after_the_pdu_is_unknown(
    modem: Modem, emu: ModemEmulator, answer: str
):
    # the emulator answers these after the PDU: the network may have the part, a re-send
    # through another modem could deliver it twice
    emu.fault("error", command="AT+CMGS", text=answer)
    with pytest.raises(SmsSendUnknown, match="may have reached the SMSC"):
        await modem.send_part(outbound_parts(TO, "maybe", concat_ref=1)[0])
    assert "AT+CMGS" in emu.commands


async def test_no_answer_after_the_pdu_is_unknown_and_the_modem_comes_back(
    emu: ModemEmulator, sinks: Sinks
):
    m = Modem(
        settings(emu.path, send_timeout=0.5), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink
    )
    await m.start()
    try:
        await up(m)
        emu.fault("lost_answer", command="AT+CMGS")
        with pytest.raises(SmsSendUnknown, match="no answer after the PDU") as exc:
            await m.send_part(outbound_parts(TO, "once", concat_ref=1)[0])
        assert "no answer" in str(exc.value), str(exc.value)
        assert len(emu.sent) == 1  # it did go out: the pool must not send it again
        await up(m)  # marked down on the timeout, reopened, init again
        assert await m.send_part(outbound_parts(TO, "next", concat_ref=1)[0]) >= 0
        assert [s.text for s in emu.sent] == ["once", "next"]
        assert "no answer" in m.status().last_error
    finally:
        await m.stop()


async def test_unplugged_modem_is_unavailable_then_comes_back(modem: Modem, emu: ModemEmulator):
    emu.unplug()
    await modem.wait_down(10)
    with pytest.raises(LineUnavailable):
        await modem.send_part(outbound_parts(TO, "x", concat_ref=1)[0])
    assert modem.status().state is LineState.DOWN and not modem.ready
    emu.plug()
    await up(modem)
    await modem.send_part(outbound_parts(TO, "back", concat_ref=1)[0])
    assert [s.text for s in emu.sent] == ["back"]


# --- receiving -------------------------------------------------------------------------------


async def test_inbound_is_stored_before_it_is_deleted(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    (slot,) = emu.deliver_sms("+79160001111", "Привет!")
    stored = emu.sim[slot].pdu  # read before the modem can take it (no await in between)
    await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 1)
    (p,) = sinks.of(SmsPartReceived)
    assert (p.sender, p.text, p.encoding, p.concat, p.storage_index) == (
        Address(AddressKind.INTERNATIONAL, "+79160001111"),
        "Привет!",
        SmsEncoding.UCS2,
        None,
        slot,
    )
    assert p.line == "gsm1"
    assert p.pdu == stored
    assert sinks.seen_in_sim == [True]  # the sink ran while the SIM still held it
    await modem.wait_inbound_idle()
    assert slot not in emu.sim


async def test_a_sink_that_fails_leaves_the_message_on_the_sim_until_it_succeeds(
    emu: ModemEmulator, sinks: Sinks
):
    m = Modem(
        settings(emu.path, poll_interval=0.05), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink
    )
    await m.start()
    try:
        await up(m)
        sinks.fail_sms = 2
        (slot,) = emu.deliver_sms("+79160001111", "keep me")
        await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 1)
        assert sinks.seen_in_sim == [True, True, True]  # never deleted after a failure
        await m.wait_inbound_idle()
        assert slot not in emu.sim
        assert [p.text for p in sinks.of(SmsPartReceived)] == ["keep me"]
    finally:
        await m.stop()


async def test_three_cmti_1ms_apart_deliver_three(modem: Modem, emu: ModemEmulator, sinks: Sinks):
    for i in range(3):
        emu.deliver_sms(f"+7916000000{i}", f"message {i}")
    await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 3)
    assert sorted(p.text for p in sinks.of(SmsPartReceived)) == [f"message {i}" for i in range(3)]
    await modem.wait_inbound_idle()
    assert emu.sim == {}


async def test_messages_stored_before_start_are_read_at_start(emu: ModemEmulator, sinks: Sinks):
    emu.store_sms("+79160002222", "waiting since yesterday")
    emu.store_sms("MTS", "Alphanumeric hello")
    m = Modem(settings(emu.path), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink)
    await m.start()
    try:
        await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 2)
        got = {p.sender: p.text for p in sinks.of(SmsPartReceived)}
        assert got == {
            Address(AddressKind.INTERNATIONAL, "+79160002222"): "waiting since yesterday",
            Address(AddressKind.ALPHANUMERIC, "MTS"): "Alphanumeric hello",
        }
        await m.wait_inbound_idle()
        assert emu.sim == {}
    finally:
        await m.stop()


async def test_inbound_multipart_parts_carry_their_header(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    text = CYRILLIC_200[:200]
    emu.deliver_sms("+79160003333", text, ref=77)
    await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 3)
    parts = sorted(sinks.of(SmsPartReceived), key=lambda p: p.concat.seq)
    assert [(p.concat.ref, p.concat.total, p.concat.seq) for p in parts] == [
        (77, 3, 1),
        (77, 3, 2),
        (77, 3, 3),
    ]
    assert "".join(p.text for p in parts) == text


async def test_an_undecodable_pdu_is_kept_on_the_sim(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    from gsm.emulator import _Slot

    emu.sim[7] = _Slot(0, "0791448720003023240DD0E4")  # cut short
    emu.urc('+CMTI: "SM",7')
    await emu.wait_for(lambda: "AT+CMGR" in emu.commands)
    await modem.wait_inbound_idle()
    assert 7 in emu.sim and sinks.of(SmsPartReceived) == []
    st = modem.status()
    assert st.state is LineState.DEGRADED and "undecodable" in st.detail
    emu.deliver_sms("+79160001111", "the next one still works")
    await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 1)


# --- faults ----------------------------------------------------------------------------------


async def test_a_urc_inside_the_prompt_is_routed(modem: Modem, emu: ModemEmulator, sinks: Sinks):
    (slot,) = emu.deliver_sms("+79160004444", "inside the prompt", notify=False)
    emu.fault("urc_in_prompt", command="AT+CMGS", text=f'+CMTI: "SM",{slot}')
    mr = await modem.send_part(outbound_parts(TO, "hello", concat_ref=1)[0])
    assert emu.sent[0].mr == mr
    await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 1)
    assert sinks.of(SmsPartReceived)[0].text == "inside the prompt"


async def test_garbage_and_a_silent_command_are_survived(modem: Modem, emu: ModemEmulator):
    for _ in range(4):
        emu.garbage()
    emu.fault("no_answer", command="AT+CMGS")
    # no "> " came, so the PDU was never written: not tried, not unknown
    with pytest.raises(LineUnavailable):
        await modem.send_part(outbound_parts(TO, "lost", concat_ref=1)[0])
    await up(modem)
    await modem.send_part(outbound_parts(TO, "after", concat_ref=1)[0])
    assert [s.text for s in emu.sent] == ["after"]


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.001, family="nosupport")])
async def test_command_not_support_modem_still_sends(modem: Modem, emu: ModemEmulator):
    await modem.send_part(outbound_parts(TO, "works", concat_ref=1)[0])
    assert [s.text for s in emu.sent] == ["works"]
    st = modem.status()
    assert st.state is LineState.DEGRADED and "no SMSC" in st.detail


# --- check -----------------------------------------------------------------------------------


async def test_check_on_a_running_modem_and_on_one_never_started(
    modem: Modem, emu: ModemEmulator, sinks: Sinks, tmp_path
):
    r = await modem.check()
    assert r.ok and r.facts["model"] == "GSM MODEM" and r.facts["SIM"] == "READY"
    assert modem.status().state is LineState.UP
    cold = Modem(
        settings(str(tmp_path / "absent")), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink
    )
    r = await cold.check()
    assert not r.ok and "does not exist" in r.error


async def test_network_timeout_332_is_unknown_not_refused(modem: Modem, emu: ModemEmulator):
    emu.fault("error", command="AT+CMGS", text="+CMS ERROR: 332")
    with pytest.raises(SmsSendUnknown, match="network timeout"):
        await modem.send_part(outbound_parts(TO, "maybe", concat_ref=1)[0])


async def test_check_on_a_modem_not_started(tmp_path, sinks: Sinks):
    async with ModemEmulator(
        str(tmp_path / "cold"), ModemConfig(time_scale=0.001, family="quectel")
    ) as emu:
        cold = Modem(settings(emu.path), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink)
        r = await cold.check()
        assert r.ok and r.summary == "Quectel EC25" and r.facts["IMEI"] == "867123456789012"
        assert cold.status().state is LineState.STOPPED


async def test_smsc_time_and_a_duplicate_delivery_carry_the_same_pdu(
    modem: Modem, emu: ModemEmulator, sinks: Sinks
):
    # The SMSC delivering a part twice: the modem hands over both with byte-identical PDUs,
    # which is what the core's de-duplication keys on.
    emu.deliver_sms("+79160005555", "twice", when=1_790_000_000.0, duplicate=True)
    await sinks.wait(lambda: len(sinks.of(SmsPartReceived)) == 2)
    a, b = sinks.of(SmsPartReceived)
    assert a.pdu == b.pdu and a.storage_index != b.storage_index
    assert a.smsc_time == 1_790_000_000.0


async def test_refused_numbers_in_a_row_do_not_reset_the_modem(modem: Modem, emu: ModemEmulator):
    reopens = emu.commands.count("AT+CMGF")
    for _ in range(4):
        emu.fault("error", command="AT+CMGS", text="+CMS ERROR: 1")
        with pytest.raises(SmsSendError):
            await modem.send_part(outbound_parts(TO, "x", concat_ref=1)[0])
    assert modem.status().state is LineState.UP
    assert emu.commands.count("AT+CMGF") == reopens  # no re-init: the port was never reset


async def test_cme_errors_in_a_row_reset_the_modem_and_it_recovers(
    emu: ModemEmulator, sinks: Sinks
):
    m = Modem(
        settings(emu.path, poll_interval=0.02), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink
    )
    await m.start()
    try:
        await up(m)
        inits = emu.commands.count("AT+CMGF")
        emu.fault("error", text="+CME ERROR: 100", count=4)  # whatever the next 4 commands are
        await emu.wait_for(lambda: emu.commands.count("AT+CMGF") > inits)  # re-initialised
        await up(m)
        assert "+CME ERROR: 100" in m.status().last_error
        await m.send_part(outbound_parts(TO, "after the reset", concat_ref=1)[0])
    finally:
        await m.stop()


async def test_an_unexpected_error_in_the_poll_does_not_stop_it(
    emu: ModemEmulator, sinks: Sinks, monkeypatch: pytest.MonkeyPatch
):
    m = Modem(
        settings(emu.path, poll_interval=0.02), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink
    )
    await m.start()
    try:
        await up(m)
        real = m._poll_once
        calls = 0

        async def poll_once(port: Any, *, urgent: bool = False) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ValueError("an answer nobody foresaw")
            await real(port, urgent=urgent)

        monkeypatch.setattr(m, "_poll_once", poll_once)
        csq = emu.commands.count("AT+CSQ")
        await emu.wait_for(lambda: emu.commands.count("AT+CSQ") >= csq + 2)
        assert calls >= 3 and "poll failed" in m.status().last_error
    finally:
        await m.stop()


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.1)])  # 0.5 s from PDU to +CMGS
async def test_a_send_cancelled_after_its_pdu_hands_the_late_mr_over(
    emu: ModemEmulator, sinks: Sinks
):
    late: asyncio.Future[tuple[Any, int | None]] = asyncio.get_running_loop().create_future()
    m = Modem(
        settings(emu.path),
        sms_sink=sinks.sms_sink,
        call_sink=sinks.call_sink,
        on_late_result=lambda part, mr: late.set_result((part, mr)),
    )
    await m.start()
    try:
        await up(m)
        part = outbound_parts(TO, "cancelled too late", concat_ref=1)[0]
        task = asyncio.create_task(m.send_part(part))
        await emu.wait_for(lambda: len(emu.received_pdus) == 1)  # the PDU is with the modem
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        got_part, mr = await asyncio.wait_for(late, 10)
        assert got_part is part and mr == emu.sent[0].mr
        assert m.late_results == 1
    finally:
        await m.stop()


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.1)])
async def test_a_send_cancelled_before_its_prompt_is_withdrawn(emu: ModemEmulator, sinks: Sinks):
    results: list[Any] = []
    m = Modem(
        settings(emu.path),
        sms_sink=sinks.sms_sink,
        call_sink=sinks.call_sink,
        on_late_result=lambda part, mr: results.append(mr),
    )
    await m.start()
    try:
        await up(m)
        emu.fault("late", command="AT+CMGS", after=0.3)  # the "> " comes late
        task = asyncio.create_task(m.send_part(outbound_parts(TO, "never", concat_ref=1)[0]))
        await emu.wait_for(lambda: "AT+CMGS" in emu.commands)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await m.send_part(outbound_parts(TO, "next", concat_ref=1)[0])  # after the ESC
        assert [s.text for s in emu.sent] == ["next"] and results == [] and m.late_results == 0
    finally:
        await m.stop()


async def test_inbound_losses_and_kept_direct_pdus_show_in_the_status(modem: Modem):
    inbound = modem._inbound
    assert inbound is not None and modem.status().state is LineState.UP
    inbound.retry_dropped = 2
    inbound.kept_direct.append("0006")
    st = modem.status()
    assert st.state is LineState.DEGRADED
    assert "2 acknowledged inbound message(s) lost" in st.detail
    assert "1 undecodable direct SMS/report(s)" in st.detail


async def test_cdsi_mode_sweeps_the_report_storage_too(modem: Modem, emu: ModemEmulator):
    # The emulator keeps reports with the SMS ("SM") and takes AT+CPMS="SR" as the same
    # storage: what is proven here is the switch and the switch back around the sweep.
    await modem.wait_inbound_idle()  # the sweep of the start-up
    before = len(emu.commands)
    modem._inbound.sweep()
    await emu.wait_for(lambda: emu.commands[before:].count("AT+CPMS") == 2)
    await modem.wait_inbound_idle()
    assert emu.commands[before:] == ["AT+CMGL", "AT+CPMS", "AT+CMGL", "AT+CPMS"]


@pytest.mark.parametrize("config", [ModemConfig(time_scale=0.001, pin="1234")])
async def test_after_the_pin_a_cpin_ready_urc_ends_the_wait(emu: ModemEmulator, sinks: Sinks):
    inner = emu._command

    async def command(line: str) -> None:
        if not line.upper().startswith("AT+CPIN="):
            await inner(line)
            return
        emu.commands.append("AT+CPIN")
        emu._final("OK")  # the SIM takes a moment, then says so (SIMCom, Quectel)

        def ready() -> None:
            emu.state.pin_ok = True
            emu.urc("+CPIN: READY")

        asyncio.get_running_loop().call_later(0.05, ready)

    emu._command = command  # type: ignore[method-assign]
    m = Modem(
        settings(emu.path, pin="1234", sim_ready_wait=60.0),
        sms_sink=sinks.sms_sink,
        call_sink=sinks.call_sink,
    )
    await m.start()
    try:
        await m.wait_ready(10)  # not a 60 s wait between two AT+CPIN?
        assert m.info().sim_ready
    finally:
        await m.stop()
