"""The fax job state machine, without I/O: a job row and a backend event in, the changes to
store out.

    queued → dialing → sending (page k of n) → sent | failed | retry-scheduled | cancelled
    (converting: the state for a document still being made into a fax TIFF; the console
    converts before the job exists — POST /api/fax-documents shows the page count and the
    thumbnail first — so its jobs start queued, and a rejected document never becomes one)

A job is **sent** only when the far end confirmed as many pages as the document has; anything
less is failed "pages 1–k of n sent", whatever the backend called it. Busy, no answer and line
errors are retried with backoff while attempts are left; a rejected document, a refusal by the
far end and a partial transfer are not (resending a whole document after a partial one is the
user's decision). A job found mid-call at start-up (the process died during the call) is
"interrupted, pages k of n confirmed", and retried only when the line's policy says so.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.faxes.ports import FaxOutcome, FaxProgress, FaxResult


class JobState(enum.StrEnum):
    QUEUED = "queued"
    CONVERTING = "converting"
    DIALING = "dialing"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    CANCELLED = "cancelled"


ACTIVE = (JobState.DIALING.value, JobState.SENDING.value)
FINAL = (JobState.SENT.value, JobState.FAILED.value, JobState.CANCELLED.value)
WAITING = (JobState.QUEUED.value, JobState.RETRY_SCHEDULED.value)
RETRIED = (FaxOutcome.BUSY, FaxOutcome.NO_ANSWER, FaxOutcome.LINE_ERROR)
MAX_RETRY_SECONDS = 86400.0  # the longest wait between two calls of a job
MAX_STATION_CHARS = 64  # T.30 allows 20; backends have been seen to pass more, or garbage


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3  # calls per job, the first included
    retry_seconds: float = 120.0  # before the second call
    backoff: float = 2.0  # each further wait is this many times the previous one
    retry_interrupted: bool = False  # a job cut by a restart is called again from page 1
    # A call with no result after dial_timeout + pages x page_timeout seconds is ended
    # "failed, result unknown" (a line that never reports must not block it for ever).
    dial_timeout: float = 180.0
    page_timeout: float = 300.0

    def call_deadline(self, pages: int) -> float:
        return self.dial_timeout + max(1, pages) * self.page_timeout

    def delay(self, attempts: int) -> float:
        # Capped (a float power overflows at a few hundred attempts; a day is long enough).
        try:
            wait = self.retry_seconds * self.backoff ** max(0, attempts - 1)
        except OverflowError:
            wait = MAX_RETRY_SECONDS
        return min(wait, MAX_RETRY_SECONDS)


def clean_station(text: str) -> str:
    """A remote station ID as stored: free text from a stranger, bounded, no control
    characters (it is escaped again wherever shown)."""
    kept = "".join(ch for ch in text if ch.isprintable())
    return kept.strip()[:MAX_STATION_CHARS]


def ts(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def on_progress(job: dict[str, Any], progress: FaxProgress) -> dict[str, Any]:
    """Changes for a progress report; {} when it changes nothing (or the job is over)."""
    if job["state"] not in ACTIVE:
        return {}
    changes: dict[str, Any] = {}
    if progress.state == "sending":
        confirmed = min(max(progress.page, job["pages_confirmed"]), job["pages"])
        changes = {"state": JobState.SENDING.value, "pages_confirmed": confirmed,
                   "page": min(confirmed + 1, job["pages"])}
    station = clean_station(progress.remote_station)
    if station and station != job["remote_station"]:
        changes["remote_station"] = station
    return {k: v for k, v in changes.items() if job.get(k) != v}


def on_result(job: dict[str, Any], result: FaxResult, policy: RetryPolicy, now: float
              ) -> dict[str, Any]:
    """Changes for the end of a call (a job already over stays as it is: {})."""
    if job["state"] in FINAL:
        return {}
    pages = job["pages"]
    confirmed = max(0, result.pages_confirmed)
    changes: dict[str, Any] = {
        "pages_confirmed": min(confirmed, pages), "page": 0, "t30_code": result.t30_code,
        "detail": result.detail[:500], "next_try_at": None,
    }
    station = clean_station(result.remote_station)
    if station:
        changes["remote_station"] = station
    done = {"finished_at": ts(now)}
    if result.outcome is FaxOutcome.SENT and confirmed == pages:
        return changes | done | {"state": JobState.SENT.value, "result": "sent"}
    if result.outcome is FaxOutcome.UNKNOWN:
        return changes | done | {"state": JobState.FAILED.value, "result": "unknown"}
    if job.get("cancel_requested") or result.outcome is FaxOutcome.CANCELLED:
        return changes | done | {"state": JobState.CANCELLED.value, "result": "cancelled"}
    # A call that got pages through is never repeated on its own: the far end would get
    # those pages twice (resending is the user's decision), whatever the backend called it.
    if result.outcome in RETRIED and confirmed == 0:
        key = result.outcome.value
        if job["attempts"] < policy.max_attempts:
            at = datetime.fromtimestamp(now, UTC) + timedelta(
                seconds=policy.delay(job["attempts"]))
            return changes | {"state": JobState.RETRY_SCHEDULED.value, "result": key,
                              "next_try_at": at.isoformat(timespec="milliseconds")}
        return changes | done | {"state": JobState.FAILED.value, "result": key}
    # Refused, cut, or "sent" with pages missing: never called a success, never retried.
    key = "partial" if 0 < confirmed < pages else "none_sent"
    if confirmed > pages:  # the backend sent something other than this document
        key = "page_mismatch"
    return changes | done | {"state": JobState.FAILED.value, "result": key}


def on_interrupted(job: dict[str, Any], policy: RetryPolicy, now: float) -> dict[str, Any]:
    """A job left dialing or sending by a process that died: what is known of it stays
    (pages confirmed so far); it is called again only when the policy allows and attempts
    are left."""
    changes: dict[str, Any] = {"interrupted": 1, "result": "interrupted", "page": 0}
    if policy.retry_interrupted and job["attempts"] < policy.max_attempts:
        return changes | {"state": JobState.RETRY_SCHEDULED.value, "next_try_at": ts(now),
                          "backend_ref": None}
    return changes | {"state": JobState.FAILED.value, "finished_at": ts(now)}


def on_submit_failed(job: dict[str, Any], policy: RetryPolicy, now: float, detail: str
                     ) -> dict[str, Any]:
    """The line could not take the job (down, refused the call): a line error."""
    result = FaxResult("", now, FaxOutcome.LINE_ERROR, 0, job["pages"], detail=detail)
    changes = on_result(job, result, policy, now)
    if changes.get("result") == "line_error":
        changes["result"] = "no_line"
    return changes
