"""The document pipeline against the real ghostscript, Pillow, pikepdf and img2pdf."""

from __future__ import annotations

import asyncio
import inspect
import signal
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageChops

from callcenter.faxes.ports import DocumentConverter, DocumentRejected, Paper, Resolution
from fax.documents import ConvertLimits, FaxConverter, page_rows
from fax.sniff import Kind, check_upload
from tests.fax.documents_fixtures import (
    LETTER_POINTS,
    make_corrupt_pdf,
    make_empty_pdf,
    make_encrypted_pdf,
    make_image,
    make_multipage_tiff,
    make_pdf,
    make_print_protected_pdf,
    make_slow_pdf,
)

TIFF_WIDTH, TIFF_LENGTH, TIFF_COMPRESSION, TIFF_XRES, TIFF_YRES, TIFF_UNIT = (
    256, 257, 259, 282, 283, 296)
TIFF_ROWS_PER_STRIP = 278
TIFF_NEW_SUBFILE_TYPE, TIFF_PHOTOMETRIC, TIFF_FILL_ORDER, TIFF_PAGE_NUMBER = 254, 262, 266, 297
CCITT_G4 = 4


def tiff_frames(path: Path) -> list[dict[int, object]]:
    """Every page's TIFF tags, as written in the file."""
    out = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            out.append(dict(im.tag_v2))
    return out


def pdf_images(page: pikepdf.Page) -> list[tuple[list[str], dict[str, object], pikepdf.Stream]]:
    """A page's images as (filters, decode parameters of the last filter, stream)."""
    out = []
    for image in page.get_images().values():
        filters = image.Filter
        parms = image.get("/DecodeParms")
        if isinstance(filters, pikepdf.Array):
            filters, parms = list(filters), (list(parms)[-1] if parms is not None else None)
        else:
            filters = [filters]
        out.append(([str(f) for f in filters], dict(parms or {}), image))
    return out


def tiff_strips(path: Path) -> list[bytes]:
    """Every page's one strip, as stored in the file."""
    data = path.read_bytes()
    out = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            (offset,), (count,) = im.tag_v2[273], im.tag_v2[279]
            out.append(data[offset:offset + count])
    return out


def assert_fax_tiff(path: Path, pages: int, y_dpi: int, rows: int) -> None:
    frames = tiff_frames(path)
    assert len(frames) == pages
    for i, tags in enumerate(frames):
        # TIFF Class F: WhiteIsZero, MSB first, a page of a multi-page document, page i of n
        assert tags[TIFF_PHOTOMETRIC] == 0
        assert tags[TIFF_FILL_ORDER] == 1
        assert tags[TIFF_NEW_SUBFILE_TYPE] == 2
        assert tags[TIFF_PAGE_NUMBER] == (i, pages)
        assert tags[TIFF_WIDTH] == 1728
        assert tags[TIFF_LENGTH] == rows
        assert tags[TIFF_COMPRESSION] == CCITT_G4
        assert float(tags[TIFF_XRES]) == 204
        assert float(tags[TIFF_YRES]) == y_dpi
        assert tags[TIFF_UNIT] == 2  # inches
        assert tags[TIFF_ROWS_PER_STRIP] >= rows  # one strip: img2pdf can embed it as it is


@pytest.fixture
def converter(tmp_path: Path) -> FaxConverter:
    return FaxConverter(tmp_path / "work", ConvertLimits(max_pages=100))


def test_converter_is_the_port() -> None:
    for method in ("to_fax", "to_pdf"):
        ours = inspect.signature(getattr(FaxConverter, method))
        port = inspect.signature(getattr(DocumentConverter, method))
        assert ours.parameters.keys() == port.parameters.keys()
        for name, param in port.parameters.items():
            assert (ours.parameters[name].kind, ours.parameters[name].default) == (
                param.kind, param.default)


@pytest.mark.parametrize(("paper", "points"), [(Paper.A4, (595, 842)),
                                               (Paper.LETTER, LETTER_POINTS)])
@pytest.mark.parametrize(("resolution", "y_dpi"), [(Resolution.FINE, 196),
                                                   (Resolution.NORMAL, 98)])
