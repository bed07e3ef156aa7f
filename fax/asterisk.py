"""The Asterisk fax line: sends through an AMI Originate that runs SendFAX, follows the fax
events (see :mod:`fax.asterisk_events`), and picks up the faxes the dialplan's ReceiveFAX
stored. Uses ``pbx/ami``'s connection (the one adapter-to-adapter import the design allows).

The TIFFs pass through a folder both hosts see (``outgoing_*``/``incoming_*`` of the line's
config: the path as Asterisk names it and the same folder as mounted here). A received file
is removed from that folder only after the core stored the fax.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from callcenter.config import FaxLineConfig
from callcenter.errors import LineUnavailable
from callcenter.faxes.ports import (
    FaxDocument,
    FaxEvent,
    FaxProgress,
    FaxReceived,
    FaxResult,
    ResultUnknown,
)
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from fax.asterisk_events import AsteriskFaxTracker, Reception
from fax.handover import hand_over
from pbx.ami.connection import AmiConnection, OriginateCall
from pbx.ami.errors import AmiActionError, AmiAuthError, AmiError
from pbx.ami.message import Message

log = logging.getLogger(__name__)

FILE_WAIT = 10.0  # a shared folder (NFS) may show a new file late
# The incoming folder is scanned at start and then this often: a fax whose events were missed
# (crash, AMI down) or whose storing failed is picked up from its file. A file changed less
# than SETTLE_SECONDS ago may still be being received.
SCAN_SECONDS = 60.0
SETTLE_SECONDS = 120.0


class AsteriskFaxLine:
    kind = "fax-asterisk"

    def __init__(self, config: FaxLineConfig, sink: Callable[[FaxEvent], object], *,
                 connection_factory: Callable[..., AmiConnection] = AmiConnection) -> None:
        self.config = config
        self.name = config.name
        self._sink = sink
        self._factory = connection_factory
        self.tracker = AsteriskFaxTracker(config.receive_contexts)
        self._conn: AmiConnection | None = None
        self._state = LineState.STOPPED
        self._since = time.time()
        self._detail = ""
        self._last_error = ""
        self._tasks: set[asyncio.Task[None]] = set()
        self._files: dict[str, Path] = {}  # ref -> the TIFF copied for the PBX
        self._poller: asyncio.Task[None] | None = None
        self._receiving: set[Path] = set()  # files being handed to the core right now
        # Received files removed from the shared folder (after the core stored them).
        self.removed: list[str] = []
        self.picked_up = asyncio.Event()

    # -- Line ----------------------------------------------------------------------------------

    def _connection(self, **callbacks: object) -> AmiConnection:
        cfg = self.config
        return self._factory(cfg.host, cfg.port, cfg.username, cfg.secret, **callbacks)

    async def check(self) -> CheckResult:
        conn = self._connection(events="off")
        try:
            await conn.start()
            settings = await conn.action("CoreSettings")
            facts = {"Asterisk": settings.get("AsteriskVersion") or "?",
                     "AMI": settings.get("AMIversion") or "?"}
            return CheckResult(True, f"AMI login to {self.config.host}:{self.config.port} ok",
                               facts)
        except AmiAuthError:
            return CheckResult(False, "login refused", error="login refused: check the username"
                               " and secret in manager.conf")
        except (AmiError, OSError) as exc:
            return CheckResult(False, "no connection", error=f"cannot reach the AMI: {exc}")
        finally:
            await conn.close()

    async def start(self) -> None:
        self._set(LineState.STARTING)
        self._conn = self._connection(on_event=self._on_event, on_connected=self._connected,
                                      on_disconnected=self._disconnected)
        task = asyncio.create_task(self._connect(), name=f"fax-ami-{self.name}")
        self._keep(task)
        self._poller = asyncio.create_task(self._poll(), name=f"fax-poll-{self.name}")
        self._keep(asyncio.create_task(self._scan(), name=f"fax-scan-{self.name}"))

    async def _connect(self) -> None:
        assert self._conn is not None
        try:
            await self._conn.start()
        except AmiError as exc:
            self._last_error = str(exc)
            self._set(LineState.DOWN, str(exc))

    async def stop(self) -> None:
        for task in [*self._tasks, *([self._poller] if self._poller else [])]:
            task.cancel()
        for task in [*self._tasks, *([self._poller] if self._poller else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
        self._set(LineState.STOPPED)

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self._state, self._detail, self._last_error,
                          self._since)

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.connected

    def _set(self, state: LineState, detail: str = "") -> None:
        if state is not self._state:
            self._since = time.time()
        self._state = state
        self._detail = detail

    async def _connected(self) -> None:
        self._set(LineState.UP, f"AMI {self.config.host}:{self.config.port}")
        conn = self._conn
        if conn is None:
            return
        for ref, channel in self.tracker.unfinished():
            try:
                answer = await conn.action("Status", [("Channel", channel)], check=False)
            except AmiError:
                continue
            if answer.response == "Error":  # "No such channel": it ended while we were away
                for event in self.tracker.lost(ref):
                    self._emit(event)

    def _disconnected(self, reason: str) -> None:
        self._last_error = reason
        self._set(LineState.DOWN, reason)

    # -- FaxBackend ----------------------------------------------------------------------------

    async def submit(self, number: str, document: FaxDocument, *, job_id: int) -> str:
        conn = self._conn
        if conn is None or not conn.connected:
            raise LineUnavailable(f"fax line {self.name}: AMI not connected")
        cfg = self.config
        ref = f"crm-fax-{int(job_id)}-{secrets.token_hex(4)}"
        # The PBX reads the file from the shared folder: named by us, never by the upload.
        local = Path(cfg.outgoing_mount_path) / f"{ref}.tif"
        await asyncio.to_thread(shutil.copyfile, document.tiff, local)
        self._files[ref] = local
        pbx_file = str(PurePosixPath(cfg.outgoing_pbx_path) / f"{ref}.tif")
        headers = [
            ("Channel", cfg.channel.replace("{number}", number)),
            ("Application", "SendFAX"),
            # f: audio fallback when T.38 is not offered; s: FAXStatus events (the default).
            ("Data", f"{pbx_file},{cfg.sendfax_options}"),
            ("Timeout", "45000"),
            ("ChannelId", ref),
            ("Variable", f"CRM_FAX_JOB={int(job_id)}"),
            ("Variable", f"FAXOPT(ecm)={'yes' if cfg.ecm else 'no'}"),
        ]
        if cfg.caller_id:
            headers.append(("CallerID", cfg.caller_id))
        # One Variable header each; values must not hold commas (config validation).
        if cfg.local_station_id:
            headers.append(("Variable", f"FAXOPT(localstationid)={cfg.local_station_id}"))
        if cfg.header:
            headers.append(("Variable", f"FAXOPT(headerinfo)={cfg.header}"))
        self.tracker.expect(ref, ref, document.pages)
        try:
            call = await conn.originate(headers, result_timeout=90.0)
        except AmiActionError as exc:  # the PBX answered "Error": no call was made
            self._drop(ref)
            raise LineUnavailable(f"fax line {self.name}: the PBX refused the call: {exc}"
                                  ) from None
        except AmiError as exc:
            # Written, then the connection went (or no answer): the call may be under way.
            self._drop(ref)
            raise ResultUnknown(f"fax line {self.name}: the Originate may have reached the"
                                f" PBX ({exc})") from None
        for event in self.tracker.bind_action(ref, call.action_id):
            self._emit(event)
        self._keep(asyncio.create_task(self._await_originate(ref, call),
                                       name=f"fax-originate-{ref}"))
        return ref

    async def _await_originate(self, ref: str, call: OriginateCall) -> None:
        """The OriginateResponse normally comes as an event too; when it never comes (timed
        out, connection lost before the channel showed), nothing else would end the send."""
        try:
            await call.result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            for event in self.tracker.unknown(ref, f"no answer to the Originate ({exc})"):
                self._emit(event)

    async def cancel(self, job_ref: str) -> None:
        conn = self._conn
        # Ringing or faxing: hang up the channel either way (the result follows as usual).
        channel = next((name for ref, name in self.tracker.unfinished() if ref == job_ref),
                       None)
        if conn is None or channel is None:
            return
        with contextlib.suppress(AmiError):
            await conn.action("Hangup", [("Channel", channel)])

    # -- events --------------------------------------------------------------------------------

    def _on_event(self, message: Message) -> None:
        files = tuple(message.get_all("FileName"))
        for event in self.tracker.feed(message.headers, files):
            if isinstance(event, Reception):
                self._keep(asyncio.create_task(self._pick_up(event)))
            else:
                self._emit(event)

    def _emit(self, event: FaxProgress | FaxResult) -> None:
        if isinstance(event, FaxResult):
            self._drop(event.job_ref)
        self._sink(event)

    def _drop(self, ref: str) -> None:
        self.tracker.forget(ref)
        local = self._files.pop(ref, None)
        if local is not None:
            local.unlink(missing_ok=True)

    def _keep(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _poll(self) -> None:
        """FAXSessions / FAXSession for each send in progress: the only page counter."""
        while True:
            await asyncio.sleep(self.config.poll_seconds)
            conn = self._conn
            active = self.tracker.active()
            if conn is None or not conn.connected or not active:
                continue
            try:
                _, entries = await conn.list_action("FAXSessions")
            except AmiError:
                continue
            names = {name for _, name in active}
            for entry in entries:
                channel = entry.get("Channel") or ""
                number = entry.get("SessionNumber") or ""
                if channel in names and entry.get("Operation") == "send" and number:
                    uniqueid = self.tracker.channel_uniqueid(channel)
                    if uniqueid:
                        self.tracker.sessions[number] = uniqueid
                    with contextlib.suppress(AmiError):
                        # The answer comes as a FAXSession event (see _on_event).
                        await conn.action("FAXSession", [("SessionNumber", number)])

    async def _pick_up(self, reception: Reception) -> None:
        for pbx_file in reception.files:
            local = self._local(pbx_file)
            if local is None:
                log.error("fax line %s: received file %r is outside incoming_pbx_path",
                          self.name, pbx_file[:200])
                continue
            ok, detail = reception.ok, reception.detail
            if not await _appears(local, FILE_WAIT):
                # Still a fax that came: the inbox says so ("file missing"); should the file
                # show up later, the folder scan stores it.
                log.error("fax line %s: received fax %s did not appear in %s", self.name,
                          local.name, local.parent)
                ok, detail = False, f"{local.name} did not appear in the incoming folder"
            await self._hand_over(FaxReceived(
                self.name, reception.at, local, reception.pages, reception.caller_num,
                reception.remote_station, ok, detail))

    async def _hand_over(self, event: FaxReceived) -> bool:
        """The core stores the fax; only then is its file removed (else it stays for the
        next scan)."""
        local = event.tiff
        self._receiving.add(local)
        try:
            if not await hand_over(self._sink, event):
                return False
        finally:
            self._receiving.discard(local)
        if local.is_file():
            local.unlink(missing_ok=True)
            self.removed.append(local.name)
        self.picked_up.set()
        return True

    async def _scan(self) -> None:
        while True:
            try:
                await self.scan_incoming()
            except Exception:
                log.exception("fax line %s: incoming folder scan failed", self.name)
            await asyncio.sleep(SCAN_SECONDS)

    async def scan_incoming(self, settle: float = SETTLE_SECONDS) -> int:
        """Hand over every fax file left in the incoming folder (storing is idempotent)."""
        folder = Path(self.config.incoming_mount_path)
        if not folder.is_dir():
            return 0
        count = 0
        now = time.time()
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() not in (".tif", ".tiff") or path in self._receiving:
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if not path.is_file() or now - stat.st_mtime < settle:
                continue
            log.warning("fax line %s: %s found in the incoming folder", self.name, path.name)
            event = FaxReceived(self.name, stat.st_mtime, path, 0, "", "", False,
                                "found in the incoming folder (its fax events were missed)")
            count += await self._hand_over(event)
        return count

    def _local(self, pbx_file: str) -> Path | None:
        pure = PurePosixPath(pbx_file)
        root = PurePosixPath(self.config.incoming_pbx_path)
        if ".." in pure.parts or not pure.is_relative_to(root):
            return None
        return Path(self.config.incoming_mount_path) / pure.relative_to(root)


async def _appears(path: Path, wait: float) -> bool:
    deadline = time.monotonic() + wait
    while not path.is_file():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True
