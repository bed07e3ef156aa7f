"""Demo mode: two emulated modems, an SMS from a demo client within seconds, and an SMS sent
from the console delivered part by part."""

from __future__ import annotations

import asyncio

import httpx

from callcenter.app import create_app
from callcenter.bus import BusEvent
from callcenter.config import Config
from callcenter.demo import DEMO_PASSWORD


async def test_demo_modems_receive_and_send(config: Config) -> None:
    config.demo.sms_interval = 0.5
    config.demo.call_interval = 3600.0
    app = create_app(config, demo=True)
    async with app.router.lifespan_context(app):
        services = app.state.services
        received, delivered = asyncio.Event(), asyncio.Event()
        sent_id: list[int] = []

        def watch(event: BusEvent) -> None:
            sms = event.data.get("sms") or {}
            if event.topic == "sms.received" and sms.get("client_id"):
                received.set()
            if event.topic == "sms.status" and sms.get("id") in sent_id and \
                    sms.get("state") == "delivered":
                delivered.set()

        services.bus.subscribe(watch)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cc")
        r = await client.post("/api/session", json={"login": "admin", "password": DEMO_PASSWORD})
        csrf = r.json()["csrf_token"]
        pool = (await client.get("/api/sms/pool")).json()
        assert [m["name"] for m in pool["modems"]] == ["demo-gsm1", "demo-gsm2"]
        await asyncio.wait_for(received.wait(), 30)
        r = await client.post("/api/sms", json={"to": "+79161234567", "text": "Тест " * 20},
                              headers={"X-CSRF-Token": csrf})
        assert r.status_code == 201, r.text
        sent_id.append(r.json()["id"])
        await asyncio.wait_for(delivered.wait(), 60)
        detail = (await client.get(f"/api/sms/{sent_id[0]}")).json()
        assert [p["state"] for p in detail["parts"]] == ["delivered", "delivered"]
