"""A lost NOTIFY (RFC 4235 4.1): when a partial dialog-info document skips a version, the line
does not apply it on state it no longer knows -- it refreshes the subscription in its dialog,
and the notifier's full state (the NOTIFY that answers the refresh) is what the line shows."""

from __future__ import annotations

import asyncio

from sip.dialog import Dialog
from sip.sip_line import SipLine, SipLineConfig
from tests.sip.baresip import free_port
from tests.sip.fake_pbx import fake_pbx
from tests.sip.kamailio_env import Recorder, wait_until


def body(version: int, state: str, *dialogs: tuple[str, str]) -> bytes:
    elems = "".join(f'<dialog id="{did}" call-id="c-{did}" direction="recipient"><state>{s}'
                    '</state><remote><identity>sip:89161234567@pbx</identity></remote></dialog>'
                    for did, s in dialogs)
    return (f'<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
            f'version="{version}" state="{state}" entity="sip:101@pbx">{elems}</dialog-info>'
            ).encode()


async def test_a_version_gap_in_partial_state_refreshes_for_the_full_state() -> None:
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

            async def notify(data: bytes) -> None:
                answer = await pbx.request(dialog.new_request("NOTIFY", headers=[
                    ("Event", "dialog"), ("Subscription-State", "active;expires=600"),
                    ("Content-Type", "application/dialog-info+xml")], body=data))
                assert answer.status == 200

            await notify(body(0, "full"))
            await notify(body(1, "partial", ("d1", "early")))
            await wait_until(lambda: line.presence() == {"101": "ringing"},
                             line.presence_changed)
            fake.got.clear()
            # version 2 (d1 answered) is lost; version 3 says it ended
            await notify(body(3, "partial", ("d1", "terminated")))
            await asyncio.wait_for(fake.got.wait(), 20)
            refresh = fake.subscribes[-1].request
            assert len(fake.subscribes) == 2
            assert refresh.to.tag == first.to_tag  # in the dialog, not a new subscription
            assert line.presence() == {"101": "ringing"}  # not applied on unknown state
            # the refresh's NOTIFY: the full state -- d1 is over, 101 answered another call
            await notify(body(4, "full", ("d2", "confirmed")))
            await wait_until(lambda: line.presence() == {"101": "busy"}, line.presence_changed)
            sub = line.watcher.subs["101"]
            assert set(sub.tracker.dialogs) == {"d2"} and not sub.tracker.needs_full
        finally:
            await line.stop()
