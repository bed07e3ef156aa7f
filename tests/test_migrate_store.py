"""``callcenter migrate-store``: a populated SQLite office copied into a real PostgreSQL."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from callcenter.cli import main
from callcenter.models import InteractionKind, Role, TaskKind
from callcenter.phones import normalize
from callcenter.reports.model import ReportName
from callcenter.reports.schedule import Frequency, Period, ScheduleIn
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.postgres import PostgresStore
from callcenter.store.sqlite import SqliteStore

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

NOW = "2026-12-01T10:00:00.000+00:00"


async def populate(path: Path) -> None:
    """At least one row in every table, through the store where it has a method, in SQL
    otherwise; a resent SMS points at a LATER row of its own table."""
    s = await SqliteStore.open(path)
    try:
        admin = await s.create_user("admin", "Admin", Role.ADMIN, "100", "hash-a")
        maria = await s.create_user("maria", "Мария", Role.MANAGER, "101", "hash-m")
        await s.create_custom_field("inn", "INN", "text")
        client = await s.create_client(ClientInput(
            "Ромашка", manager_id=maria.id, custom={"inn": "7701"},
            contacts=[ContactInput("Иван", phones=[
                PhoneInput("+7 916 123-45-67", normalize("+79161234567"))])]))
        contact = client.contacts[0]
        await s.create_client(ClientInput("Second"))
        await s.add_interaction(InteractionKind.NOTE, s_now(), "a note", client_id=client.id,
                                user_id=maria.id)
        await s.create_task(TaskKind.CALLBACK, "call back", client_id=client.id,
                            phone="+79161234567", ref="call:1")
        await s.upsert_call({"id": "call-1", "line": "office", "direction": "in",
                             "caller_raw": "+79161234567", "caller_e164": "+79161234567",
                             "client_id": client.id, "contact_id": contact.id,
                             "state": "answered", "ringing_at": NOW, "answered_at": NOW,
                             "ended_at": NOW, "ring_seconds": 1.5, "talk_seconds": 42.25,
                             "users": [maria.id], "answered_by_user": maria.id})
        await s.add_recording("call-1", "/var/spool/asterisk/monitor/call-1.wav")
        await s.add_audit(s_now(), admin.id, "admin", "127.0.0.1", "user.create", "user",
                          str(maria.id), None, {"login": "maria"})
        await s.set_setting("region", "DE")
        await s.save_group(None, "Reception", [maria.id], ["+4930123"], ["q1"], ["office"])
        db = s._db
        # sms: message 1 was resent as message 2 (the later row)
        for mid in (1, 2):
            await db.execute(
                "INSERT INTO sms_messages (id, direction, number, e164, client_id, contact_id,"
                " manager_id, user_id, text, encoding, parts_total, state, created_at,"
                " updated_at, next_try_at) VALUES (?, 'out', '+79161234567', '+79161234567',"
                " ?, ?, ?, ?, 'Привет', 'ucs2', 1, 'failed', 1764583200.125, 1764583200.5, 0)",
                (mid, client.id, contact.id, maria.id, maria.id))
        await db.execute("UPDATE sms_messages SET resent_as = 2 WHERE id = 1")
        await db.execute(
            "INSERT INTO sms_parts (message_id, seq, total, text, state, modem, mr, attempts)"
            " VALUES (1, 1, 1, 'Привет', 'failed', 'gsm1', 7, 3)")
        await db.execute(
            "INSERT INTO sms_reports_unmatched (modem, mr, recipient, status, code, at)"
            " VALUES ('gsm1', 9, '79161234567', 'delivered', 0, 1764583201.0)")
        await db.execute(
            "INSERT INTO sms_inbound_parts (dedup_key, line, sender, sender_kind, text,"
            " encoding, smsc_time, pdu, received_at, message_id) VALUES ('k1', 'gsm1',"
            " '+79161234567', 'international', 'STOP', 'gsm7', 1764583100.0, '0791AA',"
            " 1764583101.0, 2)")
        await db.execute("INSERT INTO sms_optout (number, raw, at, source) VALUES"
                         " ('+79161234567', 'STOP', 1764583102.0, 'sms:2')")
        await db.execute(
            "INSERT INTO fax_jobs (line, number, client_id, user_id, state, document, pages,"
            " created_at, updated_at) VALUES ('fax1', '+4930999', ?, ?, 'sent', 'f/1.tif', 2,"
            " ?, ?)", (client.id, maria.id, NOW, NOW))
        await db.execute(
            "INSERT INTO fax_received (line, source_key, received_at, pages, ok, pdf, client_id)"
            " VALUES ('fax1', 'recvq/fax00001.tif', ?, 1, 1, 'r/1.pdf', ?)", (NOW, client.id))
        await db.execute("INSERT INTO lines (id, name, kind, settings, created_at, updated_at)"
                         " VALUES (5, 'office', 'asterisk', '{}', ?, ?)", (NOW, NOW))
        await db.execute("INSERT INTO line_secrets (line_id, key, value) VALUES"
                         " (5, 'secret', 's3cret')")
        await db.execute("INSERT INTO lines_seeded (id, at, source) VALUES (1, ?, 'toml')",
                         (NOW,))
        await db.execute(
            "INSERT INTO campaigns (name, template, owner_id, state, time_zone, window_start,"
            " window_end, created_at) VALUES ('Promo', 'Hi {name}', ?, 'running',"
            " 'Europe/Berlin', '09:00', '18:00', ?)", (maria.id, NOW))
        await db.execute(
            "INSERT INTO campaign_recipients (campaign_id, client_id, contact_id, number, text,"
            " state, job_id) VALUES (1, ?, ?, '+79161234567', 'Hi Иван', 'queued', 1)",
            (client.id, contact.id))
        await s.add_report_schedule(ScheduleIn(
            "Weekly", (ReportName.MISSED_CALLS,), ("boss@example.com",), Frequency.WEEKLY,
            "08:00", 0, Period.LAST_7_DAYS, "ru", True), admin.id)
        await s.set_smtp_password("smtp-secret")
        await s.delete_client(2)
    finally:
        await s.close()


def s_now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


async def tables_of(path: Path) -> list[str]:
    s = await SqliteStore.open(path)
    try:
        # The cluster's runtime state (callcenter/cluster/) is not an office's data: empty on
        # SQLite, it has nothing to copy. Nor is the SQLite caller index's change log.
        return [r[0] for r in await s._db.rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            if r[0] not in ("bus_outbox", "line_leases", "cluster_meta", "caller_changes")]
    finally:
        await s.close()


async def contents(store: Any, table: str) -> list[tuple[Any, ...]]:
    rows = await store._db.rows(f'SELECT * FROM "{table}"')
    return sorted((tuple(_same(v) for v in r) for r in rows), key=repr)


def _same(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) and math.isfinite(value) else value


def copy(path: Path, url: str, *extra: str) -> int:
    return main(["migrate-store", "--from", f"sqlite:{path}", "--to", url, *extra])


async def test_every_table_is_copied_with_its_ids_and_the_counts_checked(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "office.db"
    await populate(src)
    tables = await tables_of(src)
    sqlite = await SqliteStore.open(src)
    try:
        expected = {t: await contents(sqlite, t) for t in tables}
    finally:
        await sqlite.close()
    assert all(expected.values()), [t for t, rows in expected.items() if not rows]

    assert await asyncio.to_thread(copy, src, pg_url) == 0
    out = capsys.readouterr().out
    assert "every table's count matches" in out and "sms_messages: 2 rows" in out

    pg = await PostgresStore.open(pg_url)
    try:
        for table in tables:
            assert await contents(pg, table) == expected[table], table
        # the copy is a working store: caller-ID, joins, and new ids after the copied ones
        match = pg.caller_index.match(normalize("+79161234567"), 7)
        assert [m.client_name for m in match] == ["Ромашка"]
        assert (await pg.get_call("call-1"))["client_name"] == "Ромашка"
        assert (await pg.user_by_login("MARIA")) is not None
        third = await pg.create_client(ClientInput("Third"))
        # after the highest id copied, as SQLite gives it (without the sequence moved on it
        # would be 1, taken)
        assert third.id == 2
    finally:
        await pg.close()


async def test_a_re_run_replaces_its_own_copy_but_not_data_written_since(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "office.db"
    await populate(src)
    assert await asyncio.to_thread(copy, src, pg_url) == 0
    # the office kept working on SQLite meanwhile: the re-run brings the new row along
    s = await SqliteStore.open(src)
    await s.create_user("late", "Late", Role.SECRETARY)
    await s.close()
    assert await asyncio.to_thread(copy, src, pg_url) == 0
    pg = await PostgresStore.open(pg_url)
    try:
        assert [u.login for u in await pg.list_users()] == ["admin", "maria", "late"]
        await pg.create_user("written-on-pg", "PG", Role.SECRETARY)  # an instance went live
    finally:
        await pg.close()
    capsys.readouterr()

    assert await asyncio.to_thread(copy, src, pg_url) == 1
    err = capsys.readouterr().err
    assert "already holds data" in err and "--replace" in err and "users (4)" in err
    pg = await PostgresStore.open(pg_url)
    try:
        assert len(await pg.list_users()) == 4  # refused: nothing changed
    finally:
        await pg.close()

    assert await asyncio.to_thread(copy, src, pg_url, "--replace") == 0
    pg = await PostgresStore.open(pg_url)
    try:
        assert [u.login for u in await pg.list_users()] == ["admin", "maria", "late"]
    finally:
        await pg.close()


async def test_a_row_postgresql_refuses_leaves_the_target_as_it_was(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "office.db"
    await populate(src)
    assert await asyncio.to_thread(copy, src, pg_url) == 0
    s = await SqliteStore.open(src)
    await s.create_user("late", "Late", Role.SECRETARY)
    # SQLite stores text in an integer column; PostgreSQL will not
    await s._db.execute("UPDATE fax_jobs SET pages = 'two'")
    await s.close()
    capsys.readouterr()

    assert await asyncio.to_thread(copy, src, pg_url) == 1
    err = capsys.readouterr().err
    assert "fax_jobs" in err and "pages" in err, err
    pg = await PostgresStore.open(pg_url)
    try:
        assert [u.login for u in await pg.list_users()] == ["admin", "maria"]
    finally:
        await pg.close()


def test_a_missing_source_or_a_wrong_target_is_a_clear_error(
        tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert copy(tmp_path / "none.db", pg_url) == 1
    assert "no such SQLite database" in capsys.readouterr().err
    assert main(["migrate-store", "--from", f"sqlite:{tmp_path / 'x.db'}",
                 "--to", "mysql://x"]) == 2
    assert "postgresql://" in capsys.readouterr().err


async def _waiting_for_a_lock(store: PostgresStore, other: asyncio.Task[Any]) -> None:
    while not other.done():
        if await store._db.rows("SELECT 1 FROM pg_locks WHERE NOT granted"):
            return
        await asyncio.sleep(0.01)


async def test_a_copy_never_wipes_what_an_instance_is_committing(
        tmp_path: Path, pg_url: str) -> None:
    # An instance went live on the target while migrate-store was re-run: its write, still
    # uncommitted when the copy looked, must make the copy refuse, not vanish in the TRUNCATE.
    from callcenter.store.copy import CopyError, copy_store

    src = tmp_path / "office.db"
    await populate(src)
    live = await PostgresStore.open(pg_url)
    try:
        async with live._db.transaction():
            await live.create_user("written-on-pg", "PG", Role.SECRETARY)
            copying = asyncio.create_task(copy_store(src, pg_url))
            await asyncio.wait_for(_waiting_for_a_lock(live, copying), 60)
            assert not copying.done()
        with pytest.raises(CopyError, match="already holds data"):
            await copying
        assert [u.login for u in await live.list_users()] == ["written-on-pg"]
    finally:
        await live.close()
