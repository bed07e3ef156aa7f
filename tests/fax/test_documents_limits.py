"""The document pipeline against hostile uploads: PostScript in a PDF, runaway images, and the
limits (time, pixels, environment) around ghostscript and the Python worker."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageDraw

from callcenter.faxes.ports import DocumentRejected, Resolution
from fax.documents import ConvertLimits, FaxConverter
from fax.sniff import Kind, check_upload
from tests.fax.documents_fixtures import make_multipage_tiff, make_pdf
from tests.fax.test_documents import assert_fax_tiff

POSTSCRIPT = b"%!PS\n(PS-CODE-RAN) print flush quit\n"


@pytest.fixture
def converter(tmp_path: Path) -> FaxConverter:
    return FaxConverter(tmp_path / "work", ConvertLimits(max_pages=100))


def _watch_exec(monkeypatch: pytest.MonkeyPatch) -> list[tuple[tuple[str, ...], dict]]:
    calls: list[tuple[tuple[str, ...], dict]] = []
    real_exec = asyncio.create_subprocess_exec

    async def watch(*argv, **kw):
        calls.append((tuple(str(a) for a in argv), kw))
        return await real_exec(*argv, **kw)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", watch)
    return calls


async def test_postscript_in_front_of_a_pdf_never_runs(converter: FaxConverter,
                                                       tmp_path: Path) -> None:
    polyglot = tmp_path / "invoice.pdf"
    polyglot.write_bytes(POSTSCRIPT + make_pdf(tmp_path / "real.pdf", 1).read_bytes())
    spawned: list[asyncio.subprocess.Process] = []
    converter.on_spawn = spawned.append
    with pytest.raises(DocumentRejected) as exc:
        await converter.to_fax(polyglot)
    assert exc.value.reason == ("The file is a PostScript file; only PDF, TIFF, PNG and JPEG "
                                "files can be faxed.")
    assert spawned == []
    assert not list((tmp_path / "work").glob("*/*"))


def test_the_pdf_header_must_open_the_file() -> None:
    # A BOM or blank lines before the header (some mail gateways add them) cannot hold code;
    # anything else before it is refused, although Acrobat would look 1024 bytes far.
    assert check_upload(b"%PDF-1.7\n", "a.pdf") is Kind.PDF
    assert check_upload(b"\xef\xbb\xbf\r\n %PDF-1.4\n", "a.pdf") is Kind.PDF
    for head in (POSTSCRIPT + b"%PDF-1.4\n", b"junk\n%PDF-1.4\n", b"\x00" * 10 + b"%PDF-1.4"):
        with pytest.raises(DocumentRejected, match="only PDF, TIFF, PNG and JPEG"):
            check_upload(head, "a.pdf")


async def test_ghostscript_reads_only_pikepdfs_rewrite(converter: FaxConverter, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Junk after %%EOF (where a polyglot can hide a second format) is not in the rewrite.
    src = tmp_path / "a.pdf"
    src.write_bytes(make_pdf(tmp_path / "real.pdf", 2).read_bytes() + b"\n" + POSTSCRIPT)
    calls = _watch_exec(monkeypatch)
    monkeypatch.setenv("GS_OPTIONS", "-sDEVICE=nullpage")
    monkeypatch.setenv("GS_LIB", str(tmp_path))
    doc = await converter.to_fax(src)
    assert doc.pages == 2
    assert_fax_tiff(doc.tiff, 2, 196, 2292)
    (gs,) = [(argv, kw) for argv, kw in calls if "-sDEVICE=tiffg4" in argv]
    argv, kw = gs
    assert argv[-2:] == ("-f", "clean.pdf")
    # a minimal environment (no GS_OPTIONS, GS_LIB of ours) and limits before the fixed argv
    assert set(kw["env"]) == {"PATH", "LC_ALL", "HOME", "TMPDIR"}
    assert Path(argv[0]).name == "prlimit"
    assert argv[1:4] == (f"--as={2 << 30}", "--cpu=121", "--")
    assert argv[4] == "gs"
    for _argv, kw in calls:  # the Python worker too
        assert "GS_OPTIONS" not in kw["env"]


async def test_ghostscript_writing_nothing_is_a_rejection(tmp_path: Path) -> None:
    converter = FaxConverter(tmp_path / "work", gs="/bin/true")  # exits 0, renders nothing
    with pytest.raises(DocumentRejected, match="could not be rendered"):
        await converter.to_fax(make_pdf(tmp_path / "a.pdf", 1))
    assert not list((tmp_path / "work").glob("*"))


def _big_image(path: Path) -> Path:
    # 70 Mpx (a 1200 dpi A4 scan): seconds of scaling and dithering, a few KB as PNG
    im = Image.new("L", (7000, 10000), 255)
    ImageDraw.Draw(im).rectangle((500, 500, 6000, 3000), fill=0)
    im.save(path)
    return path


async def test_a_cancelled_image_conversion_kills_its_worker(converter: FaxConverter,
                                                             tmp_path: Path) -> None:
    src = _big_image(tmp_path / "scan.png")
    workers: list[asyncio.subprocess.Process] = []
    started = asyncio.Event()

    def spawn(proc: asyncio.subprocess.Process) -> None:
        workers.append(proc)
        started.set()

    converter.on_worker = spawn
    task = asyncio.create_task(converter.to_fax(src))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [w.returncode for w in workers] == [-signal.SIGKILL]
    assert not list((tmp_path / "work").glob("*"))


async def test_an_image_conversion_past_the_limit_leaves_nothing(tmp_path: Path) -> None:
    converter = FaxConverter(tmp_path / "work", ConvertLimits(timeout=0.5))
    workers: list[asyncio.subprocess.Process] = []
    converter.on_worker = workers.append
    with pytest.raises(DocumentRejected, match=r"took longer than 0\.5 seconds"):
        await converter.to_fax(_big_image(tmp_path / "scan.png"))
    assert all(w.returncode is not None for w in workers)  # none still running
    assert not list((tmp_path / "work").glob("*"))


async def test_the_pixel_budget_covers_all_pages(tmp_path: Path) -> None:
    # each 1000×1400 page is allowed alone; three of them are more than 3 Mpx together
    converter = FaxConverter(tmp_path / "work", ConvertLimits(max_pixels=2_000_000,
                                                              max_total_pixels=3_000_000))
    with pytest.raises(DocumentRejected, match="more than 3 million pixels together"):
        await converter.to_fax(make_multipage_tiff(tmp_path / "scan.tiff", 3))
    assert (await converter.to_fax(make_multipage_tiff(tmp_path / "two.tiff", 2))).pages == 2


async def test_transparency_is_white_paper(converter: FaxConverter, tmp_path: Path) -> None:
    im = Image.new("LA", (1728, 2292), (0, 0))  # black, but fully transparent
    ImageDraw.Draw(im).rectangle((100, 100, 800, 600), fill=(0, 255))  # opaque black box
    im.save(tmp_path / "logo.png", dpi=(204, 196))
    doc = await converter.to_fax(tmp_path / "logo.png")
    with Image.open(doc.tiff) as page:
        gray = page.convert("L")
    assert gray.getpixel((1500, 2000)) == 255
    assert gray.crop((110, 110, 790, 590)).getextrema() == (0, 0)


async def test_a_received_fax_keeps_each_pages_resolution(converter: FaxConverter,
                                                          tmp_path: Path) -> None:
    # T.30 allows a new DCS (resolution) after every page: fine, then normal, both A4
    fine, normal = Image.new("1", (1728, 2292), 1), Image.new("1", (1728, 1146), 1)
    fine.save(tmp_path / "p1.tiff", format="TIFF", compression="group3", dpi=(204, 196))
    normal.save(tmp_path / "p2.tiff", format="TIFF", compression="group3", dpi=(204, 98))
    mixed = tmp_path / "mixed.tiff"
    with Image.open(tmp_path / "p1.tiff") as a, Image.open(tmp_path / "p2.tiff") as b:
        a.save(mixed, format="TIFF", compression="group3", save_all=True, append_images=[b])
    with Image.open(mixed) as im:  # Pillow kept each frame's own dpi
        im.seek(1)
        assert im.info["dpi"] == (204, 98)
    assert await converter.to_pdf(mixed, tmp_path / "mixed.pdf") == 2
    with pikepdf.open(tmp_path / "mixed.pdf") as pdf:
        heights = [round(float(p.mediabox[3]) - float(p.mediabox[1])) for p in pdf.pages]
    assert heights == [842, 842]  # both pages A4 tall, neither squashed nor stretched


async def test_to_pdf_refuses_what_is_not_a_fax(tmp_path: Path) -> None:
    converter = FaxConverter(tmp_path / "work", ConvertLimits(max_received_pages=2))
    png = tmp_path / "rx.tiff"
    Image.new("1", (100, 100), 1).save(png, format="PNG")
    with pytest.raises(DocumentRejected, match=r"The received fax is not a TIFF file\."):
        await converter.to_pdf(png, tmp_path / "rx.pdf")
    with pytest.raises(DocumentRejected, match=r"has 3 pages, more than 2\."):
        await converter.to_pdf(make_multipage_tiff(tmp_path / "long.tiff", 3),
                               tmp_path / "long.pdf")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.tiff", "rx.tiff"]


async def test_image_pages_are_class_f_at_normal_resolution(converter: FaxConverter,
                                                            tmp_path: Path) -> None:
    doc = await converter.to_fax(make_multipage_tiff(tmp_path / "scan.tif", 2),
                                 resolution=Resolution.NORMAL)
    assert_fax_tiff(doc.tiff, 2, 98, 1146)


def test_the_shown_file_name_has_no_control_or_bidi_characters() -> None:
    # U+202E would show "invoice‮fdp.exe" as "invoiceexe.pdf"; a newline could forge a line
    with pytest.raises(DocumentRejected) as exc:
        check_upload(b"%PDF-1.7\n", "C:\\Users\\ann\\invoice\u202efdp.exe\n\x1b[31m")
    assert exc.value.reason == ("The file is named “invoicefdp.exe[31m” but is a PDF "
                                "document; rename it to its real type or upload a PDF, TIFF, "
                                "PNG or JPEG file.")


async def test_job_folders_are_ours_alone(converter: FaxConverter, tmp_path: Path) -> None:
    doc = await converter.to_fax(make_multipage_tiff(tmp_path / "scan.tif", 1))
    assert doc.tiff.parent.stat().st_mode & 0o777 == 0o700


async def test_an_upload_we_cannot_read_is_our_error(converter: FaxConverter,
                                                     tmp_path: Path) -> None:
    # the upload is the web layer's spool file: losing it is not the user's mistake
    with pytest.raises(FileNotFoundError):
        await converter.to_fax(tmp_path / "gone.pdf")
    assert not list((tmp_path / "work").glob("*"))


async def test_a_fax_page_longer_than_the_paper_is_fitted(converter: FaxConverter,
                                                          tmp_path: Path) -> None:
    long_page = Image.new("1", (1728, 3000), 1)
    long_page.save(tmp_path / "long.tiff", format="TIFF", compression="group4", dpi=(204, 196))
    doc = await converter.to_fax(tmp_path / "long.tiff")
    assert_fax_tiff(doc.tiff, 1, 196, 2292)