async def test_pdf_becomes_a_class_f_tiff(converter: FaxConverter, tmp_path: Path, paper: Paper,
                                          points: tuple[int, int], resolution: Resolution,
                                          y_dpi: int) -> None:
    src = make_pdf(tmp_path / "letter.pdf", 3, size=points)
    doc = await converter.to_fax(src, resolution=resolution, paper=paper)
    assert doc.pages == 3
    assert (doc.resolution, doc.paper) == (resolution, paper)
    rows = {(Paper.A4, 196): 2292, (Paper.A4, 98): 1146, (Paper.LETTER, 196): 2156,
            (Paper.LETTER, 98): 1078}[(paper, y_dpi)]
    assert page_rows(paper, resolution) == rows
    assert_fax_tiff(doc.tiff, 3, y_dpi, rows)
    with Image.open(doc.tiff) as im:  # ink on the page: the text and the bar were rendered
        assert im.convert("L").getextrema()[0] == 0
    with Image.open(doc.thumbnail_png) as thumb:
        assert thumb.format == "PNG"
        assert thumb.width == 240
        # true proportions whatever the resolution: an A4/Letter page is taller than wide
        assert 1.2 < thumb.height / thumb.width < 1.45


async def test_fine_is_the_default(converter: FaxConverter, tmp_path: Path) -> None:
    doc = await converter.to_fax(make_pdf(tmp_path / "a.pdf", 1))
    assert (doc.resolution, doc.paper) == (Resolution.FINE, Paper.A4)
    assert_fax_tiff(doc.tiff, 1, 196, 2292)


async def test_received_tiff_becomes_pdf_without_reencoding(converter: FaxConverter,
                                                           tmp_path: Path) -> None:
    doc = await converter.to_fax(make_pdf(tmp_path / "a.pdf", 4))
    pdf_path = tmp_path / "received.pdf"
    assert await converter.to_pdf(doc.tiff, pdf_path) == 4
    strips = tiff_strips(doc.tiff)
    with pikepdf.open(pdf_path) as pdf:
        assert len(pdf.pages) == 4
        for page, strip in zip(pdf.pages, strips, strict=True):
            ((filters, parms, image),) = pdf_images(page)
            assert filters == ["/CCITTFaxDecode"]
            assert int(parms["/K"]) == -1  # G4
            assert int(parms["/Columns"]) == 1728
            # the very bytes of the TIFF strip: embedded, not decoded and re-compressed
            assert image.read_raw_bytes() == strip


async def test_g3_received_tiff_is_embedded_as_g4(converter: FaxConverter,
                                                  tmp_path: Path) -> None:
    g3 = tmp_path / "g3.tiff"
    page = Image.new("1", (1728, 1146), 1)
    page.paste(0, (100, 100, 800, 400))
    page.save(g3, format="TIFF", compression="group3", dpi=(204, 98))
    pdf_path = tmp_path / "g3.pdf"
    assert await converter.to_pdf(g3, pdf_path) == 1
    with pikepdf.open(pdf_path) as pdf:
        ((filters, _, image),) = pdf_images(pdf.pages[0])
        assert filters == ["/CCITTFaxDecode"]
        decoded = pikepdf.PdfImage(image).as_pil_image().convert("1")
    assert ImageChops.difference(decoded.convert("L"), page.convert("L")).getbbox() is None


@pytest.mark.parametrize(("fmt", "name"), [("PNG", "scan.png"), ("JPEG", "photo.jpg")])
async def test_images_are_accepted(converter: FaxConverter, tmp_path: Path, fmt: str,
                                   name: str) -> None:
    src = make_image(tmp_path / name, fmt)
    doc = await converter.to_fax(src, resolution=Resolution.NORMAL)
    assert doc.pages == 1
    assert_fax_tiff(doc.tiff, 1, 98, 1146)


async def test_multipage_tiff_is_accepted(converter: FaxConverter, tmp_path: Path) -> None:
    doc = await converter.to_fax(make_multipage_tiff(tmp_path / "scan.tif", 3))
    assert doc.pages == 3
    assert_fax_tiff(doc.tiff, 3, 196, 2292)


async def test_fax_tiff_at_the_same_resolution_keeps_every_pixel(converter: FaxConverter,
                                                                 tmp_path: Path) -> None:
    first = await converter.to_fax(make_pdf(tmp_path / "a.pdf", 2))
    again = await converter.to_fax(first.tiff, name="forward.tiff")
    with Image.open(first.tiff) as a, Image.open(again.tiff) as b:
        for i in range(2):
            a.seek(i)
            b.seek(i)
            assert ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


