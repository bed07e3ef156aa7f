"""The fax core: durable jobs sent through the fax lines, received faxes into the inbox.

* ``prepare()`` turns an upload into a fax document (through the DocumentConverter port) kept
  in the data folder: its page count and thumbnail are known before anyone dials. A document
  the converter rejects never becomes a job.
* ``send()`` stores a job (``queued``); each line's dispatcher takes its due jobs one at a
  time, marks the job ``dialing`` (attempt counted) *before* handing it to the backend, so a
  crash after that point is an interrupted call and never a second, silent one.
* Backend events go through one queue, in order: progress moves the page counter, a result
  is judged by :mod:`callcenter.faxes.jobs` (sent only with every page confirmed).
* A received fax is converted to PDF and stored (inbox row, client match, history) before the
  event's future resolves: only then may the backend remove its own copy.
* Every change is published as ``fax.status`` / ``fax.received`` with the client's manager,
  so the hub shows a manager only their clients' faxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from callcenter.bus import EventBus
from callcenter.errors import CallcenterError, LineUnavailable, PermissionDenied, ValidationError
from callcenter.faxes import jobs as machine
from callcenter.faxes.jobs import ACTIVE, FINAL, WAITING, JobState, RetryPolicy
from callcenter.faxes.ports import (
    DocumentConverter,
    DocumentRejected,
    FaxBackend,
    FaxDocument,
    FaxEvent,
    FaxOutcome,
    FaxProgress,
    FaxReceived,
    FaxResult,
    Paper,
    Resolution,
    ResultUnknown,
)
from callcenter.faxes.visibility import can_see_fax
from callcenter.faxes.words import LANGUAGES, result_words, state_words
from callcenter.matching import CallerMatcher
from callcenter.models import InteractionKind, Role, User
from callcenter.store.sqlite_faxes import FaxFilter

log = logging.getLogger(__name__)

# What may be dialled: digits, a leading +, and the separators people type.
_NUMBER = re.compile(r"^\+?[0-9][0-9 ()\-.]{2,30}$")
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{8,40}$")
MIN_STATION_DIGITS = 7  # fewer digits in a station ID are no phone number
UPLOAD_KEEP_SECONDS = 24 * 3600  # an upload no job was made of is removed after this
PRUNE_SECONDS = 3600.0


class FaxRejected(CallcenterError):
    """The upload cannot be faxed; the message says why (from the converter)."""

    error_id = "fax-document-rejected"


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    token: str
    pages: int
    name: str
    resolution: str
    paper: str


def dial_number(raw: str) -> str:
    """The number as handed to a backend: ``+`` and digits only; ValidationError otherwise."""
    text = (raw or "").strip()
    digits = re.sub(r"\D", "", text)
    # The pattern allows separators; the count is of the digits left ("1--" is no number).
    if not _NUMBER.match(text) or not 3 <= len(digits) <= 30:
        raise ValidationError("a fax number has 3 to 30 digits (a leading + is allowed)",
                              field="number")
    return ("+" if text.startswith("+") else "") + digits


def job_json(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API and the bus show it (words in every console language)."""
    return {
        "id": job["id"], "direction": "out", "line": job["line"], "number": job["number"],
        "client_id": job["client_id"], "client_name": job.get("client_name"),
        "manager_id": job.get("manager_id"), "user_id": job["user_id"],
        "state": job["state"], "pages": job["pages"], "pages_confirmed": job["pages_confirmed"],
        "page": job["page"], "attempts": job["attempts"], "next_try_at": job["next_try_at"],
        "remote_station": job["remote_station"], "result": job["result"],
        "t30_code": job["t30_code"], "interrupted": bool(job["interrupted"]),
        "file_name": job["file_name"], "created_at": job["created_at"],
        "updated_at": job["updated_at"], "finished_at": job["finished_at"],
        "words": {lang: result_words(job, lang) for lang in LANGUAGES},
        "state_words": {lang: state_words(job, lang) for lang in LANGUAGES},
        "thumbnail_url": f"/api/faxes/{job['id']}/thumbnail",
    }


def received_json(fax: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": fax["id"], "direction": "in", "line": fax["line"],
        "received_at": fax["received_at"], "caller": fax["caller_raw"],
        "caller_e164": fax["caller_e164"], "remote_station": fax["remote_station"],
        "pages": fax["pages"], "ok": bool(fax["ok"]), "detail": fax["detail"],
        "client_id": fax["client_id"], "client_name": fax.get("client_name"),
        "contact_id": fax["contact_id"], "manager_id": fax.get("manager_id"),
        "matched_by": fax["matched_by"], "pdf_url": f"/api/fax-inbox/{fax['id']}/pdf",
    }


