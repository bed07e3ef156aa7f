"""The HylaFAX fax line: jobs submitted and tracked through hfaxd's client protocol, received
faxes picked up from its receive queue (see :mod:`fax.hylafax_protocol`).

HylaFAX retries on its own; here every job gets MAXDIALS/MAXTRIES 1 so the core's policy is
the only one (one counter, one backoff, the same words on every line). A job's end is read
from doneq: ``D`` (done) is sent, but only "sent" to the core, which compares the pages
HylaFAX counted as transmitted with the document's; ``F`` (failed) is mapped from HylaFAX's
reason text. A received fax is copied here, handed to the core, and deleted from recvq only
once the core stored it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

from callcenter.config import FaxLineConfig
from callcenter.errors import LineUnavailable
from callcenter.faxes.ports import (
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
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from fax.handover import hand_over
from fax.hylafax_protocol import (
    HylaFaxClient,
    HylaFaxError,
    HylaFaxSubmitUnknown,
    JobParameters,
    JobRow,
)

log = logging.getLogger(__name__)

RUNNING = frozenset("TPSBWR?")
# HylaFAX's reasons (faxsend/faxq status strings) that are worth another call later.
_REASONS: list[tuple[re.Pattern[str], FaxOutcome]] = [
    (re.compile(r"busy", re.I), FaxOutcome.BUSY),
    (re.compile(r"no answer|ring(ing)? timeout", re.I), FaxOutcome.NO_ANSWER),
    (re.compile(r"aborted by request|killed|removed", re.I), FaxOutcome.CANCELLED),
    (re.compile(r"no carrier|dialtone|train|modem|hangup|lost|blocked|no response", re.I),
     FaxOutcome.LINE_ERROR),
]


def outcome_of(row: JobRow) -> FaxOutcome:
    """A finished job's outcome (the core decides "sent" by the page count)."""
    if row.state == "D":
        return FaxOutcome.SENT
    for pattern, outcome in _REASONS:
        if pattern.search(row.status):
            return outcome
    return FaxOutcome.FAILED


def job_tag(job_id: int, attempt: int) -> str:
    return f"crm-{int(job_id)}-{int(attempt)}"


