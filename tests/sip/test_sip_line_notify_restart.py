"""A notifier that restarts its version count in the same subscription (it came back with its
subscriptions persisted, not their versions): the line notices the old version, refreshes in
the dialog, and follows the notifier's new count instead of ignoring it until it passes ours."""

from __future__ import annotations

import asyncio

from sip.dialog import Dialog
from sip.sip_line import SipLine, SipLineConfig
from tests.sip.baresip import free_port
from tests.sip.fake_pbx import fake_pbx
from tests.sip.kamailio_env import Recorder, wait_until
from tests.sip.test_sip_line_notify_gap import body


async def test_a_version_count_restarted_in_the_dialog_is_followed_after_a_refresh() -> None:
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

            await notify(body(57, "full", ("d1", "confirmed")))
            await wait_until(lambda: line.presence() == {"101": "busy"}, line.presence_changed)
            fake.got.clear()
            # the notifier restarted, kept the subscription, and counts from 0 again
            await notify(body(0, "full"))
            await asyncio.wait_for(fake.got.wait(), 20)
            refresh = fake.subscribes[-1].request
            assert len(fake.subscribes) == 2
            assert refresh.to.tag == first.to_tag  # in the dialog, not a new subscription
            await notify(body(1, "full"))  # the refresh's NOTIFY
            await wait_until(lambda: line.presence() == {"101": "free"}, line.presence_changed)
            await notify(body(2, "full", ("d2", "early")))
            await wait_until(lambda: line.presence() == {"101": "ringing"},
                             line.presence_changed)
        finally:
            await line.stop()
