"""Fakes behind the fax ports for tests of the core: a converter that reads the page count
from the upload (fast; the real one, fax/documents.py, is tested in tests/fax) and a backend
driven by the test."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callcenter.bus import BusEvent, EventBus
from callcenter.config import PhonesConfig
from callcenter.demo import seed_demo
from callcenter.errors import LineUnavailable
from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.ports import (
    DocumentRejected,
    FaxDocument,
    FaxOutcome,
    FaxProgress,
    FaxResult,
    Paper,
    Resolution,
)
from callcenter.faxes.service import FaxService
from callcenter.lines.lifecycle import CheckResult, LineState, LineStatus
from callcenter.matching import CallerMatcher
from callcenter.store.sqlite import SqliteStore
from tests.calls.harness import FAKE_HASH

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
       b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7"
       b"\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")


def upload(folder: Path, pages: int, name: str = "invoice.pdf") -> Path:
    path = folder / name
    path.write_bytes(b"%PDF-1.4 fake pages=" + str(pages).encode())
    return path


class FakeConverter:
    """"pages=N" in the upload gives N pages; "BAD" at the start is rejected."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.counter = itertools.count(1)

    async def to_fax(self, upload: Path, *, resolution: Resolution = Resolution.FINE,
                     paper: Paper = Paper.A4, name: str = "") -> FaxDocument:
        data = upload.read_bytes()
        if data.startswith(b"BAD"):
            raise DocumentRejected("the file is not a PDF, an image or a TIFF")
        pages = int(data.rsplit(b"pages=", 1)[1])
        n = next(self.counter)
        tiff = self.folder / f"conv-{n}.tif"
        tiff.write_bytes(b"II*\x00fake")
        thumb = self.folder / f"conv-{n}.png"
        thumb.write_bytes(PNG)
        return FaxDocument(tiff, pages, resolution, paper, thumb)

    async def to_pdf(self, tiff: Path, pdf: Path) -> int:
        pdf.write_bytes(b"%PDF-1.4\n% fake fax\n%%EOF\n")
        return 0  # "unknown": the event's count stands


@dataclass
class FakeBackend:
    name: str = "fax"
    kind: str = "fake"
    submits: list[tuple[str, int, str]] = field(default_factory=list)
    cancels: list[str] = field(default_factory=list)
    down: bool = False
    sink: Any = None
    counter: Any = field(default_factory=lambda: itertools.count(1))

    async def submit(self, number: str, document: FaxDocument, *, job_id: int) -> str:
        if self.down:
            raise LineUnavailable("the fax line is not connected")
        ref = f"ref-{next(self.counter)}"
        self.submits.append((number, job_id, ref))
        return ref

    async def cancel(self, job_ref: str) -> None:
        self.cancels.append(job_ref)

    async def check(self) -> CheckResult:
        return CheckResult(True, "fake")

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, LineState.UP)

    # what the test makes the far end do
    def progress(self, ref: str, page: int, pages: int, station: str = "") -> None:
        self.sink(FaxProgress(ref, time.time(), "sending", page, pages, station))

    def result(self, ref: str, outcome: FaxOutcome, confirmed: int, pages: int,
               station: str = "", code: int | None = None) -> None:
        self.sink(FaxResult(ref, time.time(), outcome, confirmed, pages, station, code))


@dataclass
class Core:
    store: SqliteStore
    service: FaxService
    backend: FakeBackend
    events: list[BusEvent]
    folder: Path

    async def job(self, job_id: int) -> dict[str, Any]:
        return await self.store.get_fax_job(job_id)

    async def until_state(self, job_id: int, *states: str, timeout: float = 10.0
                          ) -> dict[str, Any]:
        async def check() -> dict[str, Any] | None:
            job = await self.store.get_fax_job(job_id)
            return job if job["state"] in states else None

        return await self.service.wait_for(check, timeout)

    async def until_submits(self, count: int) -> str:
        await self.service.wait_for(lambda: len(self.backend.submits) >= count)
        return self.backend.submits[count - 1][2]

    async def send(self, pages: int, number: str = "+74957654321", client_id: int | None = 1,
                   user: Any = None) -> dict[str, Any]:
        doc = await self.service.prepare(upload(self.folder, pages), "invoice.pdf")
        return await self.service.send(user, document=doc.token, number=number,
                                       client_id=client_id)


@contextlib.asynccontextmanager
async def fax_core(tmp_path: Path, policy: RetryPolicy | None = None, *, start: bool = True,
                   db: Path | None = None, converter: Any = None) -> AsyncIterator[Core]:
    store = await SqliteStore.open(db or tmp_path / "fax.db")
    if not await store.list_users():
        await seed_demo(store, FAKE_HASH)
    bus = EventBus()
    events: list[BusEvent] = []
    bus.subscribe(events.append)
    converter = converter or FakeConverter(tmp_path)
    service = FaxService(store, bus, converter, CallerMatcher(store.caller_index, PhonesConfig()),
                         tmp_path / "data")
    backend = FakeBackend()
    backend.sink = service.sink("fax")
    service.add_line("fax", backend, policy or RetryPolicy(retry_seconds=0.0))
    if start:
        await service.start()
    try:
        yield Core(store, service, backend, events, tmp_path)
    finally:
        await service.stop()
        await store.close()
