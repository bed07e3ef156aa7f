"""A SIP line behind core types: the observer extension, its registration, the dialog
watcher and click-to-call, over one :class:`sip.endpoint.SipEndpoint`.

Its line events go to the core's sink exactly as the Asterisk line's do, so the console, the
call log and the lines page need no SIP code. Bad input never stops the line: the endpoint
answers what it can with 400 and drops the rest; a fault in a handler is logged.

The PBX's health: with a registrar the line registers through the core's
:class:`sip.registration.Registration` (challenges, 423, 403, backoff, refresh at half the
granted expiry); between refreshes it sends OPTIONS every ``keepalive`` seconds. When the PBX
stops answering the line goes DOWN and registers again with backoff; when it answers again
the line rebuilds every dialog subscription (a restarted PBX lost them all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callcenter.errors import CallActionFailed, LineUnavailable
from callcenter.line_events import Answered, CallEnded, EndState, LineEvent
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from sip.address import SipUri
from sip.click_to_call import CallPlan, ClickToCall, Outcome
from sip.dialog_calls import DialogCalls
from sip.dialog_info import DialogChange, Presence
from sip.digest import DigestClient
from sip.endpoint import IncomingRequest, SipEndpoint, SipError
from sip.message import Request, Response
from sip.observer import Observer, ObserverConfig
from sip.registration import Registration, RegistrationStatus, RegProblem, RegState
from sip.watcher import DialogWatcher

log = logging.getLogger(__name__)

_DIALABLE = re.compile(r"^\+?[0-9]{1,32}$")
_SEPARATORS = re.compile(r"[\s()\-./\u2010-\u2014]")
MAX_CLICK_CALLS = 100


@dataclass(frozen=True, slots=True)
class SipLineConfig:
    name: str
    enabled: bool = True
    registrar: str = ""  # host[:port] of the PBX; "" = not registered (a static extension)
    username: str = "crm"
    secret: str = field(default="", repr=False)
    domain: str = ""  # the SIP domain of the AOR; "" = the registrar
    transport: str = "udp"
    listen_host: str = "0.0.0.0"
    listen_port: int = 5070
    advertise_host: str = ""  # the address the PBX reaches us at; "" = the listen address
    ring_extensions: tuple[str, ...] = ()  # the phones of the ring group (per-user screen-pop)
    watch_extensions: tuple[str, ...] = ()  # extensions whose dialogs we subscribe to
    register_expires: int = 300
    max_calls: int = 1000
    keepalive: float = 30.0
    keepalive_timeout: float = 5.0  # an OPTIONS unanswered this long: the PBX is gone
    retry_max: float = 60.0
    ring_timeout: float = 30.0  # click-to-call: how long the user's phone rings
    transfer_timeout: float = 60.0  # click-to-call: how long the number may take to answer
    answer_wait: float = 1.0  # how long "answered elsewhere" waits for the watcher's "by whom"
    subscribe_expires: int = 600


class SipLine:
    kind = "sip"

    def __init__(self, config: SipLineConfig, sink: Callable[[LineEvent], None],
                 *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.name = config.name
        self._sink = sink
        self._clock = clock
        self.endpoint: SipEndpoint | None = None
        self.observer: Observer | None = None
        self.watcher: DialogWatcher | None = None
        self.dialogs = DialogCalls(config.name, self._observer_call)
        self.digest = DigestClient(config.username, config.secret)
        self._state = LineState.STOPPED
        self._since = time.time()
        self._last_error = ""
        self.detail = "not started"
        self.local: tuple[str, int] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._incoming: dict[str, IncomingRequest] = {}  # Call-ID -> ringing INVITE
        self._timer: asyncio.TimerHandle | None = None
        self._pending: dict[str, tuple[str, asyncio.TimerHandle]] = {}  # answered elsewhere
        self._clicks: dict[str, ClickToCall] = {}  # Call-ID -> click-to-call
        self.registration: Registration | None = None
        self._lost = ""  # why the PBX was taken for gone, until it registers us again
        self._pbx_hosts: set[str] = set()  # the registrar's addresses
        self.registered = asyncio.Event()
        self.state_changed = asyncio.Event()  # set at each change of state (tests wait on it)
        self.presence_changed = asyncio.Event()
        self.domain = config.domain or config.registrar

    # -- lifecycle -------------------------------------------------------------------------

    def _set_state(self, state: LineState, detail: str, *, error: bool = False) -> None:
        if state is not self._state:
            self._state, self._since = state, time.time()
            self.state_changed.set()
        self.detail = detail
        if error:
            self._last_error = detail

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self._state, self.detail, self._last_error,
                          self._since)

    @property
    def connected(self) -> bool:
        return self._state in (LineState.UP, LineState.DEGRADED)

    def presence(self) -> dict[str, str]:
        """Watched extension -> free | ringing | busy | offline."""
        return self.watcher.presence() if self.watcher else {}

    async def check(self) -> CheckResult:
        """Without a registrar: can we listen? With one: a REGISTER of its own on a free port
        (Expires 0 afterwards), so the running line is not disturbed."""
        cfg = self.config
        if not cfg.registrar:
            if self.local is not None:
                return CheckResult(True, f"listening on {self.local[0]}:{self.local[1]}",
                                   {"listening": f"{self.local[0]}:{self.local[1]}"})
            probe = SipEndpoint(self._transport, cfg.listen_host, cfg.listen_port)
            try:
                await probe.start()
            except OSError as exc:
                return CheckResult(False, "cannot listen", error=(
                    f"cannot listen on {self._transport} {cfg.listen_host}:"
                    f"{cfg.listen_port}: {exc.strerror}"),
                    hint="choose another listen port, or stop what uses it")
            finally:
                await probe.close()
            return CheckResult(True, f"{self._transport} {cfg.listen_host}:{cfg.listen_port} "
                               "is free", {"listen": f"{cfg.listen_host}:{cfg.listen_port}"})
        probe = SipEndpoint(self._transport, cfg.listen_host, 0)
        try:
            await probe.start()
            reg = self._new_registration(probe, expires=60)
            status = await reg.register_once()
            await reg.stop(unregister=True)
        except (SipError, OSError, ValueError) as exc:
            return CheckResult(False, "no answer from the registrar",
                               error=f"{cfg.registrar} did not answer the REGISTER: {exc}",
                               hint="check the address, the port and the transport")
        finally:
            await probe.close()
        if status.ok:
            return CheckResult(True, f"registered as {cfg.username} at {cfg.registrar}",
                               {"registrar": cfg.registrar, "user": cfg.username,
                                "expires": str(status.expires)})
        if status.state is RegState.REFUSED:
            return CheckResult(False, "registration refused",
                               error=self._refusal(status),
                               hint="check the user and password on the PBX")
        return CheckResult(False, "no answer from the registrar",
                           error=f"{cfg.registrar} did not answer the REGISTER: "
                                 f"{status.reason}",
                           hint="check the address, the port and the transport")

    def _refusal(self, status: RegistrationStatus) -> str:
        cfg = self.config
        if status.problem is RegProblem.WRONG_CREDENTIALS:
            return (f"the registrar {cfg.registrar} refused user {cfg.username!r}: wrong user "
                    "or password")
        if status.problem is RegProblem.FORBIDDEN:
            return (f"the registrar {cfg.registrar} forbids user {cfg.username!r} (403): the "
                    "extension may be disabled or not allowed from this address")
        return f"the registrar {cfg.registrar} refused user {cfg.username!r}: {status.reason}"

    @property
    def _transport(self) -> str:
        return "TCP" if self.config.transport.lower() == "tcp" else "UDP"

    def _new_registration(self, endpoint: SipEndpoint, *, expires: int) -> Registration:
        cfg = self.config
        uri = f"sip:{cfg.registrar}" + (";transport=tcp" if self._transport == "TCP" else "")
        return Registration(endpoint, registrar=uri, user=cfg.username, password=cfg.secret,
                            domain=self.domain, expires=expires, backoff_max=cfg.retry_max)

    async def start(self) -> None:
        cfg = self.config
        tr = self._transport
        self._set_state(LineState.STARTING, f"opening {tr} {cfg.listen_host}:{cfg.listen_port}")
        endpoint = SipEndpoint(tr, cfg.listen_host, cfg.listen_port, user_agent="callcenter",
                               advertised_host=cfg.advertise_host or None)
        try:
            await endpoint.start()
        except OSError as exc:
            self._set_state(LineState.DOWN, f"cannot listen on {tr} {cfg.listen_host}:"
                                            f"{cfg.listen_port}: {exc.strerror}", error=True)
            return
        endpoint.max_ring = 3600.0  # the observer closes calls itself (ObserverConfig)
        self.endpoint = endpoint
        self.local = endpoint.local_address
        host = cfg.advertise_host or (self.local[0] if self.local[0] != "0.0.0.0"
                                      else "127.0.0.1")
        self.observer = Observer(ObserverConfig(
            line=cfg.name, contact=f"<sip:{cfg.username}@{host}:{self.local[1]}>",
            ring_extensions=cfg.ring_extensions, max_calls=cfg.max_calls,
            keep_answered=True, retransmit=False))
        endpoint.on_request("INVITE", self._on_invite)
        endpoint.on_request("CANCEL", self._on_cancel)
        endpoint.on_request("NOTIFY", self._on_notify)
        endpoint.on_request("BYE", self._on_bye)
        if cfg.watch_extensions and cfg.registrar:
            self.watcher = DialogWatcher(
                cfg.watch_extensions, new_subscribe=self._new_subscribe, send=self._authed,
                on_changes=self._dialog_changes, on_presence=self._presence,
                clock=self._clock, contact=lambda: f"<{endpoint.contact(cfg.username)}>",
                expires=cfg.subscribe_expires, retry_max=cfg.retry_max)
        if cfg.registrar:
            self._set_state(LineState.STARTING, f"registering at {cfg.registrar}")
            self.registration = self._new_registration(endpoint,
                                                       expires=cfg.register_expires)
            self.registration.on_change(self._on_registration)
            await self._resolve_pbx()
            await self.registration.start()
            self._runner = asyncio.create_task(self._keep_alive(),
                                               name=f"sip-line-{self.name}")
        else:
            self._set_state(LineState.UP, f"observer {cfg.username} listening on {tr} "
                                          f"{self.local[0]}:{self.local[1]}")

    async def stop(self) -> None:
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None
        if self.watcher is not None:
            await self.watcher.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for _, handle in self._pending.values():
            handle.cancel()
        if self.observer is not None:
            for event in self.observer.lost(self._clock()):
                self._emit(event)
        if self.registration is not None:
            await self.registration.stop(unregister=True)
            self.registration = None
        self.registered.clear()
        if self.endpoint is not None:
            await self.endpoint.close()
        self.endpoint = None
        self.local = None
        self._set_state(LineState.STOPPED, "stopped")

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- registration and the PBX's health -------------------------------------------------

    def _aor(self, user: str | None = None) -> str:
        return f"sip:{user or self.config.username}@{self.domain}"

    async def _authed(self, build: Callable[[int], Request]) -> tuple[Request, Response]:
        """Send; answer one 401/407 challenge (a second one for the same realm: refused).
        Challenges are never carried over from an earlier request: a SUBSCRIBE answered
        after another one was would otherwise look like a wrong password."""
        assert self.endpoint is not None
        self.digest.forget()
        req = build(1)
        response = await self.endpoint.request(req)
        tries = 0
        while response.status in (401, 407) and tries < 2:
            if self.digest.is_rejection(response):
                break
            retry = build(req.cseq.seq + 1)
            if not self.digest.authorize(retry, response):
                break
            req, response = retry, await self.endpoint.request(retry)
            tries += 1
        return req, response

    def _on_registration(self, status: RegistrationStatus) -> None:
        """The registration's state is the line's: registered = UP, else DOWN with why."""
        cfg = self.config
        if status.state is RegState.REGISTERED:
            self._lost = ""
            self._set_state(LineState.UP, f"registered as {cfg.username} at {cfg.registrar}"
                            + (f", watching {len(cfg.watch_extensions)} extensions"
                               if self.watcher else ""))
            if self.registered.is_set():
                return
            self.registered.set()
            self._spawn(self._resolve_pbx())  # its address may have changed while it was gone
            if self.watcher is not None:
                if not self.watcher.running:
                    self.watcher.start()
                else:
                    self.watcher.rebuild()  # the PBX came back: it forgot our subscriptions
        elif status.state in (RegState.FAILED, RegState.REFUSED):
            was_up = self.registered.is_set()
            self.registered.clear()
            if status.state is RegState.REFUSED:
                why = self._refusal(status)
            else:
                why = f"no answer from the registrar {cfg.registrar}: {status.reason}"
            self._down(f"{self._lost}; {why}" if self._lost else why)
            if was_up and status.problem is RegProblem.UNREACHABLE:
                self._pbx_lost()  # a refresh answered 500 is no reason to drop ringing calls

    async def _keep_alive(self) -> None:
        """OPTIONS every ``keepalive`` seconds while registered: a PBX that died between two
        refreshes is noticed in seconds (an ICMP "port unreachable" on UDP names no
        transaction, so only the missing answer tells). Then the registration starts over."""
        assert self.endpoint is not None and self.registration is not None
        cfg = self.config
        while True:
            await self.registered.wait()
            await asyncio.sleep(cfg.keepalive)
            if not self.registered.is_set():
                continue
            try:
                await asyncio.wait_for(self.endpoint.request(self.endpoint.new_request(
                    "OPTIONS", f"sip:{self.domain}", f"<{self._aor()}>",
                    f"<sip:{self.domain}>")), cfg.keepalive_timeout)
                continue
            except (SipError, OSError, TimeoutError):
                pass
            if not self.registered.is_set():
                continue
            self.registered.clear()
            self._lost = f"the PBX {self.config.registrar} stopped answering"
            self._down(self._lost)
            self._pbx_lost()
            # the callbacks stay; a new run registers at once, then backs off
            await self.registration.stop(unregister=False)
            await self.registration.start()

    def _pbx_lost(self) -> None:
        """Calls still ringing at the observer will never hear their CANCEL: closed now,
        failed, rather than left ringing on the screens."""
        if self.observer is None:
            return
        for incoming in self._incoming.values():
            with contextlib.suppress(Exception):
                incoming.respond(480)
        self._incoming.clear()
        now = self._clock()
        for event in self.observer.lost(now, "the PBX stopped answering while it rang"):
            self._emit(event)

    def _down(self, why: str) -> None:
        self._set_state(LineState.DOWN, why, error=True)
        log.warning("SIP line %s: %s", self.name, why)

    # -- the observer ----------------------------------------------------------------------

    def _on_invite(self, incoming: IncomingRequest) -> None:
        if self.observer is None:
            incoming.respond(480)
            return
        req = incoming.request
        result = self.observer.receive(req, self._clock())
        for response in result.send:
            if response.status != 100:
                incoming.send_response(response)
        if self.observer.key_of(req.call_id) is not None and not incoming.answered:
            self._incoming[req.call_id] = incoming
        for event in result.events:
            self._emit(event)
        self._schedule()

    def _on_cancel(self, incoming: IncomingRequest) -> None:
        """The endpoint answered the CANCEL and sends 487 after this (the INVITE's
        ``incoming``, its CANCEL in ``cancel_request``)."""
        cancel = incoming.cancel_request
        self._incoming.pop(incoming.request.call_id, None)
        if self.observer is None or cancel is None:
            return
        result = self.observer.receive(cancel, self._clock())
        for event in result.events:
            if isinstance(event, Answered):
                self._answered_elsewhere(event, incoming.request.call_id)
            else:
                self._emit(event)
        self._schedule()

    def _answered_elsewhere(self, event: Answered, call_id: str) -> None:
        ext = self.dialogs.observer_answered(event.call_key, call_id)
        if ext is not None or self.watcher is None:
            self._close_answered(event.call_key, call_id, ext, event.at)
            return
        # The watcher's NOTIFY of who answered may come just after the CANCEL.
        loop = asyncio.get_running_loop()
        handle = loop.call_later(self.config.answer_wait, self._close_answered,
                                 event.call_key, call_id, None, event.at)
        self._pending[call_id] = (event.call_key, handle)

    def _close_answered(self, key: str, call_id: str, ext: str | None, at: float) -> None:
        pending = self._pending.pop(call_id, None)
        if pending is not None:
            pending[1].cancel()
        self._emit(Answered(key, at, ext))
        if ext is None or not self.dialogs.keeps(key):
            self._emit(CallEnded(key, self._clock(), EndState.ANSWERED, None,
                                 "answered elsewhere (the line does not see the end)"))

    def _observer_call(self, call_id: str, caller: str) -> str | None:
        if self.observer is None:
            return None
        key = self.observer.key_of(call_id) if call_id else None
        if key is not None:
            return key
        return self.observer.ringing_from(caller) if caller else None

    def _schedule(self) -> None:
        if self.observer is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.observer.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.observer is None:
            return
        result = self.observer.advance(self._clock())
        for response in result.send:
            incoming = self._incoming.pop(response.call_id, None)
            if incoming is not None:
                incoming.send_response(response)
        for event in result.events:
            self._emit(event)
        self._schedule()

    # -- the dialog watcher ----------------------------------------------------------------

    def _new_subscribe(self, extension: str, call_id: str, from_tag: str, cseq: int
                       ) -> Request:
        assert self.endpoint is not None
        return self.endpoint.new_request(
            "SUBSCRIBE", f"sip:{extension}@{self.domain}", f"<{self._aor()}>",
            f"<sip:{extension}@{self.domain}>", call_id=call_id, cseq=cseq, from_tag=from_tag,
            contact_user=self.config.username,
            headers=[("Event", "dialog"), ("Accept", "application/dialog-info+xml"),
                     ("Expires", str(self.config.subscribe_expires))])

    def _dialog_changes(self, extension: str, changes: list[DialogChange]) -> None:
        now = self._clock()
        for change in changes:
            for event in self.dialogs.change(extension, change, now):
                self._emit(event)
        for call_id, (key, _) in list(self._pending.items()):
            ext = self.dialogs.observer_answered(key, call_id)
            if ext is not None:
                self._close_answered(key, call_id, ext, now)

    def _presence(self, extension: str, state: Presence) -> None:
        log.debug("SIP line %s: extension %s is %s", self.name, extension, state.value)
        self.presence_changed.set()

    def _from_pbx(self, incoming: IncomingRequest) -> bool:
        """In-dialog requests of our subscriptions and click-to-calls come from the PBX (it
        relays the phones'); anyone else is refused 403, whatever Call-ID and tags they
        guessed."""
        if incoming.peer[0] in self._pbx_hosts:
            return True
        log.warning("SIP line %s: %s from %s refused (not the PBX)", self.name,
                    incoming.request.method, incoming.peer[0])
        incoming.respond(403, "Not the PBX")
        return False

    async def _resolve_pbx(self) -> None:
        host = SipUri.parse(f"sip:{self.config.registrar}").host.strip("[]")
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
        except OSError as exc:
            log.warning("SIP line %s: cannot resolve %s: %s", self.name, host, exc)
            return
        self._pbx_hosts = {info[4][0] for info in infos}

    def _on_notify(self, incoming: IncomingRequest) -> None:
        req = incoming.request
        if (req.call_id in self._clicks or self.watcher is not None) \
                and not self._from_pbx(incoming):
            return
        click = self._clicks.get(req.call_id)
        if click is not None:
            click.notify(incoming)
            return
        if self.watcher is not None and self.watcher.notify(incoming):
            return
        incoming.respond(481)

    def _on_bye(self, incoming: IncomingRequest) -> None:
        click = self._clicks.get(incoming.request.call_id)
        if click is not None:
            if not self._from_pbx(incoming):
                return
            click.bye(incoming)
            return
        incoming.respond(481)

    # -- call control (callcenter.calls.control.CallControl) -------------------------------

    async def originate(self, extension: str, number: str, *, user_id: int | None) -> str:
        """Ring ``extension`` first; when it answers, REFER it to ``number``. Returns the call
        id at once; the outcome arrives as the call's events."""
        if not self.connected or self.endpoint is None:
            raise LineUnavailable(f"SIP line {self.name} is not connected: {self.detail}")
        if not self.config.registrar:
            raise CallActionFailed("click-to-call needs a registrar on the SIP line")
        if not extension.isdigit() or len(extension) > 8:
            raise CallActionFailed(f"{extension!r} is not an internal extension")
        dial = _dialable(number)
        if len(self._clicks) >= MAX_CLICK_CALLS:
            raise CallActionFailed("too many click-to-calls at once on this line")
        key = f"sip:{self.name}:c2c:{uuid.uuid4().hex[:16]}"
        click = ClickToCall(CallPlan(self.name, key, extension, number.strip(), dial,
                                     self.config.username, self.domain,
                                     ring_timeout=self.config.ring_timeout,
                                     transfer_timeout=self.config.transfer_timeout),
                            self.endpoint, self._authed, self._emit, self._clock)
        self._clicks[click.call_id] = click
        task = self._spawn(self._click(click))
        task.set_name(f"sip-c2c-{key}")
        self.last_click = click
        return key

    async def _click(self, click: ClickToCall) -> Outcome:
        try:
            return await click.run()
        finally:
            self._clicks.pop(click.call_id, None)

    async def blind_transfer(self, call_id: str, from_ext: str | None, to_ext: str) -> None:
        raise CallActionFailed("a SIP line cannot transfer a call it does not hold: transfer "
                               "it on the phone")

    async def attended_transfer(self, call_id: str, from_ext: str, to_ext: str) -> None:
        raise CallActionFailed("a SIP line cannot transfer a call it does not hold: transfer "
                               "it on the phone")

    async def redirect(self, call_id: str, from_ext: str | None, to_ext: str) -> None:
        raise CallActionFailed("a SIP line cannot redirect a ringing call: the PBX's ring "
                               "group decides who rings")

    async def hangup(self, call_id: str) -> None:
        raise CallActionFailed("a SIP line cannot hang up a call it does not hold")

    async def start_recording(self, call_id: str) -> str:
        raise CallActionFailed("recording is not available on a SIP line")

    async def stop_recording(self, call_id: str) -> None:
        raise CallActionFailed("recording is not available on a SIP line")

    # -- out -------------------------------------------------------------------------------

    def _emit(self, event: LineEvent) -> None:
        try:
            self._sink(event)
        except Exception:  # a fault in the core must not stop the line's handlers
            log.exception("SIP line %s: the sink failed on %r", self.name, event)


def _dialable(number: str) -> str:
    """Digits and a leading +; anything else refused (nothing a stranger could put into a
    header: the number goes into the Refer-To URI)."""
    if len(number) > 64:
        raise CallActionFailed("a number to dial has at most 64 characters")
    cleaned = _SEPARATORS.sub("", number)
    if not _DIALABLE.match(cleaned):
        raise CallActionFailed(f"{number[:64]!r} is not a number that can be dialled")
    return cleaned

