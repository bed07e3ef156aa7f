"""The document pipeline: an upload (PDF, PNG, JPEG, TIFF) becomes a fax TIFF; a received fax
TIFF becomes a PDF. Implements :class:`callcenter.faxes.ports.DocumentConverter`.

Everything a stranger can get wrong is refused with a sentence (:class:`DocumentRejected`)
before any call is made: the real type is read from the bytes (``fax.sniff``), a PDF is opened
with pikepdf to count its pages and to see whether it is encrypted, and the page cap and the size
cap hold for every kind. Ghostscript (``tiffg4``) renders PDFs; Pillow scales and dithers images;
img2pdf wraps received G4 pages into a PDF without decoding them.

Nothing blocks the event loop, and nothing outlives the time limit: ghostscript and the
Python-side work on the stranger's file (pikepdf, Pillow, img2pdf, in ``fax.documents_worker``)
are child processes with fixed argv, a minimal environment and memory/CPU limits, killed on
timeout or cancel before the job folder is removed. Ghostscript never sees a name chosen by the
user, nor the upload itself: it reads pikepdf's rewrite of the PDF, under a fixed name, inside
the job folder, on relative names (``-sOutputFile`` would expand a ``%`` in a path of ours too).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callcenter.faxes.ports import DocumentRejected, FaxDocument, Paper, Resolution
from fax.documents_work import (  # noqa: F401 (the pipeline's public names, re-exported)
    FAX_WIDTH,
    PAGE_MM,
    THUMBNAIL_WIDTH,
    X_DPI,
    Y_DPI,
    ConvertLimits,
    finish_rendered,
    images_to_fax,
    inspect_pdf,
    page_rows,
    thumbnail,
    tiff_pages,
    tiff_to_pdf,
    to_pdf_temporaries,
)
from fax.sniff import HEAD_BYTES, Kind, check_upload

log = logging.getLogger(__name__)

_STDERR_KEPT = 4096  # ghostscript's complaints, kept for the log; the rest is read and dropped


class FaxConverter:
    """PDF/PNG/JPEG/TIFF → fax TIFF (G4, 1728 px wide) and received TIFF → PDF.

    ``workdir`` is a folder of ours: every conversion gets a fresh sub-folder there holding the
    fax TIFF and the thumbnail named in the returned :class:`FaxDocument` (the caller deletes
    them with :meth:`discard` once the job no longer needs them)."""

    def __init__(self, workdir: Path, limits: ConvertLimits | None = None, *,
                 gs: str = "gs") -> None:
        self.workdir = Path(workdir)
        self.limits = limits or ConvertLimits()
        self.gs = gs
        # Tests watch ghostscript's process through this hook (the kill on timeout)...
        self.on_spawn: Callable[[asyncio.subprocess.Process], None] | None = None
        # ... and the Python worker's (pikepdf, Pillow, img2pdf) through this one.
        self.on_worker: Callable[[asyncio.subprocess.Process], None] | None = None

    # -- uploads --------------------------------------------------------------------------

    async def to_fax(self, upload: Path, *, resolution: Resolution = Resolution.FINE,
                     paper: Paper = Paper.A4, name: str = "") -> FaxDocument:
        """Convert an upload. ``name`` is the file name the user gave (only its extension is
        looked at); without it the upload's own name is used."""
        resolution, paper = Resolution(resolution), Paper(paper)
        job = self.workdir / uuid.uuid4().hex
        try:
            async with asyncio.timeout(self.limits.timeout):
                # Our own copy under our own name, taken first: what we check is what
                # ghostscript reads, whatever happens to the upload meanwhile.
                source, head = await _finished_thread(self._take, Path(upload), job)
                kind = check_upload(head, name or Path(upload).name)
                return await self._convert(source, kind, job, resolution, paper)
        except TimeoutError:
            shutil.rmtree(job, ignore_errors=True)
            raise DocumentRejected(
                f"Converting the document took longer than {self.limits.timeout:g} seconds; "
                "it may be damaged or too complex. Try a simpler PDF or an image.") from None
        except BaseException:
            shutil.rmtree(job, ignore_errors=True)
            raise

    def _take(self, upload: Path, job: Path) -> tuple[Path, bytes]:
        """Copy the upload into ``job`` (at most max_bytes) and return the copy and its head.
        The upload is a file of ours (the web layer's spool): failing to read it or to write
        the copy is our error (OSError), not the user's."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        job.mkdir(mode=0o700)
        source = job / "upload"
        limit = self.limits.max_bytes
        size = 0
        with upload.open("rb") as src, source.open("wb") as dst:
            head = src.read(HEAD_BYTES)
            dst.write(head)
            size = len(head)
            while size <= limit and (chunk := src.read(1 << 20)):
                dst.write(chunk)
                size += len(chunk)
        if size == 0:
            raise DocumentRejected("The file is empty.")
        if size > limit:
            raise DocumentRejected(
                f"The file is larger than {_size_words(limit)}, the most that can be faxed.")
        return source, head

    async def _convert(self, source: Path, kind: Kind, job: Path, resolution: Resolution,
                       paper: Paper) -> FaxDocument:
        tiff, thumb = job / "fax.tiff", job / "page1.png"
        if kind is Kind.PDF:
            # Ghostscript reads only pikepdf's rewrite of the PDF: whatever else the upload
            # holds (PostScript before the header, junk after %%EOF) never reaches it.
            clean = job / "clean.pdf"
            pages = await self._work(job, "pdf", source=str(source), clean=str(clean),
                                     max_pages=self.limits.max_pages)
            source.unlink()
            await self._ghostscript(job, clean.name, "gs.tiff", resolution, paper)
            clean.unlink()
            # Ghostscript's own output, G4 strips copied as they are: bounded work, done here
            # (a thread the time limit waits for) rather than in a second worker process.
            rendered = await _finished_thread(finish_rendered, job / "gs.tiff", tiff)
            await _finished_thread(thumbnail, tiff, thumb)
            if rendered != pages:
                raise DocumentRejected(
                    f"Only {rendered} of the PDF's {pages} pages could be read; "
                    "the file looks damaged.")
        else:
            pages = await self._work(job, "images", source=str(source), tiff=str(tiff),
                                     thumb=str(thumb), resolution=resolution.value,
                                     paper=paper.value,
                                     limits=dataclasses.asdict(self.limits))
            source.unlink()
        return FaxDocument(tiff=tiff, pages=pages, resolution=resolution, paper=paper,
                           thumbnail_png=thumb)

    async def _ghostscript(self, job: Path, source: str, out: str, resolution: Resolution,
                           paper: Paper) -> None:
        argv = [
            *self._rlimit_prefix(),
            self.gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dNOPROMPT",
            "-dPDFSTOPONERROR",  # a broken page fails the conversion instead of going blank
            f"-dLastPage={self.limits.max_pages}",
            "-sDEVICE=tiffg4", f"-r{X_DPI}x{Y_DPI[resolution]}",
            f"-g{FAX_WIDTH}x{page_rows(paper, resolution)}", "-dFIXEDMEDIA", "-dPDFFitPage",
            f"-sOutputFile={out}", "-f", source,
        ]
        # No GS_OPTIONS, GS_LIB or fonts path of the caller's environment: only what we say.
        env = {"PATH": _SAFE_PATH, "LC_ALL": "C", "HOME": str(job), "TMPDIR": str(job)}
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=job, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        if self.on_spawn is not None:
            self.on_spawn(proc)
        try:
            err = await _read_bounded(proc.stderr)
            rc = await proc.wait()
        finally:
            await _reap(proc)
        if rc != 0:
            log.info("ghostscript failed (%s): %s", rc, err.decode("utf-8", "replace")[:500])
            raise DocumentRejected("The PDF could not be rendered; the file looks damaged.")

    def _rlimit_prefix(self) -> list[str]:
        """prlimit (util-linux) sets the limits and execs the command: the pid we kill is
        ghostscript's own."""
        prlimit = shutil.which("prlimit", path=_SAFE_PATH)
        if prlimit is None:
            log.warning("prlimit not found: ghostscript runs without memory and CPU limits")
            return []
        return [prlimit, f"--as={self.limits.max_memory}", f"--cpu={self._cpu_seconds()}",
                "--"]

    def _cpu_seconds(self) -> int:
        return max(1, math.ceil(self.limits.timeout)) + 1

    async def _work(self, cwd: Path, op: str, **args: Any) -> Any:
        """Run one blocking step in ``python -P -m fax.documents_worker`` (a fixed argv; the
        request goes on stdin; -P: the working folder is not on sys.path): a timeout or a
        cancel kills it like ghostscript, so no pikepdf or Pillow work outlives the conversion
        or races the removal of its folder."""
        request = json.dumps({"op": op, "args": args, "memory": self.limits.max_memory,
                              "cpu": self._cpu_seconds()}).encode()
        env = {"PATH": _SAFE_PATH, "LC_ALL": "C.UTF-8", "PYTHONPATH": _PROJECT_ROOT,
               "TMPDIR": str(cwd)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-P", "-m", "fax.documents_worker", cwd=cwd, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        if self.on_worker is not None:
            self.on_worker(proc)
        try:
            assert proc.stdin is not None
            proc.stdin.write(request)
            await proc.stdin.drain()
            proc.stdin.close()
            out, err = await asyncio.gather(_read_bounded(proc.stdout, 65536),
                                            _read_bounded(proc.stderr))
            rc = await proc.wait()
        finally:
            await _reap(proc)
        try:
            reply = json.loads(out) if rc == 0 else {}
        except ValueError:
            reply = {}
        if "rejected" in reply:
            raise DocumentRejected(str(reply["rejected"]))
        if "result" in reply:
            return reply["result"]
        log.info("document worker %s failed (%s): %s", op, rc,
                 err.decode("utf-8", "replace")[-1000:])
        raise DocumentRejected("The document could not be converted; the file looks damaged "
                               "or is too complex.")

    # -- received faxes --------------------------------------------------------------------

    async def to_pdf(self, tiff: Path, pdf: Path) -> int:
        """A received fax TIFF as PDF (G4 pages embedded as they are); returns the page count.
        Raises DocumentRejected when the TIFF cannot be read or takes longer than the limit."""
        tiff, pdf = Path(tiff).absolute(), Path(pdf).absolute()
        pdf.parent.mkdir(parents=True, exist_ok=True)
        try:
            async with asyncio.timeout(self.limits.timeout):
                return await self._work(pdf.parent, "to_pdf", tiff=str(tiff), pdf=str(pdf),
                                        max_pages=self.limits.max_received_pages,
                                        max_pixels=self.limits.max_pixels)
        except TimeoutError:
            raise DocumentRejected(
                f"Converting the received fax took longer than {self.limits.timeout:g} "
                "seconds.") from None
        finally:
            for leftover in to_pdf_temporaries(pdf):
                leftover.unlink(missing_ok=True)

    async def thumbnail(self, tiff: Path, png: Path) -> None:
        tiff, png = Path(tiff).absolute(), Path(png).absolute()
        async with asyncio.timeout(self.limits.timeout):
            await self._work(png.parent, "thumbnail", tiff=str(tiff), png=str(png))

    @staticmethod
    async def discard(document: FaxDocument) -> None:
        """Delete a converted document's files (its folder is ours alone)."""
        await asyncio.to_thread(shutil.rmtree, document.tiff.parent, True)


_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_PROJECT_ROOT = str(Path(__file__).resolve().parents[1])


async def _reap(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:  # timed out or cancelled: never leave it running
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def _finished_thread(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn`` in a worker thread; a cancel (or the time limit) waits for the thread to finish
    before it goes through, so the caller's clean-up never races it. Only for bounded work
    (the size-capped copy of the upload)."""
    future = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(future)
        raise


def _size_words(n: int) -> str:
    return f"{n / 1048576:.0f} MB" if n >= 1048576 else f"{max(1, n // 1024)} KB"


async def _read_bounded(stream: asyncio.StreamReader | None, keep: int = _STDERR_KEPT) -> bytes:
    kept = bytearray()
    if stream is None:
        return b""
    while chunk := await stream.read(65536):
        if len(kept) < keep:
            kept += chunk[: keep - len(kept)]
    return bytes(kept)
