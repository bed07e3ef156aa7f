"""caller_numbers (migration 0019) stays what the phones/contacts/clients join says after any
sequence of client, contact and phone edits, deletes, imports and hand-overs, and lookups
through it answer exactly what the two-step join answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callcenter.config import PhonesConfig
from callcenter.matching import CallerMatcher
from callcenter.models import Role
from callcenter.phones import NumberKind, normalize
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.sqlite import SqliteStore

# Few distinct numbers and shared tails, so ties, shared numbers and tail matches happen.
NUMBERS = ["+79161234567", "89161234567", "+79161234560", "+79031234567", "+74951234567",
           "991234567", "+79261234567", "+4930123456789", "8 (916) 123-45-67"]

JOIN = ("SELECT p.rev, p.contact_id, p.raw, p.id, p.e164, cl.id, cl.name, c.name, cl.manager_id"
        " FROM phones p JOIN contacts c ON c.id = p.contact_id"
        " JOIN clients cl ON cl.id = c.client_id")
TABLE = ("SELECT rev, contact_id, raw, phone_id, e164, client_id, client_name, contact_name,"
         " manager_id FROM caller_numbers")

op = st.one_of(
    st.tuples(st.just("create"), st.lists(st.sampled_from(NUMBERS), max_size=3),
              st.integers(-1, 2)),
    st.tuples(st.just("import"), st.lists(st.sampled_from(NUMBERS), min_size=1, max_size=2),
              st.integers(-1, 2)),
    st.tuples(st.just("add_contact"), st.integers(0, 9), st.sampled_from(NUMBERS)),
    st.tuples(st.just("add_phone"), st.integers(0, 9), st.sampled_from(NUMBERS)),
    st.tuples(st.just("rename_client"), st.integers(0, 9), st.text(max_size=5)),
    st.tuples(st.just("manager"), st.integers(0, 9), st.integers(0, 2)),
    st.tuples(st.just("rename_contact"), st.integers(0, 9), st.text(max_size=5)),
    st.tuples(st.just("delete_phone"), st.integers(0, 9)),
    st.tuples(st.just("delete_contact"), st.integers(0, 9)),
    st.tuples(st.just("delete_client"), st.integers(0, 9)),
    st.tuples(st.just("hand_over"), st.integers(0, 2), st.integers(0, 2)),
)


def _client(name: str, numbers: list[str], manager_id: int | None = None) -> ClientInput:
    return ClientInput(name, manager_id=manager_id, contacts=[
        ContactInput(f"{name} c", phones=[PhoneInput(n, normalize(n)) for n in numbers])])


async def _ids(store: SqliteStore, sql: str) -> list[int]:
    return [int(r[0]) for r in await store._db.rows(sql)]


def _pick(ids: list[int], i: int) -> int | None:
    return ids[i % len(ids)] if ids else None


async def _apply(store: SqliteStore, users: list[int], step: tuple) -> None:
    kind, *args = step
    clients = await _ids(store, "SELECT id FROM clients ORDER BY id")
    contacts = await _ids(store, "SELECT id FROM contacts ORDER BY id")
    phones = await _ids(store, "SELECT id FROM phones ORDER BY id")
    if kind == "create":
        await store.create_client(_client("Acme", args[0], users[args[1]] if args[1] >= 0
                                          else None))
    elif kind == "import":
        manager = users[args[1]] if args[1] >= 0 else None
        await store.import_clients([_client("Imp", args[0], manager),
                                    _client("Imp2", args[0][:1])])
    elif kind == "add_contact" and (c := _pick(clients, args[0])) is not None:
        await store.add_contact(c, ContactInput("new", phones=[
            PhoneInput(args[1], normalize(args[1]))]))
    elif kind == "add_phone" and (c := _pick(contacts, args[0])) is not None:
        await store.add_phone(c, PhoneInput(args[1], normalize(args[1])))
    elif kind == "rename_client" and (c := _pick(clients, args[0])) is not None:
        await store.update_client(c, name=args[1] or "x")
    elif kind == "manager" and (c := _pick(clients, args[0])) is not None:
        await store.update_client(c, manager_id=users[args[1]])
    elif kind == "rename_contact" and (c := _pick(contacts, args[0])) is not None:
        await store.update_contact(c, name=args[1])
    elif kind == "delete_phone" and (p := _pick(phones, args[0])) is not None:
        await store.delete_phone(p)
    elif kind == "delete_contact" and (c := _pick(contacts, args[0])) is not None:
        await store.delete_contact(c)
    elif kind == "delete_client" and (c := _pick(clients, args[0])) is not None:
        await store.delete_client(c)
    elif kind == "hand_over" and args[0] != args[1]:
        await store.hand_over(users[args[0]], users[args[1]])


def _two_step(store: SqliteStore, raw: str) -> list:
    """The lookup as it was before caller_numbers: the exact join, then the tail join."""
    index = store.caller_index
    number = normalize(raw)
    if number.kind is not NumberKind.EXTERNAL:
        return []
    if number.e164 and (found := index.by_e164(number.e164)):
        return found
    tail = number.tail(10)
    return index.by_tail(tail) if tail else []


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(op, max_size=12))
def test_caller_numbers_follow_every_write(tmp_path: Path, steps: list[tuple]) -> None:
    async def main() -> None:
        path = tmp_path / f"c{abs(hash(tuple(map(repr, steps))))}.db"
        store = await SqliteStore.open(path)
        try:
            users = [(await store.create_user(f"m{i}", f"M{i}", Role.MANAGER)).id
                     for i in range(3)]
            for step in steps:
                await _apply(store, users, step)
                table = sorted(map(tuple, await store._db.rows(TABLE)), key=repr)
                assert table == sorted(map(tuple, await store._db.rows(JOIN)), key=repr), step
            matcher = CallerMatcher(store.caller_index, PhonesConfig())
            for raw in [*NUMBERS, "+79999999999", "79161234567"]:
                assert store.caller_index.match(normalize(raw), 10) == _two_step(store, raw)
                # the screen-pop's path (its own keying, one read) answers the same, also for
                # a carrier's digits before the number
                for written in (raw, "99" + raw.lstrip("+"), "0" + raw.lstrip("+")):
                    assert matcher.match(written).candidates == tuple(
                        _two_step(store, written)), written
        finally:
            await store.close()
            path.unlink()

    asyncio.run(main())


async def _table_is_the_join(store: SqliteStore) -> None:
    table = sorted(map(tuple, await store._db.rows(TABLE)), key=repr)
    assert table == sorted(map(tuple, await store._db.rows(JOIN)), key=repr)


async def test_an_import_batch_of_many_clients_fills_every_row(tmp_path: Path) -> None:
    # import_clients fills caller_numbers set-wise, 500 clients a statement: past a chunk
    store = await SqliteStore.open(tmp_path / "i.db")
    try:
        manager = (await store.create_user("m", "M", Role.MANAGER)).id
        await store.create_client(_client("Before", NUMBERS[:2], manager))
        ids = await store.import_clients(
            [_client(f"C{i}", [f"+7916{i:07d}", NUMBERS[i % len(NUMBERS)]], manager)
             for i in range(1203)])
        assert len(ids) == 1203
        await _table_is_the_join(store)
        rows = await store._db.rows("SELECT COUNT(*) FROM caller_numbers")
        assert rows[0][0] == 2 + 2 * 1203
        found = store.caller_index.match(normalize("+79160001202"), 10)
        assert [m.client_id for m in found] == [ids[1202]]
    finally:
        await store.close()


async def test_a_store_at_an_older_schema_writes_without_caller_numbers(tmp_path: Path) -> None:
    # upgrade tests open a store before migration 0019: every write path must leave the table
    # to the migration, which then fills it from the join
    path = tmp_path / "old.db"
    old = await SqliteStore.open(path, target_version=18)
    try:
        cursor = await old._db.execute(
            "INSERT INTO users (login, name, role, created_at) VALUES"
            " ('a', 'A', 'manager', '2026-01-01T00:00:00+00:00'),"
            " ('b', 'B', 'manager', '2026-01-01T00:00:00+00:00')")
        b = int(cursor.lastrowid or 0)
        a = b - 1
        await old.create_client(_client("Acme", NUMBERS[:2], a))
        await old.import_clients([_client("Imp", NUMBERS[2:4], a)])
        assert len((await old.hand_over(a, b)).client_ids) == 2
    finally:
        await old.close()
    store = await SqliteStore.open(path)
    try:
        await _table_is_the_join(store)
        assert {r[0] for r in await store._db.rows("SELECT manager_id FROM caller_numbers")} == {b}
    finally:
        await store.close()


async def test_a_quick_key_that_misses_matches_the_last_digits_normalize_would(
        tmp_path: Path) -> None:
    # "1753047" in a German office: quick_e164 keys it +491753047, phonenumbers finds no valid
    # number, so normalize() matches the digits as written, which end +49 30 1753047
    store = await SqliteStore.open(tmp_path / "t.db")
    try:
        await store.create_client(ClientInput("Berlin", contacts=[ContactInput("c", phones=[
            PhoneInput("+49 30 1753047", normalize("+49 30 1753047", "DE"))])]))
        config = PhonesConfig(default_region="DE")
        matcher = CallerMatcher(store.caller_index, config)
        for raw in ("1753047", "+49 30 1753047", "030 1753047", "9991753047", "81753047"):
            full = store.caller_index.match(normalize(raw, "DE"), config.match_digits)
            assert matcher.match(raw).candidates == tuple(full), raw
        assert [m.client_name for m in matcher.match("1753047").candidates] == ["Berlin"]
    finally:
        await store.close()


async def test_the_screen_pop_path_answers_what_normalize_and_the_join_answer(
        tmp_path: Path) -> None:
    # written forms of stored numbers, with digits before, after and changed, in offices of
    # several countries: the fast path (quick_key, one read) against normalize() + match()
    import random

    offices = {"RU": ["+79161234567", "+74951753047"], "DE": ["+49301753047", "+4915112345678"],
               "AT": ["+4319476316"], "IT": ["+390212345678"], "PL": ["+48321753047"],
               "IN": ["+919876543210"], "US": ["+12125551234"]}
    store = await SqliteStore.open(tmp_path / "r.db")
    try:
        for region, numbers in offices.items():
            await store.create_client(_client(region, numbers))
        rnd = random.Random(14)
        for region in offices:
            config = PhonesConfig(default_region=region)
            matcher = CallerMatcher(store.caller_index, config)
            for _ in range(400):
                digits = rnd.choice([n for ns in offices.values() for n in ns])[1:]
                cut = rnd.randint(0, 4)
                raw = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(0, 3))) + (
                    digits[cut:] if rnd.random() < 0.7 else digits[:-1])
                full = store.caller_index.match(normalize(raw, region), config.match_digits)
                assert matcher.match(raw).candidates == tuple(full), (raw, region)
    finally:
        await store.close()
