"""The "sip" kind's settings: the lines page's schema, write-only password, extension lists
pasted from a CSV, refused values in words; the app registers it."""

from __future__ import annotations

import pytest

from callcenter.app import line_kinds
from callcenter.config import Config
from callcenter.errors import ValidationError
from callcenter.lines.records import LineRecord
from sip.sip_kind import extensions_from_text, line_config


def kind():
    return next(k for k in line_kinds(Config()) if k.name == "sip")


def test_registered_with_a_write_only_password() -> None:
    k = kind()
    assert k.secret_fields == ("secret",)
    settings, secrets = k.clean({"registrar": "pbx.example:5060", "username": "crm",
                                 "watch_extensions": "101, 102"}, {"secret": "s3"})
    assert settings["watch_extensions"] == ["101", "102"]
    cfg = line_config(LineRecord("o", "sip", True, settings, secrets))
    assert cfg.secret == "s3" and cfg.watch_extensions == ("101", "102")
    assert "s3" not in repr(cfg)
    assert "s3" not in str(LineRecord("o", "sip", True, settings, secrets).public())


def test_extensions_pasted_from_a_csv() -> None:
    assert extensions_from_text("extension;name\n101;Anna\n102;Boris\n") == ["101", "102"]
    assert extensions_from_text("101, 102,103") == ["101", "102", "103"]
    assert extensions_from_text("101\t Anna\n101\t dup") == ["101"]


@pytest.mark.parametrize(("settings", "field"), [
    ({"registrar": "pbx; rm -rf"}, "registrar"),
    ({"username": "crm\"x"}, "username"),
    ({"registrar": "pbx", "watch_extensions": ["101", "<script>"]}, "watch_extensions"),
    ({"watch_extensions": ["101"]}, "watch_extensions"),  # nowhere to subscribe at
    ({"transport": "carrier-pigeon"}, "transport"),
])
def test_refused_in_words(settings, field) -> None:
    with pytest.raises(ValidationError) as err:
        kind().clean(settings, {})
    assert err.value.field == field
