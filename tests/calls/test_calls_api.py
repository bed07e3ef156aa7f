"""The call log API and call actions over HTTP, fed by a replayed Asterisk trace."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from callcenter.app import create_app
from callcenter.config import Config, PbxLineConfig
from callcenter.demo import DEMO_PASSWORD
from pbx.ami.emulator import AmiEmulator
from pbx.ami.trace import load_trace
from tests.conftest import FIXTURES
from tests.test_api_models import assert_documented

REC = "q-20261122-230057-1795388457.1.wav"


class Session:
    def __init__(self, client: httpx.AsyncClient, app: object = None) -> None:
        self.c = client
        self.csrf = ""
        self.app = app

    async def login(self, login: str) -> dict:
        r = await self.c.post("/api/session", json={"login": login, "password": DEMO_PASSWORD})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        return r.json()["user"]

    async def get(self, url: str, **kw) -> httpx.Response:
        return await self.c.get(url, **kw)

    async def post(self, url: str, **kw) -> httpx.Response:
        return await self.c.post(url, headers={"X-CSRF-Token": self.csrf}, **kw)


@contextlib.asynccontextmanager
async def running(config: Config, scenario: str | None, action_wait: float = 0.3
                  ) -> AsyncIterator[tuple]:
    emulator = None
    if scenario:
        emulator = AmiEmulator(load_trace(FIXTURES / f"{scenario}.log"), speed=0,
                               action_wait=action_wait)
        await emulator.start()
        config.pbx = [PbxLineConfig(name="office", port=emulator.port, username="crm",
                                    secret="crm-secret")]
    app = create_app(config, demo=True, demo_calls=False)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)

            def session() -> Session:
                return Session(httpx.AsyncClient(transport=transport, base_url="http://cc"), app)

            yield app, emulator, session
    finally:
        if emulator:
            await emulator.close()


async def wait_calls(s: Session, n: int, state: str | None = None) -> list[dict]:
    """The log once ``n`` calls have ended and the call log has written what they left: the
    registry lets a call go before its final row is stored, so "no live call" alone is not
    enough."""
    call_log = s.app.state.services.extra["call_log"]
    for _ in range(500):
        if not (await s.get("/api/calls/live")).json():
            await call_log.drained()
            r = await s.get("/api/calls", params={"state": state} if state else {})
            if len(calls := r.json()) >= n:
                return calls
        await asyncio.sleep(0.02)
    raise AssertionError("calls did not arrive")


async def test_call_log_filters_roles_and_recording_download(config: Config,
                                                             tmp_path: Path) -> None:
    mount = tmp_path / "mnt"
    mount.mkdir()
    (mount / REC).write_bytes(b"RIFF" + bytes(range(256)) * 40)
    config.recordings.mount_path = str(mount)
    async with running(config, "01_inbound_answered") as (app, _, session):
        sec, maria, dmitry = session(), session(), session()
        await sec.login("secretary")
        me = await maria.login("maria")
        await dmitry.login("dmitry")
        [call] = await wait_calls(sec, 1)
        assert call["caller"] == {"raw": "+79161234567", "e164": "+79161234567",
                                  "name": "Ivan Petrov", "withheld": False,
                                  "display": "8 (916) 123-45-67"}
        assert call["state"] == "answered" and call["answered_by"]["extension"] == "101"
        assert call["answered_by"]["user_name"] == "Svetlana Orlova"
        assert call["rang"] == ["101"] and call["talk_seconds"] is not None
        assert call["client_name"] == "ООО «Ромашка»"
        doc = (await sec.get("/api/openapi.json")).json()
        assert_documented(doc, "Call", call)

        # filters
        for params, n in [({"state": "missed"}, 0), ({"state": "answered"}, 1),
                          ({"number": "8 916 123 45 67"}, 1), ({"number": "89990000000"}, 0),
                          ({"client_id": call["client_id"]}, 1), ({"client_id": 999}, 0),
                          ({"since": "2000-01-01"}, 1), ({"until": "2000-01-01"}, 0)]:
            r = await sec.get("/api/calls", params=params)
            assert r.status_code == 200 and len(r.json()) == n, (params, r.text)
        r = await sec.get("/api/calls", params={"since": "yesterday"})
        assert r.status_code == 400 and r.json()["field"] == "since"
        r = await sec.get("/api/calls", params={"state": "lost"})
        assert r.status_code == 400
        # a number without digits used to match every call
        r = await sec.get("/api/calls", params={"number": "abc"})
        assert r.status_code == 400 and r.json()["field"] == "number", r.text
        r = await sec.get("/api/calls", params={"client_id": "abc"})
        assert r.status_code == 400 and r.json()["field"] == "client_id", r.text

        # a manager sees calls with their own clients only
        assert len((await maria.get("/api/calls")).json()) == 1  # Ромашка is Maria's
        assert (await dmitry.get("/api/calls")).json() == []
        assert (await dmitry.get(f"/api/calls/{call['id']}")).status_code == 403
        assert (await maria.get(f"/api/calls/{call['id']}")).status_code == 200
        assert (await sec.get("/api/calls", params={"user_id": me["id"]})).json() == []

        # the interaction is on the client card
        history = (await sec.get(f"/api/clients/{call['client_id']}/interactions")).json()
        assert [h["ref"] for h in history] == [call["id"]]
        assert "answered by Svetlana Orlova" in history[0]["summary"]

        # the recording: fetched from the mounted folder, then served with Range
        services = app.state.services
        await services.store._db.execute(
            "UPDATE recordings SET next_try_at = NULL")
        assert await services.extra["recordings"].fetch_due() == 1
        [rec] = (await sec.get(f"/api/calls/{call['id']}")).json()["recordings"]
        assert rec["state"] == "fetched"
        full = await sec.get(rec["url"])
        assert full.status_code == 200 and full.headers["content-type"] == "audio/wav"
        # named after the call, not the PBX file (whose name may hold the caller's number)
        disposition = full.headers["content-disposition"]
        assert REC not in disposition and "1795388457" in disposition
        assert disposition == (f'inline; filename="call-{call["id"].replace(":", "-")}-'
                               f'{rec["id"]}.wav"')
        part = await sec.get(rec["url"], headers={"Range": "bytes=4-11"})
        assert part.status_code == 206
        assert part.content == bytes(range(8))
        assert part.headers["content-range"] == f"bytes 4-11/{4 + 256 * 40}"
        assert (await dmitry.get(rec["url"])).status_code == 403
        assert (await maria.get(rec["url"])).status_code == 200
        anonymous = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://cc")
        assert (await anonymous.get(rec["url"])).status_code == 401


async def test_actions_without_a_line_and_bad_input(config: Config) -> None:
    async with running(config, None) as (_app, _, session):
        s = session()
        await s.login("maria")
        r = await s.post("/api/originate", json={"number": "89031234567"})
        assert r.status_code == 503 and r.json()["error"] == "line-unavailable"
        r = await s.post("/api/originate", json={})
        assert r.status_code == 400
        r = await s.post("/api/originate", json={"number": "+7 916 123-45-67 доб. 123"})
        assert r.status_code == 400 and "letters" in r.json()["message"]
        r = await s.post("/api/calls/office:1.1/transfer", json={"to": "102"})
        assert r.status_code == 404 and r.json()["error"] == "call-not-found"
        r = await s.post("/api/calls/office:1.1/transfer", json={"to": "abc"})
        assert r.status_code == 400 and r.json()["field"] == "to"
        r = (await s.c.post("/api/originate", json={"number": "1"}))  # no CSRF header
        assert r.status_code == 403
        admin = session()
        await admin.login("admin")
        r = await admin.post("/api/originate", json={"number": "89031234567"})
        assert r.status_code == 400 and "extension" in r.json()["message"]
        assert (await s.get("/api/lines")).status_code == 403
        assert (await admin.get("/api/lines")).json() == []


async def test_click_to_call_and_transfer_through_the_api(config: Config) -> None:
    # The recording waits for the test's BlindTransfer (its login alone, argon2 on a busy
    # machine, can take longer than 0.3 s).
    async with running(config, "03_blind_transfer", action_wait=10) as (_app, emulator,
                                                                         session):
        s = session()
        await s.login("secretary")
        for _ in range(500):
            live = (await s.get("/api/calls/live")).json()
            if live and live[0]["call"]["state"] == "answered":
                break
            await asyncio.sleep(0.01)
        call_id = live[0]["call"]["id"]
        assert live[0]["match"]["manager"]["name"] == "Maria Ivanova"
        presence = (await s.get("/api/presence")).json()
        assert presence.get("101") == "busy"
        r = await s.post(f"/api/calls/{call_id}/transfer", json={"to": "102", "kind": "blind"})
        assert r.status_code == 200, r.text
        [action] = emulator.actions_named("BlindTransfer")
        assert action.get("Channel") == "PJSIP/101-00000006" and action.get("Exten") == "102"
        [call] = await wait_calls(s, 1)
        assert [(t["kind"], t["to"]) for t in call["transfers"]] == [("blind", "102")]
        doc = (await s.get("/api/openapi.json")).json()
        assert_documented(doc, "Call", call)
        assert_documented(doc, "ActionResult", r.json())
