"""A NOTIFY is taken only from the PBX and only in our subscription's dialog: a stranger who
guessed (or sniffed) the Call-ID cannot paint a manager as ringing or pop a card."""

from __future__ import annotations

import asyncio

from sip.dialog import Dialog
from sip.endpoint import SipEndpoint
from sip.sip_line import SipLine, SipLineConfig
from tests.sip.baresip import free_port
from tests.sip.fake_pbx import fake_pbx
from tests.sip.kamailio_env import Recorder, wait_until


def ringing(version: int) -> bytes:
    return (f'<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
            f'version="{version}" state="full" entity="sip:101@pbx"><dialog id="d1" '
            'call-id="x" direction="recipient"><state>early</state><remote><identity>'
            'sip:89161234567@pbx</identity></remote></dialog></dialog-info>').encode()


HEADERS = [("Event", "dialog"), ("Subscription-State", "active;expires=600"),
           ("Content-Type", "application/dialog-info+xml")]


async def test_a_notify_from_a_stranger_or_outside_the_dialog_is_refused() -> None:
    stranger = SipEndpoint("UDP", "127.0.0.2", 0)  # another host (all of 127/8 is loopback)
    await stranger.start()
    async with fake_pbx() as fake:
        pbx = fake.endpoint
        line = SipLine(SipLineConfig(name="office", registrar=fake.registrar, username="crm",
                                     listen_host="127.0.0.1", listen_port=free_port(),
                                     watch_extensions=("101",), keepalive=30), Recorder())
        await line.start()
        try:
            await asyncio.wait_for(fake.got.wait(), 20)
            first = fake.subscribes[0]
            dialog = Dialog.as_uas(first.request, first.to_tag)
            # the right Call-ID and tags, but not from the PBX
            forged = dialog.new_request("NOTIFY", headers=HEADERS, body=ringing(1))
            answer = await stranger.request(forged, line.endpoint.local_address)
            assert answer.status == 403
            # from the PBX's address, the right Call-ID, but another dialog's tags
            other = Dialog.as_uas(first.request, "guessed-tag")
            answer = await pbx.request(other.new_request("NOTIFY", headers=HEADERS,
                                                         body=ringing(2)))
            assert answer.status == 481
            assert line.presence() == {"101": "free"}
            # the real one is taken
            answer = await pbx.request(dialog.new_request("NOTIFY", headers=HEADERS,
                                                          body=ringing(3)))
            assert answer.status == 200
            await wait_until(lambda: line.presence() == {"101": "ringing"},
                             line.presence_changed)
        finally:
            await line.stop()
            await stranger.close()
