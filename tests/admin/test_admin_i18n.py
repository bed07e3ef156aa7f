"""The administration pages' texts exist in both catalogs."""

from __future__ import annotations

import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[2] / "ui" / "static"
PAGES = ("users", "audit", "routing", "password")


def test_every_key_of_the_admin_pages_is_in_english_and_russian() -> None:
    en = json.loads((STATIC / "i18n" / "en.json").read_text())
    ru = json.loads((STATIC / "i18n" / "ru.json").read_text())
    used: set[str] = set()
    for page in PAGES:
        text = (STATIC / "js" / "pages" / f"{page}.js").read_text()
        used |= set(re.findall(r"\bt\('([a-z_]+\.[a-z_.\-]+)'", text))
    used |= {f"audit.action.{a}" for a in ("create", "update", "delete", "disable", "enable",
                                           "reset-password", "handover")}
    used |= {f"day.{d}" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    used |= {"nav.users", "nav.routing", "nav.audit", "error.last-admin",
             "routing.source_config", "routing.source_database", "error.password-change-required"}
    assert len(used) > 60
    assert used - set(en) == set() and used - set(ru) == set()
    prefixes = ("users", "audit", "routing", "password")
    admin_keys = {k for k in en if k.split(".")[0] in prefixes}
    assert admin_keys == {k for k in ru if k.split(".")[0] in prefixes}
