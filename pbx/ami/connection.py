"""Asyncio AMI client: pumps bytes between a TCP stream and the sans-I/O ``protocol`` module.

What it guarantees:

* ``start()`` returns only after the PBX accepted the login. A refused login raises
  ``AmiAuthError`` and is not retried by ``start()``; an unreachable PBX raises ``AmiUnreachable``.
* Every action has a timeout (``AmiTimeout``). ActionIDs are unique in this process and carry a
  random per-process tag, because Asterisk shows every session the ``OriginateResponse`` of
  every other session: two CRM processes must not both own ``cc-1``.
* **No action is ever sent twice.** An action in flight when the socket drops fails with
  ``AmiConnectionLost``, whether or not the PBX executed it; nothing is queued for the next
  connection. Re-sending a non-idempotent action (Originate, Redirect, BlindTransfer, Atxfer,
  Hangup, MixMonitor…) after a reconnect would ring a customer twice or hang up the wrong call,
  so the decision to retry is left to the caller, who knows what the action does.
* A Ping every ``ping_interval`` seconds; no Pong within ``ping_timeout`` means a dead link and
  a reconnect. Reconnects back off exponentially with jitter up to ``reconnect_max``; after each
  successful (re)login ``on_connected()`` runs so the caller can resync its call state.
* A snapshot list (``list_action(..., apply=...)``) is applied at its place in the stream:
  ``apply`` runs in the reader when the list completes, and the events that arrived while it was
  being collected are delivered after it, then everything that follows.
* The secret is never logged: actions are logged by name and ActionID only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import secrets
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pbx.ami.codec import encode_action
from pbx.ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionLost,
    AmiError,
    AmiTimeout,
    AmiUnreachable,
)
from pbx.ami.message import Message
from pbx.ami.protocol import (
    MAX_MESSAGE_SIZE,
    ActionCompleted,
    ActionTracker,
    AmiProtocol,
    Banner,
    EventReceived,
    FollowUpReceived,
    ListAbandoned,
    ProtocolItem,
    ResponseReceived,
)

log = logging.getLogger(__name__)

Headers = Iterable[tuple[str, str]] | Mapping[str, str]

# Applies a snapshot list: (the list's response, its events), called in stream order.
ListHandler = Callable[[Message, list[Message]], None]

_PROCESS_TAG = secrets.token_hex(3)
_action_numbers = itertools.count(1)


def next_action_id() -> str:
    return f"cc-{_PROCESS_TAG}-{next(_action_numbers)}"


def _pairs(headers: Headers) -> list[tuple[str, str]]:
    return list(headers.items() if isinstance(headers, Mapping) else headers)


def _retrieve(future: asyncio.Future[Message]) -> None:
    # A caller may never await an originate's result: don't let asyncio log that as an error.
    if not future.cancelled():
        future.exception()


@dataclass(slots=True)
class OriginateCall:
    """An async Originate: ``queued`` is the immediate ``Originate successfully queued``
    response; ``await call.result`` gives the later ``OriginateResponse`` event (its
    ``Response`` is ``Success`` or ``Failure``), or raises ``AmiTimeout``/``AmiConnectionLost``.
    The result survives a reconnect: Asterisk broadcasts OriginateResponse to every session."""

    action_id: str
    queued: Message
    result: asyncio.Future[Message]


@dataclass(slots=True)
class _Session:
    """One TCP connection and the tasks that belong to it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: AmiProtocol
    banner: asyncio.Future[Banner]
    done: asyncio.Event = field(default_factory=asyncio.Event)
    reader_task: asyncio.Task[None] | None = None
    pinger: asyncio.Task[None] | None = None
    ready: bool = False  # logged in
    lost: bool = False
    reason: str | None = None  # why we closed it ourselves (ping timeout…)

    def abort(self, reason: str) -> None:
        self.reason = self.reason or reason
        self.writer.transport.abort()


