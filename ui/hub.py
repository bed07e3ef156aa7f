"""The websocket hub: core events from the bus to every console, filtered per user.

Protocol (see docs/events.md):

* The server accepts, then closes with 4401 when the session has no valid user (and 4403 for a
  foreign ``Origin``), so the console can tell "log in again" from "reconnect".
* It sends ``{"type": "hello", "seq": N, "boot": B, "user": {...}}``; ``seq`` is the last event
  sequence at that moment and ``boot`` names this server run (sequences restart with it).
* The console's first message is ``{"type": "resume", "after": N, "boot": B}`` after a
  reconnect, or ``{"type": "start"}`` for a fresh page. Nothing is sent before it (for
  ``start_grace`` seconds), so replayed events never overtake live ones. The server answers a
  resume with every visible event after N, or ``{"type": "reset"}`` when it no longer holds
  them (or the server restarted); the console then reloads ``GET /api/calls/live``.
* ``{"type": "ping"}`` is answered with ``{"type": "pong"}`` (the console's liveness check).

Fan-out follows the measured pitfall (shared/LIBRARIES.md): each event is serialized once per
distinct text (per-user filtering decides whether a console gets it, and which text), and, where
the server offers it (``ui.ws_frames``), framed once: publishing writes the same bytes to every
idle console whose socket takes them, and appends to the bounded queue of the others, which
their own sender task drains. A connection whose queue overflows, or whose send (or wait for a
full socket buffer) does not finish within ``send_timeout``, is closed with 1013 — it
reconnects and resumes, and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect

from callcenter.bus import BusEvent
from callcenter.calls.visibility import can_see_event, match_for_user
from callcenter.models import User
from callcenter.services import Services
from callcenter.store.base import NotFound
from ui.security import session_epoch, session_user_id
from ui.ws_frames import FrameSink, frame_sink, text_frame

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN_ORIGIN = 4403
CLOSE_TRY_AGAIN = 1013  # overflow or send timeout: reconnect and resume
CLOSE_GOING_AWAY = 1001
MAX_CLIENT_MESSAGE = 4096

Visibility = Callable[[User, dict[str, Any], bool], bool]
# What a connection's queue holds: (seq, text), or (seq, frame) where the hub frames itself.
Outgoing = tuple[int, str | bytes]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _with_match(event: BusEvent, match: dict[str, Any]) -> str:
    return _dumps({"seq": event.seq, "type": event.topic, "at": event.at,
                   "data": dict(event.data, match=match)})


@dataclass(eq=False)
class Connection:
    websocket: WebSocket
    user: User
    queue: asyncio.Queue[Outgoing | None]
    epoch: int = 0  # the session epoch the console was authorised with
    sink: FrameSink | None = None  # the server lets the hub write frames (ui.ws_frames)
    backlog: list[Outgoing] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    last_sent: int = 0
    sending_since: float = 0.0  # monotonic start of the send in progress, 0 when idle
    close_code: int | None = None  # set when the hub decided to drop the connection
    streaming: bool = False  # the send loop went live: a late "resume" can only get a reset
    # The bus's last sequence when the console subscribed: it has shown a call when one of the
    # call's events visible to its user came after this (``Hub._shown``).
    since: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    gone: asyncio.Event = field(default_factory=asyncio.Event)  # left ``Hub.connections``

    def offer(self, seq: int, text: str | bytes) -> bool:
        """Queue one message; False when the queue is full (the caller drops the client)."""
        try:
            self.queue.put_nowait((seq, text))
        except asyncio.QueueFull:
            return False
        return True

    def drop(self, code: int) -> None:
        """Stop this connection from outside its tasks (synchronous: called from publish)."""
        if self.close_code is None:
            self.close_code = code
        for task in self.tasks:
            task.cancel()


class Hub:
    def __init__(
        self,
        *,
        queue_size: int = 1000,
        send_timeout: float = 5.0,
        max_replay: int = 2000,  # events behind (visible or not) beyond which resume resets
        start_grace: float = 5.0,
        close_timeout: float = 1.0,
        visible: Visibility | None = None,
        access_interval: float = 20.0,
        max_tracked: int = 20_000,  # calls whose viewers are remembered (live calls, bounded)
    ) -> None:
        self.queue_size = queue_size
        self.send_timeout = send_timeout
        self.max_replay = max_replay
        self.start_grace = start_grace
        self.close_timeout = close_timeout
        # Who sees an event: given here (tests, benchmarks), else by start()'s caller.
        self.visible: Visibility = visible or can_see_event
        self._own_rule = visible is not None
        # How often the users of open consoles are read again: a change made by another
        # process (``callcenter user disable`` ...) reaches no disconnect_user() here.
        self.access_interval = access_interval
        self.boot = secrets.token_hex(6)
        self.services: Services | None = None
        self.connections: set[Connection] = set()
        # Call id -> {user id: sequence of the call's last event that user could see}. A console
        # that has shown a call keeps getting its events even when the call stops matching the
        # user's visibility (a late caller-ID re-match), so no card is left ringing; kept once
        # per call and user, not as a set of calls per console (1,000 consoles x 1,000 live
        # calls were 32 MB of sets). Dropped with the call's end; at most ``max_tracked``.
        self._shown: dict[str, dict[int, int]] = {}
        self.max_tracked = max_tracked
        self.dropped = 0  # connections closed for overflow or slowness (for tests/benchmarks)
        self._unsubscribe: Callable[[], None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._access: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, services: Services, visible: Visibility | None = None) -> None:
        """``visible``: the product's rule (the routing's), unless one was given to the
        constructor."""
        self.services = services
        if visible is not None and not self._own_rule:
            self.visible = visible
        self._unsubscribe = services.bus.subscribe(self._on_event)
        loop = asyncio.get_running_loop()
        self._watchdog = loop.create_task(self._watch(), name="ws-watchdog")
        self._access = loop.create_task(self._watch_access(), name="ws-access")

    async def stop(self) -> None:
        """Unsubscribe, then cancel and await every connection's tasks."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        conns = list(self.connections)
        tasks = [t for c in conns for t in c.tasks]
        if self._watchdog is not None:
            self._watchdog.cancel()
            tasks.append(self._watchdog)
            self._watchdog = None
        if self._access is not None:
            self._access.cancel()
            tasks.append(self._access)
            self._access = None
        for conn in conns:
            conn.drop(CLOSE_GOING_AWAY)
        await asyncio.gather(*tasks, return_exceptions=True)

    def disconnect_user(self, user_id: int) -> int:
        """Close a user's consoles after their role, extension or access changed: each
        reconnects and is authorised afresh (or refused, when disabled)."""
        dropped = 0
        for conn in tuple(self.connections):
            if conn.user.id == user_id:
                conn.drop(CLOSE_TRY_AGAIN)
                dropped += 1
        return dropped

    @property
    def tracked_calls(self) -> int:
        """How many calls the hub remembers the viewers of (for tests and benchmarks)."""
        return len(self._shown)

    @property
    def managers_see_all(self) -> bool:
        assert self.services is not None
        return self.services.config.console.managers_see_all_clients

    # -- fan-out (synchronous, on the loop) ---------------------------------------------------

    def _on_event(self, event: BusEvent) -> None:
        call_id = (event.data.get("call") or {}).get("id")
        if not self.connections:
            self._shown.clear()  # a console that connects later has shown none of them
            return
        text: str | None = None  # serialized once, shared by every connection
        # What each user may see is decided once per user, however many consoles they have
        # open: user id -> visible, user id -> the text for them.
        visible_to: dict[int, bool] = {}
        texts: dict[int, str] = {}
        frames: dict[str, bytes] = {}  # text -> its frame, built once for every socket
        see_all = self.managers_see_all
        shown: dict[int, int] = {}
        if isinstance(call_id, str):
            shown = self._shown.get(call_id) or {}
        for conn in tuple(self.connections):
            if conn.close_code is not None:
                continue
            user = conn.user
            visible = visible_to.get(user.id)
            if visible is None:
                visible = visible_to[user.id] = self.visible(user, event.data, see_all)
            # Not visible: still sent to a console that has shown the call (an earlier event
            # of it, visible to this user, came after the console subscribed).
            if not visible and shown.get(user.id, -1) <= conn.since:
                continue
            out = texts.get(user.id)
            if out is None:
                own = match_for_user(user, event.data.get("match"), see_all)
                if own is not None:
                    # Another manager's clients are among the tie candidates: this user gets
                    # their own copy.
                    out = _with_match(event, own)
                else:
                    if text is None:
                        text = event.text or _dumps(event.to_json())
                    out = text
                texts[user.id] = out
            sink = conn.sink
            item: str | bytes = out
            if sink is not None:
                item = frames.get(out) or frames.setdefault(out, text_frame(out.encode()))
                # Idle (nothing queued or being sent) and the socket takes it: write now, in
                # order, without waking the connection's task.
                if (conn.streaming and not conn.sending_since and conn.queue.empty()
                        and sink.writable.is_set()):
                    if sink.write_frame(item):
                        conn.last_sent = event.seq
                    continue  # not written: the connection is closing, its tasks end it
            if not conn.offer(event.seq, item):
                self.dropped += 1
                log.warning("console of %s fell %d events behind; closing it",
                            conn.user.login, self.queue_size)
                conn.drop(CLOSE_TRY_AGAIN)
        if isinstance(call_id, str):
            self._remember(call_id, event, visible_to)

    def _remember(self, call_id: str, event: BusEvent, visible_to: dict[int, bool]) -> None:
        if event.topic in ("call.ended", "call.missed"):
            self._shown.pop(call_id, None)  # its later events go by visibility alone, as new
            return
        seen = [uid for uid, visible in visible_to.items() if visible]
        if not seen:
            return
        users = self._shown.pop(call_id, None)  # re-inserted last: the order is by last event
        if users is None:
            if len(self._shown) >= self.max_tracked:  # calls unheard from longest go first
                del self._shown[next(iter(self._shown))]
            users = {}
        self._shown[call_id] = users
        for uid in seen:
            users[uid] = event.seq

    async def _watch(self) -> None:
        """Drops consoles whose send has not finished within ``send_timeout``. One timer for
        the hub rather than one per send: at 1,000 consoles a per-send timeout was a fifth of
        the fan-out's CPU time."""
        while True:
            await asyncio.sleep(max(self.send_timeout / 4, 0.05))
            now = time.monotonic()
            for conn in tuple(self.connections):
                since = conn.sending_since
                if since and now - since > self.send_timeout and conn.close_code is None:
                    self.dropped += 1
                    log.warning("console of %s did not take a message within %g s; closing it",
                                conn.user.login, self.send_timeout)
                    conn.drop(CLOSE_TRY_AGAIN)

    async def _watch_access(self) -> None:
        while True:
            await asyncio.sleep(self.access_interval)
            try:
                await self.check_access()
            except Exception:  # a locked or closing database: try again next round
                log.exception("checking the users of open consoles failed")

    async def check_access(self) -> int:
        """One query over the users of the open consoles; closes those whose user was
        disabled, logged out, given a new password, a one-time login or another role since
        the console connected. Returns how many were closed."""
        if self.services is None or not self.connections:
            return 0
        conns = [c for c in tuple(self.connections) if c.close_code is None]
        access = await self.services.store.user_access({c.user.id for c in conns})
        dropped = 0
        for conn in conns:
            now = access.get(conn.user.id)
            if (now is None or not now.active or now.one_time_login
                    or now.session_epoch != conn.epoch):
                conn.drop(CLOSE_UNAUTHENTICATED)
            elif now.role != conn.user.role.value:
                conn.drop(CLOSE_TRY_AGAIN)  # reconnect: the new rights apply from then on
            else:
                continue
            dropped += 1
        return dropped

    # -- one connection -----------------------------------------------------------------------

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if not self._origin_ok(websocket):
            await self._close(websocket, CLOSE_FORBIDDEN_ORIGIN)
            return
        found = await self._user(websocket)
        if found is None or self.services is None:
            await self._close(websocket, CLOSE_UNAUTHENTICATED)
            return
        user, epoch = found
        conn = Connection(websocket, user, asyncio.Queue(self.queue_size), epoch,
                          sink=frame_sink(websocket.scope))
        hello = {"type": "hello", "seq": self.services.bus.last_seq, "boot": self.boot,
                 "user": {"id": user.id, "name": user.name, "role": user.role.value,
                          "extension": user.extension, "language": user.language}}
        conn.backlog.append((0, _dumps(hello)))
        # Subscribed from here on: live events queue up while the client says how to start.
        conn.since = hello["seq"]
        self.connections.add(conn)
        conn.tasks = [
            asyncio.create_task(self._receive_loop(conn), name=f"ws-recv-{user.login}"),
            asyncio.create_task(self._send_loop(conn), name=f"ws-send-{user.login}"),
        ]
        try:
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.connections.discard(conn)
            conn.gone.set()
            for task in conn.tasks:
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            if conn.close_code is not None:
                await self._close(websocket, conn.close_code)

    def _origin_ok(self, websocket: WebSocket) -> bool:
        """Cross-site websocket hijacking guard: a browser always sends Origin; it must name
        this host. Non-browser clients (benchmarks, tools) send none and need a session all
        the same."""
        origin = websocket.headers.get("origin")
        if not origin:
            return True
        hosts = {websocket.headers.get("host", ""), websocket.headers.get("x-forwarded-host", "")}
        return urlsplit(origin).netloc in hosts - {""}

    async def _user(self, websocket: WebSocket) -> tuple[User, int] | None:
        uid = session_user_id(websocket)
        if uid is None or self.services is None:
            return None
        try:
            user = await self.services.store.get_user(uid)
            epoch = await self.services.store.session_epoch(uid)
        except NotFound:
            return None
        if session_epoch(websocket) != epoch:
            return None  # logged out (or the password changed) since this cookie was made
        # A one-time password opens nothing but the page that replaces it.
        return (user, epoch) if user.active and not user.one_time_login else None

    async def _close(self, websocket: WebSocket, code: int) -> None:
        # A client that stopped reading may never take the close frame: do not wait for it.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.close_timeout):
                await websocket.close(code)

    async def _receive_loop(self, conn: Connection) -> None:
        while True:
            try:
                message = await conn.websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if not text or len(text) > MAX_CLIENT_MESSAGE:
                continue
            try:
                request = json.loads(text)
            except json.JSONDecodeError:
                continue
            if isinstance(request, dict):
                self._on_client_message(conn, request)

    def _on_client_message(self, conn: Connection, request: dict[str, Any]) -> None:
        kind = request.get("type")
        if kind == "ping":
            if not conn.offer(0, '{"type":"pong"}'):
                conn.drop(CLOSE_TRY_AGAIN)
        elif kind in ("resume", "start") and not conn.ready.is_set():
            if conn.streaming:
                # Too late: live events already went out, a replay now would come out of
                # order. The console reloads the live calls instead.
                if kind == "resume" and not conn.offer(0, '{"type":"reset"}'):
                    conn.drop(CLOSE_TRY_AGAIN)
            elif kind == "resume":
                conn.backlog += self._replay(conn.user, request.get("after"), request.get("boot"))
            conn.ready.set()

    def _replay(self, user: User, after: Any, boot: Any) -> list[tuple[int, str]]:
        assert self.services is not None
        bus = self.services.bus
        reset = [(0, '{"type":"reset"}')]
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            return reset
        if (boot is not None and boot != self.boot) or after > bus.last_seq:
            return reset  # another server run: its sequence numbers mean nothing here
        # Decided by sequence number before anything is parsed: a console far behind gets
        # its reset at once instead of the loop parsing the whole window (1.4 s for 20,000).
        events = bus.since(after, limit=self.max_replay)
        if events is None:
            return reset  # left the window, or reloading the live calls is cheaper
        see_all = self.managers_see_all
        return [(e.seq, self._text_for(user, e, see_all)) for e in events
                if self.visible(user, e.data, see_all)]

    def _text_for(self, user: User, event: BusEvent, see_all: bool) -> str:
        own = match_for_user(user, event.data.get("match"), see_all)
        if own is not None:
            return _with_match(event, own)
        return event.text or _dumps(event.to_json())

    async def _send_loop(self, conn: Connection) -> None:
        ws = conn.websocket
        try:
            await self._send(conn, conn.backlog.pop(0))  # hello
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(conn.ready.wait(), self.start_grace)
            while conn.backlog:
                await self._send(conn, conn.backlog.pop(0))
            conn.streaming = True
            while True:
                item = await conn.queue.get()
                if item is None:
                    return
                await self._send(conn, item)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return  # the client went away; the receive loop ends too
        except Exception as exc:  # uvicorn's ClientDisconnected and the like
            log.debug("websocket send to %s failed: %r", ws.client, exc)

    async def _send(self, conn: Connection, item: Outgoing) -> None:
        seq, text = item
        if seq and seq <= conn.last_sent:
            return  # already sent in the replay
        conn.sending_since = time.monotonic()  # watched by _watch
        sink = conn.sink
        if sink is None:
            assert isinstance(text, str)
            await conn.websocket.send_text(text)
        else:
            if not sink.writable.is_set():
                await sink.writable.wait()  # the socket's buffer is full: watched by _watch
            frame = text if isinstance(text, bytes) else text_frame(text.encode())
            if not sink.write_frame(frame):
                raise ConnectionResetError("the websocket is closing")
        conn.sending_since = 0.0
        if seq:
            conn.last_sent = seq
