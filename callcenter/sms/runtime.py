"""The SMS core of one running product: the service, then the pool over the modems the
composition root built (it alone imports ``gsm/``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from callcenter.config import GsmModemConfig
from callcenter.services import Services
from callcenter.sms.events import SmsLineEvent
from callcenter.sms.pool import ModemPool, SimLimits
from callcenter.sms.ports import SmsModem
from callcenter.sms.service import SmsService

Sink = Callable[[SmsLineEvent], Awaitable[None]]


def limits_of(cfg: GsmModemConfig) -> SimLimits:
    return SimLimits.parse(cfg.per_minute, cfg.per_day, cfg.window_start, cfg.window_end)


def sms_service(services: Services) -> SmsService:
    config = services.config
    service = SmsService(services.store, services.bus, services.matcher,  # type: ignore[arg-type]
                         config.sms, region=config.phones.default_region,
                         managers_see_all=config.console.managers_see_all_clients)
    services.extra["sms"] = service
    cluster = services.extra.get("cluster")
    if cluster is not None:
        from callcenter.cluster.runtime import instance_name

        service.instance = instance_name(cluster.config)
    return service


@contextlib.asynccontextmanager
async def sms_running(services: Services,
                      build_modems: Callable[[Sink], Awaitable[list[tuple[Any, SimLimits]]]]
                      ) -> AsyncIterator[ModemPool]:
    """Recovery first (parts left "sending" become "unknown"), then the modems - built by
    ``build_modems`` with the service's sink and started by it - then the pool. Stopped in
    reverse: the pool, then every modem that has a ``stop()``."""
    service = sms_service(services)
    await service.start()
    modems = await build_modems(service.handle)
    pairs: list[tuple[SmsModem, SimLimits]] = list(modems)
    pool = ModemPool(service, pairs, timezone=services.config.sms.timezone,
                     balance_ussd=services.config.sms.balance_ussd,
                     balance_interval=services.config.sms.balance_interval)
    services.extra["sms_pool"] = pool
    try:
        await pool.start()
        yield pool
    finally:
        await pool.stop()
        for modem, _ in reversed(pairs):
            stop = getattr(modem, "stop", None)
            if stop is not None:
                with contextlib.suppress(Exception):
                    await stop()
