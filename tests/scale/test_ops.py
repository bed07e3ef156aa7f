"""/health, /ready and /metrics (ui/ops.py) on the product app (SQLite)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.config import Config, ConfigError, load_config
from ui.ops import allowed, parse_allow

# Published events reach the metrics at once on SQLite; on PostgreSQL after the outbox's
# round trip (tests/scale/test_outbox.py): those tests run on SQLite.
on_sqlite = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.both_backends
def test_health_and_ready_answer_without_a_session(config: Config) -> None:
    with TestClient(create_app(config, demo=True, demo_calls=False)) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["ok"] is True
        ready = client.get("/ready")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["ready"] is True and body["store_ms"] >= 0
        lines = {"configured": 0, "running": 0, "up": 0}
        if config.store.url:  # a cluster instance also tells how many lines it holds
            lines["owned"] = 0
        assert body["lines"] == lines


@pytest.mark.both_backends
def test_ready_is_503_while_the_store_does_not_answer(config: Config) -> None:
    app = create_app(config, demo=True, demo_calls=False)
    with TestClient(app) as client:
        store = app.state.services.store

        async def broken() -> dict:
            raise OSError("connection refused")

        store.get_settings = broken  # type: ignore[method-assign]
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {"ready": False, "reason": "the store does not answer"}
        assert client.get("/health").status_code == 200  # liveness is not readiness


def test_a_cluster_instance_cut_off_from_the_others_events_is_not_ready(
        config: Config) -> None:
    """Its consoles would miss every call on the other instances' lines: the proxy sends
    them elsewhere until its outbox listener is back."""
    app = create_app(config, demo=True, demo_calls=False)
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 200
        relay = app.state.services.extra["cluster_bus"]
        relay.connected.clear()  # what the listener does while it reconnects
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "live events of the other instances are not arriving"


@pytest.mark.both_backends
def test_metrics_only_for_allowed_addresses(config: Config) -> None:
    app = create_app(config, demo=True, demo_calls=False)
    with TestClient(app, client=("192.0.2.7", 4000)) as outsider:
        refused = outsider.get("/metrics")
        assert refused.status_code == 403 and "metrics_allow" in refused.text
    config.server.metrics_allow = ["192.0.2.0/24"]
    with TestClient(app, client=("192.0.2.7", 4000)) as client:
        assert client.get("/metrics").status_code == 200


@on_sqlite
def test_metrics_show_calls_events_consoles_queues_lines_and_store_latency(
        config: Config) -> None:
    app = create_app(config, demo=True, demo_calls=False)
    with TestClient(app, client=("127.0.0.1", 4000)) as client:
        bus = app.state.services.bus
        bus.publish("sms.status", {"sms": {"id": 1}})
        bus.publish("sms.status", {"sms": {"id": 2}})
        bus.publish("fax.status", {"fax": {"id": 3}})
        response = client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = _families(response.text)
        events = {s.labels["topic"]: s.value for s in families["callcenter_bus_events"].samples
                  if s.name == "callcenter_bus_events_total"}
        assert events == {"sms.status": 2.0, "fax.status": 1.0}
        assert families["callcenter_calls_live"].samples[0].value == 0
        assert families["callcenter_websocket_clients"].samples[0].value == 0
        queues = {s.labels["queue"] for s in families["callcenter_queue_depth"].samples}
        assert {"websocket_outgoing", "call_log_writes"} <= queues
        assert families["callcenter_bus_last_seq"].samples[0].value == bus.last_seq
        assert "callcenter_line_state" in families
        counts = [s for s in families["callcenter_store_latency_seconds"].samples
                  if s.name.endswith("_count")]
        assert counts[0].value >= 1  # this scrape's own probe


@on_sqlite
def test_metrics_carry_no_caller_data(config: Config) -> None:
    app = create_app(config, demo=True, demo_calls=False)
    with TestClient(app, client=("127.0.0.1", 4000)) as client:
        app.state.services.bus.publish("call.ringing", {"call": {
            "id": "c1", "from": "+79161234567", "client": {"name": "Secret Client"}}})
        text = client.get("/metrics").text
        assert "+79161234567" not in text and "Secret Client" not in text
        assert 'topic="call.ringing"' in text


@on_sqlite
def test_metrics_refuse_a_request_that_came_through_a_proxy(config: Config) -> None:
    """Prometheus scrapes an instance directly. A request a proxy forwarded must not be let in
    because of the address uvicorn took from its forwarding header (a client can write
    ``X-Forwarded-For: 127.0.0.1`` through a proxy that passes the header on) or because the
    proxy's own address is in the allowed network."""
    app = create_app(config, demo=True, demo_calls=False)
    with TestClient(app, client=("127.0.0.1", 4000)) as client:
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            refused = client.get("/metrics", headers={header: "127.0.0.1"})
            assert refused.status_code == 403, header
        assert client.get("/metrics").status_code == 200


def test_allow_list_parsing() -> None:
    networks = parse_allow(["10.0.0.0/8", "::1", "192.0.2.5"])
    assert allowed("10.1.2.3", networks) and allowed("::1", networks)
    assert allowed("::ffff:10.0.0.1", networks)  # IPv4 mapped into IPv6
    assert not allowed("192.0.2.6", networks) and not allowed("testclient", networks)
    assert not allowed(None, networks)
    with pytest.raises(ValueError, match="not an address or a network"):
        parse_allow(["ten.0.0.0"])


def test_a_bad_allow_list_entry_stops_the_config(tmp_path) -> None:
    path = tmp_path / "cc.toml"
    path.write_text('[server]\nmetrics_allow = ["10.0.0.0/8", "intranet"]\n')
    with pytest.raises(ConfigError, match=r"server\.metrics_allow"):
        load_config(path, env={})
