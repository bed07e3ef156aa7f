from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.config import Config, load_config
from callcenter.demo import DEMO_PASSWORD
from callcenter.store.sqlite import SqliteStore

# No per-example deadline: timings are measured in benchmarks/, never asserted in tests, and a
# busy CI machine must not turn a slow example into a failure.
settings.register_profile("callcenter", deadline=None)
settings.load_profile("callcenter")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "ami"  # recorded Asterisk 22 traffic, in the repo


@pytest.fixture
def config(tmp_path: Path) -> Config:
    cfg = load_config(None, env={})
    cfg.base_dir = tmp_path
    cfg.server.secret_key = "test-secret-key-not-for-production"
    return cfg


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "test.db")
    try:
        yield s
    finally:
        await s.close()


class Api:
    """A logged-in HTTP client that sends the CSRF header like the console does."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.csrf = ""

    def login(self, login: str, password: str = DEMO_PASSWORD) -> dict:
        r = self.client.post("/api/session", json={"login": login, "password": password})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        return r.json()["user"]

    def request(self, method: str, url: str, **kw):
        headers = kw.pop("headers", {})
        headers.setdefault("X-CSRF-Token", self.csrf)
        return self.client.request(method, url, headers=headers, **kw)

    def get(self, url: str, **kw):
        return self.request("GET", url, **kw)

    def post(self, url: str, **kw):
        return self.request("POST", url, **kw)

    def patch(self, url: str, **kw):
        return self.request("PATCH", url, **kw)

    def delete(self, url: str, **kw):
        return self.request("DELETE", url, **kw)


@pytest.fixture
def demo_app(config: Config):
    return create_app(config, demo=True, demo_calls=False)


@pytest.fixture
def api(demo_app) -> Iterator[Api]:
    with TestClient(demo_app) as client:
        yield Api(client)


@pytest.fixture
def api_factory(demo_app):
    """Several independent sessions against one app (one per user)."""
    with TestClient(demo_app) as first:
        clients = [first]

        def make() -> Api:
            if len(clients) == 1 and not getattr(first, "_used", False):
                first._used = True  # type: ignore[attr-defined]
                return Api(first)
            c = TestClient(demo_app)
            clients.append(c)
            return Api(c)

        yield make
