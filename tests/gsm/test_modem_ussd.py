"""USSD on the Modem over the pty emulator: each encoding of the reply, refusals, the balance."""

from __future__ import annotations

import pytest

from callcenter.sms.events import UssdReply
from gsm.emulator_families import ModemConfig
from gsm.modem import Modem
from tests.gsm.modem_harness import Sinks

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
