"""Login throttling, the password check off the event loop, changing your own password, and
the request-body cap."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import httpx
import pytest

from callcenter import passwords
from callcenter.app import create_app
from callcenter.config import Config
from callcenter.demo import DEMO_PASSWORD
from tests.conftest import Api
from ui.pages import STATIC_DIR as STATIC
from ui.routes import ROUTES
from ui.security import MAX_BODY
from ui.throttle import LoginThrottle


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _login(api: Api, login: str, password: str) -> httpx.Response:
    return api.client.post("/api/session", json={"login": login, "password": password})


def test_a_failed_login_storm_is_throttled_and_the_window_passes(api: Api, caplog) -> None:
    clock = FakeClock()
    api.client.app.state.login_throttle.clock = clock
    caplog.set_level(logging.DEBUG)
    for _ in range(5):
        assert _login(api, "maria", "guess-password-1").status_code == 401
    r = _login(api, "maria", "guess-password-1")
    assert r.status_code == 429 and r.json()["error"] == "too-many-attempts"
    assert r.headers["Retry-After"] == "1"
    # locked means locked: the right password does not get through either
    assert _login(api, "maria", DEMO_PASSWORD).status_code == 429
    # another login from the same address is not locked yet
    assert _login(api, "dmitry", DEMO_PASSWORD).status_code == 200
    clock.now += 1
    assert _login(api, "maria", "guess-password-1").status_code == 401
    r = _login(api, "maria", "guess-password-1")
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"  # the delay grows
    clock.now += 2
    assert _login(api, "MARIA ", "guess-password-1").status_code == 401  # same login, any case
    assert _login(api, "maria", DEMO_PASSWORD).status_code == 429
    clock.now += 4
    assert _login(api, "maria", DEMO_PASSWORD).status_code == 200  # after the window: works
    assert _login(api, "maria", "guess-password-1").status_code == 401  # and the count restarted
    assert "guess-password-1" not in caplog.text and DEMO_PASSWORD not in caplog.text
    assert "failed password check for 'maria'" in caplog.text


def test_guessing_many_logins_from_one_address_is_throttled(api: Api) -> None:
    api.client.app.state.login_throttle.clock = FakeClock()
    for i in range(20):
        assert _login(api, f"nobody-{i}", "guess-password-1").status_code == 401
    r = _login(api, "maria", DEMO_PASSWORD)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_a_disabled_account_does_not_reveal_its_password(api_factory) -> None:
    """The right password of a disabled account must not lift the lock: it would tell a
    guesser which of their guesses was right."""
    admin, guesser = api_factory(), api_factory()
    admin.login("admin")
    clock = FakeClock()
    guesser.client.app.state.login_throttle.clock = clock
    users = {u["login"]: u["id"] for u in admin.get("/api/users").json()}
    assert admin.patch(f"/api/users/{users['dmitry']}", json={"active": False}).status_code == 200
    for i in range(5):
        assert _login(guesser, "dmitry", f"wrong-pass-{i}").status_code == 401
    clock.now += 1
    assert _login(guesser, "dmitry", DEMO_PASSWORD).status_code == 401
    # a wrong guess after the right one is locked out exactly like one after a wrong one
    r = _login(guesser, "dmitry", "wrong-pass-9")
    assert r.status_code == 429, r.text


def test_an_unknown_login_runs_the_same_verify(api: Api, monkeypatch) -> None:
    """Against the dummy hash, on the same pool: a wrong login costs what a wrong password
    costs, so logins cannot be enumerated by timing."""
    seen: list[str] = []
    real = passwords._hasher

    class Recording:
        def verify(self, stored: str, password: str) -> bool:
            seen.append(stored)
            return real.verify(stored, password)

    monkeypatch.setattr(passwords, "_hasher", Recording())
    assert _login(api, "no-such-user", "guess-password-1").status_code == 401
    assert _login(api, "maria", "guess-password-1").status_code == 401
    assert seen[0] == passwords._DUMMY_HASH
    assert seen[1] != passwords._DUMMY_HASH and seen[1].startswith("$argon2id$")


async def test_a_parallel_burst_of_guesses_is_throttled(config: Config, monkeypatch) -> None:
    """50 guesses at once: each counts from the moment it starts, so only the free ones
    reach argon2 and the rest are refused before any work."""
    verified = 0
    real = passwords._hasher

    class Counting:
        def verify(self, stored: str, password: str) -> bool:
            nonlocal verified
            verified += 1
            return real.verify(stored, password)

    app = create_app(config, demo=True, demo_calls=False)
    async with app.router.lifespan_context(app):
        monkeypatch.setattr(passwords, "_hasher", Counting())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://cc") as client:
            answers = await asyncio.gather(*(
                client.post("/api/session", json={"login": "maria", "password": f"guess-{i}-x"})
                for i in range(50)))
    codes = [r.status_code for r in answers]
    assert codes.count(401) == 5 and codes.count(429) == 45, codes
    assert verified == 5


def test_throttle_delays_double_up_to_a_cap_and_memory_is_bounded() -> None:
    clock = FakeClock()
    guard = LoginThrottle(per_login=3, per_address=1000, base=1, max_delay=8, max_keys=50,
                          clock=clock)
    waits = []
    for _ in range(8):
        guard.begin("ann", "10.0.0.1")
        waits.append(guard.retry_after("ann", "10.0.0.1"))
        clock.now += waits[-1]
    assert waits == [0, 0, 1, 2, 4, 8, 8, 8]
    guard.succeeded("ann", "10.0.0.1")
    assert guard.retry_after("ann", "10.0.0.1") == 0
    for i in range(500):
        guard.begin(f"user-{i}", f"10.1.{i // 250}.{i % 250}")
    assert len(guard.logins) <= 50 and len(guard.addresses) <= 50
    assert "user-499" in guard.logins and "10.1.1.249" in guard.addresses  # recent ones kept


def test_a_flood_of_new_keys_does_not_evict_a_lock() -> None:
    clock = FakeClock()
    guard = LoginThrottle(per_login=3, per_address=10**6, base=60, max_keys=50, clock=clock)
    for _ in range(3):
        guard.begin("maria", "10.0.0.1")
    assert guard.retry_after("maria", "10.0.0.2") == 60
    for i in range(500):  # one guess each at 500 made-up logins: none locked
        guard.begin(f"user-{i}", "10.0.0.1")
    assert len(guard.logins) <= 50
    assert guard.retry_after("maria", "10.0.0.2") == 60


def test_ipv6_clients_are_counted_by_their_64_prefix() -> None:
    guard = LoginThrottle(per_login=10**6, per_address=3, base=60, clock=FakeClock())
    for i in range(3):
        guard.begin(f"user-{i}", f"2001:db8:1:2::{i + 1:x}")
    assert guard.retry_after("someone", "2001:db8:1:2:ffff::1") == 60
    assert guard.retry_after("someone", "2001:db8:1:3::1") == 0  # another /64
    for _ in range(3):
        guard.begin("x", "::ffff:10.0.0.7")
    assert guard.retry_after("y", "10.0.0.7") == 60  # an IPv4-mapped address is the IPv4 one


def test_failures_decay_so_a_guess_now_and_then_cannot_lock_a_login_for_ever() -> None:
    clock = FakeClock()
    guard = LoginThrottle(per_login=5, per_address=10**6, decay=300, clock=clock)
    for _ in range(15):  # a storm: locked for the longest delay
        clock.now += guard.retry_after("maria", "10.9.9.9")
        guard.begin("maria", "10.9.9.9")
    # (the old rule kept it at 900 s for as long as a guess came within the hour)
    locks = [guard.retry_after("maria", "10.0.0.1")]
    assert locks[0] >= 120
    # then one wrong guess every 15 minutes: the lock shrinks instead of staying at 15 min
    for _ in range(8):
        clock.now += 900
        assert guard.retry_after("maria", "10.9.9.9") == 0
        guard.begin("maria", "10.9.9.9")
        locks.append(guard.retry_after("maria", "10.0.0.1"))
    assert locks[-1] == 0 and locks == sorted(locks, reverse=True), locks
    # and an hour of quiet is not needed to forget a few typos: they fade one per 5 minutes
    for _ in range(4):
        guard.begin("olga", "10.0.0.1")
    clock.now += 600
    guard.begin("olga", "10.0.0.1")
    assert guard.retry_after("olga", "10.0.0.1") == 0  # 4 - 2 + 1 < 5


def test_an_address_that_logged_in_recently_is_not_locked_out_by_others_guessing() -> None:
    clock = FakeClock()
    guard = LoginThrottle(per_login=5, per_address=10**6, clock=clock)
    assert not guard.begin("maria", "10.0.0.1")
    guard.succeeded("maria", "10.0.0.1")  # maria's desk
    for _ in range(10):
        clock.now += guard.retry_after("maria", "198.51.100.7")
        guard.begin("maria", "198.51.100.7")  # somebody guessing from outside
    assert guard.retry_after("maria", "198.51.100.7") > 0
    assert guard.retry_after("maria", "10.0.0.2") > 0  # another desk: locked
    assert guard.retry_after("maria", "10.0.0.1") == 0  # hers: not
    held = guard.begin("maria", "10.0.0.1")
    assert held
    guard.succeeded("maria", "10.0.0.1", held=True)
    # her login does not reset the guesser's count
    assert guard.retry_after("maria", "198.51.100.7") > 0
    clock.now += 31 * 86400  # trust lasts 30 days
    assert guard.retry_after("OLGA", "10.0.0.1") == 0
    for _ in range(5):
        guard.begin("maria", "198.51.100.7")
    assert guard.retry_after("maria", "10.0.0.1") > 0


async def test_the_password_check_does_not_block_the_event_loop(config: Config,
                                                                monkeypatch) -> None:
    """While argon2 runs, another coroutine gets scheduled: the verify waits for that
    coroutine, so a verify on the loop thread would see it only after giving up."""
    started, release = threading.Event(), threading.Event()
    order: list[str] = []
    real = passwords._hasher

    class SlowHasher:
        def verify(self, stored: str, password: str) -> bool:
            started.set()
            released = release.wait(10)
            order.append("verify done" if released else "verify gave up waiting")
            return real.verify(stored, password)

    app = create_app(config, demo=True, demo_calls=False)
    async with app.router.lifespan_context(app):
        monkeypatch.setattr(passwords, "_hasher", SlowHasher())
        loop = asyncio.get_running_loop()

        async def other_work() -> None:
            await loop.run_in_executor(None, started.wait, 10)
            order.append("loop ran")
            release.set()

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://cc") as client:
            r, _ = await asyncio.gather(
                client.post("/api/session", json={"login": "maria", "password": DEMO_PASSWORD}),
                other_work())
    assert r.status_code == 200
    assert order == ["loop ran", "verify done"]


async def test_too_many_waiting_password_checks_get_a_503(config: Config, monkeypatch) -> None:
    """The pool's queue is bounded: a check beyond it is refused at once, not queued."""
    started, release = threading.Event(), threading.Event()
    real = passwords._hasher

    class Held:
        def verify(self, stored: str, password: str) -> bool:
            started.set()
            release.wait(10)
            return real.verify(stored, password)

    monkeypatch.setattr(passwords, "MAX_PENDING", 2)
    app = create_app(config, demo=True, demo_calls=False)
    async with app.router.lifespan_context(app):
        monkeypatch.setattr(passwords, "_hasher", Held())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://cc") as client:
            def guess(login: str):
                return client.post("/api/session", json={"login": login, "password": "guess-1"})

            held = [asyncio.ensure_future(guess(name)) for name in ("maria", "dmitry")]
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
            r = await guess("admin")
            release.set()
            assert [(await h).status_code for h in held] == [401, 401]
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"] == "password-checks-busy"
    for language in ("en", "ru"):
        catalog = json.loads((STATIC / "i18n" / f"{language}.json").read_text())
        assert catalog["error.password-checks-busy"], language


