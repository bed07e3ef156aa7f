"""The console's message catalogs (static/i18n/<lang>.json) for texts made on the server:
report exports' column labels, scheduled-report mails."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

CATALOGS = Path(__file__).resolve().parent / "static" / "i18n"
LANGUAGES = ("en", "ru")


@functools.cache
def catalog(language: str) -> dict[str, str]:
    lang = language if language in LANGUAGES else "en"
    return json.loads((CATALOGS / f"{lang}.json").read_text(encoding="utf-8"))


def translator(language: str) -> Callable[[str], str]:
    """A key's text in ``language``, else in English, else the key itself."""
    own, english = catalog(language), catalog("en")
    return lambda key: own.get(key) or english.get(key) or key
