"""The asyncio AT port against the emulated modem on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os

import pytest
import serial_asyncio_fast

from gsm.at import Final, Urc, split_args
from gsm.emulator import ModemEmulator
from gsm.emulator_families import ModemConfig
from gsm.port import AtCommandError, AtPort, AtTimeout, PortDown, PortGaveUp, PortState
from tests.gsm.conftest import submit_pdu


class Urcs:
    """Collects URCs and lets a test wait for a count, on events."""

    def __init__(self, port: AtPort, prefix: str = "*") -> None:
        self.items: list[Urc] = []
        self._ev = asyncio.Event()
        port.subscribe(prefix, self._add)

    def _add(self, u: Urc) -> None:
        self.items.append(u)
        self._ev.set()

    async def wait(self, n: int, timeout: float = 5.0) -> list[Urc]:
        return await self.until(lambda items: len(items) >= n, timeout)

    async def until(self, pred, timeout: float = 5.0) -> list[Urc]:
        async with asyncio.timeout(timeout):
            while not pred(self.items):
                self._ev.clear()
                await self._ev.wait()
        return self.items


async def test_commands_and_echo(port: AtPort) -> None:
    r = await port.command("ATI")
    assert r.ok and r.lines == ("Generic", "GSM MODEM", "1.0")
    assert (await port.command("AT+CSQ")).first("+CSQ") == ["20", "99"]
    await port.command("ATE0")
    assert (await port.command("AT+CGSN")).lines == ("867123456789012",)


async def test_urc_inside_a_reply_is_routed_not_lost(emu: ModemEmulator, port: AtPort) -> None:
    urcs = Urcs(port, "+CMTI")
    emu.store_sms("+79161234567", "first")
    emu.store_sms("+79161234568", "second")
    emu.fault("urc_in_reply", command="AT+CMGL", text='+CMTI: "SM",9')
    r = await port.command("AT+CMGL=4")
    assert len(r.values("+CMGL")) == 2 and len(r.lines) == 4
    assert all("+CMTI" not in ln for ln in r.lines)
    assert [u.args for u in await urcs.wait(1)] == [["SM", "9"]]


async def test_urc_inside_the_prompt(emu: ModemEmulator, port: AtPort) -> None:
    urcs = Urcs(port, "+CMTI")
    emu.fault("urc_in_prompt", text='+CMTI: "SM",4')
    pdu, n = submit_pdu("+79161234567", "hello")
    r = await port.command(f"AT+CMGS={n}", pdu=pdu, timeout=5)
    assert r.first("+CMGS") == ["1"]
    assert [u.line for u in await urcs.wait(1)] == ['+CMTI: "SM",4']
    assert [s.text for s in emu.sent] == ["hello"]


async def test_three_cmti_1ms_apart_deliver_3_of_3(emu: ModemEmulator, port: AtPort) -> None:
    await port.command("AT+CNMI=2,1,0,1,0")
    urcs = Urcs(port, "+CMTI")
    loop = asyncio.get_running_loop()
    for i in range(3):
        loop.call_later(0.001 * i, emu.deliver_sms, "+79161234567", f"message {i}")
    got = await urcs.wait(3)
    texts = []
    for u in got:
        r = await port.command(f"AT+CMGR={u.args[1]}")
        texts.append(r.lines[1])
    assert len(set(texts)) == 3


async def test_urcs_during_a_slow_send_are_routed(emu: ModemEmulator, port: AtPort) -> None:
    emu.config.send_time = 200.0  # 0.2 s at this scale
    await port.command("AT+CNMI=2,1,0,1,0")
    urcs = Urcs(port, "+CMTI")
    sending: list[bool] = []  # per +CMTI: was the AT+CMGS still waiting for its answer?
    port.subscribe("+CMTI", lambda u: sending.append(port.status().queued == 1))
    pdu, n = submit_pdu("+79161234567", "slow")
    send = asyncio.create_task(port.command(f"AT+CMGS={n}", pdu=pdu, timeout=5))
    await emu.wait_for(lambda: emu.received_pdus == [pdu])
    emu.deliver_sms("+79161234999", "during")
    r = await send
    assert r.first("+CMGS") is not None
    assert len(await urcs.wait(1)) == 1
    assert sending == [True]  # routed when it came, not held until the reply


async def test_non_utf8_bytes_survived(emu: ModemEmulator, port: AtPort) -> None:
    emu.garbage(b"\r\n\xff\xfe\x80\r\n")
    assert (await port.command("AT")).ok
    urcs = Urcs(port, "+CUSD")
    emu.garbage(b'\r\n+CUSD: 0,"\xc3\x28",15\r\n')  # \xc3 starts a character \x28 cannot end
    (u,) = await urcs.wait(1)
    assert "\ufffd" in u.line and split_args(u.line)[2] == "15"
    assert port.is_up and (await port.command("AT")).ok
    assert port.status().bad_bytes >= 4


async def test_line_cap(emu: ModemEmulator, port: AtPort) -> None:
    emu.garbage(b"\r\n" + b"A" * 20000 + b"\r\n")
    assert (await port.command("AT+CSQ")).ok
    assert port.status().garbage >= 1


async def test_timeout_marks_down_with_reason_and_comes_back(
    emu: ModemEmulator, port: AtPort
) -> None:
    emu.fault("no_answer", command="AT+CSQ")
    with pytest.raises(AtTimeout) as exc:
        await port.command("AT+CSQ", timeout=0.3)
    assert exc.value.written
    st = port.status()
    assert st.state is PortState.DOWN and "no answer to AT+CSQ" in st.reason
    await port.wait_up()
    assert (await port.command("AT+CSQ")).ok
    assert "no answer to AT+CSQ" in port.status().last_error


@pytest.mark.parametrize("text", ["+CMS ERROR: 500", "COMMAND NOT SUPPORT"])
async def test_errors_in_a_row_mark_down_and_come_back(
    emu: ModemEmulator, port: AtPort, text: str
) -> None:
    emu.fault("error", command="AT+COPS", text=text, count=3)
    for _ in range(2):
        with pytest.raises(AtCommandError) as exc:
            await port.command("AT+COPS?")
        assert exc.value.response.final_text == text
    assert port.is_up  # one error is the command's problem
    with pytest.raises(AtCommandError):
        await port.command("AT+COPS?")
    assert port.state is PortState.DOWN and text in port.status().reason
    await port.wait_up()
    assert (await port.command("AT+COPS?")).ok


async def test_cms_error_500_on_send_is_not_a_send(emu: ModemEmulator, port: AtPort) -> None:
    emu.fault("error", command="AT+CMGS", text="+CMS ERROR: 500")
    pdu, n = submit_pdu("+79161234567", "refused")
    with pytest.raises(AtCommandError) as exc:
        await port.command(f"AT+CMGS={n}", pdu=pdu)
    assert exc.value.final is Final.CMS_ERROR and exc.value.code == 500
    assert emu.sent == []


async def test_may_fail_errors_do_not_count(emu: ModemEmulator, port: AtPort) -> None:
    for _ in range(5):
        r = await port.command("AT^CURC=0", check=False, may_fail=True)
        assert r.final is Final.ERROR
    assert port.is_up


async def test_garbage_marks_down_and_comes_back(emu: ModemEmulator, port: AtPort) -> None:
    emu.garbage(b"\r\n\xff\xff\r\n\xfe\xfe\r\n\x80\x80\r\n")
    await port.wait_state(PortState.DOWN)
    assert "garbage" in port.status().reason
    await port.wait_up()
    assert (await port.command("AT")).ok


async def test_unplugged_modem_comes_back_and_queue_drains(
    emu: ModemEmulator, port: AtPort
) -> None:
    emu.unplug()
    await port.wait_state(PortState.DOWN)
    assert "disconnected" in port.status().reason
    assert not os.path.lexists(emu.path)
    queued = [asyncio.create_task(port.command(c)) for c in ("AT+CSQ", "AT+CGSN", "AT+COPS?")]
    async with asyncio.timeout(5):
        await port.wait_until(lambda st: st.queued == 3)
    with pytest.raises(PortDown):
        await port.command("AT", wait=False)
    emu.plug()
    results = await asyncio.gather(*queued)
    assert [r.ok for r in results] == [True, True, True]
    assert port.status().reopens >= 2


async def test_in_flight_command_on_unplug_says_written(emu: ModemEmulator, port: AtPort) -> None:
    emu.config.send_time = 10_000.0
    pdu, n = submit_pdu("+79161234567", "lost")
    send = asyncio.create_task(port.command(f"AT+CMGS={n}", pdu=pdu, timeout=30))
    await emu.wait_for(lambda: emu.received_pdus == [pdu])
    emu.unplug()
    with pytest.raises(PortDown) as exc:
        await send
    assert exc.value.written and exc.value.pdu_written
    emu.plug()
    await port.wait_up()
    assert emu.sent == []  # the emulator never sent it; the port never re-sent it
    assert emu.commands.count("AT+CMGS") == 1


async def test_on_up_init_runs_before_queued_work(emu: ModemEmulator, tmp_path) -> None:
    async def init(p: AtPort) -> None:
        await p.command("ATE0", urgent=True)
        await p.command("AT+CNMI=2,1,0,1,0", urgent=True)

    port = AtPort(emu.path, on_up=init, backoff_initial=0.02, backoff_max=0.2)
    await port.start()
    try:
        first = asyncio.create_task(port.command("AT+CSQ"))
        assert (await first).ok
        assert emu.commands[-4:] == ["AT", "ATE", "AT+CNMI", "AT+CSQ"]
        emu.unplug()
        await port.wait_state(PortState.DOWN)
        later = asyncio.create_task(port.command("AT+CGSN"))
        emu.plug()
        assert (await later).ok
        assert emu.commands[-4:] == ["AT", "ATE", "AT+CNMI", "AT+CGSN"]
    finally:
        await port.stop()


async def test_missing_device_path_reason(tmp_path) -> None:
    port = AtPort(str(tmp_path / "nothing"), backoff_initial=0.01, backoff_max=0.05)
    await port.start()
    try:
        async with asyncio.timeout(5):
            st = await port.wait_until(lambda st: "not present" in st.reason)
        assert st.state is PortState.DOWN
        with pytest.raises(PortDown):
            await port.command("AT", wait=False)
    finally:
        await port.stop()


async def test_on_up_gives_up_without_retrying(emu: ModemEmulator) -> None:
    tries = 0

    async def init(p: AtPort) -> None:
        nonlocal tries
        tries += 1
        r = await p.command('AT+CPIN="0000"', urgent=True, check=False)
        if not r.ok:
            raise PortGaveUp("SIM PIN refused: check the PIN (the SIM locks after 3 tries)")

    emu.state.pin_ok = False
    emu.config.pin = "1234"
    port = AtPort(emu.path, on_up=init, backoff_initial=0.01, backoff_max=0.02)
    await port.start()
    try:
        await port.wait_state(PortState.DOWN)
        while "gave up" not in port.status().reason:
            await port.wait_state(PortState.OPENING)
            await port.wait_state(PortState.DOWN)
        assert tries == 1 and "SIM PIN refused" in port.status().last_error
        with pytest.raises(PortDown, match="SIM PIN refused"):
            await port.command("AT")  # not queued for ever: nothing would run it
    finally:
        await port.stop()


async def test_reopen_after_dying_at_the_prompt_sends_nothing(emu: ModemEmulator) -> None:
    # a previous life of the product wrote AT+CMGS and died before the PDU
    reader, writer = await serial_asyncio_fast.open_serial_connection(url=emu.path)
    writer.write(b"ATE0\r")
    async with asyncio.timeout(5):
        await reader.readuntil(b"OK\r\n")
    writer.write(b"AT+CMGS=20\r")
    async with asyncio.timeout(5):
        await reader.readuntil(b"> ")
    writer.write(b"0011000B91")  # half a PDU
    writer.close()
    await emu.wait_for(lambda: emu.input_pending == b"0011000B91")
    port = AtPort(emu.path, backoff_initial=0.02, settle=0.02)
    await port.start()
    try:
        await port.wait_up()
        assert (await port.command("AT+CSQ")).ok
        assert emu.sent == [] and emu.received_pdus == []  # ESC cancelled it
    finally:
        await port.stop()


@pytest.mark.parametrize("send_ms", [50.0, 400.0])  # within the settle time, and after it
async def test_a_stale_answer_after_reopen_is_not_taken_for_the_probe(
    emu: ModemEmulator, send_ms: float
) -> None:
    emu.config.send_time = send_ms
    pdu, n = submit_pdu("+79161234567", "sent by the dead")
    reader, writer = await serial_asyncio_fast.open_serial_connection(url=emu.path)
    writer.write(f"ATE0\rAT+CMGS={n}\r".encode())
    async with asyncio.timeout(5):
        await reader.readuntil(b"> ")
    writer.write(pdu.encode() + b"\x1a")
    await emu.wait_for(lambda: emu.received_pdus == [pdu])
    writer.close()  # died while the modem sends; its +CMGS answer comes to the next opener
    port = AtPort(emu.path, backoff_initial=0.02, settle=0.1)
    await port.start()
    try:
        await port.wait_up()
        r = await port.command("AT+CSQ")
        assert r.lines == ("+CSQ: 20,99",)
        r = await port.command("AT+CGSN")
        assert r.lines == ("867123456789012",)
        assert [s.text for s in emu.sent] == ["sent by the dead"]
    finally:
        await port.stop()


async def test_stop_fails_queued_commands(emu: ModemEmulator, port: AtPort) -> None:
    emu.unplug()
    await port.wait_state(PortState.DOWN)
    queued = asyncio.create_task(port.command("AT+CSQ"))
    await port.wait_until(lambda st: st.queued == 1)
    await port.stop()
    with pytest.raises(PortDown, match="stopped"):
        await queued
    assert port.status().queued == 0


async def test_unplug_while_settling_does_not_leave_the_port_down(emu: ModemEmulator) -> None:
    port = AtPort(emu.path, backoff_initial=0.02, backoff_max=0.1, settle=0.3, settle_max=1.0)
    await port.start()
    try:
        await port.wait_state(PortState.OPENING)  # the device is open, the port settles
        emu.unplug()
        await port.wait_state(PortState.DOWN)
        emu.plug()
        async with asyncio.timeout(10):
            await port.wait_up()
        assert (await port.command("AT+CSQ")).ok
    finally:
        await port.stop()


async def test_unplug_between_two_init_commands_does_not_leave_the_port_down(
    emu: ModemEmulator,
) -> None:
    lives = 0
    unplugged = asyncio.Event()

    async def init(p: AtPort) -> None:
        nonlocal lives
        lives += 1
        await p.command("ATE0", urgent=True)
        if lives == 1:
            emu.unplug()
            await p.wait_state(PortState.DOWN)
            unplugged.set()
        await p.command("AT+CNMI=2,1,0,1,0", urgent=True)

    port = AtPort(emu.path, on_up=init, backoff_initial=0.02, backoff_max=0.1, settle=0.02)
    await port.start()
    try:
        await unplugged.wait()
        emu.plug()
        async with asyncio.timeout(10):
            await port.wait_up()
        assert lives == 2 and (await port.command("AT+CSQ")).ok
    finally:
        await port.stop()


async def test_urcs_said_while_the_port_settles_after_a_reopen_are_routed(
    emu: ModemEmulator,
) -> None:
    port = AtPort(emu.path, backoff_initial=0.02, probe_timeout=1.0, settle=0.3)
    urcs = Urcs(port)
    await port.start()
    try:
        await port.wait_up()
        emu.fault("no_answer", command="AT+CSQ")
        with pytest.raises(AtTimeout):
            await port.command("AT+CSQ", timeout=0.2)
        # the modem was not rebooted: what it says as the port reopens is for the new port
        emu.urc_on_next_input("+CDS: 1", "0006", '+CMTI: "SM",3', "RING")
        got = await urcs.until(lambda items: len(items) >= 3)
        assert [(u.name, u.pdu) for u in got] == [("+CDS", "0006"), ("+CMTI", None), ("RING", None)]
        assert port.state is PortState.OPENING  # they came while it settled
        await port.wait_up()
    finally:
        await port.stop()


async def test_boot_urcs_before_the_first_command_are_routed(tmp_path) -> None:
    config = ModemConfig(family="simcom", time_scale=0.001, boot_on_input=True)
    async with ModemEmulator(str(tmp_path / "modem0"), config) as emu:
        port = AtPort(emu.path, backoff_initial=0.02, probe_timeout=1.0, settle=0.3)
        urcs = Urcs(port)
        await port.start()
        try:
            got = await urcs.until(lambda items: any(u.name == "SMS Ready" for u in items))
            assert [u.name for u in got] == ["RDY", "+CFUN", "+CPIN", "Call Ready", "SMS Ready"]
            assert port.state is PortState.OPENING
            await port.wait_up()
        finally:
            await port.stop()


async def test_a_late_bare_ok_after_a_timeout_is_not_taken_for_the_probe(
    emu: ModemEmulator, port: AtPort
) -> None:
    # the modem is busy with AT+CMEE for 0.5 s: its OK comes after the port reopened and
    # wrote its probe, whose own OK follows it
    emu.fault("late", command="AT+CMEE", after=0.5)
    with pytest.raises(AtTimeout):
        await port.command("AT+CMEE=1", timeout=0.2)
    assert (await port.command("AT+CSQ")).lines == ("+CSQ: 20,99",)
    assert (await port.command("AT+CGSN")).lines == ("867123456789012",)
    assert (await port.command("AT+CMEE=1")).lines == ()


async def test_a_send_cancelled_after_its_pdu_is_counted_in_doubt(
    emu: ModemEmulator, port: AtPort
) -> None:
    emu.config.send_time = 300.0  # 0.3 s at this scale
    pdu, n = submit_pdu("+79161234567", "given up")
    send = asyncio.create_task(port.command(f"AT+CMGS={n}", pdu=pdu, timeout=5))
    await emu.wait_for(lambda: emu.received_pdus == [pdu])
    send.cancel()
    with pytest.raises(asyncio.CancelledError):
        await send
    assert port.status().in_doubt == 1
    assert (await port.command("AT+CSQ")).lines == ("+CSQ: 20,99",)  # not the +CMGS answer
    assert [s.text for s in emu.sent] == ["given up"] and port.is_up


async def test_a_modem_that_times_out_after_every_open_is_reopened_ever_more_slowly(
    emu: ModemEmulator,
) -> None:
    port = AtPort(emu.path, backoff_initial=0.01, backoff_max=1.0, settle=0.01)
    await port.start()
    try:
        await port.wait_up()
        backoffs = []
        for _ in range(3):
            emu.fault("no_answer", command="AT+CSQ")
            with pytest.raises(AtTimeout):
                await port.command("AT+CSQ", timeout=0.05)
            await port.wait_up()
            backoffs.append(port.status().backoff)
        assert backoffs == [0.02, 0.04, 0.08]  # not back to 0.01 after each open
    finally:
        await port.stop()


async def test_the_backoff_starts_over_after_a_stable_period_up(emu: ModemEmulator) -> None:
    port = AtPort(emu.path, backoff_initial=0.01, backoff_max=1.0, settle=0.01, stable_after=0)
    await port.start()
    try:
        await port.wait_up()
        for _ in range(2):
            emu.fault("no_answer", command="AT+CSQ")
            with pytest.raises(AtTimeout):
                await port.command("AT+CSQ", timeout=0.05)
            await port.wait_up()
            assert port.status().backoff == 0.02
    finally:
        await port.stop()


async def test_a_send_cancelled_before_its_prompt_never_writes_the_pdu(
    emu: ModemEmulator, port: AtPort
) -> None:
    emu.fault("late", command="AT+CMGS", after=0.3)  # the "> " comes 0.3 s after the command
    pdu, n = submit_pdu("+79161234567", "given up early")
    send = asyncio.create_task(port.command(f"AT+CMGS={n}", pdu=pdu, timeout=5))
    await emu.wait_for(lambda: "AT+CMGS" in emu.commands)
    send.cancel()
    with pytest.raises(asyncio.CancelledError):
        await send
    assert (await port.command("AT+CSQ")).lines == ("+CSQ: 20,99",)
    assert emu.received_pdus == [] and emu.sent == [] and port.status().in_doubt == 0
    assert port.is_up