class FaxService:
    def __init__(self, store: Any, bus: EventBus, converter: DocumentConverter,
                 matcher: CallerMatcher, data_dir: Path, *,
                 policies: Mapping[str, RetryPolicy] | None = None,
                 managers_see_all: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.bus = bus
        # In a cluster: this instance's name, written with each job it claims, so that its
        # restart settles only its own jobs (recover), not another live instance's.
        self.instance: str | None = None
        self.converter = converter
        self.matcher = matcher
        self.folder = data_dir / "faxes"
        self.policies = dict(policies or {})
        self.managers_see_all = managers_see_all
        self.clock = clock
        self.backends: dict[str, FaxBackend] = {}
        self._events: asyncio.Queue[tuple[str, FaxEvent, asyncio.Future[Any] | None]] = (
            asyncio.Queue())
        self._wake: dict[str, asyncio.Event] = {}
        self._idle: dict[str, asyncio.Event] = {}  # no job of the line is in a call
        self._submitting: dict[str, asyncio.Lock] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._watchdogs: dict[str, asyncio.Task[None]] = {}  # line -> the deadline of its call
        self.changed = asyncio.Event()  # set after every stored change (tests wait on it)

    # -- wiring ----------------------------------------------------------------------------

    def sink(self, line: str) -> Callable[[FaxEvent], object]:
        """The event sink for one line's backend. For a received fax it returns a future that
        resolves once the fax is stored (the backend removes its copy only then)."""

        def put(event: FaxEvent) -> object:
            future: asyncio.Future[Any] | None = None
            if isinstance(event, FaxReceived):
                future = asyncio.get_running_loop().create_future()
            self._events.put_nowait((line, event, future))
            return future

        return put

    def add_line(self, name: str, backend: FaxBackend, policy: RetryPolicy) -> None:
        self.backends[name] = backend
        self.policies[name] = policy
        self._wake[name] = asyncio.Event()
        idle = asyncio.Event()
        idle.set()
        self._idle[name] = idle
        self._submitting[name] = asyncio.Lock()

    def policy(self, line: str) -> RetryPolicy:
        return self.policies.get(line, RetryPolicy())

    async def start(self) -> None:
        """Settle what the last run left mid-call, then start the event consumer and one
        dispatcher per line."""
        for folder in ("documents", "inbox"):
            (self.folder / folder).mkdir(parents=True, exist_ok=True)
        await self.recover()
        self._tasks.append(asyncio.create_task(self._consume(), name="fax-events"))
        self._tasks.append(asyncio.create_task(self._prune(), name="fax-prune"))
        for name in self.backends:
            self._tasks.append(asyncio.create_task(self._dispatch(name),
                                                   name=f"fax-dispatch-{name}"))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._watchdogs.values()]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in list(self._watchdogs.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._watchdogs.clear()
        # A backend waiting for a received fax to be stored must not wait for ever: it keeps
        # its copy (the fax is handed over again at the next start).
        while not self._events.empty():
            _, _, future = self._events.get_nowait()
            if future is not None and not future.done():
                future.cancel()

    async def recover(self) -> list[dict[str, Any]]:
        """Jobs a previous run left dialing or sending: interrupted (see jobs.on_interrupted)."""
        changed = []
        for job in await self.store.fax_jobs_in(ACTIVE, claimed_by=self.instance):
            policy = self.policy(job["line"])
            adopt = getattr(self.backends.get(job["line"]), "adopt", None)
            if adopt is not None:
                try:
                    ref = await adopt(job["id"], job["attempts"])
                except Exception as exc:
                    # The backend cannot say whether the call is still there: it may be,
                    # so it is never called a second time on its own.
                    log.warning("fax line %s: job %d not found again: %s", job["line"],
                                job["id"], exc)
                    policy = dataclasses.replace(policy, retry_interrupted=False)
                else:
                    if ref is not None:
                        await self._adopted(job, ref)
                        continue
            changes = machine.on_interrupted(job, policy, self.clock())
            updated = await self.store.update_fax_job(job["id"], only_states=ACTIVE, **changes)
            if updated is not None:
                log.warning("fax job %d was mid-call at the last stop: %s", job["id"],
                            result_words(updated))
                await self._publish_job(updated)
                changed.append(updated)
        return changed

    async def _adopted(self, job: dict[str, Any], ref: str) -> None:
        """A call of the last run the backend still knows: followed to its end as usual."""
        log.warning("fax job %d was in a call at the last stop; the line still has it (%s)",
                    job["id"], ref[:60])
        updated = await self.store.update_fax_job(job["id"], only_states=ACTIVE,
                                                  backend_ref=ref)
        if updated is not None and job["line"] in self._idle:
            self._idle[job["line"]].clear()
            self._watch(job["line"], updated)

    async def _prune(self) -> None:
        while True:
            try:
                await self.prune_documents()
            except Exception:
                log.exception("fax uploads not pruned")
            await asyncio.sleep(PRUNE_SECONDS)

    async def prune_documents(self, keep_seconds: float = UPLOAD_KEEP_SECONDS) -> int:
        """Remove uploads that never became a job (the user converted and left)."""
        used = {str(Path(p).parent) for p in await self.store.fax_job_documents()}
        removed = 0
        now = self.clock()
        for folder in (self.folder / "documents").iterdir():
            if not folder.is_dir() or str(folder) in used or not _TOKEN.match(folder.name):
                continue
            if now - folder.stat().st_mtime < keep_seconds:
                continue
            await asyncio.to_thread(shutil.rmtree, folder, True)
            removed += 1
        return removed

    # -- documents and jobs ----------------------------------------------------------------

    async def prepare(self, upload: Path, name: str, *,
                      resolution: Resolution = Resolution.FINE,
                      paper: Paper = Paper.A4) -> PreparedDocument:
        """Convert an upload (any accepted kind) into a fax document kept for send()."""
        try:
            doc = await self.converter.to_fax(upload, resolution=resolution, paper=paper,
                                              name=name)
        except DocumentRejected as exc:
            raise FaxRejected(exc.reason, field="file") from None
        token = secrets.token_urlsafe(16)
        folder = self.folder / "documents" / token
        folder.mkdir(parents=True)
        shutil.move(str(doc.tiff), folder / "fax.tif")
        if doc.thumbnail_png and Path(doc.thumbnail_png).is_file():
            shutil.move(str(doc.thumbnail_png), folder / "thumbnail.png")
        shown = _display_name(name)
        meta = {"pages": doc.pages, "name": shown, "resolution": doc.resolution.value,
                "paper": doc.paper.value}
        (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
        return PreparedDocument(token, doc.pages, shown, doc.resolution.value, doc.paper.value)

    def document(self, token: str) -> tuple[Path, dict[str, Any]]:
        if not _TOKEN.match(token or ""):
            raise ValidationError("unknown document", field="document")
        folder = self.folder / "documents" / token
        try:
            meta = json.loads((folder / "meta.json").read_text())
        except (OSError, ValueError):
            raise ValidationError("unknown document: upload it again", field="document"
                                  ) from None
        return folder, meta

    def thumbnail(self, token: str) -> Path | None:
        folder, _ = self.document(token)
        path = folder / "thumbnail.png"
        return path if path.is_file() else None

    async def send(self, user: User | None, *, document: str, number: str,
                   client_id: int | None = None, line: str | None = None) -> dict[str, Any]:
        folder, meta = self.document(document)
        dialled = dial_number(number)
        if line is None:
            if not self.backends:
                raise LineUnavailable("no fax line is configured")
            line = next(iter(self.backends))
        elif line not in self.backends:
            raise ValidationError(f"no fax line named {line!r}", field="line")
        if client_id is not None:
            client = await self.store.get_client(client_id)
            if user is not None and user.role is Role.MANAGER and not self.managers_see_all \
                    and client.manager_id != user.id:
                raise PermissionDenied("this client is not one of yours")
        job = await self.store.create_fax_job({
            "line": line, "number": dialled, "client_id": client_id,
            "user_id": user.id if user else None, "state": JobState.QUEUED.value,
            "document": str(folder / "fax.tif"), "thumbnail": str(folder / "thumbnail.png"),
            "file_name": meta["name"], "pages": int(meta["pages"]), "result": "queued",
            "resolution": Resolution(meta.get("resolution") or "fine").value,
            "paper": Paper(meta.get("paper") or "a4").value,
        })
        await self._publish_job(job)
        self._wake[line].set()
        return job

    async def cancel(self, user: User, job_id: int) -> dict[str, Any]:
        job = await self.visible_job(user, job_id)
        if job["state"] in FINAL:
            raise ValidationError(f"the fax is already {job['state']}")
        done = await self.store.update_fax_job(
            job_id, only_states=WAITING, state=JobState.CANCELLED.value, result="cancelled",
            next_try_at=None, finished_at=machine.ts(self.clock()))
        if done is not None:
            await self._publish_job(done)
            return done
        # In a call: the backend is asked to stop; the job ends when its result comes (a fax
        # whose every page got through in the meantime is reported sent, as it was).
        job = await self.store.update_fax_job(job_id, cancel_requested=1) or job
        backend = self.backends.get(job["line"])
        if backend is not None and job["backend_ref"]:
            await backend.cancel(job["backend_ref"])
        return await self.store.get_fax_job(job_id)

    async def visible_job(self, user: User, job_id: int) -> dict[str, Any]:
        job = await self.store.get_fax_job(job_id)
        if not can_see_fax(user, job_json(job), self.managers_see_all):
            raise PermissionDenied("this fax belongs to a client who is not yours")
        return job

    async def visible_received(self, user: User, fax_id: int) -> dict[str, Any]:
        fax = await self.store.get_received_fax(fax_id)
        if not can_see_fax(user, received_json(fax), self.managers_see_all):
            raise PermissionDenied("this fax belongs to a client who is not yours")
        return fax

    def restricted(self, user: User) -> bool:
        return user.role is Role.MANAGER and not self.managers_see_all

    async def list_jobs(self, user: User, f: FaxFilter) -> list[dict[str, Any]]:
        if self.restricted(user):
            f.manager_id = user.id
        return await self.store.list_fax_jobs(f)

    async def list_received(self, user: User, f: FaxFilter) -> list[dict[str, Any]]:
        if self.restricted(user):
            f.manager_id = user.id
        return await self.store.list_received_faxes(f)

    # -- dispatch --------------------------------------------------------------------------

    async def _dispatch(self, line: str) -> None:
        wake = self._wake[line]
        while True:
            await self._idle[line].wait()
            wake.clear()
            due = await self.store.due_fax_jobs(line, limit=1)
            if due:
                try:
                    await self._start_call(line, due[0])
                except Exception:
                    # The call's deadline still ends that job; the line goes on.
                    log.exception("fax line %s: job %d not started cleanly", line,
                                  due[0]["id"])
                continue
            timeout = None
            nxt = await self.store.next_fax_retry_at(line)
            if nxt is not None:
                timeout = max(0.05, datetime.fromisoformat(nxt).timestamp() - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    async def _start_call(self, line: str, job: dict[str, Any]) -> None:
        backend = self.backends[line]
        # Stored before the backend is asked: after a crash from here on the job is looked
        # for on its line (adopt) or "interrupted", never silently called a second time.
        dialing = await self.store.update_fax_job(
            job["id"], only_states=WAITING, state=JobState.DIALING.value,
            attempts=job["attempts"] + 1, page=0, pages_confirmed=0, next_try_at=None,
            backend_ref=None, claimed_by=self.instance)
        if dialing is None:
            return
        await self._publish_job(dialing)
        self._idle[line].clear()
        self._watch(line, dialing)
        document = FaxDocument(Path(dialing["document"]), dialing["pages"],
                               Resolution(dialing["resolution"]), Paper(dialing["paper"]),
                               Path(dialing["thumbnail"]), dialing["attempts"])
        async with self._submitting[line]:
            try:
                ref = await backend.submit(dialing["number"], document, job_id=dialing["id"])
            except Exception as exc:
                log.warning("fax line %s could not take job %d: %s", line, job["id"], exc)
                try:
                    if isinstance(exc, ResultUnknown):
                        result = FaxResult("", self.clock(), FaxOutcome.UNKNOWN, 0,
                                           dialing["pages"], detail=str(exc)[:300])
                        changes = machine.on_result(dialing, result, self.policy(line),
                                                    self.clock())
                    else:
                        changes = machine.on_submit_failed(dialing, self.policy(line),
                                                           self.clock(), str(exc)[:300])
                    updated = await self.store.update_fax_job(dialing["id"], only_states=ACTIVE,
                                                              **changes)
                    if updated is not None:
                        await self._after_change(updated)
                finally:
                    self._call_over(line)
                return
            stored = await self.store.update_fax_job(dialing["id"], backend_ref=ref)
            self.changed.set()
        # A cancel that came while the backend was being asked found no reference to stop.
        if stored is not None and stored["cancel_requested"] and stored["state"] in ACTIVE:
            try:
                await backend.cancel(ref)
            except Exception:
                log.exception("fax line %s: cancel of job %d failed", line, dialing["id"])
            self.changed.set()

    def _watch(self, line: str, job: dict[str, Any]) -> None:
        seconds = self.policy(line).call_deadline(job["pages"])
        self._watchdogs[line] = asyncio.create_task(
            self._deadline(line, job["id"], job["attempts"], seconds),
            name=f"fax-deadline-{line}")

    def _call_over(self, line: str) -> None:
        """The line's call ended (result, failure or deadline): its next job may start."""
        watchdog = self._watchdogs.pop(line, None)
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        if line in self._idle:
            self._idle[line].set()

    async def _deadline(self, line: str, job_id: int, attempt: int, seconds: float) -> None:
        """No result in time (no answer to the Originate, connection lost before the channel
        was known, a job that vanished from the queue): failed, result unknown. Not retried:
        the far end may have pages."""
        await asyncio.sleep(seconds)  # cancelled when the call ends in time
        try:
            job = await self.store.get_fax_job(job_id)
            if job["state"] not in ACTIVE or job["attempts"] != attempt:
                return
            log.error("fax line %s: no result for job %d within %.0f s", line, job_id, seconds)
            result = FaxResult(job["backend_ref"] or "", self.clock(), FaxOutcome.UNKNOWN,
                               job["pages_confirmed"], job["pages"],
                               detail=f"no result from the line within {seconds:.0f} s")
            changes = machine.on_result(job, result, self.policy(line), self.clock())
            updated = await self.store.update_fax_job(job_id, only_states=ACTIVE, **changes)
            backend = self.backends.get(line)
            if backend is not None and job["backend_ref"]:
                try:
                    await backend.cancel(job["backend_ref"])
                except Exception:
                    log.exception("fax line %s: cancel after the deadline failed", line)
            if updated is not None:
                await self._after_change(updated)
        finally:
            if self._watchdogs.get(line) is asyncio.current_task():
                self._call_over(line)

    # -- backend events --------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            line, event, future = await self._events.get()
            try:
                result = await self.handle(line, event)
            except asyncio.CancelledError:
                if future is not None and not future.done():
                    future.cancel()
                raise
            except Exception as exc:
                log.exception("fax event of line %s not handled", line)
                if future is not None and not future.done():
                    future.set_exception(exc)
            else:
                if future is not None and not future.done():
                    future.set_result(result)

    async def handle(self, line: str, event: FaxEvent) -> Any:
        if isinstance(event, FaxReceived):
            return await self.receive(line, event)
        async with self._submitting.setdefault(line, asyncio.Lock()):
            job = await self.store.fax_job_by_ref(line, event.job_ref)
        if job is None:
            log.info("fax line %s: event for a job it does not know (%s)", line,
                     event.job_ref[:60])
            return None
        if isinstance(event, FaxProgress):
            changes = machine.on_progress(job, event)
            if changes:
                updated = await self.store.update_fax_job(job["id"], only_states=ACTIVE,
                                                          **changes)
                if updated is not None:
                    await self._publish_job(updated)
            return None
        assert isinstance(event, FaxResult)
        changes = machine.on_result(job, event, self.policy(line), self.clock())
        if not changes:
            return None
        # Should this raise, the call's deadline still ends the job and frees the line.
        updated = await self.store.update_fax_job(job["id"], only_states=ACTIVE, **changes)
        if job["state"] in ACTIVE:
            self._call_over(line)
        if updated is not None:
            await self._after_change(updated)
        return updated

    async def _after_change(self, job: dict[str, Any]) -> None:
        await self._publish_job(job)
        if job["state"] == JobState.RETRY_SCHEDULED.value and job["line"] in self._wake:
            self._wake[job["line"]].set()

    # -- inbox -----------------------------------------------------------------------------

    async def receive(self, line: str, event: FaxReceived) -> dict[str, Any]:
        """Store a received fax (PDF, match, history); idempotent by the backend's file and
        its content (a file name the backend uses again is another fax)."""
        source_key = await asyncio.to_thread(_source_key, event.tiff)
        pdf: Path | None = self.folder / "inbox" / f"{uuid.uuid4().hex}.pdf"
        pages = event.pages
        ok = event.ok
        detail = event.detail
        if source_key.endswith("|missing"):
            # Its events came, its file never did: the inbox still shows that a fax came.
            log.error("received fax %s: the file is missing", event.tiff.name)
            pdf, ok = None, False
            detail = f"file missing: {detail}" if detail else "file missing"
        else:
            assert pdf is not None
            try:
                pages = await self.converter.to_pdf(event.tiff, pdf) or event.pages
            except DocumentRejected as exc:
                # A fax that cannot be made into a PDF is still a fax: keep its TIFF.
                log.warning("received fax %s kept as TIFF: %s", event.tiff.name, exc.reason)
                pdf = pdf.with_suffix(".tif")
                shutil.copyfile(event.tiff, pdf)
            # On disk for good before the row says so and the backend deletes its copy.
            await asyncio.to_thread(_fsync, pdf)
        station = machine.clean_station(event.remote_station)
        client_id, contact_id, how = self.match(event.caller_num, station)
        number = self.matcher.normalize(event.caller_num) if event.caller_num else None
        row, created = await self.store.add_received_fax({
            "line": line, "source_key": source_key, "received_at": machine.ts(event.at),
            "caller_raw": (event.caller_num or "")[:64],
            "caller_e164": number.e164 if number else None, "remote_station": station,
            "pages": pages, "ok": 1 if ok else 0, "detail": detail[:500],
            "pdf": str(pdf) if pdf is not None else "", "client_id": client_id,
            "contact_id": contact_id,            "matched_by": how,
        })
        if not created:
            if pdf is not None:
                pdf.unlink(missing_ok=True)
            return row
        if row["client_id"] is not None:
            await self.store.add_interaction(
                InteractionKind.FAX, datetime.fromtimestamp(event.at, UTC),
                f"fax received, {pages} page(s)", client_id=row["client_id"],
                contact_id=row["contact_id"], ref=f"fax-in-{row['id']}",
                data={"direction": "in", "fax_id": row["id"], "pages": pages,
                      "ok": bool(row["ok"]), "remote_station": station,
                      "number": row["caller_raw"]})
        self.bus.publish("fax.received", {"fax": received_json(row)})
        self.changed.set()
        return row

    def match(self, caller: str, station: str) -> tuple[int | None, int | None, str]:
        """The client of a received fax: by caller ID, then by the digits of the station ID."""
        if caller:
            found = self.matcher.match(caller)
            if found.client_id is not None:
                contact = found.contact
                return found.client_id, contact.contact_id if contact else None, "caller_id"
        digits = re.sub(r"\D", "", station)
        if len(digits) >= MIN_STATION_DIGITS:
            found = self.matcher.match(("+" if station.startswith("+") else "") + digits)
            if found.client_id is not None:
                contact = found.contact
                return found.client_id, contact.contact_id if contact else None, "station_id"
        return None, None, ""

    # -- publishing ------------------------------------------------------------------------

    async def _publish_job(self, job: dict[str, Any]) -> None:
        # The client's history shows the job from the start, with its state per page.
        await self._history_out(job)
        self.bus.publish("fax.status", {"fax": job_json(job)})
        self.changed.set()

    async def _history_out(self, job: dict[str, Any]) -> None:
        if job["client_id"] is None:
            return
        words = result_words(job) if job["state"] in FINAL else state_words(job)
        await self.store.add_interaction(
            InteractionKind.FAX, datetime.fromisoformat(job["created_at"]),
            f"fax to {job['number']}: {words}", client_id=job["client_id"],
            user_id=job["user_id"], ref=f"fax-out-{job['id']}",
            data={"direction": "out", "job_id": job["id"], "state": job["state"],
                  "number": job["number"], "pages": job["pages"],
                  "pages_confirmed": job["pages_confirmed"],
                  "remote_station": job["remote_station"],
                  "words": {lang: (result_words(job, lang) if job["state"] in FINAL
                                   else state_words(job, lang)) for lang in LANGUAGES}})

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Wait until ``condition()`` (an awaitable or a value) is truthy, re-checked after
        each stored change: for tests and the demo."""
        async with asyncio.timeout(timeout):
            while True:
                self.changed.clear()
                value = condition()
                if asyncio.iscoroutine(value):
                    value = await value
                if value:
                    return value
                await self.changed.wait()


def _source_key(tiff: Path) -> str:
    """A received fax's identity: the backend's file, its size and its content."""
    digest = hashlib.sha256()
    try:
        with tiff.open("rb") as fh:
            size = 0
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return f"{tiff}|missing"
    return f"{tiff}|{size}|{digest.hexdigest()}"


def _fsync(path: Path) -> None:
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _display_name(name: str) -> str:
    """An upload's name as kept for display: its last path part, printable, bounded."""
    base = re.split(r"[\\/]", name or "")[-1]
    kept = "".join(ch for ch in base if ch.isprintable()).strip()
    return kept[:120] or "document"
