"""The audit core: masking of secrets, the store's entries and filters, the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from callcenter.audit import CLI, AuditFilter, AuditService, changed_only, is_secret, mask
from callcenter.audit.export import safe_cell, to_csv
from callcenter.audit.model import CHANGED, HIDDEN


def test_secret_field_names() -> None:
    for key in ("secret", "ami_secret", "sftp_password", "password_hash", "pin", "api_token",
                "apikey", "apiKey", "PIN", "sipPassword", "secret_key", "api_key"):
        assert is_secret(key), key
    for key in ("mapping", "spinner", "name", "host", "username", "spin_rate"):
        assert not is_secret(key), key


def test_mask_shows_a_change_but_no_value() -> None:
    before, after = mask({"host": "a", "secret": "old-s3cret", "nested": {"pin": "1234"}},
                         {"host": "b", "secret": "new-s3cret", "nested": {"pin": "1234"}})
    assert before == {"host": "a", "secret": HIDDEN, "nested": {"pin": HIDDEN}}
    assert after == {"host": "b", "secret": CHANGED, "nested": {"pin": HIDDEN}}
    # set on create: hidden; cleared: empty; the inputs are not modified
    original = {"password": "p4ss-word"}
    assert mask(None, original) == (None, {"password": HIDDEN})
    assert original == {"password": "p4ss-word"}
    assert mask({"token": "t"}, {"token": ""}) == ({"token": HIDDEN}, {"token": ""})


def test_changed_only() -> None:
    assert changed_only({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == ({"b": 2}, {"b": 3, "c": 4})


async def test_record_masks_before_storing_and_filters(store) -> None:
    audit = AuditService(store)
    await audit.record(1, "admin", "10.0.0.1", "update", "line", "office",
                       {"secret": "old-value-1"}, {"secret": "new-value-2"})
    await audit.record_by(CLI, "create", "user", 7, None, {"login": "olga", "password": "pw"})
    await audit.record(2, "boss", "10.0.0.2", "delete", "client", 3, {"name": "Acme"}, None)
    rows = await store._db.rows("SELECT before, after FROM audit_log")
    assert not any("old-value-1" in str(tuple(r)) or "new-value-2" in str(tuple(r))
                   or '"pw"' in str(tuple(r)) for r in rows)

    every = await audit.list(AuditFilter())
    assert [e.action for e in every] == ["delete", "create", "update"]  # newest first
    assert every[1].actor_id is None and every[1].actor_label == "cli"
    assert every[1].target_id == "7" and every[1].after == {"login": "olga", "password": HIDDEN}
    assert [e.target_kind for e in await audit.list(AuditFilter(actor_id=1))] == ["line"]
    assert [e.action for e in await audit.list(AuditFilter(target_kind="user",
                                                           target_id="7"))] == ["create"]
    assert [e.actor_label for e in await audit.list(AuditFilter(action="delete"))] == ["boss"]
    now = datetime.now(UTC)
    assert len(await audit.list(AuditFilter(since=now - timedelta(minutes=1)))) == 3
    assert await audit.list(AuditFilter(until=now - timedelta(minutes=1))) == []
    assert len(await audit.list(AuditFilter(limit=2))) == 2
    assert len(await audit.list(AuditFilter(limit=2, offset=2))) == 1


async def test_csv_export_escapes_formulas(store) -> None:
    audit = AuditService(store)
    await audit.record(None, "=HYPERLINK(\"http://evil\")", "-1+1", "update", "client", "@x",
                       {"name": "+cmd|' /C calc'!A0"}, {"name": "ok"})
    text = to_csv(await audit.list(AuditFilter()))
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:3] == ["at", "actor", "actor_id"]
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["actor"] == "'=HYPERLINK(\"http://evil\")"
    assert row["address"] == "'-1+1" and row["target_id"] == "'@x"
    assert row["before"].startswith("{") and "+cmd" in row["before"]
    for cell in rows[1]:
        assert not cell.startswith(("=", "+", "-", "@"))
    assert safe_cell("\tx") == "'\tx" and safe_cell(None) == "" and safe_cell("a=b") == "a=b"


def test_mask_reaches_into_lists_and_tuples() -> None:
    before, after = mask({"trunks": [{"name": "t1", "secret": "hunter1"}]},
                         {"trunks": [{"name": "t1", "secret": "hunter2"},
                                     {"name": "t2", "auth": {"password": "hunter3"}}],
                          "pairs": ({"pin": "1234"}, "plain")})
    text = repr((before, after))
    for value in ("hunter1", "hunter2", "hunter3", "1234"):
        assert value not in text
    assert before == {"trunks": [{"name": "t1", "secret": HIDDEN}]}
    assert after == {"trunks": [{"name": "t1", "secret": CHANGED},
                                {"name": "t2", "auth": {"password": HIDDEN}}],
                     "pairs": [{"pin": HIDDEN}, "plain"]}
    assert mask(None, {"trunks": [{"secret": "hunter2"}]}) == (
        None, {"trunks": [{"secret": HIDDEN}]})


def test_more_secret_words() -> None:
    for key in ("authkey", "auth_key", "pass", "md5_cred", "cred", "outbound_auth_pass"):
        assert is_secret(key), key
    for key in ("passthrough", "bypass", "credit", "compass"):
        assert not is_secret(key), key