async def test_upload_name_is_never_given_to_ghostscript(converter: FaxConverter,
                                                         tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    evil = tmp_path / "-sOutputFile=%pipe%touch pwned;.pdf"
    make_pdf(evil, 1)
    argvs: list[tuple[str, ...]] = []
    real_exec = asyncio.create_subprocess_exec

    async def watch(*argv, **kw):
        argvs.append(tuple(str(a) for a in argv))
        return await real_exec(*argv, **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", watch)
    doc = await converter.to_fax(evil, name=evil.name)
    assert doc.pages == 1
    assert not list(tmp_path.rglob("pwned*"))
    assert any("-sDEVICE=tiffg4" in argv for argv in argvs)  # ghostscript did run
    for argv in argvs:
        assert not any("pwned" in a or "-sOutputFile=%" in a for a in argv), argv


@pytest.mark.parametrize(("make", "name", "words"), [
    (make_corrupt_pdf, "broken.pdf", "The PDF is damaged and cannot be read."),
    (make_encrypted_pdf, "secret.pdf", "The PDF is encrypted with a password"),
    (make_print_protected_pdf, "locked.pdf", "protected against printing"),
    (make_empty_pdf, "empty.pdf", "The PDF has no pages."),
])
async def test_bad_pdfs_are_rejected(converter: FaxConverter, tmp_path: Path, make,
                                     name: str, words: str) -> None:
    spawned: list[asyncio.subprocess.Process] = []
    converter.on_spawn = spawned.append
    with pytest.raises(DocumentRejected) as exc:
        await converter.to_fax(make(tmp_path / name))
    assert words in exc.value.reason
    assert spawned == []  # refused before ghostscript ran
    assert not list((tmp_path / "work").glob("*/*"))  # nothing left behind


async def test_too_many_pages_are_rejected(tmp_path: Path) -> None:
    converter = FaxConverter(tmp_path / "work", ConvertLimits(max_pages=100))
    with pytest.raises(DocumentRejected) as exc:
        await converter.to_fax(make_pdf(tmp_path / "huge.pdf", 500))
    assert exc.value.reason == "The document has 500 pages; at most 100 pages can be faxed."


async def test_too_many_tiff_pages_are_rejected(tmp_path: Path) -> None:
    converter = FaxConverter(tmp_path / "work", ConvertLimits(max_pages=2))
    with pytest.raises(DocumentRejected, match="3 pages; at most 2"):
        await converter.to_fax(make_multipage_tiff(tmp_path / "scan.tiff", 3))


async def test_zero_byte_file_is_rejected(converter: FaxConverter, tmp_path: Path) -> None:
    (tmp_path / "nothing.pdf").write_bytes(b"")
    with pytest.raises(DocumentRejected, match=r"The file is empty\."):
        await converter.to_fax(tmp_path / "nothing.pdf")


async def test_oversized_file_is_rejected(tmp_path: Path) -> None:
    converter = FaxConverter(tmp_path / "work", ConvertLimits(max_bytes=1000))
    with pytest.raises(DocumentRejected, match="larger than 1 KB, the most"):
        await converter.to_fax(make_pdf(tmp_path / "a.pdf", 5))


async def test_a_file_that_is_not_what_its_name_says(converter: FaxConverter,
                                                     tmp_path: Path) -> None:
    png = make_image(tmp_path / "upload", "PNG")
    with pytest.raises(DocumentRejected) as exc:
        await converter.to_fax(png, name="contract.pdf")
    assert exc.value.reason == ("The file is named “contract.pdf” but is a PNG image, "
                                "not a PDF document.")


async def test_a_word_file_is_refused(converter: FaxConverter, tmp_path: Path) -> None:
    docx = tmp_path / "letter.docx"
    docx.write_bytes(b"PK\x03\x04" + b"\0" * 200)
    with pytest.raises(DocumentRejected) as exc:
        await converter.to_fax(docx)
    assert exc.value.reason == ("The file is a ZIP archive or an Office document; only PDF, "
                                "TIFF, PNG and JPEG files can be faxed.")


async def test_a_damaged_image_is_refused(converter: FaxConverter, tmp_path: Path) -> None:
    png = make_image(tmp_path / "scan.png", "PNG")
    png.write_bytes(png.read_bytes()[:200])
    with pytest.raises(DocumentRejected, match=r"The image is damaged and cannot be read\."):
        await converter.to_fax(png)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
async def test_an_image_with_too_many_pixels_is_refused(converter: FaxConverter,
                                                        tmp_path: Path) -> None:
    huge = tmp_path / "poster.png"
    Image.new("1", (12000, 12000), 1).save(huge)  # 144 Mpx, a few KB on disk
    with pytest.raises(DocumentRejected, match=r"12000×12000 pixels, too large to fax"):
        await converter.to_fax(huge)


async def test_a_truncated_pdf_is_refused(converter: FaxConverter, tmp_path: Path) -> None:
    whole = make_pdf(tmp_path / "whole.pdf", 6).read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 3])
    with pytest.raises(DocumentRejected) as exc:
        await converter.to_fax(cut)
    assert "damaged" in exc.value.reason


