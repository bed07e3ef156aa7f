"""The document makers live in ``fax.samples`` (the benchmark uses them too); this name stays
for the tests that import it."""

from fax.samples import (
    A4_POINTS,
    LETTER_POINTS,
    make_corrupt_pdf,
    make_empty_pdf,
    make_encrypted_pdf,
    make_image,
    make_multipage_tiff,
    make_pdf,
    make_print_protected_pdf,
    make_slow_pdf,
    make_text_pdf,
)

__all__ = [
    "A4_POINTS", "LETTER_POINTS", "make_corrupt_pdf", "make_empty_pdf", "make_encrypted_pdf",
    "make_image", "make_multipage_tiff", "make_pdf", "make_print_protected_pdf",
    "make_slow_pdf", "make_text_pdf",
]
