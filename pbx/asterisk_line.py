"""An Asterisk PBX line: AMI connection + call correlator + call control, behind core types.

It translates AMI into line events for the core's call registry, and the core's call actions
(click-to-call, transfers, hang-up, recording) into AMI actions on the right channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from callcenter.config import PbxLineConfig
from callcenter.errors import CallActionFailed, CallNotFound, LineUnavailable
from callcenter.line_events import (
    Answered,
    CallEnded,
    CallerChanged,
    CallStarted,
    Direction,
    LineEvent,
)
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from pbx.ami.codec import ActionEncodingError
from pbx.ami.connection import AmiConnection
from pbx.ami.correlator import WITHHELD_NUMBERS, AmiCallCorrelator, CorrelatorConfig
from pbx.ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionLost,
    AmiError,
    AmiTimeout,
)
from pbx.ami.message import Message
from pbx.ami.withheld import PRESENTATION_VARIABLE, PresentationGate, presentation_withheld
from pbx.asterisk_check import check_asterisk, tls_context
from pbx.dialing import dial_string, dialable, ring_first_channel
from pbx.pjsip_admin import LiveState, TrunkAdmin, TrunkSpec

log = logging.getLogger(__name__)


def _extension(ext: str) -> str:
    if not ext or not ext.isdigit() or len(ext) > 8:
        raise CallActionFailed(f"{ext!r} is not an internal extension")
    return ext


class AsteriskLine:
    kind = "asterisk"
    trunk_spec = TrunkSpec  # what save_trunk() takes (the API builds it without importing us)

    def __init__(self, config: PbxLineConfig, sink: Callable[[LineEvent], None], *,
                 connect_retry_max: float = 30.0,
                 channel_ids: Callable[[], str | None] | None = None,
                 recordings_dir: str = "/var/spool/asterisk/monitor",
                 region: str | Callable[[], str] = "RU") -> None:
        self.config = config
        self.name = config.name
        self._sink = sink
        self.correlator = AmiCallCorrelator(CorrelatorConfig(
            line=config.name,
            trunk_endpoints=frozenset(config.trunk_endpoints),
            trunk_contexts=frozenset(config.trunk_contexts),
        ))
        self._connection: AmiConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._retry_max = connect_retry_max
        self._mixmonitor_ids: dict[str, tuple[str, str]] = {}  # call id -> (channel, id)
        # Originate ChannelIds: unique per click-to-call. A replay of a recording made without
        # one passes a factory returning None (no ChannelId header, as recorded).
        self._channel_ids = channel_ids or (lambda: f"crm-c2c-{uuid.uuid4().hex[:16]}")
        self.detail = "not started"
        # Set once the first resync after start() is done: the calls still up are re-adopted.
        self.synced = asyncio.Event()
        self._recordings_dir = recordings_dir.rstrip("/")
        self._gate = PresentationGate()
        # Trunk channels asked about (Getvar pending) -> whether they hung up meanwhile.
        self._asked: dict[str, bool] = {}
        # The office's country, read per call: an admin may change it while running.
        self._region: Callable[[], str] = region if callable(region) else (lambda: region)
        self._state = LineState.STOPPED
        self._since = time.time()
        self._last_error = ""
        # SIP trunks: live state from Registry/ContactStatus/PeerStatus events (its version
        # moves with each), and the admin of pjsip.conf over this line's connection.
        self.trunks_live = LiveState()
        self.trunk_admin = TrunkAdmin(self._conn, self.trunks_live,
                                      trunk_endpoints=frozenset(config.trunk_endpoints))

    def _set_state(self, state: LineState, detail: str, *, error: bool = False) -> None:
        if state is not self._state:
            self._state, self._since = state, time.time()
        self.detail = detail
        if error:
            self._last_error = detail

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self._state, self.detail, self._last_error,
                          self._since)

    async def check(self) -> CheckResult:
        """A login of its own + CoreSettings (pbx/asterisk_check.py): the running connection
        is not touched."""
        return await check_asterisk(self.config)

    def live_call_keys(self) -> list[str]:
        """Calls this line tracks now (also those it holds back for their presentation)."""
        return self.correlator.live_calls()

    async def pjsip_endpoints(self) -> list[dict[str, Any]]:
        """The PBX's PJSIP endpoints: ``{"name", "state", "reachable", "contacts",
        "active_channels"}`` each (PJSIPShowEndpoints on the running connection)."""
        return await self.trunk_admin.endpoints()

    async def endpoints(self) -> list[tuple[str, str]]:
        """(name, device state) of each endpoint: callcenter.routing's EndpointSource (the
        "import extensions from the PBX" of the routing page)."""
        return [(e["name"], e["state"]) for e in await self.trunk_admin.endpoints()]

    async def trunks(self) -> dict[str, Any]:
        return await self.trunk_admin.overview()

    async def save_trunk(self, spec: TrunkSpec) -> dict[str, Any]:
        return await self.trunk_admin.save(spec)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connection is not None and self._connection.connected

    async def start(self) -> None:
        self._set_state(LineState.STARTING, f"connecting to {self.config.host}:"
                                            f"{self.config.port}")
        self._runner = asyncio.create_task(self._connect_loop(), name=f"ami-line-{self.name}")
        self._runner.add_done_callback(self._runner_done)

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._set_state(LineState.DOWN, f"stopped by an error: {task.exception()}",
                            error=True)
            log.error("PBX line %s: connect task failed", self.name, exc_info=task.exception())

    async def stop(self) -> None:
        async with self.trunk_admin.busy:
            await self._stop()

    async def _stop(self) -> None:
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
        self._set_state(LineState.STOPPED, "stopped")

    async def _connect_loop(self) -> None:
        """The first login. Later reconnects are the connection's own job; until the first
        one works (PBX down at our start, wrong password) we keep trying with backoff."""
        delay = 0.5
        while True:
            conn = AmiConnection(
                self.config.host, self.config.port, self.config.username, self.config.secret,
                on_event=self._on_event, on_connected=self._on_connected,
                on_disconnected=self._on_disconnected, ping_interval=self.config.ping_interval,
                action_timeout=self.config.action_timeout, ssl=tls_context(self.config),
            )
            try:
                await conn.start()
            except AmiAuthError:
                self._set_state(LineState.DOWN,
                                f"login refused for AMI user {self.config.username!r} at "
                                f"{self.config.host}:{self.config.port}: check username and "
                                "secret (manager.conf)", error=True)
                log.error("PBX line %s: %s", self.name, self.detail)
                delay = max(delay, 30.0)  # do not hammer a PBX that refuses us
            except (AmiError, OSError) as exc:  # unreachable, timed out, dropped at login
                self._set_state(LineState.DOWN, f"cannot reach {self.config.host}:"
                                                f"{self.config.port}: {exc}", error=True)
                log.warning("PBX line %s: %s; retrying in %.0f s", self.name, self.detail, delay)
            else:
                self._connection = conn
                await self._resync(conn)  # adopt calls already up when we start
                self.synced.set()
                return
            await conn.close()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self._retry_max)

    # -- AMI in ----------------------------------------------------------------------------

    def _on_event(self, msg: Message) -> None:
        if self._asked and msg.event == "Hangup" and msg.get("Channel") in self._asked:
            self._asked[msg["Channel"]] = True
        for event in self.correlator.feed(msg):
            self._pass(event)
        if msg.event in ("Registry", "ContactStatus", "PeerStatus"):
            self.trunks_live.feed(msg)

    def _pass(self, event: LineEvent) -> None:
        """Emit, unless the call waits for its caller-ID presentation (pbx/ami/withheld.py)."""
        released = self._gate.offer(event)
        if released is not None:
            for held in released:
                self._emit(held)
            return
        if isinstance(event, CallStarted) and self._ask_presentation_of(event):
            return
        self._emit(event)

    @property
    def holding(self) -> int:
        """Calls held back until the PBX says whether their caller withheld the number."""
        return len(self._gate)

    def _ask_presentation_of(self, start: CallStarted) -> bool:
        if start.direction is not Direction.INBOUND:
            return False
        if start.withheld:
            if start.caller_num.strip().lower() not in WITHHELD_NUMBERS:
                log.info("PBX line %s: call %s: caller withheld the number (dialplan), raw "
                         "caller ID %r hidden from users", self.name, start.call_key,
                         start.caller_num)
            return False
        if not self.config.withheld_getvar or self.correlator.presentation_known(
                start.call_key):
            return False
        conn = self._connection
        channel = self.correlator.caller_channel(start.call_key)
        if conn is None or not conn.connected or channel is None:
            return False
        self._gate.hold(start)
        self._asked[channel] = False  # now: its Hangup may be in the very next event
        self._spawn(self._presentation(conn, start, channel))
        return True

    async def _presentation(self, conn: AmiConnection, start: CallStarted, channel: str
                            ) -> None:
        """Getvar CALLERID(pres); the call is released as soon as the answer comes or after
        ``withheld_timeout``. When unsure, privacy first: a caller whose channel is gone
        (Getvar's "No such channel", the call's end among the held events, the trunk leg
        hung up) is withheld; only with the channel still up is an unanswered call shown
        (and said so). A later "withheld" still hides it (CallerChanged)."""
        try:
            await self._ask(conn, start, channel)
        finally:
            self._asked.pop(channel, None)

    async def _ask(self, conn: AmiConnection, start: CallStarted, channel: str) -> None:
        key = start.call_key
        ask = asyncio.ensure_future(conn.action(
            "Getvar", [("Channel", channel), ("Variable", PRESENTATION_VARIABLE)]))
        try:
            done, _ = await asyncio.wait({ask}, timeout=self.config.withheld_timeout)
            if not done:
                if self._channel_gone(key, channel):
                    self._hide_unknown(start, "the caller hung up before Getvar answered")
                else:
                    log.warning("PBX line %s: call %s: no answer to Getvar %s within %.1f s; "
                                "showing the number", self.name, key, PRESENTATION_VARIABLE,
                                self.config.withheld_timeout)
                    self._release(key, False)
            value = (await ask).get("Value") or ""
        except AmiError as exc:
            if key not in self._gate:  # (after a timeout the call is released, and said so)
                return
            gone = (isinstance(exc, AmiActionError)
                    and "no such channel" in (exc.response.get("Message") or "").lower())
            if gone or self._channel_gone(key, channel):
                self._hide_unknown(start, f"its channel is gone (Getvar: {exc})")
            else:
                log.warning("PBX line %s: call %s: Getvar %s failed (%s); showing the number",
                            self.name, key, PRESENTATION_VARIABLE, exc)
                self._release(key, False)
            return
        except asyncio.CancelledError:
            ask.cancel()
            self._release(key, self._channel_gone(key, channel))  # the line stops
            raise
        withheld = presentation_withheld(value)
        if withheld:
            # The only place the number of a caller who withheld it is kept: the log, for
            # the PBX admin. Users never see it (the registry gets withheld=True).
            log.info("PBX line %s: call %s: caller withheld the number (%s=%s), raw caller ID "
                     "%r hidden from users", self.name, key, PRESENTATION_VARIABLE, value,
                     start.caller_num)
        if key in self._gate:
            self._release(key, withheld)
        elif withheld:
            self._emit(CallerChanged(key, start.at, withheld=True))

    def _channel_gone(self, call_key: str, channel: str) -> bool:
        """The trunk leg asked about hung up (its Hangup came), or the whole call ended."""
        return self._asked.get(channel, False) or self._gate.ended(call_key)

    def _hide_unknown(self, start: CallStarted, why: str) -> None:
        log.info("PBX line %s: call %s: presentation unknown, %s; withheld to be safe (raw "
                 "caller ID %r hidden from users)", self.name, start.call_key, why,
                 start.caller_num)
        self._release(start.call_key, True)

    def _release(self, call_key: str, withheld: bool) -> None:
        for event in self._gate.release(call_key, withheld):
            self._emit(event)

    def _emit(self, event: LineEvent) -> None:
        self._sink(event)
        if self.config.record_calls and isinstance(event, Answered):
            self._spawn(self._record_answered(event.call_key))
        elif isinstance(event, CallEnded):
            self._mixmonitor_ids.pop(event.call_key, None)  # the recording ended with the call

    async def _on_connected(self) -> None:
        self._set_state(LineState.UP, f"connected to {self.config.host}:{self.config.port}")
        log.info("PBX line %s: logged in to %s:%d", self.name, self.config.host,
                 self.config.port)
        conn = self._connection
        if conn is None:
            return  # the first login: the resync below runs once start() has returned
        await self._resync(conn)

    async def _resync(self, conn: AmiConnection) -> None:
        """Bring the calls up to date after a (re)connect. Status is the fallback only for an
        AMI user the PBX refuses CoreShowChannels (permission): after a timeout or a list given
        up under load, the heavier Status would fail the same way and hold events longer. Then,
        or should both be refused, calls that ended meanwhile are closed later by the registry's
        sweep of silent calls.

        The snapshot is applied by the connection's reader at its place in the byte stream:
        events that came during or after the list (a call starting, a Hangup) are applied after
        it, never overtaken by it."""
        for action in ("CoreShowChannels", "Status"):
            try:
                await conn.list_action(action, apply=self._apply_snapshot)
            except AmiActionError as exc:
                log.warning("PBX line %s: %s for the resync refused (%s)", self.name, action,
                            exc)
                continue
            except AmiError as exc:
                log.warning("PBX line %s: no resync, %s failed (%s); calls that ended "
                            "meanwhile are closed by the sweep of silent calls", self.name,
                            action, exc)
            return

    def _apply_snapshot(self, _response: Message, channels: list[Message]) -> None:
        # Through the gate like any event: an adopted inbound call is asked about too, and
        # the end of a call still held waits behind its start.
        for event in self.correlator.resync(channels):
            self._pass(event)

    def _on_disconnected(self, reason: str) -> None:
        self._set_state(LineState.DOWN, f"reconnecting ({reason})", error=True)
        log.warning("PBX line %s: connection lost (%s); reconnecting", self.name, reason)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- call control ----------------------------------------------------------------------

    def _conn(self) -> AmiConnection:
        conn = self._connection
        if conn is None or not conn.connected:
            raise LineUnavailable(f"PBX line {self.name} is not connected: {self.detail}")
        return conn

    async def _action(self, name: str, headers: list[tuple[str, str]]) -> Message:
        conn = self._conn()
        try:
            return await conn.action(name, headers)
        except AmiActionError as exc:
            message = exc.response.get("Message") or "refused"
            raise CallActionFailed(f"the PBX refused {name}: {message}") from exc
        except (AmiConnectionLost, AmiTimeout) as exc:
            # Not retried: the PBX may have carried it out (see AmiConnection's docs).
            raise CallActionFailed(f"{name} may not have been carried out: {exc}") from exc
        except ActionEncodingError as exc:
            raise CallActionFailed(str(exc)) from exc

    def _channel(self, call_id: str, extension: str | None, *,
                 other_than: str | None = None) -> str:
        """``extension``'s leg; with None the outside party's, or in an internal call the leg
        of a party other than ``other_than`` (see ``AmiCallCorrelator.channel_for``)."""
        channel = self.correlator.channel_for(call_id, extension, other_than=other_than)
        if channel is None:
            who = f"extension {extension}" if extension else "the outside party"
            raise CallNotFound(f"no live channel of {who} in call {call_id}")
        return channel

    async def originate(self, extension: str, number: str, *, user_id: int | None) -> str:
        """Ring ``extension`` first (through the line's ``originate_channel``); when it answers,
        the dialplan dials ``number`` in the line's ``dial_format``."""
        cfg = self.config
        ext, typed = _extension(extension), dialable(number)
        dial = dial_string(typed, cfg.dial_format, self._region(), prefix=cfg.dial_prefix,
                           international_prefix=cfg.international_prefix)
        conn = self._conn()
        channel_id = self._channel_ids()
        # The call is logged with the number as the user gave it (that is what finds the
        # client), whatever prefix the dialplan needs.
        self.correlator.expect_originate(channel_id, ext, typed)
        headers = [
            ("Channel", ring_first_channel(cfg.originate_channel, cfg.extension_technology,
                                           ext)),
            ("Context", cfg.originate_context),
            ("Exten", dial),
            ("Priority", "1"),
            ("CallerID", f'"{typed}" <{typed}>'),
            ("Timeout", "30000"),
        ]
        if channel_id:
            # The first channel's Uniqueid is ours: the call is known before it rings.
            headers += [("ChannelId", channel_id), ("OtherChannelId", f"{channel_id}-b")]
        if user_id is not None:
            headers.append(("Variable", f"CRM_USER_ID={int(user_id)}"))
        try:
            await conn.originate(headers)
        except AmiActionError as exc:
            raise CallActionFailed(
                f"the PBX refused the call: {exc.response.get('Message') or 'error'}") from exc
        except AmiError as exc:
            raise CallActionFailed(f"click-to-call may not have been placed: {exc}") from exc
        return channel_id or ""

    async def blind_transfer(self, call_id: str, from_ext: str | None, to_ext: str) -> None:
        channel = self._channel(call_id, from_ext)
        await self._action("BlindTransfer", [("Channel", channel), ("Exten", _extension(to_ext)),
                                             ("Context", self.config.originate_context)])

    async def attended_transfer(self, call_id: str, from_ext: str, to_ext: str) -> None:
        channel = self._channel(call_id, from_ext)
        to = _extension(to_ext)
        await self._action("Atxfer", [("Channel", channel), ("Exten", to),
                                      ("Context", self.config.originate_context)])
        # Asterisk 22 may report the finished transfer without its target: remember ours.
        self.correlator.note_atxfer(call_id, from_ext, to)

    async def redirect(self, call_id: str, from_ext: str | None, to_ext: str) -> None:
        channel = self._channel(call_id, None, other_than=from_ext)
        await self._action("Redirect", [("Channel", channel), ("Exten", _extension(to_ext)),
                                        ("Context", self.config.originate_context),
                                        ("Priority", "1")])
        for event in self.correlator.note_redirect(call_id, from_ext, to_ext):
            self._pass(event)

    async def hangup(self, call_id: str) -> None:
        channel = self.correlator.channel_for(call_id, None)
        if channel is None:
            raise CallNotFound(f"no live channel in call {call_id}")
        await self._action("Hangup", [("Channel", channel)])

    async def start_recording(self, call_id: str) -> str:
        channel = self._channel(call_id, None)
        path = (f"{self._recordings_dir}/crm-{call_id.rsplit(':', 1)[-1]}-"
                f"{uuid.uuid4().hex[:8]}.wav")
        response = await self._action("MixMonitor", [("Channel", channel), ("File", path),
                                                     ("Options", "bi(CRM_MIXMON_ID)")])
        mix_id = response.get("MixMonitorID") or ""
        if self.correlator.channel_for(call_id) is not None:  # not if it ended meanwhile
            self._mixmonitor_ids[call_id] = (channel, mix_id)
        return path

    async def stop_recording(self, call_id: str) -> None:
        channel, mix_id = self._mixmonitor_ids.pop(call_id, (self._channel(call_id, None), ""))
        headers = [("Channel", channel)]
        if mix_id:
            headers.append(("MixMonitorID", mix_id))
        await self._action("StopMixMonitor", headers)

    async def _record_answered(self, call_id: str) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await self.start_recording(call_id)
            except (CallActionFailed, CallNotFound, LineUnavailable) as exc:
                log.warning("PBX line %s: could not record call %s: %s", self.name, call_id,
                            exc.message)
