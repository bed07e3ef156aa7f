"""The document pipeline: an upload (PDF, PNG, JPEG, TIFF) becomes a fax TIFF; a received fax
TIFF becomes a PDF. Implements :class:`callcenter.faxes.ports.DocumentConverter`.

Everything a stranger can get wrong is refused with a sentence (:class:`DocumentRejected`)
before any call is made: the real type is read from the bytes (``fax.sniff``), a PDF is opened
with pikepdf to count its pages and to see whether it is encrypted, and the page cap and the size
cap hold for every kind. Ghostscript (``tiffg4``) renders PDFs; Pillow scales and dithers images;
img2pdf wraps received G4 pages into a PDF without decoding them.

Nothing blocks the event loop: ghostscript is an asyncio subprocess that is killed when it runs
past the time limit, and the Python-side work runs in ``asyncio.to_thread``. Ghostscript never
sees a name chosen by the user: the upload is copied into a folder of ours under a fixed name, and
ghostscript runs inside that folder on relative names (``-sOutputFile`` would expand a ``%`` in a
path of ours too).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from callcenter.faxes.ports import DocumentRejected, FaxDocument, Paper, Resolution
from fax.sniff import HEAD_BYTES, Kind, check_upload

log = logging.getLogger(__name__)

FAX_WIDTH = 1728  # pixels per row of an ITU-T T.4 A4/Letter page, at 204 dpi
X_DPI = 204
Y_DPI = {Resolution.FINE: 196, Resolution.NORMAL: 98}
PAGE_MM = {Paper.A4: (210.0, 297.0), Paper.LETTER: (215.9, 279.4)}
THUMBNAIL_WIDTH = 240
_ROWS_PER_STRIP = 278  # TIFF tag
_STDERR_KEPT = 4096  # ghostscript's complaints, kept for the log; the rest is read and dropped


def page_rows(paper: Paper, resolution: Resolution) -> int:
    """Rows of a full page: 2292 for A4 fine, 1146 for A4 normal, 2156/1078 for Letter."""
    return round(PAGE_MM[paper][1] / 25.4 * Y_DPI[resolution])


@dataclass(frozen=True, slots=True)
class ConvertLimits:
    max_pages: int = 100  # an upload with more pages is refused
    max_bytes: int = 25 * 1024 * 1024  # upload size
    timeout: float = 120.0  # seconds for one conversion, ghostscript included
    max_pixels: int = 80_000_000  # one image (or TIFF page) larger than this is refused
    max_received_pages: int = 1000  # a received TIFF longer than this is not converted


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
        # Tests watch ghostscript's process through this hook (the kill on timeout).
        self.on_spawn: Callable[[asyncio.subprocess.Process], None] | None = None

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
                source, head = await asyncio.to_thread(self._take, Path(upload), job)
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
        """Copy the upload into ``job`` (at most max_bytes) and return the copy and its head."""
        job.mkdir(parents=True)
        source = job / "upload"
        limit = self.limits.max_bytes
        size = 0
        try:
            with upload.open("rb") as src, source.open("wb") as dst:
                head = src.read(HEAD_BYTES)
                dst.write(head)
                size = len(head)
                while size <= limit and (chunk := src.read(1 << 20)):
                    dst.write(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise DocumentRejected("The uploaded file could not be read.") from exc
        if size == 0:
            raise DocumentRejected("The file is empty.")
        if size > limit:
            raise DocumentRejected(
                f"The file is larger than {_size_words(limit)}, the most that can be faxed.")
        return source, head

    async def _convert(self, source: Path, kind: Kind, job: Path, resolution: Resolution,
                       paper: Paper) -> FaxDocument:
        tiff = job / "fax.tiff"
        if kind is Kind.PDF:
            pages = await asyncio.to_thread(inspect_pdf, source, self.limits.max_pages)
            await self._ghostscript(job, source.name, tiff.name, resolution, paper)
            rendered = await asyncio.to_thread(tiff_pages, tiff)
            if rendered != pages:
                raise DocumentRejected(
                    f"Only {rendered} of the PDF's {pages} pages could be read; "
                    "the file looks damaged.")
        else:
            pages = await asyncio.to_thread(images_to_fax, source, tiff, resolution, paper,
                                            self.limits)
        source.unlink()
        thumb = job / "page1.png"
        await asyncio.to_thread(thumbnail, tiff, thumb)
        return FaxDocument(tiff=tiff, pages=pages, resolution=resolution, paper=paper,
                           thumbnail_png=thumb)

    async def _ghostscript(self, job: Path, source: str, out: str, resolution: Resolution,
                           paper: Paper) -> None:
        argv = [
            self.gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dNOPROMPT",
            "-dPDFSTOPONERROR",  # a broken page fails the conversion instead of going blank
            f"-dLastPage={self.limits.max_pages}",
            "-sDEVICE=tiffg4", f"-r{X_DPI}x{Y_DPI[resolution]}",
            f"-g{FAX_WIDTH}x{page_rows(paper, resolution)}", "-dFIXEDMEDIA", "-dPDFFitPage",
            f"-sOutputFile={out}", "-f", source,
        ]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=job, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        if self.on_spawn is not None:
            self.on_spawn(proc)
        try:
            err = await _read_bounded(proc.stderr)
            rc = await proc.wait()
        finally:
            if proc.returncode is None:  # timed out or cancelled: never leave gs running
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if rc != 0:
            log.info("ghostscript failed (%s): %s", rc, err.decode("utf-8", "replace")[:500])
            raise DocumentRejected("The PDF could not be rendered; the file looks damaged.")

    # -- received faxes --------------------------------------------------------------------

    async def to_pdf(self, tiff: Path, pdf: Path) -> int:
        """A received fax TIFF as PDF (G4 pages embedded as they are); returns the page count.
        Raises DocumentRejected when the TIFF cannot be read."""
        return await asyncio.to_thread(tiff_to_pdf, Path(tiff), Path(pdf),
                                       self.limits.max_received_pages)

    async def thumbnail(self, tiff: Path, png: Path) -> None:
        await asyncio.to_thread(thumbnail, Path(tiff), Path(png))

    @staticmethod
    async def discard(document: FaxDocument) -> None:
        """Delete a converted document's files (its folder is ours alone)."""
        await asyncio.to_thread(shutil.rmtree, document.tiff.parent, True)


