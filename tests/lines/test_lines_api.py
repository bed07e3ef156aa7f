"""The lines API: admin only, secrets write-only (never in any answer or log line), checks
before every save, edits applied without a restart while a call in progress stays logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from callcenter.app import create_app
from callcenter.audit import AuditFilter
from callcenter.config import Config
from pbx.ami.emulator import AmiEmulator
from pbx.ami.trace import load_trace
from tests.calls.test_calls_api import Session
from tests.conftest import FIXTURES
from tests.lines.recorded import list_answer, replaying

SECRET = "crm-secret"  # the emulator's (the recorded lab's) AMI secret
WRONG = "Wr0ng-S3cret-xyz"
NEW = "N3w-S3cret-abc"


def line_body(port: int, secret: str = SECRET, **settings) -> dict:
    return {"name": "office", "kind": "asterisk",
            "settings": {"host": "127.0.0.1", "port": port, "username": "crm",
                         "withheld_getvar": False, **settings},
            "secrets": {"secret": secret}}


@contextlib.asynccontextmanager
async def app_with(config: Config, emulator: AmiEmulator) -> AsyncIterator[tuple]:
    app = create_app(config, demo=True, demo_calls=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))

        def session() -> Session:
            return Session(httpx.AsyncClient(transport=transport, base_url="http://cc"), app)

        yield app, session


def no_secret_in(texts: list[str], *secrets: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text, text


async def test_secrets_never_appear_in_answers_or_logs(config: Config,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    async with AmiEmulator(load_trace(FIXTURES / "00_basics.log"), speed=0, action_wait=0.2,
                           auth_failure_delay=0) as emu, app_with(config, emu) as (app, mk):
        admin, secretary = mk(), mk()
        await admin.login("admin")
        await secretary.login("secretary")

        async def call(method: str, url: str, body: object = None, who: Session = admin
                       ) -> httpx.Response:
            r = await who.c.request(method, url, json=body,
                                    headers={"X-CSRF-Token": who.csrf})
            answers.append(r.text)
            return r

        # a wrong secret: checked, refused in words, not saved
        r = await call("POST", "/api/admin/lines", line_body(emu.port, WRONG))
        assert r.status_code == 400 and r.json()["error"] == "line-check-failed", r.text
        assert "refused the login" in r.json()["message"]
        assert (await call("GET", "/api/admin/lines")).json() == []
        r = await call("POST", "/api/admin/lines/check",
                       {"kind": "asterisk", **{k: v for k, v in line_body(
                           emu.port, WRONG).items() if k in ("settings", "secrets")}})
        assert r.status_code == 200 and not r.json()["ok"]
        # the right one: saved, running, secret never returned
        r = await call("POST", "/api/admin/lines", line_body(emu.port))
        assert r.status_code == 201, r.text
        assert r.json()["check"]["summary"] == "Asterisk 22.10.1, AMI 11.0.0"
        assert r.json()["line"]["secrets_set"] == ["secret"]
        lines = (await call("GET", "/api/admin/lines")).json()
        assert [line["name"] for line in lines] == ["office"]
        assert "secret" not in lines[0]["settings"]
        await call("GET", "/api/admin/lines/office")
        await call("GET", "/api/lines")
        # a stored secret fills the check of an edit form, and an empty one keeps it
        r = await call("POST", "/api/admin/lines/check",
                       {"kind": "asterisk", "settings": line_body(emu.port)["settings"],
                        "secrets": {"secret": ""}, "stored": "office"})
        assert r.json()["ok"], r.text
        # ... but never goes to another host, port, user or TLS setting: asked for again
        moved = {**line_body(emu.port)["settings"], "host": "localhost"}
        r = await call("POST", "/api/admin/lines/check",
                       {"kind": "asterisk", "settings": moved, "secrets": {"secret": ""},
                        "stored": "office"})
        assert r.status_code == 400 and r.json()["field"] == "secret", r.text
        assert "host changed" in r.json()["message"]
        r = await call("PATCH", "/api/admin/lines/office",
                       {"settings": {"port": emu.port + 1}, "secrets": {"secret": ""}})
        assert r.status_code == 400 and r.json()["field"] == "secret", r.text
        r = await call("PATCH", "/api/admin/lines/office",
                       {"settings": {"ping_interval": 15.0}, "secrets": {"secret": ""}})
        assert r.status_code == 200 and r.json()["line"]["settings"]["ping_interval"] == 15.0
        # a new wrong secret is refused and the old one stays
        r = await call("PATCH", "/api/admin/lines/office", {"secrets": {"secret": NEW}})
        assert r.status_code == 400 and r.json()["error"] == "line-check-failed"
        assert (await app.state.services.store.get_line("office", with_secrets=True)
                ).secrets == {"secret": SECRET}
        # bad input names the field, without echoing the secret
        r = await call("POST", "/api/admin/lines",
                       {**line_body(emu.port, NEW), "settings": {"port": "x" + NEW}})
        assert r.status_code == 400 and r.json()["field"] == "port", r.text
        # non-admins get 403 on each of these routes
        for method, url in (("GET", "/api/admin/lines"), ("GET", "/api/admin/lines/office"),
                            ("POST", "/api/admin/lines"), ("DELETE", "/api/admin/lines/office"),
                            ("PATCH", "/api/admin/lines/office"),
                            ("GET", "/api/admin/lines/office/trunks")):
            r = await call(method, url, line_body(emu.port, NEW) if method == "POST" else None,
                           who=secretary)
            assert r.status_code == 403, (method, url, r.text)
        r = await call("DELETE", "/api/admin/lines/office")
        assert r.status_code == 200 and (await call("GET", "/api/admin/lines")).json() == []
        entries = await app.state.services.audit.list(AuditFilter(target_kind="line"))
    no_secret_in(answers, SECRET, WRONG, NEW)
    logged = [f"{rec.getMessage()} {rec.exc_text or ''}" for rec in caplog.records]
    assert any("audit: admin (192.0.2.7) create line office" in t for t in logged)
    no_secret_in(logged, SECRET, WRONG, NEW)
    assert [(e.action, e.actor_label, e.address) for e in reversed(entries)] == [
        ("create", "admin", "192.0.2.7"), ("update", "admin", "192.0.2.7"),
        ("delete", "admin", "192.0.2.7")]
    create, update, delete = reversed(entries)
    assert create.before is None and create.after["settings"]["port"] == emu.port
    assert create.after["secrets"]["secret"] == "••••"
    assert update.before["settings"]["ping_interval"] == 20.0
    assert update.after["settings"]["ping_interval"] == 15.0
    assert update.after["secrets"]["secret"] == "••••"  # kept, not changed
    assert delete.after is None
    no_secret_in([repr(e) for e in entries], SECRET, WRONG, NEW)


async def test_an_edit_applies_at_once_and_the_call_in_progress_stays(config: Config) -> None:
    trace = load_trace(FIXTURES / "01_inbound_answered.log")
    recorded, blocks, last = list_answer(trace, "CoreShowChannels")
    async with AmiEmulator(trace, speed=0, action_wait=5, auth_failure_delay=0,
                           responders={"coreshowchannels": replaying(recorded, blocks)}) as emu:
        emu.pause_after_block(last)  # mid-call: answered, talking
        async with app_with(config, emu) as (app, mk):
            admin = mk()
            await admin.login("admin")
            # withheld_getvar: the new line holds the re-adopted call back for its Getvar
            r = await admin.c.post("/api/admin/lines",
                                   json=line_body(emu.port, withheld_getvar=True),
                                   headers={"X-CSRF-Token": admin.csrf})
            assert r.status_code == 201, r.text
            async with asyncio.timeout(10):
                await emu.paused.wait()
                while not (await admin.get("/api/calls/live")).json():
                    await asyncio.sleep(0.02)
            (live,) = (await admin.get("/api/calls/live")).json()
            logins = emu.logins
            r = await admin.c.patch("/api/admin/lines/office",
                                    json={"settings": {"ping_interval": 15.0}},
                                    headers={"X-CSRF-Token": admin.csrf})
            assert r.status_code == 200, r.text
            manager = app.state.services.extra["lines"]
            new_line = manager.running["office"]
            async with asyncio.timeout(10):
                await new_line.synced.wait()
                assert emu.logins == logins + 2  # the check's session, then the new line's
                assert emu.login_usernames[-2:] == ["crm", "crm"]
                await emu.wait_open_connections(1)  # the old line's socket is closed
            assert new_line.config.ping_interval == 15.0 and new_line.connected
            # re-adopted by the new line's resync, not closed
            assert [c["call"]["id"] for c in (await admin.get("/api/calls/live")).json()] == [
                live["call"]["id"]]
            emu.resume()
            call_log = app.state.services.extra["call_log"]
            async with asyncio.timeout(10):
                while (await admin.get("/api/calls/live")).json():
                    await asyncio.sleep(0.02)
                await call_log.drained()
            (row,) = (await admin.get("/api/calls")).json()
            assert row["id"] == live["call"]["id"] and row["state"] == "answered"
            assert "by an admin" not in row["cause"]  # ended by the recorded hangup


async def test_a_deleted_line_closes_its_calls_in_the_log(config: Config) -> None:
    trace = load_trace(FIXTURES / "01_inbound_answered.log")
    _, _, last = list_answer(trace, "CoreShowChannels")
    async with AmiEmulator(trace, speed=0, action_wait=5, auth_failure_delay=0) as emu:
        emu.pause_after_block(last)
        async with app_with(config, emu) as (app, mk):
            admin = mk()
            await admin.login("admin")
            await admin.c.post("/api/admin/lines", json=line_body(emu.port),
                               headers={"X-CSRF-Token": admin.csrf})
            async with asyncio.timeout(10):
                await emu.paused.wait()
                while not (await admin.get("/api/calls/live")).json():
                    await asyncio.sleep(0.02)
            r = await admin.c.delete("/api/admin/lines/office",
                                     headers={"X-CSRF-Token": admin.csrf})
            assert r.status_code == 200
            assert (await admin.get("/api/calls/live")).json() == []
            await app.state.services.extra["call_log"].drained()
            (row,) = (await admin.get("/api/calls")).json()
            assert row["state"] == "answered" and "office was stopped by an admin" in row["cause"]
            async with asyncio.timeout(10):
                await emu.wait_open_connections(0)  # its connection is closed


async def test_a_call_up_at_shutdown_stays_open_for_the_next_start(config: Config) -> None:
    trace = load_trace(FIXTURES / "01_inbound_answered.log")
    _, _, last = list_answer(trace, "CoreShowChannels")
    async with AmiEmulator(trace, speed=0, action_wait=5, auth_failure_delay=0) as emu:
        emu.pause_after_block(last)
        async with app_with(config, emu) as (_app, mk):
            admin = mk()
            await admin.login("admin")
            await admin.c.post("/api/admin/lines", json=line_body(emu.port),
                               headers={"X-CSRF-Token": admin.csrf})
            async with asyncio.timeout(10):
                await emu.paused.wait()
                while not (await admin.get("/api/calls/live")).json():
                    await asyncio.sleep(0.02)
        # the app stopped during the call: its row is still open (not "stopped by an admin")
        from callcenter.store.open import open_store

        reopened = await open_store(config)
        try:
            rows = await reopened.close_dangling_calls("test")
        finally:
            await reopened.close()
        # exactly the one call, still open when the app stopped, answered
        assert len(rows) == 1 and rows[0]["answered_at"], rows


async def test_the_call_logs_policies_come_from_the_database(config: Config) -> None:
    # A disabled line is never started, so only the start-up policies count for it (the
    # journal replayed at start closes calls under them): the stored ones, not the TOML's.
    async with AmiEmulator(load_trace(FIXTURES / "00_basics.log"), speed=0,
                           auth_failure_delay=0) as emu:
        async with app_with(config, emu) as (_app, mk):
            admin = mk()
            await admin.login("admin")
            body = line_body(emu.port, callback_on="never")
            r = await admin.c.post("/api/admin/lines", json={**body, "enabled": False},
                                   headers={"X-CSRF-Token": admin.csrf})
            assert r.status_code == 201, r.text
        async with app_with(config, emu) as (app, _mk):
            assert app.state.services.extra["call_log"]._callback_on.get("office") == "never"
