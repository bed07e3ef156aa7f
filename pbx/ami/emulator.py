"""An AMI server that replays a recorded AMITRACE over TCP (tests, demos, manual runs).

The recorded RECV blocks are streamed in order. A block answering one of the recorded actions
(found by its recorded ActionID) is held until the client has sent the same action (same name,
in order); then its ActionID, and that of its list events and ``OriginateResponse``, is rewritten
to the client's. A recorded answer the client never asks for is skipped after ``action_wait``
seconds. Actions without a recorded counterpart get Asterisk-like synthetic answers (Ping,
Logoff, Login outside the recording) or go to ``responders``. At a ``# reconnect`` marker the
client socket is closed and the stream resumes once a client has logged in again.

One client receives the stream (the first that logs in with events on: a session that logged in
with ``Events: off``, such as a line's connection check, gets none, as from Asterisk); other
connections only get synthetic answers. While no client is connected the stream pauses.
``CoreSettings`` is answered synthetically with the values of the recorded Asterisk 22.10.1.

``Getvar`` is answered as Asterisk would: a value the test set (``variables``, by channel or for
any channel), else the last ``VarSet`` of that channel streamed so far, else for a channel the
stream has shown its defaults (``CALLERID(pres)`` = ``allowed_not_screened``, others empty);
a channel the stream never showed is ``No such channel``. Channels stay known after their
Hangup, since a replay at full speed outruns the client's questions.

    python -m pbx.ami.emulator TRACE --port 5038 --speed 1 --max-gap 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import inspect
import logging
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pbx.ami.codec import parse_message
from pbx.ami.message import Message
from pbx.ami.trace import Block, BlockKind, Trace, load_trace

log = logging.getLogger(__name__)

DEFAULT_BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_TERMINATOR = b"\r\n\r\n"
_ACTION_ID_LINE = b"\r\nActionID: "
_MAX_ACTION_SIZE = 1 << 20
# Getvar of a live channel whose variable nobody set: what Asterisk answers.
_CHANNEL_DEFAULTS = {"CALLERID(pres)": "allowed_not_screened"}
# CoreSettings as the recorded Asterisk 22.10.1 answered it (00_basics).
_CORE_SETTINGS = (("Response", "Success"), ("AMIversion", "11.0.0"),
                  ("AsteriskVersion", "22.10.1"), ("SystemName", ""), ("CoreMaxCalls", "0"),
                  ("CoreMaxLoadAvg", "0.000000"), ("CoreRunUser", ""), ("CoreRunGroup", ""),
                  ("CoreMaxFilehandles", "0"), ("CoreRealTimeEnabled", "No"),
                  ("CoreCDRenabled", "Yes"), ("CoreHTTPenabled", "No"),
                  ("SoundsSearchCustomDir", "No"))

# ListCommands, synthetic (no recording has one): "<Action>: <synopsis> (Priv: <classes>)" for
# each action whose classes share one with the user's write= (manager.c action_listcommands);
# the actions the product sends and a few others, with the classes Asterisk 22 gives them.
_ACTIONS = (
    ("Ping", "Keepalive command.", ""), ("ListCommands", "List available manager commands.", ""),
    ("Originate", "Originate a call.", "originate"), ("Redirect", "Redirect (transfer) a call.",
                                                     "call"),
    ("BlindTransfer", "Blind transfer channel(s) to the given destination", "call"),
    ("Atxfer", "Attended transfer.", "call"), ("Hangup", "Hangup channel.", "system,call"),
    ("MixMonitor", "Record a call and mix the audio during the recording.", "system,call"),
    ("StopMixMonitor", "Stop recording a call through MixMonitor, and free the recording's "
                       "file handle.", "system,call"),
    ("Getvar", "Gets a channel variable or function value.", "call,reporting"),
    ("Status", "List channel status.", "system,call,reporting"),
    ("CoreShowChannels", "List currently active channels.", "system,reporting"),
    ("CoreSettings", "Show PBX core settings (version etc).", "system,reporting"),
    ("GetConfig", "Retrieve configuration.", "system,config"),
    ("UpdateConfig", "Update basic configuration.", "config"),
    ("ModuleLoad", "Module management.", "system"),
    ("PJSIPShowEndpoints", "Lists PJSIP endpoints.", "system"),
    ("PJSIPShowRegistrationsOutbound", "Lists PJSIP outbound registrations.", "system"),
    ("PJSIPShowContacts", "Lists PJSIP Contacts.", "system"),
    ("PJSIPRegister", "Register an outbound registration.", "system"),
)
ALL_WRITE = frozenset({"system", "call", "originate", "reporting", "config", "command"})


def list_commands(action_id: str | None, write: frozenset[str] = ALL_WRITE) -> bytes:
    pairs = [("Response", "Success")]
    for name, synopsis, priv in _ACTIONS:
        classes = set(priv.split(",")) if priv else set()
        if not classes or classes & write:
            pairs.append((name, f"{synopsis}  (Priv: {priv or '<none>'})"))
    return response(action_id, *pairs)


ResponderResult = list[bytes] | Awaitable[list[bytes]]
Responder = Callable[[Message], ResponderResult]


def response(action_id: str | None, *pairs: tuple[str, str]) -> bytes:
    """Serialize a server message: ``response("7", ("Response", "Success"), ("Ping", "Pong"))``.
    The ActionID goes second, where Asterisk puts it; ``None`` leaves it out."""
    items = list(pairs)
    if action_id is not None:
        items.insert(1, ("ActionID", action_id))
    for key, value in items:
        if any(c in key or c in value for c in "\r\n"):
            raise ValueError(f"line break inside AMI header {key!r}")
    return ("".join(f"{key}: {value}\r\n" for key, value in items) + "\r\n").encode("utf-8")


def action_id_of(data: bytes) -> str | None:
    """The ActionID header of one raw message, without decoding the whole block."""
    start = data.find(_ACTION_ID_LINE)
    if start < 0:
        return None
    start += len(_ACTION_ID_LINE)
    end = data.find(b"\r\n", start)
    return data[start:end].decode("utf-8", "replace")


def rewrite_action_id(data: bytes, old: str, new: str) -> bytes:
    return data.replace(
        _ACTION_ID_LINE + old.encode() + b"\r\n", _ACTION_ID_LINE + new.encode() + b"\r\n", 1
    )


def is_banner(block: Block) -> bool:
    return block.kind is BlockKind.RECV and block.data.startswith(b"Asterisk Call Manager/")


@dataclass(frozen=True, slots=True)
class Segment:
    """Blocks of one TCP connection of the recording (or one demo call). ``first_index`` is the
    index of ``blocks[0]`` in ``Trace.blocks`` (for ``kill_after_block``)."""

    blocks: tuple[Block, ...]
    reconnect_before: bool = False
    first_index: int = 0


def segments_from_trace(trace: Trace) -> list[Segment]:
    segments: list[Segment] = []
    current: list[Block] = []
    first, reconnect = 0, False
    for index, block in enumerate(trace.blocks):
        if block.kind is BlockKind.RECONNECT:
            segments.append(Segment(tuple(current), reconnect, first))
            current, first, reconnect = [], index + 1, True
        else:
            current.append(block)
    segments.append(Segment(tuple(current), reconnect, first))
    return segments


@dataclass(slots=True)
class _Send:
    index: int
    name: str  # lower case: AMI action names are case-insensitive
    recorded_id: str


@dataclass(slots=True)
class _SegmentState:
    segment: Segment
    sends: list[_Send]
    reply_ids: list[str | None]  # per block: recorded ActionID of one of our recorded sends
    goodbyes: set[str]  # recorded ids of Logoff actions: close after their answer
    refused_logins: set[str]  # recorded failed logins: a refused client login plays them
    matched: dict[str, str] = field(default_factory=dict)  # recorded id -> client's id
    expired: set[str] = field(default_factory=set)
    cursor: int = 0

    @classmethod
    def build(cls, segment: Segment) -> _SegmentState:
        sends: list[_Send] = []
        for index, block in enumerate(segment.blocks):
            if block.kind is BlockKind.SEND:
                message = parse_message(block.data)
                recorded_id = message.action_id
                if recorded_id is not None:
                    name = (message.get("Action") or "").lower()
                    sends.append(_Send(index, name, recorded_id))
        ids = {send.recorded_id for send in sends}
        reply_ids: list[str | None] = []
        for block in segment.blocks:
            action_id = action_id_of(block.data) if block.kind is BlockKind.RECV else None
            reply_ids.append(action_id if action_id in ids else None)
        goodbyes = {send.recorded_id for send in sends if send.name == "logoff"}
        refused = {
            action_id
            for block, action_id in zip(segment.blocks, reply_ids, strict=True)
            if action_id is not None and block.data.startswith(b"Response: Error")
        }
        refused_logins = {s.recorded_id for s in sends if s.name == "login"} & refused
        return cls(segment, sends, reply_ids, goodbyes, refused_logins)

    def reached(self, index: int) -> bool:
        """True when every recorded byte before block ``index`` has been sent."""
        return all(
            block.kind is not BlockKind.RECV or is_banner(block)
            for block in self.segment.blocks[self.cursor : index]
        )


class _Clock:
    """Recorded time -> wall time, with ``speed`` and gap compression. Rebased after every wait
    on the client so that its think time does not make the following blocks burst out."""

    def __init__(self, speed: float, max_gap: float | None) -> None:
        self.speed = speed
        self.max_gap = max_gap
        self.restart()

    def restart(self) -> None:
        self._prev_t = 0.0
        self._virtual = 0.0
        self.rebase()

    def rebase(self) -> None:
        self._anchor_wall = time.monotonic()
        self._anchor_virtual = self._virtual

    async def wait(self, t: float) -> None:
        gap = max(t - self._prev_t, 0.0)
        self._prev_t = t
        if self.max_gap is not None:
            gap = min(gap, self.max_gap)
        self._virtual += gap
        if self.speed <= 0:
            await asyncio.sleep(0)  # let the client's reader run between blocks
            return
        target = self._anchor_wall + (self._virtual - self._anchor_virtual) / self.speed
        await asyncio.sleep(max(target - time.monotonic(), 0.0))


class _Client:
    def __init__(self, number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.number = number
        self.reader = reader
        self.writer = writer
        self.logged_in = False

    @property
    def alive(self) -> bool:
        return not self.writer.is_closing()

    def send(self, data: bytes) -> None:
        if self.alive:
            self.writer.write(data)

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self.writer.drain()

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


class AmiEmulator:
    """Replaying AMI server. Use ``async with AmiEmulator(trace) as emu`` and connect to
    ``emu.port``; leaving the block stops the server and every task it started."""

    def __init__(
        self,
        source: Trace | Iterable[Segment],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "crm",
        secret: str = "crm-secret",
        speed: float = 0.0,
        max_gap: float | None = None,
        action_wait: float = 5.0,
        auth_failure_delay: float = 1.0,
        responders: Mapping[str, Responder] | None = None,
        variables: Mapping[tuple[str | None, str], str] | None = None,
        held_answers: Iterable[str] = (),
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self._ssl = ssl  # AMI over TLS (manager.conf tlsenable), for the TLS tests
        if isinstance(source, Trace):
            self._source: Iterable[Segment] = segments_from_trace(source)
            self._banner = next((b.data for b in source.blocks if is_banner(b)), DEFAULT_BANNER)
        else:
            self._source = source
            self._banner = DEFAULT_BANNER
        self.host = host
        self.port = port
        self.username = username
        self._secret = secret
        self.action_wait = action_wait
        self.auth_failure_delay = auth_failure_delay
        self.responders = {name.lower(): fn for name, fn in (responders or {}).items()}
        # the write= classes of the emulated AMI user (what ListCommands offers)
        self.write_classes: frozenset[str] = ALL_WRITE
        self._clock = _Clock(speed, max_gap)
        self.received_actions: list[Message] = []
        self.connections = 0  # TCP connections accepted
        self.logins = 0  # successful logins
        self.login_usernames: list[str] = []  # of each successful login, in order
        self.blocks_sent = 0
        self.finished = asyncio.Event()  # every recorded block has been streamed
        self._server: asyncio.Server | None = None
        self._streamer: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._clients: list[_Client] = []
        self._clients_changed = asyncio.Event()  # a client socket opened or closed
        self._active: _Client | None = None
        self._active_changed = asyncio.Event()
        self._matched = asyncio.Event()
        self._action_seen = asyncio.Event()
        self._segment: _SegmentState | None = None
        self._id_map: dict[str, str] = {}  # recorded ActionID -> client's, across segments
        self._kill_after: set[int] = set()
        self._pause_after: set[int] = set()
        self.paused = asyncio.Event()  # the stream is held by pause_after_block()
        self._resume = asyncio.Event()
        self._drop_on: dict[str, int] = {}
        # (channel or None for any, variable) -> value: what Getvar answers
        self.variables: dict[tuple[str | None, str], str] = dict(variables or {})
        self._channel_vars: dict[str, dict[str, str]] = {}
        # answers to these actions wait for release_answers() (a PBX that is slow to answer)
        self._held_answers = {name.lower(): asyncio.Event() for name in held_answers}

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> AmiEmulator:
        self._server = await asyncio.start_server(self._handle, self.host, self.port,
                                                  ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        self._streamer = asyncio.create_task(self._stream(), name="ami-emulator-stream")
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for client in list(self._clients):
            client.abort()
        tasks = [t for t in (self._streamer, *self._handlers) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AmiEmulator:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- test controls -------------------------------------------------------------------------

    def kill_after_block(self, index: int) -> None:
        """Abort the client's socket right after block ``index`` of ``Trace.blocks`` is sent."""
        self._kill_after.add(index)

    def pause_after_block(self, index: int) -> None:
        """Hold the stream right after block ``index`` of ``Trace.blocks`` is sent (``paused``
        is set) until ``resume()``: a test can act on the call at that point of the recording.
        Actions are still answered meanwhile."""
        self._pause_after.add(index)

    def resume(self) -> None:
        self._resume.set()

    def drop_on_action(self, name: str, times: int = 1) -> None:
        """Abort the socket when the client sends action ``name`` (recorded, never answered)."""
        self._drop_on[name.lower()] = times

    async def drop_client(self) -> None:
        """Abort the streaming client's socket now, as a network failure would."""
        client = self._active
        if client is not None:
            self._set_active(None)
            client.abort()
        await asyncio.sleep(0)

    async def inject(self, data: bytes) -> None:
        """Write raw bytes (malformed frames welcome) to the streaming client."""
        client = self._active
        if client is None:
            raise RuntimeError("no client to inject into")
        client.send(data)
        await client.drain()

    def release_answers(self, name: str) -> None:
        """Send the held answers to ``name`` actions (and answer later ones at once)."""
        self._held_answers[name.lower()].set()

    def actions_named(self, name: str) -> list[Message]:
        return [m for m in self.received_actions if (m.get("Action") or "").lower() == name.lower()]

    async def wait_for_action(self, name: str, count: int = 1, timeout: float = 5.0) -> Message:
        async with asyncio.timeout(timeout):
            while len(self.actions_named(name)) < count:
                self._action_seen.clear()
                await self._action_seen.wait()
        return self.actions_named(name)[count - 1]

    @property
    def open_connections(self) -> int:
        """Client sockets open now (a line's old connection is gone once closed)."""
        return len(self._clients)

    async def wait_open_connections(self, count: int) -> None:
        """Until exactly ``count`` client sockets are open (bound it with asyncio.timeout)."""
        while len(self._clients) != count:
            self._clients_changed.clear()
            await self._clients_changed.wait()

    async def wait_for_client(self, timeout: float = 5.0) -> None:
        """Until a client is logged in and receiving the stream."""
        async with asyncio.timeout(timeout):
            while self._active is None:
                self._active_changed.clear()
                await self._active_changed.wait()

    # -- connections ---------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        client = _Client(self.connections, reader, writer)
        self._clients.append(client)
        self._clients_changed.set()
        buffer = b""
        try:
            client.send(self._banner)
            while client.alive:
                data = await reader.read(65536)
                if not data:
                    break
                buffer += data
                *blocks, buffer = buffer.split(_TERMINATOR)
                if len(buffer) > _MAX_ACTION_SIZE:
                    log.warning("client %d sent an oversized action; closing", client.number)
                    break
                for block in blocks:
                    if block.strip():
                        await self._on_action(client, parse_message(block))
                await client.drain()
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # Only close() cancels handlers. Ending quietly matters: asyncio 3.11's
            # start_server callback logs a cancelled handler task as an error.
            pass
        finally:
            self._clients.remove(client)
            self._clients_changed.set()
            if self._active is client:
                self._set_active(next((c for c in self._clients if c.logged_in), None))
            client.close()  # graceful: a Goodbye or an auth error still in the buffer is sent
            self._handlers.discard(task)

    def _set_active(self, client: _Client | None) -> None:
        self._active = client
        self._active_changed.set()

    async def _on_action(self, client: _Client, message: Message) -> None:
        self.received_actions.append(message)
        self._action_seen.set()
        name = message.get("Action") or ""
        key = name.lower()
        action_id = message.action_id
        if self._drop_on.get(key):
            self._drop_on[key] -= 1
            if self._active is client:
                self._set_active(None)
            client.abort()
            return
        if key == "login":
            await self._login(client, message)
            return
        if not client.logged_in:
            denied = ("Message", "Permission denied")
            client.send(response(action_id, ("Response", "Error"), denied))
            return
        if client is self._active and action_id is not None and self._match(key, action_id):
            return
        responder = self.responders.get(key)
        if responder is not None:
            result = responder(message)
            chunks = await result if inspect.isawaitable(result) else result
            for chunk in chunks:
                client.send(chunk)
        elif key == "getvar":
            task = asyncio.create_task(self._getvar(client, message))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        elif key == "coresettings":
            client.send(response(action_id, *_CORE_SETTINGS))
        elif key == "listcommands":
            client.send(list_commands(action_id, self.write_classes))
        elif key == "ping":
            client.send(
                response(
                    action_id,
                    ("Response", "Success"),
                    ("Ping", "Pong"),
                    ("Timestamp", f"{time.time():.6f}"),
                )
            )
        elif key == "logoff":
            client.send(
                response(
                    action_id, ("Response", "Goodbye"), ("Message", "Thanks for all the fish.")
                )
            )
            await client.drain()
            client.close()
        else:
            text = (
                f"Invalid/unknown command: {name}. "
                "Use Action: ListCommands to show available commands."
            )
            client.send(response(action_id, ("Response", "Error"), ("Message", text)))

    async def _getvar(self, client: _Client, message: Message) -> None:
        held = self._held_answers.get("getvar")
        if held is not None:
            await held.wait()
        action_id = message.action_id
        variable = message.get("Variable") or ""
        channel = message.get("Channel")
        value = self.variables.get((channel, variable), self.variables.get((None, variable)))
        if value is None and channel:
            known = self._channel_vars.get(channel)
            if known is None:
                client.send(response(action_id, ("Response", "Error"),
                                     ("Message", "No such channel")))
                await client.drain()
                return
            value = known.get(variable, _CHANNEL_DEFAULTS.get(variable, ""))
        client.send(response(action_id, ("Response", "Success"), ("Variable", variable),
                             ("Value", value or "")))
        await client.drain()

    def _learn(self, data: bytes) -> None:
        """Channels and their variables, as the streamed events show them (for Getvar)."""
        if not data.startswith((b"Event: Newchannel\r\n", b"Event: VarSet\r\n")):
            return
        h = parse_message(data).headers
        channel = h.get("Channel")
        if not channel:
            return
        known = self._channel_vars.setdefault(channel, {})
        if h.get("Event") == "VarSet" and h.get("Variable"):
            known[h["Variable"]] = h.get("Value") or ""

    async def _login(self, client: _Client, message: Message) -> None:
        action_id = message.action_id
        if message.get("Username") != self.username or message.get("Secret") != self._secret:
            self._expire_refused_login()
            # Real Asterisk answers a failed login after about a second, then hangs up.
            if self.auth_failure_delay > 0:
                await asyncio.sleep(self.auth_failure_delay)
            client.send(
                response(action_id, ("Response", "Error"), ("Message", "Authentication failed"))
            )
            await client.drain()
            client.close()
            return
        client.logged_in = True
        self.logins += 1
        self.login_usernames.append(message.get("Username") or "")
        wants_events = (message.get("Events") or "on").strip().lower() != "off"
        if self._active is None and wants_events:
            self._set_active(client)
            if action_id is not None and self._match("login", action_id):
                return  # the recorded answer (and FullyBooted) comes from the stream
        client.send(
            response(action_id, ("Response", "Success"), ("Message", "Authentication accepted"))
            + response(
                None,
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", "3"),
                ("LastReload", "3"),
                ("Status", "Fully Booted"),
            )
        )

    def _expire_refused_login(self) -> None:
        """A recorded failed login is answered here (with the synthetic error, which is the
        same bytes), so the stream must not wait for it."""
        state = self._segment
        if state is None:
            return
        for send in state.sends:
            if send.recorded_id in state.refused_logins and send.recorded_id not in state.expired:
                state.expired.add(send.recorded_id)
                self._matched.set()
                return

    def _match(self, key: str, action_id: str) -> bool:
        state = self._segment
        if state is None:
            return False
        for send in state.sends:
            if send.name != key or send.recorded_id in state.matched:
                continue
            if send.recorded_id in state.expired:
                continue
            if key in ("logoff", "login") and not state.reached(send.index):
                return False  # leaving (or arriving) before the recording did: answer now
            state.matched[send.recorded_id] = action_id
            self._id_map[send.recorded_id] = action_id
            self._matched.set()
            return True
        return False

    # -- the stream ----------------------------------------------------------------------------

    async def _stream(self) -> None:
        for segment in self._source:
            state = _SegmentState.build(segment)
            self._segment = state
            if segment.reconnect_before and self._active is not None:
                await self.drop_client()
            self._clock.restart()
            await self._play(state)
        self.finished.set()

    async def _play(self, state: _SegmentState) -> None:
        blocks = state.segment.blocks
        for index, block in enumerate(blocks):
            state.cursor = index
            if block.kind is BlockKind.SEND:
                await self._clock.wait(block.t)
                continue
            if block.kind is not BlockKind.RECV or is_banner(block):
                continue
            data = block.data
            recorded_id = state.reply_ids[index]
            if recorded_id is not None:
                client_id = await self._await_match(state, recorded_id)
                if client_id is None:
                    continue
                data = rewrite_action_id(data, recorded_id, client_id)
            else:
                foreign = action_id_of(data) if _ACTION_ID_LINE in data else None
                if foreign is not None and foreign in self._id_map:
                    data = rewrite_action_id(data, foreign, self._id_map[foreign])
            await self._clock.wait(block.t)
            client = await self._streaming_client()
            client.send(data)
            self._learn(data)
            state.cursor = index + 1
            self.blocks_sent += 1
            if recorded_id is not None and recorded_id in state.goodbyes:
                await client.drain()
                client.close()
            elif state.segment.first_index + index in self._kill_after:
                await self.drop_client()
            else:
                await client.drain()
            if state.segment.first_index + index in self._pause_after:
                self._resume.clear()
                self.paused.set()
                await self._resume.wait()
                self.paused.clear()
                self._clock.rebase()
        state.cursor = len(blocks)

    async def _streaming_client(self) -> _Client:
        waited = False
        while self._active is None or not self._active.alive:
            if self._active is not None:
                self._set_active(None)
            waited = True
            self._active_changed.clear()
            await self._active_changed.wait()
        if waited:
            self._clock.rebase()
        return self._active

    async def _await_match(self, state: _SegmentState, recorded_id: str) -> str | None:
        """The client's ActionID for a recorded action, or None once ``action_wait`` passed
        (Login waits for ever: nothing can be streamed before it)."""
        if recorded_id in state.matched:
            return state.matched[recorded_id]
        is_login = any(s.recorded_id == recorded_id and s.name == "login" for s in state.sends)
        loop = asyncio.get_running_loop()
        deadline = None if is_login else loop.time() + self.action_wait
        while recorded_id not in state.matched:
            if recorded_id in state.expired:
                return None
            if is_login and self._active is not None:
                # The streaming client logged in before this segment began (answered with a
                # synthetic response): the recorded login answer would be a second one.
                state.expired.add(recorded_id)
                return None
            self._matched.clear()
            timeout = None if deadline is None else deadline - loop.time()
            if timeout is not None and timeout <= 0:
                state.expired.add(recorded_id)
                log.debug("recorded action %s not sent by the client: skipped", recorded_id)
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._matched.wait(), timeout)
        self._clock.rebase()
        return state.matched[recorded_id]


def _main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Replay an AMITRACE file as an AMI server.")
    parser.add_argument("trace", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--speed", type=float, default=1.0, help="0 = as fast as possible")
    parser.add_argument("--max-gap", type=float, default=None, help="cap on silent gaps (s)")
    parser.add_argument("--username", default="crm")
    parser.add_argument("--secret", default="crm-secret")
    parser.add_argument("--action-wait", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    async def run() -> None:
        emulator = AmiEmulator(
            load_trace(args.trace),
            host=args.host,
            port=args.port,
            username=args.username,
            secret=args.secret,
            speed=args.speed,
            max_gap=args.max_gap,
            action_wait=args.action_wait,
        )
        async with emulator:
            log.info("replaying %s on %s:%d", args.trace.name, args.host, emulator.port)
            await emulator.finished.wait()
            log.info("trace finished; still answering actions (Ctrl-C to stop)")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    _main()
