"""The blocking steps of the document pipeline (pikepdf, Pillow, img2pdf, the Class F writer)
and the sizes they work to. The steps that touch a stranger's file run in
``fax.documents_worker``, a process the converter kills on timeout; this module imports no
asyncio, so that process starts quickly.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callcenter.faxes.ports import DocumentRejected, Paper, Resolution
from fax import tiff_class_f as class_f

log = logging.getLogger("fax.documents")

FAX_WIDTH = 1728  # pixels per row of an ITU-T T.4 A4/Letter page, at 204 dpi
X_DPI = 204
Y_DPI = {Resolution.FINE: 196, Resolution.NORMAL: 98}
PAGE_MM = {Paper.A4: (210.0, 297.0), Paper.LETTER: (215.9, 279.4)}
THUMBNAIL_WIDTH = 240


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
    max_total_pixels: int = 1_000_000_000  # all the pages of an image upload together
    max_memory: int = 2 << 30  # address space of ghostscript and of the worker, bytes


def to_pdf_temporaries(pdf: Path) -> list[Path]:
    return [pdf.with_suffix(".pdf.tmp"), pdf.with_suffix(".g4.tiff")]


def _too_many_pages(count: int, most: int) -> DocumentRejected:
    return DocumentRejected(f"The document has {count} pages; at most {most} pages can be faxed.")


def inspect_pdf(path: Path, max_pages: int, *, clean: Path | None = None) -> int:
    """The page count of a PDF that can be faxed; DocumentRejected otherwise. With ``clean``,
    pikepdf also writes the PDF anew there (unencrypted, starting with its header): the only
    file ghostscript is given."""
    import pikepdf

    try:
        with pikepdf.open(path) as pdf:
            if pdf.is_encrypted and not pdf.allow.print_highres:
                raise DocumentRejected(
                    "The PDF is protected against printing; remove the protection and "
                    "upload it again.")
            pages = len(pdf.pages)
            if pages == 0:
                raise DocumentRejected("The PDF has no pages.")
            if pages > max_pages:
                raise _too_many_pages(pages, max_pages)
            if pdf.get_warnings() and not _pages_readable(pdf):
                # qpdf rebuilt a damaged file and pages lost their content (a truncated
                # upload): the rewrite would fax them blank
                raise DocumentRejected("The PDF is damaged and cannot be read.")
            if clean is not None:
                pdf.save(clean, encryption=False)
    except pikepdf.PasswordError:
        raise DocumentRejected(
            "The PDF is encrypted with a password; save it without a password and upload "
            "it again.") from None
    except pikepdf.PdfError as exc:
        log.info("unreadable PDF: %s", exc)
        raise DocumentRejected("The PDF is damaged and cannot be read.") from None
    return pages


def _pages_readable(pdf) -> bool:
    import pikepdf

    try:
        for page in pdf.pages:
            contents = page.obj.get("/Contents")
            if contents is None:
                return False
            for stream in (contents if isinstance(contents, pikepdf.Array) else [contents]):
                stream.read_bytes()
    except (pikepdf.PdfError, AttributeError, TypeError):
        return False
    return True


def tiff_pages(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)


def finish_rendered(rendered: Path, tiff: Path) -> int:
    """Ghostscript's tiffg4 output as a Class F file (its PageNumber says (i, 0): the total
    is only known at the end); the G4 strips are copied, not re-coded."""
    from PIL import Image

    try:
        data = rendered.read_bytes()
        pages = []
        with Image.open(io.BytesIO(data)) as im:
            for i in range(getattr(im, "n_frames", 1)):
                im.seek(i)
                page = class_f.reusable_page(im, data)
                pages.append(page or class_f.encode_page(im.convert("1"), *_dpi_of(im)))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # missing or unreadable
        log.info("ghostscript's output is unusable: %s", exc)
        raise DocumentRejected("The PDF could not be rendered; the file looks damaged.") from None
    class_f.write(tiff, pages)
    rendered.unlink()
    return len(pages)


def images_to_fax(source: Path, tiff: Path, resolution: Resolution, paper: Paper,
                  limits: ConvertLimits) -> int:
    """PNG, JPEG or (multi-page) TIFF → G4 fax TIFF (Class F); returns the page count. Each
    page is coded as soon as it is made: only G4 bytes are kept across pages."""
    from PIL import Image, UnidentifiedImageError

    y_dpi = Y_DPI[resolution]
    rows = page_rows(paper, resolution)
    total = 0
    try:
        with Image.open(source) as im:
            count = getattr(im, "n_frames", 1)
            if count > limits.max_pages:
                raise _too_many_pages(count, limits.max_pages)
            pages = []
            for i in range(count):
                im.seek(i)
                if im.width * im.height > limits.max_pixels:
                    raise DocumentRejected(
                        f"The image is {im.width}×{im.height} pixels, too large to fax.")
                total += im.width * im.height
                if total > limits.max_total_pixels:
                    raise DocumentRejected(
                        f"The images have more than {limits.max_total_pixels // 1_000_000} "
                        "million pixels together, too many to fax; send fewer pages or "
                        "smaller scans.")
                pages.append(class_f.encode_page(_fax_page(im, y_dpi, rows), X_DPI, y_dpi))
    except Image.DecompressionBombError:
        raise DocumentRejected("The image has too many pixels to fax.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        log.info("unreadable image: %s", exc)
        raise DocumentRejected("The image is damaged and cannot be read.") from None
    if not pages:
        raise DocumentRejected("The image has no pages.")
    class_f.write(tiff, pages)
    return len(pages)


def _dpi_of(im) -> tuple[float, float]:
    dpi = im.info.get("dpi") or (X_DPI, Y_DPI[Resolution.FINE])
    return float(dpi[0]), float(dpi[1] or dpi[0])


def _fax_page(im, y_dpi: int, rows: int):
    """One page as a 1-bit image 1728 px wide at 204×y_dpi, fitted into the paper."""
    from PIL import Image, ImageOps

    dpi = im.info.get("dpi")
    if im.format == "JPEG":
        im.draft("L", (FAX_WIDTH, rows))  # decode at 1/2, 1/4 or 1/8 scale when that suffices
    if (im.mode == "1" and im.width == FAX_WIDTH and im.height <= rows and dpi
            and round(float(dpi[0])) == X_DPI and abs(float(dpi[1]) - y_dpi) < 2):
        return im.copy()  # already a fax page at this resolution: keep every pixel
    if im.format == "JPEG" or im.info.get("exif"):
        im = ImageOps.exif_transpose(im)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        # transparent = white paper; in grey (2 bytes a pixel, not RGBA's 4 twice)
        la = im.convert("LA")
        gray = Image.new("L", la.size, 255)
        gray.paste(la.getchannel("L"), mask=la.getchannel("A"))
        del la
    else:
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
        x_dpi, y_dpi = _dpi_of(im)
        height = max(1, round(im.height * x_dpi / y_dpi * width / im.width))
        small = im.convert("L").resize((width, height), Image.Resampling.BOX)
    tmp = png.with_suffix(".tmp")
    small.save(tmp, format="PNG", optimize=True)
    os.replace(tmp, png)


def tiff_to_pdf(tiff: Path, pdf: Path, max_pages: int,
                max_pixels: int = ConvertLimits.max_pixels) -> int:
    """Received TIFF → PDF. G4 pages go in as they are; other bilevel codings (G3 from some
    senders) are re-coded to G4 first, page by page and each at its own resolution (T.30
    allows a new one after every page), still lossless, so img2pdf can embed them too."""
    import img2pdf
    from PIL import Image, UnidentifiedImageError

    tmp, g4_copy = to_pdf_temporaries(pdf)
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
                if im.width * im.height > max_pixels:
                    raise DocumentRejected(
                        f"Page {i + 1} of the received fax is {im.width}×{im.height} "
                        "pixels, too large to convert.")
                if im.mode != "1" or im.info.get("compression") != "group4":
                    needs_g4 = True
            source = tiff
            if needs_g4:
                pages = []
                for i in range(count):  # one decoded page in memory at a time
                    im.seek(i)
                    pages.append(class_f.encode_page(im.convert("1"), *_dpi_of(im)))
                class_f.write(g4_copy, pages)
                source = g4_copy
        with tmp.open("wb") as out:
            img2pdf.convert(str(source), outputstream=out)
        os.replace(tmp, pdf)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
            img2pdf.ImageOpenError, Image.DecompressionBombError) as exc:
        log.info("unreadable received TIFF %s: %s", tiff, exc)
        raise DocumentRejected("The received fax could not be read.") from None
    finally:
        tmp.unlink(missing_ok=True)
        g4_copy.unlink(missing_ok=True)
    return count


# -- what the worker process runs (JSON in, JSON out) ----------------------------------------


def _op_pdf(source: str, clean: str, max_pages: int) -> int:
    return inspect_pdf(Path(source), max_pages, clean=Path(clean))


def _op_images(source: str, tiff: str, thumb: str, resolution: str, paper: str,
               limits: dict[str, Any]) -> int:
    pages = images_to_fax(Path(source), Path(tiff), Resolution(resolution), Paper(paper),
                          ConvertLimits(**limits))
    thumbnail(Path(tiff), Path(thumb))
    return pages


def _op_to_pdf(tiff: str, pdf: str, max_pages: int, max_pixels: int) -> int:
    return tiff_to_pdf(Path(tiff), Path(pdf), max_pages, max_pixels)


def _op_thumbnail(tiff: str, png: str) -> None:
    try:
        thumbnail(Path(tiff), Path(png))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DocumentRejected("The fax could not be read.") from exc


WORKER_OPS: dict[str, Callable[..., Any]] = {
    "pdf": _op_pdf, "images": _op_images, "to_pdf": _op_to_pdf,
    "thumbnail": _op_thumbnail,
}
