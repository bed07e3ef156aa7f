"""What an upload really is, from its first bytes, checked against the name the user gave it.

Pure functions (no I/O): the converter reads the head of the file and asks here, so a PNG named
``contract.pdf`` or a ZIP named ``scan.tiff`` is refused before anything parses it.
"""

from __future__ import annotations

import enum
import unicodedata
from pathlib import PurePath

from callcenter.faxes.ports import DocumentRejected

HEAD_BYTES = 1024  # what the converter reads first and hands to kind_of
# The PDF header must open the file. Acrobat looks for "%PDF-" anywhere in the first 1024 bytes,
# and that tolerance is what PostScript/PDF polyglots use ("%!PS ... %PDF-"): ghostscript would
# run the PostScript. Only a UTF-8 BOM and blank space (which some mail gateways put in front,
# and which hold no code) may come before it; anything else is refused.
_PDF_LEAD = b"\xef\xbb\xbf"
_BLANK = b" \t\r\n\f"


class Kind(enum.StrEnum):
    PDF = "pdf"
    TIFF = "tiff"
    PNG = "png"
    JPEG = "jpeg"


_WORDS = {Kind.PDF: "a PDF document", Kind.TIFF: "a TIFF image", Kind.PNG: "a PNG image",
          Kind.JPEG: "a JPEG image"}

_SUFFIXES = {".pdf": Kind.PDF, ".tif": Kind.TIFF, ".tiff": Kind.TIFF, ".png": Kind.PNG,
             ".jpg": Kind.JPEG, ".jpeg": Kind.JPEG, ".jpe": Kind.JPEG}

# Other formats people upload by mistake, named so the refusal can say what the file is.
_OTHER_MAGIC = (
    (b"PK\x03\x04", "a ZIP archive or an Office document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office document"),
    (b"{\\rtf", "an RTF document"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"%!PS", "a PostScript file"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a program"),
)


def kind_of(head: bytes) -> Kind | None:
    """The format the bytes say, or None when they are none of the four we fax."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Kind.PNG
    if head.startswith(b"\xff\xd8\xff"):
        return Kind.JPEG
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return Kind.TIFF
    lead = head.removeprefix(_PDF_LEAD).lstrip(_BLANK)
    if lead.startswith(b"%PDF-"):
        return Kind.PDF
    return None


def _describe_other(head: bytes) -> str:
    for magic, words in _OTHER_MAGIC:
        if head.startswith(magic):
            return words
    if not head:
        return "empty"
    return "not a document we can read"


def _shown_name(name: str) -> str:
    """The file name as it may appear in a sentence: its last part, without control, format
    (bidi overrides like U+202E that make "cod.exe" read "exe.doc") or line characters, at
    most 80 characters. The UI escapes it again where it shows it."""
    if not name:
        return ""
    kept = "".join(c for c in name.replace("\\", "/")
                   if unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp"))
    return PurePath(kept).name[:80]


def check_upload(head: bytes, name: str) -> Kind:
    """The upload's real kind; DocumentRejected with a sentence when it is not one we fax or
    when its name says something else. ``name`` is only looked at, never used as a path."""
    shown = _shown_name(name)
    suffix = PurePath(shown).suffix.lower() if shown else ""
    kind = kind_of(head)
    if kind is None:
        what = _describe_other(head)
        if what == "empty":
            raise DocumentRejected("The file is empty.")
        raise DocumentRejected(
            f"The file is {what}; only PDF, TIFF, PNG and JPEG files can be faxed.")
    if suffix and suffix not in _SUFFIXES:
        raise DocumentRejected(
            f"The file is named “{shown}” but is {_WORDS[kind]}; rename it to its real type "
            "or upload a PDF, TIFF, PNG or JPEG file.")
    if suffix and _SUFFIXES[suffix] is not kind:
        raise DocumentRejected(
            f"The file is named “{shown}” but is {_WORDS[kind]}, not "
            f"{_WORDS[_SUFFIXES[suffix]]}.")
    return kind
