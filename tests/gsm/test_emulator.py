"""The modem emulator on a real pseudo-terminal: bytes on the wire, SMS, calls, USSD, families."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
import serial_asyncio_fast

from gsm.at import split_args
from gsm.emulator import ModemEmulator
from gsm.emulator_commands import encode_ussd
from gsm.emulator_control import ControlError, EmulatorClient, control
from gsm.emulator_families import ModemConfig
from gsm.emulator_pdu import gsm7_septets, septets_text, unpack7
from gsm.emulator_pty import PtyLink
from gsm.port import AtPort, AtTimeout, PortState
from tests.gsm.conftest import submit_pdu
from tests.gsm.test_port import Urcs


async def _raw(path: str):
    return await serial_asyncio_fast.open_serial_connection(url=path, baudrate=115200)


async def _expect(reader: asyncio.StreamReader, want: bytes) -> None:
    async with asyncio.timeout(5):
        got = await reader.readexactly(len(want))
    assert got == want


async def test_bytes_on_the_wire(emu: ModemEmulator) -> None:
    reader, writer = await _raw(emu.path)
    try:
        writer.write(b"AT\r")
        await _expect(reader, b"AT\r\r\nOK\r\n")  # echo on until ATE0
        writer.write(b"ATE0\r")
        await _expect(reader, b"ATE0\r\r\nOK\r\n")
        writer.write(b"AT+CSQ\r")
        await _expect(reader, b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n")
        pdu, n = submit_pdu("+79161234567", "hi", srr=False)
        writer.write(f"AT+CMGS={n}\r".encode())
        await _expect(reader, b"\r\n> ")  # no line end after the prompt
        writer.write(pdu.encode() + b"\x1a")
        await _expect(reader, b"\r\n+CMGS: 1\r\n\r\nOK\r\n")
        writer.write(f"AT+CMGS={n}\r".encode())
        await _expect(reader, b"\r\n> ")
        writer.write(b"00\x1b")  # ESC: cancelled, nothing sent
        writer.write(b"AT\r")
        await _expect(reader, b"\r\nOK\r\n")
        assert [s.text for s in emu.sent] == ["hi"]
        writer.write(b"AT+NOPE\r")
        await _expect(reader, b"\r\nERROR\r\n")
    finally:
        writer.close()


class TestPin:
    @pytest.fixture
    def config(self) -> ModemConfig:
        return ModemConfig(time_scale=0.001, pin="1234")

    async def test_pin(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CMEE=1")
        assert (await port.command("AT+CPIN?")).lines == ("+CPIN: SIM PIN",)
        r = await port.command("AT+CMGL=4", check=False, may_fail=True)
        assert r.final_text == "+CME ERROR: 11"
        r = await port.command('AT+CPIN="0000"', check=False, may_fail=True)
        assert r.final_text == "+CME ERROR: 16"
        await port.command('AT+CPIN="1234"')
        assert (await port.command("AT+CPIN?")).lines == ("+CPIN: READY",)
        assert (await port.command("AT+CREG?")).lines == ("+CREG: 0,1",)
        assert (await port.command("AT+COPS?")).first("+COPS") == ["0", "0", "MTS RUS", "7"]
        assert (await port.command("AT+CSCA?")).first("+CSCA") == ["+79168999100", "145"]


class TestSms:
    @pytest.fixture
    def config(self) -> ModemConfig:
        return ModemConfig(time_scale=0.001, failed_destinations=frozenset({"+79990000000"}))

    async def send(self, port: AtPort, dest: str, text: str, **kw) -> int:
        pdu, n = submit_pdu(dest, text, **kw)
        r = await port.command(f"AT+CMGS={n}", pdu=pdu)
        return int(r.first("+CMGS")[0])

    async def test_cmti_and_read_and_delete(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CNMI=2,1,0,1,0")
        urcs = Urcs(port, "+CMTI")
        (slot,) = emu.deliver_sms("+79161234567", "Hello")
        (u,) = await urcs.wait(1)
        assert u.args == ["SM", str(slot)]
        r = await port.command(f"AT+CMGR={slot}")
        assert r.lines[0].startswith("+CMGR: 0,,")
        await port.command(f"AT+CMGD={slot}")
        r = await port.command(f"AT+CMGR={slot}", check=False, may_fail=True)
        assert r.final_text == "+CMS ERROR: 321"

    async def test_cmt_direct(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CNMI=2,2,0,1,0")
        urcs = Urcs(port, "+CMT")
        emu.deliver_sms("+79161234567", "direct")
        (u,) = await urcs.wait(1)
        assert u.pdu and u.line.startswith("+CMT: ,") and emu.sim == {}

    async def test_stored_at_start_up_and_duplicate(self, emu: ModemEmulator, port: AtPort) -> None:
        emu.store_sms("+79161234567", "old one")
        await port.command("AT+CNMI=2,1,0,1,0")
        urcs = Urcs(port, "+CMTI")
        emu.deliver_sms("+79161234567", "twice", duplicate=True)
        got = await urcs.wait(2)
        r = await port.command("AT+CMGL=4")
        pdus = r.lines[1::2]
        assert len(pdus) == 3 and pdus[1] == pdus[2]
        assert got[0].args != got[1].args

    async def test_multipart_inbound_has_concat_headers(
        self, emu: ModemEmulator, port: AtPort
    ) -> None:
        slots = emu.deliver_sms("+79161234567", "Привет, " * 20)
        assert len(slots) == 3
        r = await port.command("AT+CMGL=4")
        pdus = [bytes.fromhex(p) for p in r.lines[1::2]]
        assert all(p[1 + p[0]] & 0x40 for p in pdus)  # TP-UDHI set on every part

    async def test_status_report_per_part_cds(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CNMI=2,1,0,1,0")
        urcs = Urcs(port, "+CDS")
        mrs = [
            await self.send(port, "+79161234567", "part one", concat=(7, 1, 2)),
            await self.send(port, "+79161234567", "part two", concat=(7, 2, 2)),
        ]
        got = await urcs.wait(2)
        tpdus = [bytes.fromhex(u.pdu) for u in got]
        assert [b[b[0] + 2] for b in tpdus] == mrs  # TP-MR per part, after the SMSC part
        assert [bytes.fromhex(u.pdu)[-1] for u in got] == [0, 0]
        assert [(s.ref, s.seq, s.total) for s in emu.sent] == [(7, 1, 2), (7, 2, 2)]

    async def test_failed_report_and_cdsi(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CNMI=2,1,0,2,0")
        urcs = Urcs(port, "+CDSI")
        await self.send(port, "+79990000000", "to nowhere")
        (u,) = await urcs.wait(1)
        r = await port.command(f"AT+CMGR={u.args[1]}")
        assert bytes.fromhex(r.lines[1])[-1] == 0x41

    async def test_report_faults_per_part(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CNMI=2,1,0,1,0")
        urcs = Urcs(port, "+CDS")
        emu.fault("no_report")
        emu.fault("report_failed")
        emu.config.failed_seqs = frozenset({3})
        mrs = [
            await self.send(port, "+79161234567", f"part {i}", concat=(9, i, 4))
            for i in (1, 2, 3, 4)
        ]
        got = await urcs.wait(3)
        status = {b[b[0] + 2]: b[-1] for b in (bytes.fromhex(u.pdu) for u in got)}
        assert status == {mrs[1]: 0x41, mrs[2]: 0x41, mrs[3]: 0x00}  # part 1: no report

    async def test_no_report_until_cnmi_set(self, emu: ModemEmulator, port: AtPort) -> None:
        await self.send(port, "+79161234567", "early")
        await emu.wait_for(lambda: len(emu.held_reports) == 1)
        urcs = Urcs(port, "+CDS")
        await port.command("AT+CNMI=2,1,0,1,0")
        assert len(await urcs.wait(1)) == 1

    async def test_send_log_is_json_lines(self, emu: ModemEmulator, port: AtPort, tmp_path) -> None:
        await self.send(port, "89161234567", "log me", concat=(300 & 0xFF, 1, 1))
        (line,) = (tmp_path / "sent.jsonl").read_text().splitlines()
        rec = json.loads(line)
        assert rec["destination"] == "89161234567" and rec["text"] == "log me"
        assert (rec["mr"], rec["ref"], rec["seq"], rec["total"]) == (1, 44, 1, 1)
        assert rec["modem"] == "modem0" and rec["pdu"].startswith("00")

    async def test_lost_answer_still_logged(self, emu: ModemEmulator, port: AtPort) -> None:
        emu.fault("lost_answer", command="AT+CMGS")
        pdu, n = submit_pdu("+79161234567", "gone?")
        with pytest.raises(AtTimeout, match="no answer") as exc:
            await port.command(f"AT+CMGS={n}", pdu=pdu, timeout=0.3)
        assert exc.value.pdu_written  # so the caller marks it "unknown", never re-sends
        assert [s.text for s in emu.sent] == ["gone?"]

    async def test_no_prompt_times_out_with_nothing_written(
        self, emu: ModemEmulator, port: AtPort
    ) -> None:
        emu.fault("no_answer", command="AT+CMGS")
        pdu, n = submit_pdu("+79161234567", "never")
        with pytest.raises(AtTimeout) as exc:
            await port.command(f"AT+CMGS={n}", pdu=pdu, prompt_timeout=0.3)
        assert exc.value.written and not exc.value.pdu_written
        await port.wait_up()
        assert emu.sent == [] and emu.received_pdus == []


class TestAcknowledgement:
    """AT+CSMS=1: what the product does not acknowledge comes back later (crash safety)."""

    @pytest.fixture
    def config(self) -> ModemConfig:
        return ModemConfig(time_scale=0.001, cnma_timeout=100.0)  # 0.1 s

    async def test_acknowledged_report_is_not_repeated(
        self, emu: ModemEmulator, port: AtPort
    ) -> None:
        emu.config.cnma_timeout = 60_000.0  # a slow machine must not make the ack late
        await port.command("AT+CSMS=1")
        await port.command("AT+CNMI=2,1,0,1,0")
        urcs = Urcs(port, "+CDS")
        await TestSms().send(port, "+79161234567", "acked")
        await urcs.wait(1)
        await port.command("AT+CNMA")
        r = await port.command("AT+CNMA", check=False, may_fail=True)
        assert r.final_text == "+CMS ERROR: 340"  # nothing left to acknowledge
        assert emu.held_reports == () and emu.state.cnmi_ds == 1

    async def test_report_to_a_dead_product_comes_back_after_restart(
        self, emu: ModemEmulator, port: AtPort
    ) -> None:
        await port.command("AT+CSMS=1")
        await port.command("AT+CNMI=2,1,0,1,0")
        urcs = Urcs(port, "+CDS")
        await TestSms().send(port, "+79161234567", "then crash")
        (first,) = await urcs.wait(1)
        await port.stop()  # the product dies before AT+CNMA
        await emu.wait_for(lambda: emu.state.cnmi_ds == 0)  # 27.005: routing switched off
        again = AtPort(emu.path, backoff_initial=0.02)
        urcs2 = Urcs(again, "+CDS")
        await again.start()
        try:
            await again.command("AT+CSMS=1")
            await again.command("AT+CNMI=2,1,0,1,0")
            (second,) = await urcs2.wait(1)
            assert second.pdu == first.pdu
            await again.command("AT+CNMA")
        finally:
            await again.stop()

    async def test_unacked_cmt_is_delivered_again(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CSMS=1")
        await port.command("AT+CNMI=2,2,0,0,0")
        urcs = Urcs(port, "+CMT")
        emu.deliver_sms("+79161234567", "ack me")
        await urcs.wait(1)
        await emu.wait_for(lambda: emu.state.cnmi_mt == 0)
        await port.command("AT+CNMI=2,2,0,0,0")
        got = await urcs.wait(2)
        assert got[0].pdu == got[1].pdu

    async def test_pending_reports_survive_a_replug(self, emu: ModemEmulator, port: AtPort) -> None:
        await TestSms().send(port, "+79161234567", "no cnmi yet")
        await emu.wait_for(lambda: len(emu.held_reports) == 1)
        emu.unplug()
        emu.plug()
        await port.wait_state(PortState.DOWN, PortState.OPENING)
        await port.wait_up()
        urcs = Urcs(port, "+CDS")
        await port.command("AT+CNMI=2,1,0,1,0")
        assert len(await urcs.wait(1)) == 1


class TestCalls:
    @pytest.fixture
    def config(self) -> ModemConfig:
        return ModemConfig(time_scale=0.001, family="huawei")

    async def test_ring_clip_and_caller_gives_up(self, emu: ModemEmulator, port: AtPort) -> None:
        await port.command("AT+CLIP=1")
        urcs = Urcs(port)
        emu.ring("+79161234567", rings=2)
        got = await urcs.wait(5)
        names = [u.name for u in got if not u.name.startswith("^RSSI")]
        assert names == ["RING", "+CLIP", "RING", "+CLIP", "^CEND"]
        assert split_args(got[1].line)[0] == "+79161234567"

    async def test_answer_and_hang_up(self, emu: ModemEmulator, port: AtPort) -> None:
        urcs = Urcs(port)
        emu.ring("+79161234567", rings=1000)
        await urcs.wait(1)
        await port.command("ATA")
        await port.command("AT+CHUP")
        got = await urcs.until(lambda items: items[-1].name == "^CEND")
        assert [u.name for u in got if u.name != "RING"] == ["^CONN", "^CEND"]

    async def test_generic_caller_hangs_up_no_carrier(self, tmp_path) -> None:
        async with ModemEmulator(str(tmp_path / "m"), ModemConfig(time_scale=0.001)) as e:
            p = AtPort(e.path, backoff_initial=0.02)
            await p.start()
            try:
                await p.wait_up()
                urcs = Urcs(p)
                e.ring("89161234567", rings=1000)
                await urcs.wait(1)
                await p.command("ATA")
                e.caller_hangs_up()
                # RINGs 1 ms apart may still be on the way when ATA answers
                got = await urcs.until(lambda items: items[-1].name != "RING")
                assert got[-1].name == "NO CARRIER"
                assert (await p.command("ATA", check=False)).final_text == "NO CARRIER"
            finally:
                await p.stop()


@pytest.mark.parametrize("encoding", ["gsm7-packed", "ucs2", "text"])
async def test_ussd_reply_encodings(tmp_path, encoding: str) -> None:
    text = "Balance: 12.50 r.\nTariff: Smart"
    cfg = ModemConfig(time_scale=0.001, ussd_encoding=encoding, ussd_replies={"*100#": text})
    async with ModemEmulator(str(tmp_path / "m"), cfg) as e:
        p = AtPort(e.path)
        await p.start()
        try:
            urcs = Urcs(p, "+CUSD")
            await p.command('AT+CUSD=1,"*100#",15')
            (u,) = await urcs.wait(1)
            m, s, dcs = split_args(u.line)
            assert m == "0"
            if encoding == "gsm7-packed":
                data = bytes.fromhex(s)
                assert dcs == "15"
                assert septets_text(unpack7(data, len(gsm7_septets(text)))) == text
            elif encoding == "ucs2":
                assert dcs == "72" and bytes.fromhex(s).decode("utf-16-be") == text
            else:
                assert dcs == "15" and s == text  # the multi-line text reached us whole
        finally:
            await p.stop()


def test_ussd_cyrillic_falls_back_to_ucs2() -> None:
    assert encode_ussd("Баланс", "gsm7-packed") == ("04110430043B0430043D0441", 72)


async def test_huawei_request_in_packed_hex(tmp_path) -> None:
    cfg = ModemConfig(time_scale=0.001, family="huawei")
    async with ModemEmulator(str(tmp_path / "m"), cfg) as e:
        p = AtPort(e.path)
        await p.start()
        try:
            urcs = Urcs(p, "+CUSD")
            await p.command('AT+CUSD=1,"AA180C3602",15')  # "*100#" packed
            (u,) = await urcs.wait(1)
            assert split_args(u.line)[0] == "0"
        finally:
            await p.stop()


@pytest.mark.parametrize(
    ("family", "boot"),
    [
        ("huawei", ["^BOOT", "^SIMST", "^SRVST", "^MODE"]),
        ("wavecom", ["+WIND"] * 5),
        ("simcom", ["RDY", "+CFUN", "+CPIN", "Call Ready", "SMS Ready"]),
        ("quectel", ["RDY", "+CFUN", "+CPIN", "+QUSIM", "+QIND", "+QIND"]),
        ("cinterion", ["^SYSSTART"]),
    ],
)
async def test_family_boot_urcs_at_power_up_and_after_replug(
    tmp_path, family: str, boot: list[str]
) -> None:
    async with ModemEmulator(str(tmp_path / "m"), ModemConfig(family=family)) as e:
        p = AtPort(e.path, backoff_initial=0.02)
        urcs = Urcs(p)
        await p.start()
        try:
            # the boot lines arrive around the probe's answer: routed as URCs, probe still OK
            await p.wait_up()
            assert [u.name for u in await urcs.wait(len(boot))] == boot
            urcs.items.clear()
            e.unplug()
            await p.wait_state(PortState.DOWN)
            e.plug()
            await p.wait_up()
            assert [u.name for u in await urcs.wait(len(boot))] == boot
        finally:
            await p.stop()


async def test_huawei_quirks(tmp_path) -> None:
    cfg = ModemConfig(time_scale=0.001, family="huawei", periodic_interval=50.0)
    async with ModemEmulator(str(tmp_path / "m"), cfg) as e:
        p = AtPort(e.path, backoff_initial=0.02, settle=0.02)
        rssi = Urcs(p, "^RSSI")
        await p.start()
        try:
            await rssi.wait(2)  # periodic ^RSSI while commands run
            for _ in range(3):
                assert (await p.command("AT+CSQ")).ok
            r = await p.command("AT+WHAT", check=False, may_fail=True)
            assert r.final_text == "COMMAND NOT SUPPORT"
            assert (await p.command("ATI")).lines[:2] == ("Manufacturer: huawei", "Model: E1550")
            assert (await p.command("AT+CMGL=4")).ok  # slots count from 0 on Huawei
            await p.command("AT^CURC=0")
            assert not e.state.curc
            await p.command("ATD+79161234567;")
            orig = Urcs(p, "^CONF")
            await p.command("ATD+79161234567;")
            await orig.wait(1)
        finally:
            await p.stop()


async def test_nosupport_family(tmp_path) -> None:
    async with ModemEmulator(str(tmp_path / "m"), ModemConfig(family="nosupport")) as e:
        p = AtPort(e.path)
        await p.start()
        try:
            for cmd in ("AT+CSCA?", 'AT+CSCS="GSM"', "AT+CPMS?"):
                r = await p.command(cmd, check=False, may_fail=True)
                assert r.final_text == "COMMAND NOT SUPPORT"
            assert (await p.command("AT+CSQ")).ok
        finally:
            await p.stop()


async def test_emulator_as_its_own_process(tmp_path) -> None:
    ctl = str(tmp_path / "ctl.sock")
    log = tmp_path / "sent.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gsm.emulator", "--dir", str(tmp_path), "--modems", "2",
        "--path", f"{tmp_path}/sim800@simcom",
        "--control", ctl, "--send-log", str(log), "--send-time", "0.01", "--family", "huawei",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with asyncio.timeout(20):
            ready = json.loads(await proc.stdout.readline())
        assert ready["ready"] and set(ready["modems"]) == {"modem0", "modem1", "sim800"}
        client = EmulatorClient(ctl)
        p = AtPort(ready["modems"]["modem1"], backoff_initial=0.02)
        await p.start()
        try:
            await p.command("AT+CNMI=2,1,0,1,0")
            urcs = Urcs(p, "+CMTI")
            await client.request("sms", modem="modem1", sender="+79161234567", text="Hi")
            await urcs.wait(1)
            pdu, n = submit_pdu("+79161234567", "out")
            await p.command(f"AT+CMGS={n}", pdu=pdu)
            sent = (await client.request("sent", modem="modem1"))["sent"]
            assert [s["text"] for s in sent] == ["out"]
            assert json.loads(log.read_text())["text"] == "out"
            await client.request("unplug", modem="modem1")
            await p.wait_state(PortState.DOWN)
            assert not os.path.lexists(ready["modems"]["modem1"])
            await client.request("plug", modem="modem1")
            await p.wait_up()
            with pytest.raises(ControlError, match="no modem"):
                await client.request("sms", modem="nope", **{"from": "1"}, text="x")
            p2 = AtPort(ready["modems"]["sim800"], settle=0.02)
            await p2.start()
            assert (await p2.command("AT+CGMM")).lines == ("SIMCOM_SIM800L",)
            await p2.stop()
            status = await asyncio.to_thread(control, ctl, "status")
            assert status["modem1"]["sent"] == 1 and status["modem0"]["sent"] == 0
        finally:
            await p.stop()
            await client.close()
    finally:
        proc.terminate()
        await proc.wait()
    assert not os.path.lexists(tmp_path / "modem0")


async def test_store_pdu_as_is(emu: ModemEmulator, port: AtPort) -> None:
    slot = emu.store_pdu("0791448720003023240DD0E4")  # cut short: stored all the same
    r = await port.command(f"AT+CMGR={slot}")
    assert r.lines[1] == "0791448720003023240DD0E4"


@pytest.mark.parametrize(
    ("family", "want"),
    [
        ("sim7600", ["RING", "VOICE CALL", "NO CARRIER", "VOICE CALL"]),
        ("wavecom", ["+WIND", "RING", "NO CARRIER", "+WIND"]),
    ],
)
async def test_family_call_urcs(tmp_path, family: str, want: list[str]) -> None:
    cfg = ModemConfig(family=family, time_scale=0.001)
    async with ModemEmulator(str(tmp_path / "m"), cfg) as e:
        p = AtPort(e.path, settle=0.02)
        await p.start()
        try:
            await p.wait_up()
            urcs = Urcs(p)
            e.ring("+79161234567", rings=1000)
            await urcs.until(lambda items: any(u.name == "RING" for u in items))
            await p.command("ATA")
            e.caller_hangs_up()
            got = await urcs.until(lambda items: len(items) >= 2 and items[-1].name == want[-1]
                                   and items[-2].name == "NO CARRIER")  # fmt: skip
            names = [u.name for u in got]
            dedup = [n for i, n in enumerate(names) if n != "RING" or "RING" not in names[:i]]
            assert dedup == want
        finally:
            await p.stop()


async def test_v250_settings_and_bare_ate(emu: ModemEmulator, port: AtPort) -> None:
    for cmd in ("ATV1", "ATQ0", "ATX4", "ATX"):
        assert (await port.command(cmd)).ok
    for cmd in ("ATV0", "ATQ1"):  # numeric or no result codes: not what it emulates
        assert not (await port.command(cmd, check=False, may_fail=True)).ok
    assert emu.state.echo
    await port.command("ATE")  # V.250: no value is 0
    assert not emu.state.echo


async def test_cnmi_keeps_every_value_and_answers_them(emu: ModemEmulator, port: AtPort) -> None:
    await port.command("AT+CNMI=1,2,0,1,0")
    assert (await port.command("AT+CNMI?")).first("+CNMI") == ["1", "2", "0", "1", "0"]
    await port.command("AT+CNMI=2,1")  # omitted values keep their setting
    assert (await port.command("AT+CNMI?")).first("+CNMI") == ["2", "1", "0", "1", "0"]


async def test_cmgl_without_stat_lists_the_unread(emu: ModemEmulator, port: AtPort) -> None:
    emu.store_sms("+79161234567", "old")
    emu.store_sms("+79161234568", "new")
    await port.command("AT+CMGR=1")  # the first is read now
    r = await port.command("AT+CMGL")
    assert [v[0] for v in r.values("+CMGL")] == ["2"]


async def test_pty_fds_are_closed_when_the_symlink_cannot_be_made(tmp_path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    link = PtyLink(str(tmp_path / "no such dir" / "modem0"), lambda data: None)
    with pytest.raises(FileNotFoundError):
        link.open()
    assert len(os.listdir("/proc/self/fd")) == before and not link.is_open