async def test_the_password_pool_is_shut_down_with_the_app(config: Config) -> None:
    app = create_app(config, demo=True, demo_calls=False)
    async with app.router.lifespan_context(app):
        await passwords.verify_password_async(None, "guess-password-1")
        pool = passwords._pool
        assert pool is not None
    assert passwords._pool is None
    with pytest.raises(RuntimeError):  # shut down: nothing more runs on it
        pool.submit(print)


def test_changing_your_own_password(api_factory) -> None:
    here, elsewhere = api_factory(), api_factory()
    me = here.login("maria")
    elsewhere.login("maria")
    stolen = dict(here.client.cookies)
    url = f"/api/users/{me['id']}"
    r = here.patch(url, json={"password": "new-password-1"})
    assert r.status_code == 400 and r.json()["field"] == "current_password"
    r = here.patch(url, json={"password": "new-password-1", "current_password": "wrong-one-1"})
    assert r.status_code == 400 and r.json()["field"] == "current_password"
    assert elsewhere.get("/api/session").status_code == 200  # nothing changed yet
    r = here.patch(url, json={"password": "new-password-1", "current_password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    # this session goes on with a fresh cookie and the same CSRF token...
    assert here.get("/api/session").status_code == 200
    assert here.patch(url, json={"language": "ru"}).status_code == 200
    # ...the other session and any copy of the old cookie are over
    r = elsewhere.get("/api/session")
    assert r.status_code == 401 and "ended" in r.json()["message"]
    here.client.cookies.clear()
    for name, value in stolen.items():
        here.client.cookies.set(name, value)
    assert here.get("/api/session").status_code == 401
    assert _login(elsewhere, "maria", DEMO_PASSWORD).status_code == 401
    elsewhere.login("maria", "new-password-1")
    # current_password alone, or with someone else's new password, is refused
    r = elsewhere.patch(url, json={"current_password": "new-password-1"})
    assert r.status_code == 400 and r.json()["field"] == "current_password"


def test_an_admin_resets_another_password_without_theirs(api_factory) -> None:
    admin, maria = api_factory(), api_factory()
    admin.login("admin")
    me = maria.login("maria")
    r = admin.patch(f"/api/users/{me['id']}", json={"password": "reset-password-1"})
    assert r.status_code == 200
    assert maria.get("/api/session").status_code == 401
    maria.login("maria", "reset-password-1")


# -- the body cap ---------------------------------------------------------------------------

def _scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
            "root_path": "", "query_string": b"", "server": ("cc", 80),
            "client": ("127.0.0.1", 5555),
            "headers": [(b"host", b"cc"), (b"content-type", b"application/json"), *headers]}


async def _call(app, scope: dict, receive) -> list[dict]:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_streamed_body_is_cut_off_at_the_cap(config: Config) -> None:
    chunk = 64 * 1024
    read = 0

    async def endless_body() -> dict:
        nonlocal read
        read += chunk
        # Ends at 16 MiB only so that code reading it whole fails instead of hanging.
        return {"type": "http.request", "body": b" " * chunk, "more_body": read < 16 * MAX_BODY}

    app = create_app(config, demo=True, demo_calls=False)
    async with app.router.lifespan_context(app):
        sent = await _call(app, _scope("POST", "/api/session", []), endless_body)
    assert sent[0]["status"] == 413
    assert b"body-too-large" in b"".join(m.get("body", b"") for m in sent[1:])
    assert read <= MAX_BODY + chunk


@pytest.mark.parametrize("method,path", [
    *((r.method, r.path.replace("{id}", "1").replace("{call_id}", "a:1")) for r in ROUTES),
    ("POST", "/login"), ("PUT", "/no-such-page")])
async def test_every_route_refuses_a_big_content_length_unread(config: Config, method: str,
                                                               path: str) -> None:
    async def receive() -> dict:
        raise AssertionError("the body was read")

    app = create_app(config, demo=True, demo_calls=False)
    sent = await _call(app, _scope(method, path, [(b"content-length", b"314572800")]), receive)
    assert sent[0]["status"] == 413
    assert (b"x-content-type-options", b"nosniff") in sent[0]["headers"]
