"""A NOTIFY storm is bounded: a notifier (the core's own endpoint playing a PBX: it accepts
the REGISTER and the dialog SUBSCRIBE, then fires NOTIFYs as fast as it can) gets every NOTIFY
answered 200, the line reads only what its per-subscription budget allows, refreshes the
subscription once the storm passes -- and the notifier's full state then wins."""

from __future__ import annotations

import asyncio
import time

from sip.dialog import Dialog
from sip.sip_line import SipLine, SipLineConfig
from tests.sip.baresip import free_port
from tests.sip.fake_pbx import FakePbx, fake_pbx
from tests.sip.kamailio_env import Recorder, wait_until

STORM = 300


def body(version: int, state: str) -> bytes:
    dialog = (f'<dialog id="d1" call-id="x" direction="recipient"><state>{state}</state>'
              '<remote><identity>sip:89161234567@pbx</identity></remote></dialog>'
              if state != "none" else "")
    return (f'<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
            f'version="{version}" state="full" entity="sip:101@pbx">{dialog}</dialog-info>'
            ).encode()


async def test_a_notify_storm_is_bounded() -> None:
    async with fake_pbx() as fake:
        await storm(fake)


async def storm(fake: FakePbx) -> None:
    pbx, subscribes, got = fake.endpoint, fake.subscribes, fake.got
    host, port = pbx.local_address
    rec = Recorder()
    line = SipLine(SipLineConfig(name="office", registrar=f"{host}:{port}", username="crm",
                                 listen_host="127.0.0.1", listen_port=free_port(),
                                 watch_extensions=("101",), keepalive=30), rec)
    await line.start()
    try:
        await asyncio.wait_for(got.wait(), 20)
        first = subscribes[0]
        dialog = Dialog.as_uas(first.request, first.to_tag)

        def notify(version: int, state: str):
            return pbx.request(dialog.new_request("NOTIFY", headers=[
                ("Event", "dialog"), ("Subscription-State", "active;expires=600"),
                ("Content-Type", "application/dialog-info+xml")], body=body(version, state)))

        # the storm: the phone "rings" and "stops" hundreds of times, all at once
        began = time.time()
        answers = await asyncio.gather(*(notify(v, "early" if v % 2 else "none")
                                         for v in range(1, STORM + 1)))
        lasted = time.time() - began
        assert all(a.status == 200 for a in answers)
        sub = line.watcher.subs["101"]
        assert sub.bucket is not None
        read = STORM - sub.dropped
        # no more bodies read than the budget allows over the storm's length
        assert 0 < read <= sub.bucket.burst + sub.bucket.rate * lasted + 1
        # the storm passed: the line refreshes, the notifier answers with its full state
        got.clear()
        await asyncio.wait_for(got.wait(), 20)
        refresh = subscribes[-1].request
        assert refresh.to.tag == first.to_tag  # in the dialog, not a new subscription
        await notify(STORM + 1, "confirmed")
        await wait_until(lambda: line.presence() == {"101": "busy"}, line.presence_changed)
    finally:
        await line.stop()