class HylaFaxLine:
    kind = "fax-hylafax"

    def __init__(self, config: FaxLineConfig, sink: Callable[[FaxEvent], object],
                 incoming: Path) -> None:
        self.config = config
        self.name = config.name
        self._sink = sink
        self.incoming = incoming
        self.client = HylaFaxClient(config.host, config.port, config.username, config.password,
                                    admin_password=config.admin_password)
        self._jobs: dict[str, dict[str, int]] = {}  # HylaFAX job id -> our pages, last page
        self._task: asyncio.Task[None] | None = None
        self._state = LineState.STOPPED
        self._detail = ""
        self._last_error = ""
        self._since = time.time()
        # Received faxes taken out of recvq (after the core stored them), for tests.
        self.removed: list[str] = []
        self.picked_up = asyncio.Event()

    @staticmethod
    def ref(job_id: str) -> str:
        return f"hylafax-{job_id}"

    # -- Line ----------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        probe = HylaFaxClient(self.config.host, self.config.port, self.config.username,
                              self.config.password)
        try:
            greeting = await asyncio.to_thread(probe.login_check)
            return CheckResult(True, f"HylaFAX login to {self.config.host}:{self.config.port}"
                               " ok", {"server": greeting[4:80]})
        except HylaFaxError as exc:
            return CheckResult(False, "no HylaFAX login", error=f"{exc}"[:300],
                               hint="hosts.hfaxd must let this user in from this address")
        finally:
            await asyncio.to_thread(probe.close)

    async def start(self) -> None:
        if not self.config.admin_password:
            # hfaxd then lists only recvq files of mode 0644 and never lets us delete one.
            log.warning("fax line %s: no admin_password: received faxes cannot be removed from"
                        " HylaFAX's recvq (and may not be seen at all)", self.name)
        self.incoming.mkdir(parents=True, exist_ok=True)
        self._set(LineState.STARTING)
        self._task = asyncio.create_task(self._poll(), name=f"hylafax-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.client.close)
        self._set(LineState.STOPPED)

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self._state, self._detail, self._last_error,
                          self._since)

    def _set(self, state: LineState, detail: str = "") -> None:
        if state is not self._state:
            self._since = time.time()
        self._state, self._detail = state, detail

    # -- FaxBackend ----------------------------------------------------------------------------

    async def submit(self, number: str, document: FaxDocument, *, job_id: int) -> str:
        letter = document.paper is Paper.LETTER
        params = JobParameters(
            # As dialled: HylaFAX's dial rules (etc/dialrules) turn "+" into its prefix.
            number=number,
            owner=self.config.username, modem=self.config.modem or "any",
            page_width_mm=216 if letter else 209, page_length_mm=279 if letter else 296,
            vres=98 if document.resolution is Resolution.NORMAL else 196,
            tag=job_tag(job_id, document.attempt))
        try:
            hyla_id = await asyncio.to_thread(self.client.submit, document.tiff, params)
        except HylaFaxSubmitUnknown as exc:
            raise ResultUnknown(f"fax line {self.name}: {exc}") from None
        except HylaFaxError as exc:
            raise LineUnavailable(f"fax line {self.name}: HylaFAX refused the job: {exc}"
                                  ) from None
        self._jobs[hyla_id] = {"pages": document.pages, "page": -1}
        return self.ref(hyla_id)

    async def adopt(self, job_id: int, attempt: int) -> str | None:
        """The HylaFAX job of this call of ours, found by its tag in sendq/doneq (after a
        restart, or a crash between JSUBM and storing its id): tracked as if just submitted."""
        tag = job_tag(job_id, attempt)
        for row in await asyncio.to_thread(self.client.jobs):
            if row.tag == tag:
                self._jobs.setdefault(row.job_id, {"pages": row.pages_total, "page": -1})
                return self.ref(row.job_id)
        return None

    async def cancel(self, job_ref: str) -> None:
        hyla_id = job_ref.removeprefix("hylafax-")
        with contextlib.suppress(HylaFaxError):
            await asyncio.to_thread(self.client.kill, hyla_id)

    # -- polling -------------------------------------------------------------------------------

    async def _poll(self) -> None:
        while True:
            try:
                await self.poll_once()
                self._set(LineState.UP, f"hfaxd {self.config.host}:{self.config.port}")
            except HylaFaxError as exc:
                self._last_error = str(exc)[:300]
                self._set(LineState.DOWN, self._last_error)
            except Exception as exc:  # a bug here must not end the polling for good
                log.exception("fax line %s: poll failed", self.name)
                self._last_error = str(exc)[:300]
            await asyncio.sleep(self.config.poll_seconds)

    async def poll_once(self) -> None:
        rows = await asyncio.to_thread(self.client.jobs) if self._jobs else []
        listed = {row.job_id for row in rows}
        for hyla_id in [j for j in self._jobs if j not in listed] if self._jobs else []:
            # Neither in sendq nor in doneq (removed by hand, doneq expired): its end is not
            # known, and nothing else would ever report it.
            ours = self._jobs.pop(hyla_id)
            self._sink(FaxResult(self.ref(hyla_id), time.time(), FaxOutcome.UNKNOWN,
                                 max(0, ours["page"]), ours["pages"],
                                 detail="the job is no longer in HylaFAX's queues"))
        for row in rows:
            ours = self._jobs.get(row.job_id)
            if ours is None:
                continue
            if row.state in RUNNING:
                if row.state == "R" and row.pages_sent > ours["page"]:
                    ours["page"] = row.pages_sent
                    self._sink(FaxProgress(self.ref(row.job_id), time.time(), "sending",
                                           row.pages_sent, ours["pages"]))
                continue
            del self._jobs[row.job_id]
            self._sink(FaxResult(self.ref(row.job_id), time.time(), outcome_of(row),
                                 row.pages_sent, ours["pages"], detail=row.status[:300]))
        await self._pick_up()

    async def _pick_up(self) -> None:
        for row in await asyncio.to_thread(self.client.received):
            if row.receiving:
                continue
            local = self.incoming / f"{self.name}-{row.name}"
            if not local.exists():
                await asyncio.to_thread(self.client.fetch, row.name, local)
            event = FaxReceived(self.name, time.time(), local, row.pages, row.caller,
                                row.station, not row.error, row.error[:300])
            if not await hand_over(self._sink, event):
                continue  # not stored: stays in recvq, tried again next poll
            await asyncio.to_thread(self.client.delete, row.name)
            local.unlink(missing_ok=True)
            self.removed.append(row.name)
            self.picked_up.set()
