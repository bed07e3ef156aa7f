from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.config import Config, load_config
from callcenter.demo import DEMO_PASSWORD
from callcenter.store.postgres import PostgresStore
from callcenter.store.sqlite import SqliteStore
from tests.pg_server import PgServer

# No per-example deadline: timings are measured in benchmarks/, never asserted in tests, and a
# busy CI machine must not turn a slow example into a failure.
settings.register_profile("callcenter", deadline=None)
settings.load_profile("callcenter")

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "ami"  # recorded Asterisk 22 traffic, in the repo


# Tests of the store and the API run on both databases: those that use one of these fixtures
# or live in a module named like these. A test that is SQLite's by nature (the file, its
# locking, WAL, a SIGKILL on it) says so with @pytest.mark.sqlite_only("why").
_BOTH_FIXTURES = {"store", "api", "api_factory", "demo_app"}
_BOTH_MODULES = ("test_store", "_api", "test_api", "test_hub")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(why): runs on SQLite only (the reason is the argument)")
    config.addinivalue_line("markers", "both_backends: runs on SQLite and PostgreSQL")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("sqlite_only"):
        return
    module = Path(str(metafunc.definition.fspath)).stem
    if (metafunc.definition.get_closest_marker("both_backends")
            or _BOTH_FIXTURES & set(metafunc.fixturenames)
            or any(part in module for part in _BOTH_MODULES)):
        metafunc.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The database under the test: "sqlite" unless parametrised (see above)."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, backend: str) -> Iterator[str | None]:
    """A freshly migrated PostgreSQL database for this test (None on SQLite)."""
    if backend != "postgres":
        yield None
        return
    server: PgServer = request.getfixturevalue("pg_server")
    url = server.create_database_sync()
    yield url
    server.release_database_sync(url)


@pytest.fixture
def config(tmp_path: Path, pg_url: str | None) -> Config:
    cfg = load_config(None, env={})
    cfg.base_dir = tmp_path
    cfg.server.secret_key = "test-secret-key-not-for-production"
    if pg_url:
        cfg.store.url = pg_url
    return cfg


@pytest.fixture
async def store(tmp_path: Path, pg_url: str | None) -> AsyncIterator[SqliteStore]:
    s = (await PostgresStore.open(pg_url) if pg_url
         else await SqliteStore.open(tmp_path / "test.db"))
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
            # the app's event loop: its store (an asyncpg pool) belongs to that loop
            c.portal = first.portal
            clients.append(c)
            return Api(c)

        yield make
