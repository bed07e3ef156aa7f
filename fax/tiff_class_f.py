"""A TIFF Class F writer (TIFF 6.0 section "Class F", as fax servers and T.30 stacks expect):
every page one G4 strip, WhiteIsZero, MSB-first, NewSubfileType "page of a multi-page
document", PageNumber (i, n) and the page's own resolution.

Why our own writer: Pillow writes bilevel TIFFs as BlackIsZero without NewSubfileType or
PageNumber, its WhiteIsZero option inverts pixels in a Python loop (seconds a page), and it
writes one resolution for all pages, while T.30 allows a new resolution after every page.
Pillow (libtiff) still does the G4 coding; only the container is written here.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

# TIFF tags
NEW_SUBFILE_TYPE, IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION = 254, 256, 257, 258, 259
PHOTOMETRIC, FILL_ORDER, STRIP_OFFSETS, SAMPLES_PER_PIXEL, ROWS_PER_STRIP = 262, 266, 273, 277, 278
STRIP_BYTE_COUNTS, X_RESOLUTION, Y_RESOLUTION, T6_OPTIONS, RESOLUTION_UNIT = 279, 282, 283, 293, 296
PAGE_NUMBER = 297
CCITT_G4 = 4
WHITE_IS_ZERO = 0
PAGE_OF_MULTIPAGE = 2
_SHORT, _LONG, _RATIONAL = 3, 4, 5


@dataclass(frozen=True, slots=True)
class G4Page:
    width: int
    rows: int
    x_dpi: float
    y_dpi: float
    data: bytes  # the page's G4 (T.6) coding, MSB first, 0 bits white


def encode_page(page, x_dpi: float, y_dpi: float) -> G4Page:
    """A mode "1" Pillow image (255 = white) as a G4 page."""
    # libtiff codes 0 bits as white runs; Pillow's "1" has white = 1, so invert (a lookup
    # table, in C) first and let it write the inverted image as BlackIsZero: the coded bits
    # are then WhiteIsZero's. Through "L": a "1" image may hold 1 as well as 255 for white.
    inverted = page.convert("L").point(lambda v: 255 if v == 0 else 0, mode="1")
    buf = io.BytesIO()
    inverted.save(buf, format="TIFF", compression="group4",
                  tiffinfo={ROWS_PER_STRIP: max(1, page.height)})
    return G4Page(page.width, page.height, x_dpi, y_dpi, _single_strip(buf.getvalue()))


def _single_strip(tiff: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(tiff)) as im:
        (offset,), (count,) = im.tag_v2[STRIP_OFFSETS], im.tag_v2[STRIP_BYTE_COUNTS]
    return tiff[offset:offset + count]


def reusable_page(im, data: bytes) -> G4Page | None:
    """The current frame of an open TIFF as a G4Page without decoding it, when it already is
    one strip of G4, WhiteIsZero, MSB first; None when it has to be re-coded."""
    tags = im.tag_v2
    offsets, counts = tags.get(STRIP_OFFSETS, ()), tags.get(STRIP_BYTE_COUNTS, ())
    if (tags.get(COMPRESSION) != CCITT_G4 or tags.get(PHOTOMETRIC) != WHITE_IS_ZERO
            or tags.get(FILL_ORDER, 1) != 1 or len(offsets) != 1 or len(counts) != 1
            or tags.get(T6_OPTIONS, 0) != 0 or offsets[0] + counts[0] > len(data)):
        return None
    x_dpi, y_dpi = _dpi(im)
    return G4Page(im.width, im.height, x_dpi, y_dpi, data[offsets[0]:offsets[0] + counts[0]])


def _dpi(im) -> tuple[float, float]:
    dpi = im.info.get("dpi") or (204, 196)
    return float(dpi[0]), float(dpi[1] or dpi[0])


def _rational(value: float) -> tuple[int, int]:
    return round(value * 100), 100


def write(path: Path, pages: list[G4Page]) -> None:
    """Write the pages as one Class F file (little-endian)."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    n = len(pages)
    prev_next = 4  # where the offset of the next IFD goes
    for i, page in enumerate(pages):
        data_at = len(out)
        out += page.data
        if len(out) % 2:
            out += b"\x00"
        xres_at = len(out)
        out += struct.pack("<II", *_rational(page.x_dpi))
        yres_at = len(out)
        out += struct.pack("<II", *_rational(page.y_dpi))
        entries = [
            (NEW_SUBFILE_TYPE, _LONG, 1, PAGE_OF_MULTIPAGE),
            (IMAGE_WIDTH, _LONG, 1, page.width),
            (IMAGE_LENGTH, _LONG, 1, page.rows),
            (BITS_PER_SAMPLE, _SHORT, 1, 1),
            (COMPRESSION, _SHORT, 1, CCITT_G4),
            (PHOTOMETRIC, _SHORT, 1, WHITE_IS_ZERO),
            (FILL_ORDER, _SHORT, 1, 1),
            (STRIP_OFFSETS, _LONG, 1, data_at),
            (SAMPLES_PER_PIXEL, _SHORT, 1, 1),
            (ROWS_PER_STRIP, _LONG, 1, page.rows),
            (STRIP_BYTE_COUNTS, _LONG, 1, len(page.data)),
            (X_RESOLUTION, _RATIONAL, 1, xres_at),
            (Y_RESOLUTION, _RATIONAL, 1, yres_at),
            (T6_OPTIONS, _LONG, 1, 0),
            (RESOLUTION_UNIT, _SHORT, 1, 2),  # inches
            (PAGE_NUMBER, _SHORT, 2, i | (n << 16)),  # two shorts packed in the value field
        ]
        ifd_at = len(out)
        struct.pack_into("<I", out, prev_next, ifd_at)
        out += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            if kind == _SHORT and count == 1:
                out += struct.pack("<HHIHH", tag, kind, count, value, 0)
            else:
                out += struct.pack("<HHII", tag, kind, count, value)
        prev_next = len(out)
        out += b"\x00\x00\x00\x00"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(out)
    tmp.replace(path)