def _size_words(n: int) -> str:
    return f"{n / 1048576:.0f} MB" if n >= 1048576 else f"{max(1, n // 1024)} KB"


async def _read_bounded(stream: asyncio.StreamReader | None) -> bytes:
    kept = bytearray()
    if stream is None:
        return b""
    while chunk := await stream.read(65536):
        if len(kept) < _STDERR_KEPT:
            kept += chunk[: _STDERR_KEPT - len(kept)]
    return bytes(kept)


# -- blocking helpers (run in a worker thread) ---------------------------------------------


def inspect_pdf(path: Path, max_pages: int) -> int:
    """The page count of a PDF that can be faxed; DocumentRejected otherwise."""
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            if pdf.is_encrypted and not pdf.allow.print_highres:
                raise DocumentRejected(
                    "The PDF is protected against printing; remove the protection and "
                    "upload it again.")
            pages = len(pdf.pages)
    except pikepdf.PasswordError:
        raise DocumentRejected(
            "The PDF is encrypted with a password; save it without a password and upload "
            "it again.") from None
    except pikepdf.PdfError as exc:
        log.info("unreadable PDF: %s", exc)
        raise DocumentRejected("The PDF is damaged and cannot be read.") from None
    if pages == 0:
        raise DocumentRejected("The PDF has no pages.")
    if pages > max_pages:
        raise DocumentRejected(
            f"The document has {pages} pages; at most {max_pages} pages can be faxed.")
    return pages


def tiff_pages(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)