async def test_the_upload_is_copied_before_it_is_checked(converter: FaxConverter,
                                                         tmp_path: Path) -> None:
    src = make_pdf(tmp_path / "a.pdf", 2)
    workers: list[asyncio.subprocess.Process] = []

    def swap(proc: asyncio.subprocess.Process) -> None:
        # The first worker checks the PDF: the upload changes under it (another request, a
        # race on a shared folder); what is checked and rendered must still be the original.
        if not workers:
            make_pdf(src, 7)
        workers.append(proc)

    converter.on_worker = swap
    doc = await converter.to_fax(src)
    assert doc.pages == 2
    assert_fax_tiff(doc.tiff, 2, 196, 2292)
    src.unlink()  # the job no longer needs the upload: its TIFF is ours
    assert doc.tiff.parent.parent == tmp_path / "work"
    assert sorted(p.name for p in doc.tiff.parent.iterdir()) == ["fax.tiff", "page1.png"]


def test_sniffing_reads_bytes_not_names() -> None:
    assert check_upload(b"%PDF-1.4\n", "a.PDF") is Kind.PDF
    assert check_upload(b"\x89PNG\r\n\x1a\n....", "") is Kind.PNG
    assert check_upload(b"II*\x00", "fax.tif") is Kind.TIFF
    assert check_upload(b"\xff\xd8\xff\xe0", "IMG.JPEG") is Kind.JPEG
    with pytest.raises(DocumentRejected, match=r"named “scan\.exe” but is a PDF"):
        check_upload(b"%PDF-1.4", "scan.exe")


async def test_timeout_kills_ghostscript(tmp_path: Path) -> None:
    # One page of 10**8 nested strokes keeps ghostscript busy for most of an hour; the page
    # count is read in milliseconds, so the limit fires while gs runs and must kill it.
    # 8 s: the copy, the worker's start and pikepdf fit in it on a loaded machine too.
    converter = FaxConverter(tmp_path / "work", ConvertLimits(timeout=8.0))
    src = make_slow_pdf(tmp_path / "slow.pdf")
    spawned: list[asyncio.subprocess.Process] = []
    converter.on_spawn = spawned.append
    with pytest.raises(DocumentRejected, match=r"took longer than 8 seconds"):
        await converter.to_fax(src)
    assert len(spawned) == 1
    assert spawned[0].returncode == -signal.SIGKILL
    assert not list((tmp_path / "work").glob("*"))


async def test_a_cancelled_conversion_kills_ghostscript(converter: FaxConverter,
                                                        tmp_path: Path) -> None:
    # The loop stays free while ghostscript renders (this test runs meanwhile), and a cancel
    # (the user closed the dialog, the app stops) leaves no ghostscript and no files behind.
    src = make_slow_pdf(tmp_path / "slow.pdf")
    spawned: list[asyncio.subprocess.Process] = []
    started = asyncio.Event()

    def spawn(proc: asyncio.subprocess.Process) -> None:
        spawned.append(proc)
        started.set()

    converter.on_spawn = spawn
    task = asyncio.create_task(converter.to_fax(src))
    await started.wait()
    assert spawned[0].returncode is None  # still rendering, and we are running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert spawned[0].returncode == -signal.SIGKILL
    assert not list((tmp_path / "work").glob("*"))
