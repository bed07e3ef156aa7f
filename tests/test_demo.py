"""Demo mode (what `make run` starts): the built-in PBX places calls into the demo base."""

from __future__ import annotations

import asyncio

import httpx

from callcenter.app import create_app
from callcenter.config import Config
from callcenter.demo import DEMO_PASSWORD


async def test_demo_calls_reach_the_call_log_with_recordings(config: Config) -> None:
    config.demo.call_interval = 3.0
    app = create_app(config, demo=True)
    async with app.router.lifespan_context(app):
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cc")
        r = await client.post("/api/session",
                              json={"login": "secretary", "password": DEMO_PASSWORD})
        assert r.status_code == 200
        lines = app.state.services.extra["calls"].statuses()
        assert [(line.name, line.kind) for line in lines] == [("demo", "asterisk")]
        fetcher = app.state.services.extra["recordings"]
        calls: list[dict] = []
        for _ in range(300):  # up to 30 s: the first call starts within a second
            calls = (await client.get("/api/calls")).json()
            ended = [c for c in calls if c["ended_at"] and c["recordings"]]
            if ended:
                break
            await asyncio.sleep(0.1)
        await app.state.services.store._db.execute(
            "UPDATE recordings SET next_try_at = NULL WHERE state = 'pending'")
        await fetcher.fetch_due()
        calls = [c for c in (await client.get("/api/calls")).json() if c["ended_at"]]
        first = calls[-1]
        assert first["client_id"] is not None  # a demo caller is a demo client
        assert first["caller"]["name"]
        url = next(r["url"] for c in calls for r in c["recordings"] if r["url"])
        audio = await client.get(url)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