def images_to_fax(source: Path, tiff: Path, resolution: Resolution, paper: Paper,
                  limits: ConvertLimits) -> int:
    """PNG, JPEG or (multi-page) TIFF → G4 fax TIFF; returns the page count."""
    from PIL import Image, UnidentifiedImageError

    y_dpi = Y_DPI[resolution]
    try:
        with Image.open(source) as im:
            count = getattr(im, "n_frames", 1)
            if count > limits.max_pages:
                raise DocumentRejected(
                    f"The document has {count} pages; at most {limits.max_pages} pages can "
                    "be faxed.")
            pages = []
            for i in range(count):
                im.seek(i)
                if im.width * im.height > limits.max_pixels:
                    raise DocumentRejected(
                        f"The image is {im.width}×{im.height} pixels, too large to fax.")
                pages.append(_fax_page(im, y_dpi, page_rows(paper, resolution)))
    except Image.DecompressionBombError:
        raise DocumentRejected("The image has too many pixels to fax.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        log.info("unreadable image: %s", exc)
        raise DocumentRejected("The image is damaged and cannot be read.") from None
    if not pages:
        raise DocumentRejected("The image has no pages.")
    save_g4(tiff, pages, (X_DPI, y_dpi))
    return len(pages)


def save_g4(path: Path, pages: list, dpi: tuple[float, float]) -> None:
    """A multi-page G4 TIFF with one strip per page: img2pdf embeds such pages as they are
    (Pillow's default of many small strips makes it decode and re-compress every page)."""
    rows = max(page.height for page in pages)
    pages[0].save(path, format="TIFF", compression="group4", save_all=True,
                  append_images=pages[1:], dpi=dpi, tiffinfo={_ROWS_PER_STRIP: rows})


def _fax_page(im, y_dpi: int, rows: int):
    """One page as a 1-bit image 1728 px wide at 204×y_dpi, fitted into the paper."""
    from PIL import Image, ImageOps

    dpi = im.info.get("dpi")
    if im.format == "JPEG":
        im.draft("L", (FAX_WIDTH, rows))  # decode at 1/2, 1/4 or 1/8 scale when that suffices
    if (im.mode == "1" and im.width == FAX_WIDTH and dpi
            and round(float(dpi[0])) == X_DPI and abs(float(dpi[1]) - y_dpi) < 2):
        return im.copy()  # already a fax page at this resolution: keep every pixel
    if im.format == "JPEG" or im.info.get("exif"):
        im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    gray = im.convert("L")
    # Physical size: the image's own dpi when it has a believable one, else fit to the page.
    src_x, src_y = (float(dpi[0]), float(dpi[1])) if dpi and min(dpi) >= 50 else (0.0, 0.0)
    page_w_in, page_h_in = FAX_WIDTH / X_DPI, rows / y_dpi
    if src_x and gray.width / src_x <= page_w_in and gray.height / src_y <= page_h_in:
        w_in, h_in = gray.width / src_x, gray.height / src_y
    else:
        aspect = (gray.width / (src_x or 1)) / (gray.height / (src_y or 1))
        if aspect >= page_w_in / page_h_in:
            w_in, h_in = page_w_in, page_w_in / aspect
        else:
            w_in, h_in = page_h_in * aspect, page_h_in
    size = (max(1, min(FAX_WIDTH, round(w_in * X_DPI))), max(1, min(rows, round(h_in * y_dpi))))
    # reducing_gap: a box reduction first, then Lanczos on the small image (10x faster on a
    # 300 dpi scan, no visible difference after dithering to 1 bit)
    scaled = gray.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    canvas = Image.new("L", (FAX_WIDTH, rows), 255)
    canvas.paste(scaled, ((FAX_WIDTH - size[0]) // 2, 0))
    return canvas.convert("1")  # Floyd–Steinberg dithering


def thumbnail(tiff: Path, png: Path, width: int = THUMBNAIL_WIDTH) -> None:
    """Page 1, grey, ``width`` px wide, with the page's true proportions (fax pixels at normal
    resolution are twice as tall as wide)."""
    from PIL import Image

    with Image.open(tiff) as im:
        im.seek(0)
        dpi = im.info.get("dpi") or (X_DPI, Y_DPI[Resolution.FINE])
        stretch = float(dpi[0]) / float(dpi[1] or dpi[0])
        height = max(1, round(im.height * stretch * width / im.width))
        small = im.convert("L").resize((width, height), Image.Resampling.BOX)
    tmp = png.with_suffix(".tmp")
    small.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, png)


def tiff_to_pdf(tiff: Path, pdf: Path, max_pages: int) -> int:
    """Received TIFF → PDF. G4 pages go in as they are; other bilevel codings (G3 from some
    senders) are re-encoded to G4 first, still lossless, so img2pdf can embed them too."""
    import img2pdf
    from PIL import Image, UnidentifiedImageError

    try:
        with tiff.open("rb") as f:
            head = f.read(4)
        if head not in (b"II*\x00", b"MM\x00*"):
            raise DocumentRejected("The received fax is not a TIFF file.")
        with Image.open(tiff) as im:
            count = getattr(im, "n_frames", 1)
            if count > max_pages:
                raise DocumentRejected(
                    f"The received fax has {count} pages, more than {max_pages}.")
            needs_g4 = False
            for i in range(count):
                im.seek(i)
                if im.mode != "1" or im.info.get("compression") != "group4":
                    needs_g4 = True
            source = tiff
            if needs_g4:
                source = pdf.with_suffix(".g4.tiff")
                frames = []
                for i in range(count):
                    im.seek(i)
                    frames.append((im.convert("1") if im.mode != "1" else im.copy(),
                                   im.info.get("dpi") or (X_DPI, 196)))
                # Pillow writes one dpi for all pages; faxes do not mix resolutions mid-call.
                save_g4(source, [f for f, _ in frames], frames[0][1])
        tmp = pdf.with_suffix(".pdf.tmp")
        try:
            with tmp.open("wb") as out:
                img2pdf.convert(str(source), outputstream=out)
            os.replace(tmp, pdf)
        finally:
            tmp.unlink(missing_ok=True)
            if source != tiff:
                source.unlink(missing_ok=True)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            img2pdf.ImageOpenError, Image.DecompressionBombError) as exc:
        log.info("unreadable received TIFF %s: %s", tiff, exc)
        raise DocumentRejected("The received fax could not be read.") from None
    return count
