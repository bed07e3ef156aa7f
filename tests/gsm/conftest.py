"""An emulated modem on a real pseudo-terminal and the AT port opened on its path."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gsm.emulator import ModemEmulator
from gsm.emulator_families import ModemConfig
from gsm.emulator_pdu import encode_address, gsm7_septets, pack7
from gsm.modem import Modem
from gsm.port import AtPort
from tests.gsm.modem_harness import Sinks, settings, up


def submit_pdu(
    dest: str, text: str, *, srr: bool = True, concat: tuple[int, int, int] | None = None
) -> tuple[str, int]:
    """A GSM 7-bit SMS-SUBMIT (no SMSC part) and the length AT+CMGS wants."""
    septets = gsm7_septets(text)
    assert septets is not None
    udh = b""
    if concat:
        udh = bytes([5, 0, 3, *concat[:1], concat[2], concat[1]])
    fo = 0x01 | (0x20 if srr else 0) | (0x40 if udh else 0)
    skip = (len(udh) * 8 + 6) // 7
    ud = udh + pack7(septets, skip * 7 - len(udh) * 8)
    tpdu = bytes([fo, 0]) + encode_address(dest) + bytes([0, 0, skip + len(septets)]) + ud
    return "00" + tpdu.hex().upper(), len(tpdu)


@pytest.fixture
def config() -> ModemConfig:
    return ModemConfig(time_scale=0.001)


@pytest.fixture
async def emu(tmp_path, config: ModemConfig) -> AsyncIterator[ModemEmulator]:
    async with ModemEmulator(
        str(tmp_path / "modem0"), config, send_log=str(tmp_path / "sent.jsonl")
    ) as e:
        yield e


@pytest.fixture
async def port(emu: ModemEmulator) -> AsyncIterator[AtPort]:
    p = AtPort(emu.path, backoff_initial=0.02, backoff_max=0.2, probe_timeout=1.0, settle=0.02)
    await p.start()
    await p.wait_up()
    yield p
    await p.stop()


@pytest.fixture
def sinks(emu: ModemEmulator) -> Sinks:
    s = Sinks()
    s.emu = emu
    return s


@pytest.fixture
async def modem(emu: ModemEmulator, sinks: Sinks) -> AsyncIterator[Modem]:
    m = Modem(settings(emu.path), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink)
    await m.start()
    await up(m)
    yield m
    await m.stop()
