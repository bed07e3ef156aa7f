"""A person's "send again": once per message, even when asked twice at the same moment."""

from __future__ import annotations

import asyncio

from callcenter.store.base import Conflict
from callcenter.store.sqlite_sms import SmsFilter
from tests.sms.harness import FakeModem, sms_core


async def test_two_resends_at_once_make_one_job(store) -> None:
    core = await sms_core(store, FakeModem("a", ready=False))
    first = await core.service.enqueue("+79161234567", "x", valid_for=1)
    core.clock.advance(2)
    await core.drain()
    assert (await core.message(first))["state"] == "expired"
    admin = await store.create_user("boss", "Boss", "admin")
    results = await asyncio.gather(
        *(core.service.resend(admin, first) for _ in range(2)), return_exceptions=True)
    assert sum(isinstance(r, Conflict) for r in results) == 1
    (again,) = [r for r in results if isinstance(r, int)]
    assert (await core.message(first))["resent_as"] == again
    assert sorted(m["id"] for m in await store.sms_list(SmsFilter())) == [first, again]
