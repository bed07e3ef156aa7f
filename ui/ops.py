"""Endpoints for operations: ``/health`` (liveness), ``/ready`` (readiness) and ``/metrics``
(Prometheus text format, prometheus_client).

None needs a session: a load balancer and Prometheus have none. ``/health`` and ``/ready``
answer everyone and say nothing but counts; ``/metrics`` answers only the addresses of
``server.metrics_allow`` (by the direct peer: behind a reverse proxy, keep ``/metrics`` off the
proxy, see the README). Labels carry only names an admin chose (line names and kinds) and event
topics — never a caller's number, a client or a user.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from callcenter import __version__
from callcenter.bus import BusEvent

READY_TIMEOUT = 2.0  # a store that has not answered by then is not reachable
FORWARDING_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_allow(entries: Iterable[str]) -> list[Network]:
    """``server.metrics_allow``: addresses or networks; a bad entry is a clear error."""
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"server.metrics_allow: {entry!r} is not an address or a network "
                             "such as 10.0.0.0/8") from None
    return out


def allowed(address: str | None, networks: list[Network]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


class Metrics:
    """One registry per application (tests run many in one process). The bus events are
    counted as they pass; everything else is read when Prometheus scrapes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter("callcenter_bus_events", "Events published on the bus (every "
                              "instance's, in a cluster), by topic", ["topic"],
                              registry=self.registry)
        self.store_latency = Histogram(
            "callcenter_store_latency_seconds",
            "Round trip of a small store read, measured at each /metrics and /ready",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)
        self.app_state: Any = None
        self.registry.register(_Live(self))
        self._unsubscribe: Any = None

    def start(self, app_state: Any) -> None:
        self.app_state = app_state
        services = getattr(app_state, "services", None)
        if services is not None:
            self._unsubscribe = services.bus.subscribe(self._count)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _count(self, event: BusEvent) -> None:
        # Topics are the code's own fixed names ("call.ringing"): a bounded label set.
        self.events.labels(event.topic).inc()

    async def probe_store(self) -> float:
        """Seconds a small read took; raises when the store does not answer in time."""
        services = self.app_state.services
        started = time.perf_counter()
        await asyncio.wait_for(services.store.get_settings(), READY_TIMEOUT)
        took = time.perf_counter() - started
        self.store_latency.observe(took)
        return took


class _Live(Collector):
    """Gauges read from the running services at scrape time."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # read at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        state = self.metrics.app_state
        services = getattr(state, "services", None)
        if services is None:
            return
        extra = services.extra
        calls = GaugeMetricFamily("callcenter_calls_live", "Calls up now on this instance's "
                                  "lines (ringing, talking, on hold)")
        registry = getattr(extra.get("calls"), "registry", None)
        calls.add_metric([], len(registry.live()) if registry is not None else 0)
        yield calls
        hub = getattr(state, "hub", None)
        connections = list(getattr(hub, "connections", ()))
        clients = GaugeMetricFamily("callcenter_websocket_clients",
                                    "Consoles connected to this instance's websocket")
        clients.add_metric([], len(connections))
        yield clients
        queues = GaugeMetricFamily("callcenter_queue_depth", "Items waiting in a queue",
                                   labels=["queue"])
        queues.add_metric(["websocket_outgoing"], sum(c.queue.qsize() for c in connections))
        call_log = extra.get("call_log")
        if call_log is not None:
            queues.add_metric(["call_log_writes"], call_log.queue_depth)
        relay = extra.get("cluster_bus")
        if relay is not None:
            queues.add_metric(["outbox_writes"], relay.queue_depth)
        yield queues
        seq = GaugeMetricFamily("callcenter_bus_last_seq", "The last event sequence applied")
        seq.add_metric([], services.bus.last_seq)
        yield seq
        manager = extra.get("lines")
        lines = GaugeMetricFamily("callcenter_line_state", "1 for the state each line is in "
                                  "on this instance", labels=["line", "kind", "state"])
        if manager is not None:
            for status in manager.statuses():
                lines.add_metric([status.name, status.kind, str(status.state)], 1)
        yield lines
        owned = getattr(extra.get("cluster"), "leases", None)
        if owned is not None:
            leases = GaugeMetricFamily("callcenter_lines_owned",
                                       "Lines whose lease this instance holds")
            leases.add_metric([], len(owned.owned))
            yield leases


def ops_routes(metrics: Metrics) -> list[BaseRoute]:
    async def health(request: Request) -> JSONResponse:
        """Liveness: the process answers. Nothing else is checked (a PBX or the database
        being down is no reason to restart this process)."""
        return JSONResponse({"ok": True, "version": __version__})

    async def ready(request: Request) -> JSONResponse:
        """Readiness: started, the store answers and, in a cluster, the other instances'
        events arrive (the outbox listener is connected). Lines down are no reason to take an
        instance out of the proxy: it still serves consoles."""
        services = getattr(request.app.state, "services", None)
        if services is None:
            return JSONResponse({"ready": False, "reason": "starting"}, status_code=503)
        try:
            took = await metrics.probe_store()
        except Exception:
            return JSONResponse({"ready": False, "reason": "the store does not answer"},
                                status_code=503)
        relay = services.extra.get("cluster_bus")
        if relay is not None and not relay.connected.is_set():
            return JSONResponse({"ready": False, "reason": "live events of the other "
                                 "instances are not arriving"}, status_code=503)
        body: dict[str, Any] = {"ready": True, "store_ms": round(took * 1000, 2)}
        manager = services.extra.get("lines")
        if manager is not None:
            states = [s.state for s in manager.statuses()]
            body["lines"] = {"configured": len(states), "running": len(manager.running),
                             "up": sum(1 for s in states if s == "up")}
        leases = getattr(services.extra.get("cluster"), "leases", None)
        if leases is not None:
            body.setdefault("lines", {})["owned"] = len(leases.owned)
        return JSONResponse(body)

    async def metrics_endpoint(request: Request) -> Response:
        config = getattr(request.app.state, "config", None)
        networks = parse_allow(config.server.metrics_allow if config is not None
                               else ["127.0.0.0/8", "::1"])
        peer = request.client.host if request.client else None
        # A forwarding header: the request came through a proxy, whose peer address (or the
        # one uvicorn took from the header, which a client may have written) says nothing
        # about who asks. Prometheus never sends one.
        forwarded = any(h in request.headers for h in FORWARDING_HEADERS)
        if forwarded or not allowed(peer, networks):
            return PlainTextResponse("forbidden: add this address to server.metrics_allow\n",
                                     status_code=403)
        if getattr(request.app.state, "services", None) is not None:
            # A failed probe: the scrape still answers; the histogram shows no new sample.
            with contextlib.suppress(Exception):
                await metrics.probe_store()
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return [Route("/health", health, methods=["GET"]),
            Route("/ready", ready, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"])]
