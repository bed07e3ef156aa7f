"""The product on PostgreSQL joins its cluster: events through the outbox, the cluster's boot
for resume, shared login throttling, sessions valid on every instance."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from callcenter.app import create_app, session_secret
from callcenter.cluster.outbox import ClusterBus
from callcenter.config import Config, ConfigError
from callcenter.demo import DEMO_PASSWORD


def _app(config: Config, name: str):
    config.cluster.instance_id = name
    return create_app(config, demo=True, demo_calls=False)


def test_two_instances_share_events_resume_tokens_and_sessions(config: Config) -> None:
    app_a = _app(config, "a")
    with TestClient(app_a) as a:
        assert a.post("/api/session", json={"login": "admin", "password": DEMO_PASSWORD}
                      ).status_code == 200
        app_b = create_app(config, demo=True, demo_calls=False)
        with TestClient(app_b) as b:
            services_a, services_b = app_a.state.services, app_b.state.services
            assert isinstance(services_b.bus, ClusterBus)
            assert isinstance(services_a.bus, ClusterBus)
            assert app_a.state.hub.boot == app_b.state.hub.boot
            # The session cookie made by A is good on B (one key, epochs in the store).
            b.cookies.update(a.cookies)
            assert b.get("/api/session").json()["user"]["login"] == "admin"
            ready = b.get("/ready").json()
            assert ready["ready"] is True and ready["lines"]["owned"] == 0


def test_password_guesses_count_on_every_instance(config: Config) -> None:
    with TestClient(_app(config, "a")) as a, TestClient(_app(config, "b")) as b:
        throttle_b = b.app.state.login_throttle
        for _ in range(5):
            assert a.post("/api/session", json={"login": "maria", "password": "wrong"}
                          ).status_code in (401, 429)
        # The broadcasts arrive on B's event loop: wait for them by a request that is itself
        # throttled only once they are there.
        for _ in range(200):
            if throttle_b.retry_after("maria", "testclient") > 0:
                break
            b.get("/health")
        assert throttle_b.retry_after("maria", "testclient") > 0
        refused = b.post("/api/session", json={"login": "maria", "password": DEMO_PASSWORD})
        assert refused.status_code == 429


def test_postgresql_needs_one_session_key_for_all_instances(config: Config) -> None:
    config.server.secret_key = ""
    with pytest.raises(ConfigError, match="secret_key must be set"):
        session_secret(config)
