from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.config import PhonesConfig
from callcenter.matching import CallerMatcher
from callcenter.models import FieldType, InteractionKind, Role, TaskKind
from callcenter.phones import normalize
from callcenter.store.base import ClientInput, Conflict, ContactInput, NotFound, PhoneInput
from callcenter.store.migrate import SchemaTooNewError, known_migrations, schema_version
from callcenter.store.sqlite import SqliteStore


def client(name: str, *phones: str, manager: int | None = None, contact: str = "") -> ClientInput:
    return ClientInput(name, manager_id=manager, contacts=[
        ContactInput(contact or name, phones=[PhoneInput(p, normalize(p)) for p in phones])])


@pytest.mark.sqlite_only("the SQLite file's schema version; PostgreSQL's: test_pg_store.py")
async def test_fresh_database_is_at_the_newest_version(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "a.db")
    await store.close()
    async with aiosqlite.connect(tmp_path / "a.db") as db:
        assert await schema_version(db) == known_migrations()[-1].version
        mode = await db.execute_fetchall("PRAGMA journal_mode")
        assert next(iter(mode))[0] == "wal"


@pytest.mark.sqlite_only("the SQLite file's schema version; PostgreSQL's: test_pg_store.py")
async def test_upgrade_from_the_first_schema_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = await SqliteStore.open(path, target_version=1)
    # The user as a version-1 callcenter wrote it: today's create_user reads back columns
    # that later migrations added.
    cursor = await old._db.execute(
        "INSERT INTO users (login, name, role, extension, created_at) VALUES"
        " ('m', 'Manager', 'manager', '102', '2026-01-01T00:00:00+00:00')")
    manager_id = int(cursor.lastrowid or 0)
    created = await old.create_client(client("Acme", "+79161234567", manager=manager_id))
    await old.close()
    async with aiosqlite.connect(path) as db:
        assert await schema_version(db) == 1
        tables = {r[0] for r in await db.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        assert "calls" not in tables

    store = await SqliteStore.open(path)
    try:
        again = await store.get_client(created.id)
        assert again.name == "Acme" and again.manager_id == manager_id
        assert (await store.get_user(manager_id)).login == "m"
        assert again.contacts[0].phones[0].e164 == "+79161234567"
        # the new tables exist and work
        await store._db.execute(
            "INSERT INTO calls (id, line, direction, state, ringing_at) VALUES "
            "('x', 'l', 'inbound', 'missed', '2026-01-01')")
    finally:
        await store.close()


@pytest.mark.sqlite_only("the SQLite file's schema version; PostgreSQL's: test_pg_store.py")
async def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    await (await SqliteStore.open(path)).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(SchemaTooNewError, match="newer than this callcenter understands"):
        await SqliteStore.open(path)


@pytest.mark.sqlite_only("the SQLite file's schema version; PostgreSQL's: test_pg_store.py")
async def test_failed_migration_leaves_the_previous_version(tmp_path: Path, monkeypatch) -> None:
    from callcenter.store import migrate as mig

    real = mig.known_migrations()
    broken = [*real[:1], mig.Migration(2, "0002_broken.sql",
                                       "CREATE TABLE calls (id TEXT);\nSELECT * FROM nope;")]
    monkeypatch.setattr(mig, "known_migrations", lambda: broken)
    path = tmp_path / "b.db"
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore.open(path)
    async with aiosqlite.connect(path) as db:
        assert await schema_version(db) == 1
        tables = {r[0] for r in await db.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        assert "calls" not in tables  # the half-done migration was rolled back


async def test_matching_exact_tail_tie_and_extension(store: SqliteStore) -> None:
    m = await store.create_user("m", "Manager", Role.MANAGER, "102")
    a = await store.create_client(client("Acme", "8 (916) 123-45-67", manager=m.id))
    b = await store.create_client(client("Beta", "+79035556677", contact="Olga"))
    c = await store.create_client(client("Gamma", "+79035556677", contact="Oleg"))
    matcher = CallerMatcher(store.caller_index, PhonesConfig())

    exact = matcher.match("+79161234567")
    assert [x.client_id for x in exact.candidates] == [a.id]
    assert exact.candidates[0].matched_by == "e164"
    assert exact.candidates[0].manager_id == m.id
    assert exact.client_id == a.id and not exact.tie

    tie = matcher.match("89035556677")
    assert {x.client_id for x in tie.candidates} == {b.id, c.id}
    assert tie.tie and tie.client_id is None and tie.contact is None

    # an unparseable international form still matches on the last 10 digits
    tail = matcher.match("99 9161234567")
    assert [x.client_id for x in tail.candidates] == [a.id]
    assert tail.candidates[0].matched_by == "tail"

    assert matcher.match("1234567").candidates  # 7 digits: the minimum still matches
    assert not matcher.match("234567").candidates  # 6 digits: an extension, never a client

    ext = matcher.match("102")
    assert ext.user is not None and ext.user.id == m.id and not ext.candidates
    assert matcher.match("anonymous").withheld
    assert not matcher.match("anonymous").candidates
    hidden = matcher.match("+79161234567", withheld=True)
    assert hidden.withheld and not hidden.candidates


async def test_a_german_office_finds_a_number_written_with_its_trunk_zero(
        store: SqliteStore) -> None:
    """The lookup fast path must not guess where phonenumbers strips a national prefix after
    the country code: these forms used to miss the stored +4930123456."""
    berlin = await store.create_client(ClientInput("Berlin", contacts=[ContactInput(
        "Berlin", phones=[PhoneInput("030 123456", normalize("030 123456", "DE"))])]))
    matcher = CallerMatcher(store.caller_index, PhonesConfig(default_region="DE"))
    for caller in ("+49 (0)30 123456", "0049030123456", "+4930123456", "030 123456"):
        found = matcher.match(caller)
        assert [c.client_id for c in found.candidates] == [berlin.id], caller
        assert found.candidates[0].matched_by == "e164", caller


async def test_two_phones_of_one_contact_are_one_candidate(store: SqliteStore) -> None:
    await store.create_client(client("Acme", "+79161234567", "89161234567"))
    matcher = CallerMatcher(store.caller_index, PhonesConfig())
    assert len(matcher.match("9161234567").candidates) == 1


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture],
          deadline=None)