class AmiConnection:
    """A long-lived, self-healing AMI client connection.

    ``on_event(message)`` is called for every event, in order, from the reader task (keep it
    fast; it must not block). ``on_connected()`` is awaited after every successful login;
    ``on_disconnected(reason)`` is called when an established connection is lost.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        on_event: Callable[[Message], None] | None = None,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        on_disconnected: Callable[[str], None] | None = None,
        events: str = "on",
        action_timeout: float = 10.0,
        connect_timeout: float = 5.0,
        login_timeout: float = 10.0,
        ping_interval: float = 20.0,
        ping_timeout: float = 10.0,
        reconnect_initial: float = 0.5,
        reconnect_max: float = 30.0,
        originate_result_timeout: float = 120.0,
        max_message_size: int = MAX_MESSAGE_SIZE,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.on_event = on_event
        self.on_connected = on_connected
        self.on_disconnected = on_disconnected
        self.events = events
        self.action_timeout = action_timeout
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect_initial = reconnect_initial
        self.reconnect_max = reconnect_max
        self.originate_result_timeout = originate_result_timeout
        self.max_message_size = max_message_size
        self.ssl = ssl  # AMI over TLS (manager.conf tlsenable, port 5039) when set
        self.banner: Banner | None = None
        self.logins = 0
        self._tracker = ActionTracker()
        self._futures: dict[str, asyncio.Future[ActionCompleted]] = {}
        self._list_handlers: dict[str, ListHandler] = {}
        self._originates: dict[str, asyncio.Future[Message]] = {}
        self._originate_timers: dict[str, asyncio.TimerHandle] = {}
        self._session: _Session | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._started = False
        self._closing = False

    def __repr__(self) -> str:
        return f"<AmiConnection {self.username}@{self.host}:{self.port} connected={self.connected}>"

    @property
    def connected(self) -> bool:
        return self._session is not None and self._session.ready

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and log in; raise ``AmiUnreachable``, ``AmiAuthError`` or ``AmiTimeout``."""
        if self._started:
            raise RuntimeError("AmiConnection.start() called twice")
        self._started = True
        await self._open_session()
        self._supervisor = asyncio.create_task(self._supervise(), name="ami-supervisor")
        await self._notify_connected()

    async def close(self) -> None:
        """Log off if possible, then cancel and await every task this connection owns."""
        if self._closing:
            return
        self._closing = True
        session = self._session
        if session is not None and session.ready:
            with contextlib.suppress(AmiError):
                await self._request(session, "Logoff", (), timeout=2.0)
        await self._cancel(self._supervisor)
        # The supervisor may have opened a new session while we were logging off.
        for current in {id(s): s for s in (session, self._session) if s is not None}.values():
            current.writer.close()
            await self._cancel(current.reader_task, current.pinger)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(current.writer.wait_closed(), 1.0)
        for timer in self._originate_timers.values():
            timer.cancel()
        self._originate_timers.clear()
        for action_id in list(self._originates):
            self._fail_originate(action_id, AmiConnectionLost("AMI connection closed"))

    @staticmethod
    async def _cancel(*tasks: asyncio.Task[None] | None) -> None:
        owned = [t for t in tasks if t is not None and t is not asyncio.current_task()]
        for task in owned:
            task.cancel()
        await asyncio.gather(*owned, return_exceptions=True)

    async def __aenter__(self) -> AmiConnection:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- actions -------------------------------------------------------------------------------

    async def action(
        self, name: str, headers: Headers = (), timeout: float | None = None, *, check: bool = True
    ) -> Message:
        """Send one action and return its response. ``Response: Error`` raises
        ``AmiActionError`` unless ``check`` is false. Never re-sent (see the module doc)."""
        done = await self._request(self._ready_session(), name, headers, timeout)
        if check and not done.ok:
            raise AmiActionError(done.response)
        return done.response

    async def list_action(
        self,
        name: str,
        headers: Headers = (),
        timeout: float | None = None,
        *,
        apply: ListHandler | None = None,
    ) -> tuple[Message, list[Message]]:
        """A list action (CoreShowChannels, QueueStatus, Status, FAXSessions…): the response
        and the list's events, without the closing ``...Complete`` event. The timeout covers
        the whole list.

        With ``apply`` the list is a snapshot of state the events also change: ``apply(response,
        events)`` is called from the reader the moment the list completes (before this returns),
        and ``on_event`` receives the events that arrived during the list only after it, so an
        event is never overtaken by an older snapshot. Without ``apply`` events flow as usual and
        the caller sees the list only once the reader has moved on."""
        done = await self._request(
            self._ready_session(), name, headers, timeout, on_list=apply
        )
        if not done.ok:
            raise AmiActionError(done.response)
        return done.response, list(done.events)

    async def originate(
        self, headers: Headers, timeout: float | None = None, result_timeout: float | None = None
    ) -> OriginateCall:
        """Async Originate (``Async: true`` is added when missing). Returns once the PBX has
        queued it; ``.result`` resolves with the ``OriginateResponse``. Never re-sent."""
        pairs = _pairs(headers)
        if not any(key.lower() == "async" for key, _ in pairs):
            pairs.append(("Async", "true"))
        session = self._ready_session()
        loop = asyncio.get_running_loop()
        action_id = next_action_id()
        result: asyncio.Future[Message] = loop.create_future()
        result.add_done_callback(_retrieve)
        self._originates[action_id] = result
        try:
            done = await self._request(
                session,
                "Originate",
                pairs,
                timeout,
                follow_event="OriginateResponse",
                action_id=action_id,
            )
            if not done.ok:
                raise AmiActionError(done.response)
        except BaseException:
            self._originates.pop(action_id, None)
            result.cancel()
            raise
        if not result.done():
            wait = self.originate_result_timeout if result_timeout is None else result_timeout
            self._originate_timers[action_id] = loop.call_later(
                wait, self._originate_timed_out, action_id, wait
            )
        return OriginateCall(action_id, done.response, result)

    def _ready_session(self) -> _Session:
        session = self._session
        if session is None or not session.ready:
            raise AmiConnectionLost(f"not connected to AMI at {self.host}:{self.port}")
        return session

    async def _request(
        self,
        session: _Session,
        name: str,
        headers: Headers,
        timeout: float | None,
        *,
        follow_event: str | None = None,
        action_id: str | None = None,
        on_list: ListHandler | None = None,
    ) -> ActionCompleted:
        action_id = action_id or next_action_id()
        data = encode_action(name, action_id, _pairs(headers))
        if session.lost or session.writer.is_closing():
            raise AmiConnectionLost(f"AMI connection to {self.host}:{self.port} is down")
        future: asyncio.Future[ActionCompleted] = asyncio.get_running_loop().create_future()
        self._tracker.expect(
            action_id, follow_event=follow_event, hold_events=on_list is not None
        )
        self._futures[action_id] = future
        if on_list is not None:
            self._list_handlers[action_id] = on_list
        wait = self.action_timeout if timeout is None else timeout
        try:
            session.writer.write(data)
            # Name and id only: the Login action carries the secret.
            log.debug("AMI -> %s (ActionID %s)", name, action_id)
            return await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise AmiTimeout(f"no answer to AMI {name} ({action_id}) within {wait:g} s") from None
        finally:
            self._futures.pop(action_id, None)
            self._list_handlers.pop(action_id, None)
            if not future.done() or future.cancelled() or future.exception() is not None:
                self._tracker.forget(action_id)
                # A snapshot list that timed out held events back: they happened all the same.
                self._deliver_released()

    # -- originate results ---------------------------------------------------------------------

    def _resolve_originate(self, action_id: str, event: Message) -> None:
        timer = self._originate_timers.pop(action_id, None)
        if timer is not None:
            timer.cancel()
        result = self._originates.pop(action_id, None)
        if result is not None and not result.done():
            result.set_result(event)

    def _fail_originate(self, action_id: str, exc: AmiError) -> None:
        self._tracker.forget(action_id)
        result = self._originates.pop(action_id, None)
        if result is not None and not result.done():
            result.set_exception(exc)

    def _originate_timed_out(self, action_id: str, wait: float) -> None:
        self._originate_timers.pop(action_id, None)
        self._fail_originate(
            action_id, AmiTimeout(f"no OriginateResponse for {action_id} within {wait:g} s")
        )

    # -- sessions ------------------------------------------------------------------------------

    async def _open_session(self) -> None:
        """Connect, wait for the banner, log in. Cleans up after itself on failure."""
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self.ssl),
                self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            raise AmiUnreachable(self.host, self.port, str(exc) or type(exc).__name__) from exc
        loop = asyncio.get_running_loop()
        session = _Session(reader, writer, AmiProtocol(self.max_message_size), loop.create_future())
        session.banner.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._session = session
        session.reader_task = asyncio.create_task(self._read_loop(session), name="ami-reader")
        try:
            try:
                self.banner = await asyncio.wait_for(
                    asyncio.shield(session.banner), self.login_timeout
                )
            except TimeoutError:
                raise AmiTimeout(f"no AMI banner from {self.host}:{self.port}") from None
            credentials = [
                ("Username", self.username),
                ("Secret", self._secret),
                ("Events", self.events),
            ]
            done = await self._request(session, "Login", credentials, self.login_timeout)
            if not done.ok:
                raise AmiAuthError(
                    f"AMI login as {self.username!r} refused by {self.host}:{self.port}: "
                    f"{done.response.get('Message') or 'error'}"
                )
        except BaseException:
            session.reason = "login failed"
            session.writer.transport.abort()
            if session.reader_task is not None:
                session.reader_task.cancel()
                await asyncio.gather(session.reader_task, return_exceptions=True)
            raise
        session.ready = True
        self.logins += 1
        log.info("AMI logged in to %s:%d as %s", self.host, self.port, self.username)
        session.pinger = asyncio.create_task(self._ping_loop(session), name="ami-ping")

    async def _read_loop(self, session: _Session) -> None:
        protocol = session.protocol
        reason = "connection closed by the PBX"
        try:
            while True:
                data = await session.reader.read(65536)
                if not data:
                    protocol.receive_eof()
                    self._dispatch(session, protocol.messages_received())
                    break
                protocol.receive_data(data)
                self._dispatch(session, protocol.messages_received())
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc!r}"
        except asyncio.CancelledError:
            reason = "closed"
            raise
        finally:
            self._connection_lost(session, session.reason or reason)

    def _dispatch(self, session: _Session, items: list[ProtocolItem]) -> None:
        tracker = self._tracker
        for item in items:
            if isinstance(item, EventReceived | ResponseReceived):
                for out in tracker.receive(item):
                    if isinstance(out, EventReceived):
                        self._deliver(out.message)
                    elif isinstance(out, ActionCompleted):
                        self._complete(out)
                    elif isinstance(out, FollowUpReceived):
                        # The event itself comes (or came) as a plain EventReceived too: the
                        # call tracker sees our OriginateResponse once, in stream order.
                        self._resolve_originate(out.action_id, out.event)
                    elif isinstance(out, ListAbandoned):
                        self._list_handlers.pop(out.action_id, None)
                        future = self._futures.get(out.action_id)
                        if future is not None and not future.done():
                            future.set_exception(
                                AmiError(
                                    f"AMI list {out.action_id} abandoned: {out.held} events "
                                    "arrived while it was being collected"
                                )
                            )
                    else:
                        log.debug("AMI response nobody waits for: %s", out.message.action_id)
            elif isinstance(item, Banner):
                if not session.banner.done():
                    session.banner.set_result(item)
            else:
                log.warning(
                    "AMI %s:%d: dropped a malformed message (%s, %d bytes)",
                    self.host,
                    self.port,
                    item.kind,
                    item.size,
                )

    def _complete(self, done: ActionCompleted) -> None:
        handler = self._list_handlers.pop(done.action_id, None)
        future = self._futures.get(done.action_id)
        if handler is not None and done.ok and future is not None and not future.done():
            try:
                handler(done.response, list(done.events))
            except Exception:
                log.exception("AMI list handler failed for %s", done.action_id)
        if future is not None and not future.done():
            future.set_result(done)

    def _deliver_released(self) -> None:
        for item in self._tracker.take_released():
            self._deliver(item.message)

    def _deliver(self, message: Message) -> None:
        handler = self.on_event
        if handler is None:
            return
        try:
            handler(message)
        except Exception:
            log.exception("AMI on_event handler failed for %s", message.event)

    def _connection_lost(self, session: _Session, reason: str) -> None:
        if session.lost:
            return
        session.lost = True
        was_ready = session.ready
        session.ready = False
        if self._session is session:
            self._session = None
        session.writer.close()
        if not session.banner.done():
            session.banner.set_exception(AmiConnectionLost(reason))
        for action_id in self._tracker.connection_lost():
            future = self._futures.get(action_id)
            if future is not None and not future.done():
                future.set_exception(
                    AmiConnectionLost(
                        f"AMI connection lost before the answer to {action_id}: "
                        f"{reason}; the action was not re-sent"
                    )
                )
        self._deliver_released()
        if session.pinger is not None and session.pinger is not asyncio.current_task():
            session.pinger.cancel()
        session.done.set()
        if was_ready and not self._closing:
            log.warning("AMI connection to %s:%d lost: %s", self.host, self.port, reason)
            if self.on_disconnected is not None:
                try:
                    self.on_disconnected(reason)
                except Exception:
                    log.exception("AMI on_disconnected handler failed")

    async def _ping_loop(self, session: _Session) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            try:
                await self._request(session, "Ping", (), self.ping_timeout)
            except AmiTimeout:
                log.warning(
                    "AMI %s:%d: no Pong within %g s, reconnecting",
                    self.host,
                    self.port,
                    self.ping_timeout,
                )
                session.abort("ping timeout")
                return
            except AmiConnectionLost:
                return
            except AmiError:
                continue

    async def _supervise(self) -> None:
        """Owns reconnection: waits for the current session to end, then logs in again."""
        while not self._closing:
            session = self._session
            if session is not None:
                await session.done.wait()
                continue
            attempt = 0
            while not self._closing:
                delay = min(self.reconnect_max, self.reconnect_initial * 2**attempt)
                attempt += 1
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                try:
                    await self._open_session()
                    break
                except AmiAuthError as exc:
                    log.error("AMI reconnect: %s; retrying with backoff", exc)
                except AmiError as exc:
                    log.warning("AMI reconnect to %s:%d failed: %s", self.host, self.port, exc)
            else:
                return
            await self._notify_connected()

    async def _notify_connected(self) -> None:
        if self.on_connected is None:
            return
        try:
            await self.on_connected()
        except Exception:
            log.exception("AMI on_connected handler failed")
