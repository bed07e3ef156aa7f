"""Small documents made on the spot (pikepdf, Pillow), good and bad, for the fax pipeline tests,
the benchmark and the demo: no binary fixtures in the repo."""

from __future__ import annotations

from pathlib import Path

import pikepdf
from PIL import Image, ImageDraw

A4_POINTS = (595, 842)
LETTER_POINTS = (612, 792)


def make_pdf(path: Path, pages: int, *, size: tuple[int, int] = A4_POINTS) -> Path:
    """A PDF with text and shapes on every page, each page different (its number written
    large, a bar whose position depends on the number)."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica))
    for i in range(1, pages + 1):
        page = pdf.add_blank_page(page_size=size)
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        bar_y = 100 + (i * 37) % 500
        content = (
            f"BT /F1 40 Tf 72 {size[1] - 110} Td (Invoice page {i} of {pages}) Tj ET "
            f"BT /F1 11 Tf 72 {size[1] - 150} Td (The quick brown fox jumps over the lazy dog "
            f"0123456789) Tj ET "
            f"0 g 72 {bar_y} 300 24 re f 3 w 72 80 m {size[0] - 72} {size[1] - 200} l S"
        ).encode()
        page.obj.Contents = pdf.make_stream(content)
    pdf.save(path)
    return path


def make_encrypted_pdf(path: Path) -> Path:
    src = path.with_suffix(".plain.pdf")
    make_pdf(src, 1)
    with pikepdf.open(src) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(user="secret", owner="owner"))
    src.unlink()
    return path


def make_print_protected_pdf(path: Path) -> Path:
    src = path.with_suffix(".plain.pdf")
    make_pdf(src, 1)
    with pikepdf.open(src) as pdf:
        pdf.save(path, encryption=pikepdf.Encryption(
            user="", owner="owner", allow=pikepdf.Permissions(print_highres=False,
                                                              print_lowres=False)))
    src.unlink()
    return path


def make_empty_pdf(path: Path) -> Path:
    pikepdf.new().save(path)
    return path


def make_corrupt_pdf(path: Path) -> Path:
    """A PDF header followed by garbage: no objects, no xref, nothing to recover."""
    path.write_bytes(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 40 + b"\n%%EOF\n")
    return path


def make_image(path: Path, fmt: str, size: tuple[int, int] = (1200, 1600), *,
               dpi: tuple[int, int] | None = None) -> Path:
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    draw.rectangle((size[0] // 10, size[1] // 10, size[0] // 2, size[1] // 3), fill="black")
    draw.ellipse((size[0] // 2, size[1] // 2, size[0] - 20, size[1] - 20), fill=(90, 90, 200))
    draw.text((40, 40), "Scanned letter", fill="black")
    kw = {"dpi": dpi} if dpi else {}
    im.save(path, format=fmt, **kw)
    return path


def make_multipage_tiff(path: Path, pages: int) -> Path:
    frames = []
    for i in range(pages):
        im = Image.new("L", (1000, 1400), 255)
        draw = ImageDraw.Draw(im)
        draw.rectangle((50 + 60 * i, 100, 400 + 60 * i, 300), fill=0)
        frames.append(im)
    frames[0].save(path, format="TIFF", save_all=True, append_images=frames[1:],
                   compression="tiff_lzw")
    return path


def make_slow_pdf(path: Path, depth: int = 8) -> Path:
    """One small page that takes ghostscript minutes: form XObjects nested ``depth`` deep, each
    drawing the next one ten times (10**depth strokes from a file of a few KB)."""
    pdf = pikepdf.new()
    inner = pdf.make_stream(b"0.1 w 0 0 m 500 700 l S")
    inner.Type, inner.Subtype = pikepdf.Name.XObject, pikepdf.Name.Form
    inner.BBox = [0, 0, 595, 842]
    for _ in range(depth):
        draws = b" ".join(b"q 1 0 0 1 %d 0 cm /X Do Q" % (i % 3) for i in range(10))
        form = pdf.make_stream(draws)
        form.Type, form.Subtype = pikepdf.Name.XObject, pikepdf.Name.Form
        form.BBox = [0, 0, 595, 842]
        form.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(X=inner))
        inner = form
    page = pdf.add_blank_page(page_size=A4_POINTS)
    page.obj.Resources = pikepdf.Dictionary(XObject=pikepdf.Dictionary(X=inner))
    page.obj.Contents = pdf.make_stream(b"/X Do")
    pdf.save(path)
    return path


def make_text_pdf(path: Path, pages: int, *, lines: int = 60) -> Path:
    """Pages full of 10 pt text, like a typed letter or an invoice: the benchmark's document."""
    pdf = pikepdf.new()
    font = pdf.make_indirect(pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name("/Times-Roman")))
    words = ("Payment of invoice 2026-0417 is due within thirty days of the date of this "
             "letter; please quote the reference on every transfer")
    for i in range(1, pages + 1):
        page = pdf.add_blank_page(page_size=A4_POINTS)
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        body = [f"BT /F1 16 Tf 60 790 Td (Page {i} of {pages}) Tj ET"]
        for n in range(lines):
            body.append(f"BT /F1 10 Tf 60 {760 - n * 12} Td ({n + 1:02d} {words}) Tj ET")
        page.obj.Contents = pdf.make_stream(" ".join(body).encode())
    pdf.save(path)
    return path
