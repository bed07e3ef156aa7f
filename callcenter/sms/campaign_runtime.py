"""The campaigns of one running product: the service and its runner, owned by the lifespan,
and in demo mode a small campaign to the demo clients."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from callcenter.models import Role
from callcenter.services import Services
from callcenter.sms.campaign_sms import CoreCampaignSms
from callcenter.sms.campaigns import CampaignService

log = logging.getLogger(__name__)

DEMO_CAMPAIGN = {
    "name": "Demo: winter offer",
    "template": "{contact.first_name|Hello}, {client.name}: 10% off your next order until"
                " Friday. Reply STOP to unsubscribe.",
    "audience": {"custom": {"segment": "demo"}},
    "per_minute": 6,
}


@contextlib.asynccontextmanager
async def campaigns_running(services: Services, demo: bool = False
                            ) -> AsyncIterator[CampaignService]:
    """Needs the SMS service (``services.extra["sms"]``) running."""
    config = services.config
    sms = services.extra["sms"]
    service = CampaignService(services.store, CoreCampaignSms(sms, services.store),  # type: ignore[arg-type]
                              config.campaigns, time_zone=config.sms.timezone,
                              bus=services.bus)
    services.extra["campaigns"] = service
    if demo:
        await demo_campaign(services, service)
    await service.start_runner(hold=True)  # released by the app once everything started
    try:
        yield service
    finally:
        await service.stop_runner()


async def demo_campaign(services: Services, service: CampaignService) -> int | None:
    """Once per demo database: a small campaign to the demo clients, started (it goes out
    over the demo's emulated modems inside the send window)."""
    admins = [u for u in await services.store.list_users() if u.role is Role.ADMIN]
    if not admins or await service.list_for(admins[0]):
        return None
    campaign = await service.create(admins[0], {**DEMO_CAMPAIGN,
                                                "window_start": "00:00",
                                                "window_end": "23:59"})
    await service.start(admins[0], campaign["id"])
    log.info("demo campaign %r started", campaign["name"])
    return int(campaign["id"])
