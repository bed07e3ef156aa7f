"""USSD on the Modem over the pty emulator: each encoding of the reply, refusals, the balance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from callcenter.sms.events import UssdReply
from callcenter.sms.ports import UssdError
from gsm.emulator import ModemEmulator
from gsm.emulator_families import ModemConfig
from gsm.modem import Modem
from tests.gsm.modem_harness import Sinks, settings, up

# --- USSD ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        ModemConfig(time_scale=0.001, family="huawei"),  # GSM 7-bit packed hex, DCS 15
        ModemConfig(time_scale=0.001, family="sim7600"),  # UCS2 hex, DCS 72
        ModemConfig(time_scale=0.001, family="generic"),  # plain text, several lines
        ModemConfig(
            time_scale=0.001, family="huawei", ussd_replies={"*100#": "Баланс: 55,20 р."}
        ),  # packed impossible: UCS2
    ],
    ids=["huawei-packed", "sim7600-ucs2", "generic-text", "huawei-cyrillic"],
)
async def test_ussd_balance_in_each_encoding(modem: Modem, config: ModemConfig, sinks: Sinks):
    expected = config.ussd_replies["*100#"]
    assert await modem.ussd("*100#") == expected
    assert modem.info().balance == expected
    await sinks.wait(lambda: len(sinks.of(UssdReply)) == 1)
    assert sinks.of(UssdReply)[0].text == expected


async def test_ussd_unknown_code(modem: Modem):
    from callcenter.sms.ports import UssdError

    with pytest.raises(UssdError, match="does not support"):
        await modem.ussd("*999#")
    with pytest.raises(UssdError):
        await modem.ussd('*100#",ATD112;')


def _rewrite_cusd(emu: ModemEmulator, rewrite: Callable[[str], str | None]) -> None:
    inner = emu.urc

    def urc(text: str) -> None:
        if text.startswith("+CUSD:"):
            new = rewrite(text)
            if new is None:
                return
            text = new
        inner(text)

    emu.urc = urc  # type: ignore[method-assign]


@pytest.mark.parametrize(
    "config", [ModemConfig(time_scale=0.001, ussd_replies={"*102#": "Тариф 300 руб/мес"})]
)
async def test_only_the_balance_codes_reply_is_the_balance(modem: Modem):
    assert await modem.ussd("*102#") == "Тариф 300 руб/мес"
    assert modem.info().balance == ""


async def test_a_menu_reply_ends_the_session(modem: Modem, emu: ModemEmulator):
    _rewrite_cusd(emu, lambda t: t.replace("+CUSD: 0,", "+CUSD: 1,"))
    before = emu.commands.count("AT+CUSD")
    await modem.ussd("*100#")
    await emu.wait_for(lambda: emu.commands.count("AT+CUSD") == before + 2)  # request, end


async def test_the_ussd_timeout_setting_is_the_default(emu: ModemEmulator, sinks: Sinks):
    m = Modem(
        settings(emu.path, ussd_timeout=0.1), sms_sink=sinks.sms_sink, call_sink=sinks.call_sink
    )
    await m.start()
    try:
        await up(m)
        _rewrite_cusd(emu, lambda t: None)  # the network never answers
        async with asyncio.timeout(5):
            with pytest.raises(UssdError, match=r"within 0\.1 s"):
                await m.ussd("*100#")
    finally:
        await m.stop()
