"""What the fax core needs from a fax backend and from the document pipeline, so the core never
imports ``fax/`` (Asterisk over AMI, HylaFAX, the spandsp engine all implement FaxBackend).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Resolution(enum.StrEnum):
    FINE = "fine"  # 204 x 196 dpi (default)
    NORMAL = "normal"  # 204 x 98 dpi


class Paper(enum.StrEnum):
    A4 = "a4"
    LETTER = "letter"


@dataclass(frozen=True, slots=True)
class FaxDocument:
    """A document ready to send: a TIFF Class F file (1728 px wide, G4 or G3) and what is known
    about it before any call is made."""

    tiff: Path
    pages: int
    resolution: Resolution
    paper: Paper
    thumbnail_png: Path  # page 1, small, for the console
    # Which call of its job this is (the first is 1): a backend that can tag its own job with
    # it finds that job again after a restart (see FaxBackend.adopt).
    attempt: int = 1


class DocumentRejected(Exception):
    """The upload cannot be faxed (corrupt, encrypted, empty, too many pages, not what its name
    says); ``reason`` is a sentence for the user. Never retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DocumentConverter(Protocol):
    async def to_fax(self, upload: Path, *, resolution: Resolution = Resolution.FINE,
                     paper: Paper = Paper.A4, name: str = "") -> FaxDocument:
        """``name``: the file name the user gave the upload (checked against its real type,
        never used as a path); without it the upload's own name is checked."""
        ...

    async def to_pdf(self, tiff: Path, pdf: Path) -> int:
        """A received fax as PDF (G4 embedded without re-encoding); returns the page count."""
        ...


class FaxOutcome(enum.StrEnum):
    SENT = "sent"  # every page confirmed by the far end
    FAILED = "failed"  # call made, not every page confirmed, or refused by the far end
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    LINE_ERROR = "line_error"  # congestion, no carrier, training failed
    CANCELLED = "cancelled"
    # The call may have happened, its end was not seen (connection lost after the request,
    # no answer from the line in time): never "sent", never called again on its own.
    UNKNOWN = "unknown"


class ResultUnknown(Exception):
    """Raised by submit() when the request may have reached the line (the job may be sent)
    but its fate is unknown: the job ends "failed, result unknown" and is not retried."""


@dataclass(frozen=True, slots=True)
class FaxProgress:
    job_ref: str  # the backend's handle for the job (what submit() returned)
    at: float
    state: str  # "dialing" | "sending"
    page: int  # pages confirmed so far
    pages: int | None
    remote_station: str = ""  # free text from the far end: escape wherever shown


@dataclass(frozen=True, slots=True)
class FaxResult:
    job_ref: str
    at: float
    outcome: FaxOutcome
    pages_confirmed: int
    pages: int | None
    remote_station: str = ""
    t30_code: int | None = None  # the T.30/backend result code, translated by the core
    detail: str = ""  # the backend's own words, for the log


@dataclass(frozen=True, slots=True)
class FaxReceived:
    line: str
    at: float
    tiff: Path  # the received pages, already stored by the backend's receive path
    pages: int
    caller_num: str  # as received, may be ""
    remote_station: str  # free text from the far end
    ok: bool  # every page received cleanly
    detail: str = ""


FaxEvent = FaxProgress | FaxResult | FaxReceived


class FaxBackend(Protocol):
    """One fax line. Also a :class:`callcenter.lines.lifecycle.Line` (check/start/stop/status).
    Events (progress, result, received faxes) go to the sink given at construction; the core
    stores a received fax before the backend removes it from its own queue."""

    name: str

    async def submit(self, number: str, document: FaxDocument, *, job_id: int) -> str:
        """Start sending; returns the backend's job reference. Raises LineUnavailable when down."""
        ...

    async def cancel(self, job_ref: str) -> None: ...

    # Optional: ``async def adopt(self, job_id: int, attempt: int) -> str | None``. At start
    # the core asks it about each job a previous run left in a call: the backend's reference
    # when that call is still known to the backend (it then reports its end as usual), None
    # when it is not (the job is "interrupted"). A backend without it cannot tell: every such
    # job is interrupted.


FaxSink = Callable[[FaxEvent], object]