@given(ten=st.integers(min_value=9_000_000_000, max_value=9_999_999_999).map(str),
       form=st.sampled_from(["+7{}", "8{}", "{}", "007{}"]))
async def test_any_stored_form_matches_any_caller_form(tmp_path: Path, ten: str, form: str
                                                        ) -> None:
    store = await SqliteStore.open(tmp_path / f"p{ten}{len(form)}.db")
    try:
        await store.create_client(client("X", form.format(ten)))
        matcher = CallerMatcher(store.caller_index, PhonesConfig())
        for caller in (f"+7{ten}", f"8{ten}", ten):
            assert len(matcher.match(caller).candidates) == 1
        other = str(int(ten) + 1) if ten != "9999999999" else "9000000000"
        assert not matcher.match(f"+7{other}").candidates
    finally:
        await store.close()


async def test_custom_fields_need_no_migration(store: SqliteStore) -> None:
    await store.create_custom_field("inn", "INN", FieldType.TEXT)
    await store.create_custom_field("employees", "Employees", FieldType.NUMBER)
    c = await store.create_client(ClientInput("Acme", custom={"inn": "7701", "employees": "12"}))
    assert c.custom == {"inn": "7701", "employees": 12}
    c = await store.update_client(c.id, custom={"inn": ""})
    assert c.custom == {"employees": 12}
    with pytest.raises(Conflict, match="unknown custom field"):
        await store.create_client(ClientInput("Bad", custom={"nope": "1"}))
    assert [x.name for x in await store.list_clients()] == ["Acme"]  # nothing half-written


async def test_import_is_all_or_nothing(store: SqliteStore) -> None:
    with pytest.raises(Conflict):
        await store.import_clients([client("A", "+79161234567"),
                                    ClientInput("B", manager_id=999)])
    assert await store.list_clients() == []
    ids = await store.import_clients([client("A", "+79161234567"), client("B")])
    assert len(ids) == 2


async def test_interactions_tasks_and_not_found(store: SqliteStore) -> None:
    c = await store.create_client(client("Acme", "+79161234567"))
    at = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    first = await store.add_interaction(InteractionKind.CALL, at, "call", client_id=c.id,
                                        ref="call-1", data={"state": "missed"})
    again = await store.add_interaction(InteractionKind.CALL, at, "call", client_id=c.id,
                                        ref="call-1", data={"state": "answered"})
    assert first.id == again.id  # idempotent by ref
    [only] = await store.list_interactions(c.id)
    assert only.data == {"state": "answered"}

    t = await store.create_task(TaskKind.CALLBACK, "Call back", client_id=c.id,
                                phone="+79161234567", assignee_role=Role.SECRETARY)
    assert (await store.open_callback_task("+79161234567")).id == t.id
    done = await store.update_task(t.id, done=True)
    assert done.done and done.done_at is not None
    assert await store.open_callback_task("+79161234567") is None
    undone = await store.update_task(t.id, done=False)
    assert not undone.done and undone.done_at is None

    with pytest.raises(NotFound):
        await store.get_client(12345)
    with pytest.raises(NotFound):
        await store.delete_phone(12345)


async def test_unique_login_and_extension(store: SqliteStore) -> None:
    await store.create_user("anna", "Anna", Role.MANAGER, "102")
    with pytest.raises(Conflict):
        await store.create_user("ANNA", "Other", Role.MANAGER, "103")
    with pytest.raises(Conflict):
        await store.create_user("bob", "Bob", Role.MANAGER, "102")


async def test_search(store: SqliteStore) -> None:
    await store.create_client(client("ООО Ромашка", "+79161234567", contact="Иван"))
    await store.create_client(client("100% Juice_Co", "+79035556677"))
    assert [c.name for c in await store.list_clients(search="Ромашка")] == ["ООО Ромашка"]
    assert [c.name for c in await store.list_clients(search="ромашка")] == ["ООО Ромашка"]
    assert [c.name for c in await store.list_clients(search="ИВАН")] == ["ООО Ромашка"]
    assert [c.name for c in await store.list_clients(search="Иван")] == ["ООО Ромашка"]
    assert [c.name for c in await store.list_clients(search="916 123")] == ["ООО Ромашка"]
    assert [c.name for c in await store.list_clients(search="9161234")] == ["ООО Ромашка"]
    assert [c.name for c in await store.list_clients(search="100%")] == ["100% Juice_Co"]
    assert await store.list_clients(search="0%_") == []


async def test_a_task_with_a_ref_is_created_once(store: SqliteStore) -> None:
    # A missed call replayed from the journal after its callback task was done must not
    # bring the task back.
    first = await store.create_task(TaskKind.CALLBACK, "Call back", phone="+79161234567",
                                    ref="call-1")
    await store.update_task(first.id, done=True)
    again = await store.create_task(TaskKind.CALLBACK, "Call back", phone="+79161234567",
                                    ref="call-1")
    assert again.id == first.id and again.done
    other = await store.create_task(TaskKind.CALLBACK, "Call back", phone="+79161234567",
                                    ref="call-2")
    assert other.id != first.id
    plain = [await store.create_task(TaskKind.REMINDER, "twice") for _ in range(2)]
    assert plain[0].id != plain[1].id
