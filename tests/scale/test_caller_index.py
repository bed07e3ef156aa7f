"""The PostgreSQL caller index stays current across instances, part by part."""

from __future__ import annotations

import asyncio

from callcenter.models import ClientKind, InteractionKind, Role
from callcenter.phones import normalize
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.pg_caller_index import CONTEXT, NUMBERS, USERS
from callcenter.store.postgres import PostgresStore
from callcenter.store.sqlite_calls import now_utc


def _client(name: str, number: str) -> ClientInput:
    return ClientInput(name, ClientKind.PERSON, contacts=[ContactInput(
        name, phones=[PhoneInput(number, normalize(number))])])


async def _next_load(store: PostgresStore, timeout: float = 10.0) -> None:
    await asyncio.wait_for(store.caller_index.loaded.wait(), timeout)
    store.caller_index.loaded.clear()


async def test_a_client_added_on_one_instance_pops_up_on_the_other(pg_url: str) -> None:
    a, b = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    try:
        await b.caller_index.listen(pg_url)
        b.caller_index.loaded.clear()
        [client_id] = await a.import_clients([_client("Anna", "+79161112233")])
        await _next_load(b)
        [match] = b.caller_index.by_e164("+79161112233")
        assert match.client_id == client_id
        assert b.caller_index.by_tail("9161112233")[0].client_id == client_id

        user = await a.create_user("olga", "Olga", Role.SECRETARY, "104", "x")
        await _next_load(b)
        assert b.caller_index.user_by_extension("104").id == user.id

        await a.update_client(client_id, name="Anna Petrova")
        await _next_load(b)
        assert b.caller_index.by_e164("+79161112233")[0].client_name == "Anna Petrova"
        assert b.caller_index.client_context(client_id)["client"]["name"] == "Anna Petrova"
    finally:
        await a.close()
        await b.close()


async def test_a_note_reloads_only_the_screen_pop_context(pg_url: str) -> None:
    store = await PostgresStore.open(pg_url)
    try:
        [client_id] = await store.import_clients([_client("Boris", "+79162223344")])
        before = dict(store.caller_index.reloads)
        await store.add_interaction(InteractionKind.NOTE, now_utc(), "called back",
                                    client_id=client_id)
        after = store.caller_index.reloads
        assert after[CONTEXT] == before[CONTEXT] + 1
        assert (after[NUMBERS], after[USERS]) == (before[NUMBERS], before[USERS])
        context = store.caller_index.client_context(client_id)
        assert [i["summary"] for i in context["last_interactions"]] == ["called back"]
    finally:
        await store.close()


async def test_the_index_follows_other_instances_after_its_listener_was_cut(
        pg_url: str) -> None:
    import asyncpg

    a, b = await PostgresStore.open(pg_url), await PostgresStore.open(pg_url)
    admin = await asyncpg.connect(pg_url)
    try:
        await b.caller_index.listen(pg_url)
        # The database drops B's listener (a restart, a network blip) ...
        await admin.execute("SELECT pg_terminate_backend($1)",
                            b.caller_index._listener.get_server_pid())
        b.caller_index.loaded.clear()
        await _next_load(b)  # ... B listens again and loads what it may have missed
        [client_id] = await a.import_clients([_client("Vera", "+79163334455")])
        await _next_load(b)
        [match] = b.caller_index.by_e164("+79163334455")
        assert match.client_id == client_id
    finally:
        await admin.close()
        await a.close()
        await b.close()
