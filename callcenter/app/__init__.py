"""Composition root: builds the store, the bus, the lines and the web app, and owns their tasks.

The only core package allowed to import adapters (pbx/, gsm/, fax/, sip/) and the UI; the
demo's emulated peers are in demo_peers.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from starlette.applications import Starlette

from callcenter.app.demo_peers import cancel_task, demo_gsm, demo_pbx, demo_recordings
from callcenter.calls.registry import CallRegistry
from callcenter.config import Config, FaxLineConfig, GsmModemConfig, PbxLineConfig
from callcenter.demo import DEMO_PASSWORD, seed_demo
from callcenter.lines.kinds import KindContext, build_kinds, register_kind
from callcenter.passwords import shutdown_pool
from callcenter.services import Services
from callcenter.sms.runtime import Sink, limits_of, sms_running
from callcenter.store.open import open_store

if TYPE_CHECKING:
    from callcenter.calls.log import CallLog
    from callcenter.lines.manager import LineManager
    from callcenter.lines.records import LineKind

log = logging.getLogger(__name__)


def session_secret(config: Config) -> str:
    """The configured secret, or one generated on first start and kept beside the database."""
    if config.server.secret_key:
        return config.server.secret_key
    if config.store.url.strip().startswith(("postgresql:", "postgres:")):
        from callcenter.config import ConfigError

        # Several instances share the sessions: each must sign the cookies with one key.
        raise ConfigError(f"{config.source}: server.secret_key must be set (the same on every "
                          "instance, e.g. in CALLCENTER_SERVER_SECRET_KEY) when the store is "
                          "PostgreSQL")
    path = config.data_dir / "session-secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value


@contextlib.asynccontextmanager
async def call_handling(services: Services, demo: bool, demo_calls: bool = True
                        ) -> AsyncIterator[None]:
    """The call registry, the call log, the PBX lines, the recording fetcher (and in demo
    mode a built-in PBX emulator): started in order, stopped in reverse."""
    from callcenter.calls.log import CallLog
    from callcenter.calls.service import CallService
    from callcenter.lines.calls import LineCalls
    from callcenter.lines.manager import LineManager
    from callcenter.recordings import RecordingFetcher
    from callcenter.routing.endpoints import EndpointSource
    from pbx.asterisk_kind import record_of

    config = services.config
    store = services.store
    # What the call log could not write before the last stop is replayed by start(), below,
    # before any line connects.
    # The policies of the lines as stored (the TOML only until it seeded them): the journal
    # replayed by start() closes calls of these lines.
    callback_on = ({r.name: r.settings.get("callback_on", "waited_or_voicemail")
                    for r in await store.list_lines()} if await store.lines_seeded()
                   else {line.name: line.callback_on for line in config.pbx})
    cluster = services.extra.get("cluster")
    call_log = CallLog(store, journal=config.data_dir / "call-log.journal",
                       callback_on=callback_on,
                       callback_due=services.routing.callback_due,
                       close_dangling=cluster is None)
    registry = CallRegistry(services.matcher, store.caller_index, services.bus, call_log,
                            region=lambda: config.phones.default_region)
    # The SQLite index's in-memory snapshot, built in the background (SQLite answers until
    # it is ready); the PostgreSQL index is in memory already.
    start_snapshot = getattr(store.caller_index, "start_snapshot", None)
    if start_snapshot is not None:
        start_snapshot()
    async with contextlib.AsyncExitStack() as stack:
        line_calls = LineCalls(registry)
        stack.push_async_callback(line_calls.close)
        manager = LineManager(store)
        if cluster is not None:  # only the lines this instance holds the lease of start
            manager.gate = cluster.gate

        def attach() -> tuple[Any, Callable[[Any], None]]:
            sink, seen = line_calls.sink()
            return sink, lambda line: line_calls.adopt(line, seen)

        for kind in line_kinds(config, attach):
            manager.register(kind)
        # Kinds a test (or an embedding) adds for this process only.
        for kind in services.extra.get("line_kinds", ()):
            manager.register(kind)

        manager.listeners.append(line_calls.follower(manager.records,
                                                     call_log.set_callback_on))
        services.extra["lines"] = manager
        services.extra["calls"] = CallService(
            registry, manager.view("originate"), config.console.managers_see_all_clients)
        services.extra["call_log"] = call_log
        services.routing.sources = lambda: {n: line for n, line in manager.running.items()
                                            if isinstance(line, EndpointSource)}
        await call_log.start()
        stack.push_async_callback(call_log.stop)
        if demo and demo_calls:
            demo_line = await stack.enter_async_context(demo_pbx(config.demo.call_interval))
            stack.callback(services.bus.subscribe(demo_recordings(config, registry)))
            await manager.run_only([record_of(demo_line)])
        else:
            # The [[pbx]] tables seed the database on the first start; it wins afterwards.
            await manager.load([record_of(cfg) for cfg in config.pbx], source=config.source)
        stack.push_async_callback(manager.close)
        if cluster is not None:
            from callcenter.cluster.runtime import leased_lines

            def synced_lines() -> list[Any]:
                return [line for line in manager.running.values() if hasattr(line, "synced")]

            await stack.enter_async_context(leased_lines(
                cluster, manager, call_log,
                lambda: finish_left_open(call_log, synced_lines, changed=manager.changed),
                forget=registry.forget_line))
        stack.enter_context(_reload_on_sighup(manager))
        left_open = asyncio.create_task(
            finish_left_open(call_log, lambda: [line for line in manager.running.values()
                                                if hasattr(line, "synced")],
                             changed=manager.changed),
            name="left-open-calls")
        stack.push_async_callback(cancel_task, left_open)
        fetcher = RecordingFetcher(store, config.recordings, config.data_dir / "recordings")
        await fetcher.start()
        stack.push_async_callback(fetcher.stop)
        services.extra["recordings"] = fetcher
        sweeper = asyncio.create_task(_sweep(registry), name="call-sweeper")
        stack.push_async_callback(cancel_task, sweeper)
        trim = getattr(store, "trim_caller_changes", None)
        if trim is not None:
            trimmer = asyncio.create_task(_every_minute(trim), name="caller-changes-trim")
            stack.push_async_callback(cancel_task, trimmer)
        yield


@contextlib.asynccontextmanager
async def fax_handling(services: Services, demo: bool) -> AsyncIterator[None]:
    """The fax service and its lines ([[fax]]; in demo mode with none configured, a line that
    sends to itself): lines started first, the service (and its dispatchers) stopped first,
    so a fax cut by the stop is found "interrupted" at the next start."""
    from callcenter.faxes.jobs import RetryPolicy
    from callcenter.faxes.service import FaxService
    from fax.documents import FaxConverter

    config = services.config
    folder = config.data_dir / "faxes"
    service = FaxService(services.store, services.bus, FaxConverter(folder / "work"),
                         services.matcher, config.data_dir,
                         managers_see_all=config.console.managers_see_all_clients)
    if services.extra.get("cluster") is not None:  # recover() settles only its own jobs
        from callcenter.cluster.runtime import instance_name

        service.instance = instance_name(services.extra["cluster"].config)
    line_configs = [line for line in config.fax if line.enabled]
    if demo and not line_configs:
        # A real T.30 exchange with itself (libspandsp) when the library is there.
        from fax import spandsp_lib

        try:
            spandsp_lib.load()
            kind = "spandsp"
        except spandsp_lib.SpandspMissing:
            kind = "loopback"
        line_configs = [FaxLineConfig(name="demo-fax", kind=kind,
                                      local_station_id="+7 495 111-00-00", page_seconds=1.5)]
    async with contextlib.AsyncExitStack() as stack:
        for cfg in line_configs:
            line = _fax_line(cfg, service.sink(cfg.name), folder / "lines" / cfg.name)
            service.add_line(cfg.name, line, RetryPolicy(
                cfg.max_attempts, cfg.retry_seconds, cfg.retry_backoff, cfg.retry_interrupted,
                dial_timeout=cfg.dial_timeout, page_timeout=cfg.page_timeout))
            await line.start()
            stack.push_async_callback(line.stop)
        await service.start()
        stack.push_async_callback(service.stop)
        services.extra["faxes"] = service
        yield


def _fax_line(cfg: FaxLineConfig, sink: Callable[..., object], folder: Path) -> Any:
    if cfg.kind == "asterisk":
        from fax.asterisk import AsteriskFaxLine

        return AsteriskFaxLine(cfg, sink)
    if cfg.kind == "hylafax":
        from fax.hylafax import HylaFaxLine

        return HylaFaxLine(cfg, sink, folder)
    if cfg.kind == "spandsp":
        from fax.spandsp import Transport
        from fax.spandsp_line import SpandspLoopbackLine

        return SpandspLoopbackLine(
            cfg.name, sink, folder, transport=Transport(cfg.transport),
            speed=cfg.speed or None, own_number=cfg.caller_id,
            station_id=cfg.local_station_id or "CALLCENTER")
    from fax.loopback import LoopbackFaxLine

    return LoopbackFaxLine(cfg, sink, folder)
def _asterisk(context: KindContext) -> LineKind:
    from pbx.asterisk_kind import asterisk_kind
    from pbx.asterisk_line import AsteriskLine

    config = context.config

    def build(cfg: PbxLineConfig) -> AsteriskLine:
        sink, adopt = context.sink()
        line = AsteriskLine(cfg, sink, recordings_dir=config.recordings.pbx_path,
                            region=lambda: config.phones.default_region)
        adopt(line)
        return line

    return asterisk_kind(build)


# Every kind of line, for the server and the command line alike: GSM, fax and SIP lines
# register theirs here too (register_kind), with a factory taking the KindContext.
register_kind("asterisk", _asterisk)


def _sip(context: KindContext) -> LineKind:
    from sip.sip_kind import sip_kind
    from sip.sip_line import SipLine, SipLineConfig

    def build(cfg: SipLineConfig) -> SipLine:
        sink, adopt = context.sink()
        line = SipLine(cfg, sink)
        adopt(line)
        return line

    return sip_kind(build)


register_kind("sip", _sip)


def line_kinds(config: Config, attach: Any = None) -> list[LineKind]:
    """The registered kinds. ``attach`` hands a built line's events to the calls (the
    server); without it (the command line) lines are built only to be checked."""
    return build_kinds(KindContext(config, attach))


@contextlib.contextmanager
def _reload_on_sighup(manager: LineManager) -> Iterator[None]:
    """``callcenter line ...`` edits the database; SIGHUP makes the running server apply it.
    (Only in the main thread: a server run inside a test's thread has no signals.)"""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[list[str]]] = set()

    def reload() -> None:
        task = loop.create_task(manager.reload(), name="lines-reload")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        task.add_done_callback(_reloaded)

    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (ValueError, RuntimeError, NotImplementedError):
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        for task in tasks:
            task.cancel()


def _reloaded(task: asyncio.Task[list[str]]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:  # the admin sent SIGHUP and must find out why nothing changed
        log.error("lines: the reload on SIGHUP failed", exc_info=exc)
        return
    log.info("lines reloaded on SIGHUP: %s", ", ".join(task.result()) or "no change")


# How long the lines have to re-adopt the calls still up before the calls the last run left
# open are taken as over (a PBX that is down must not hold their callback tasks for ever).
LEFT_OPEN_GRACE = 60.0


class _Synced(Protocol):
    synced: asyncio.Event


async def finish_left_open(call_log: CallLog,
                           lines: list[_Synced] | Callable[[], list[_Synced]],
                           grace: float = LEFT_OPEN_GRACE,
                           changed: asyncio.Event | None = None) -> int:
    """Once every line's first resync is done (or after ``grace``), the calls the previous run
    left open that no line re-adopted get their finish step; returns how many. ``lines`` may
    be a function giving the lines running now (the line manager's): a line added, replaced
    or removed meanwhile (``changed`` is set then) is waited for in its place."""
    current = lines if callable(lines) else (lambda: lines)  # type: ignore[assignment]

    async def all_synced() -> None:
        while True:
            if changed is not None:
                changed.clear()  # before reading the lines: a change after it is seen
            waits = [asyncio.ensure_future(line.synced.wait()) for line in current()]
            change = asyncio.ensure_future(changed.wait()) if changed is not None else None
            try:
                if not waits:
                    return
                pending = {*waits, *([change] if change else [])}
                while not all(w.done() for w in waits):
                    done, pending = await asyncio.wait(pending,
                                                       return_when=asyncio.FIRST_COMPLETED)
                    if change is not None and change in done:
                        break
                else:
                    return
            finally:
                for task in (*waits, change):
                    if task is not None:
                        task.cancel()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_synced(), grace)
    return call_log.finish_left_open()


async def _every_minute(work: Callable[[], Awaitable[None]]) -> None:
    while True:
        await asyncio.sleep(60)
        try:
            await work()
        except Exception:  # a busy database now and then: the next minute tries again
            log.warning("%s failed", getattr(work, "__name__", work), exc_info=True)


async def _sweep(registry: CallRegistry) -> None:
    while True:
        await asyncio.sleep(60)
        registry.sweep(time.time())





def report_scheduling(services: Services) -> contextlib.AbstractAsyncContextManager[Any]:
    """Scheduled reports by e-mail; their texts from the console's catalogs."""
    from callcenter.reports.scheduling import report_scheduling as scheduling
    from ui.i18n_catalog import translator

    return scheduling(services, translator)


@contextlib.asynccontextmanager
async def sms_handling(services: Services, demo_modems: bool) -> AsyncIterator[None]:
    """The SMS core and the modem pool over the configured GSM modems (and, in demo mode,
    two emulated modems on pseudo-terminals)."""
    async with contextlib.AsyncExitStack() as stack:

        async def build(sink: Sink) -> list[tuple[object, object]]:
            return await gsm_modems(services, sink, stack, demo_modems)

        await stack.enter_async_context(sms_running(services, build))  # type: ignore[arg-type]
        from callcenter.sms.campaign_runtime import campaigns_running

        await stack.enter_async_context(campaigns_running(services, demo_modems))
        yield


async def gsm_modems(services: Services, sink: object, stack: contextlib.AsyncExitStack,
                     demo: bool) -> list[tuple[object, object]]:
    """The modems of the [[gsm]] tables (in demo mode two emulated ones instead), each
    started, with its SIM's limits. A modem that cannot open its device yet is still
    handed to the pool: it stays down and retries on its own."""
    config = services.config
    configs = [cfg for cfg in config.gsm if cfg.enabled]
    if demo:
        configs = await stack.enter_async_context(demo_gsm(config))
    modems: list[tuple[object, object]] = []
    calls = services.extra.get("calls")
    call_sink = calls.registry.handle if calls is not None else (lambda event: None)
    async with contextlib.AsyncExitStack() as started:
        for cfg in configs:
            modem = _gsm_modem(cfg, sink, call_sink, config.sms.balance_ussd,
                               _late_result(services, cfg.name))
            await modem.start()
            # a later modem failing to start stops the ones already started
            started.push_async_callback(modem.stop)
            modems.append((modem, limits_of(cfg)))
        started.pop_all()  # all started: sms_running stops them, before the emulators
    return modems


def _gsm_modem(cfg: GsmModemConfig, sink: object, call_sink: object, balance: str,
               on_late_result: Any = None) -> Any:
    from gsm.modem import Modem
    from gsm.modem_settings import ModemSettings

    return Modem(ModemSettings(name=cfg.name, path=cfg.device, baudrate=cfg.baudrate,
                               pin=cfg.pin, balance_code=balance or "*100#"),
                 sms_sink=sink, call_sink=call_sink, on_late_result=on_late_result)


def _late_result(services: Services, name: str) -> Any:
    """A cancelled send's late +CMGS answer goes to the pool (made after the modems)."""

    def late(part: object, mr: int | None) -> None:
        pool = services.extra.get("sms_pool")
        if pool is not None:
            pool.late_result(name, part, mr)

    return late


async def _join_cluster(config: Config, store: Any, stack: contextlib.AsyncExitStack
                        ) -> Any:
    """On a PostgreSQL store, this instance joins the cluster (callcenter/cluster/); None on
    SQLite."""
    from callcenter.store.postgres import PostgresStore, with_password

    if not isinstance(store, PostgresStore):
        return None
    from callcenter.cluster.outbox import ClusterBus
    from callcenter.cluster.runtime import cluster_running

    dsn = with_password(config.store.url, config.store.password)
    try:
        cluster = await stack.enter_async_context(
            cluster_running(dsn, config.cluster, ClusterBus()))
        # Clients, phones and users another instance changes reach this one's screen-pops.
        await store.caller_index.listen(dsn)
        return cluster
    except BaseException:
        await store.close()
        raise


def _share_throttle(app: Starlette, cluster: Any) -> None:
    """Password guesses counted on one instance count on all (a broadcast per attempt)."""
    throttle = app.state.login_throttle
    throttle.on_change = lambda body: cluster.broadcast("login_throttle", body)
    cluster.on("login_throttle", throttle.apply)


def create_app(config: Config, *, demo: bool | None = None, demo_calls: bool = True
               ) -> Starlette:
    """The product. ``demo`` seeds the demo base on an empty database and, unless
    ``demo_calls`` is false, replaces the configured lines with the built-in demo PBX."""
    from ui.app import build_web_app

    demo = config.demo.enabled if demo is None else demo

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        store = await open_store(config)
        clustered = contextlib.AsyncExitStack()
        cluster = await _join_cluster(config, store, clustered)
        services = Services.build(config, store, cluster.bus if cluster else None)
        if cluster is not None:
            services.extra["cluster"] = cluster
            services.extra["cluster_bus"] = cluster.relay
            from callcenter.cluster.live_calls import RemoteLiveCalls

            services.extra["remote_calls"] = RemoteLiveCalls(services.bus)
            # Sequence numbers are the cluster's: a console resumes on any instance.
            app.state.hub.boot = cluster.boot
            _share_throttle(app, cluster)
        app.state.services = services
        await services.routing.load()  # before the lines start: the stored region applies
        try:
            if demo:
                from callcenter.passwords import hash_password

                if await seed_demo(store, hash_password(DEMO_PASSWORD)):
                    log.info("demo users: admin, secretary, maria, dmitry; password %r",
                             DEMO_PASSWORD)
            async with contextlib.AsyncExitStack() as stack:
                await stack.enter_async_context(call_handling(services, demo, demo_calls))
                await stack.enter_async_context(fax_handling(services, demo))
                await stack.enter_async_context(sms_handling(services, demo and demo_calls))
                await stack.enter_async_context(report_scheduling(services))
                for component in app.state.components:
                    await stack.enter_async_context(component(services, demo))
                if "campaigns" in services.extra:  # its runner waits for the start-up's end
                    services.extra["campaigns"].release()
                yield
        finally:
            await clustered.aclose()
            await store.close()
            shutdown_pool()

    app = build_web_app(
        secret_key=session_secret(config),
        secure_cookies=config.server.secure_cookies,
        session_hours=config.server.session_hours,
        body_timeout=config.server.body_timeout,
        lifespan=lifespan,
    )
    app.state.config = config
    # Long-running parts (PBX lines, recording fetcher, demo PBX) register here as async
    # context managers taking (services, demo); each starts its tasks and stops them on exit.
    app.state.components = []
    return app


# uvicorn's websockets-sansio protocol plus the hub's pre-framed writes (named: uvicorn
# imports it).
WS_PROTOCOL = "ui.ws_frames:FramingProtocol"


def ws_max_size() -> int:
    """The largest websocket message the server takes in, in bytes: what the hub accepts
    (counted in characters, up to 4 bytes each in UTF-8), not uvicorn's 16 MiB."""
    from ui.hub import MAX_CLIENT_MESSAGE

    return 4 * MAX_CLIENT_MESSAGE
