"""Tie candidates: bounded in the screen-pop, and filtered per user (as ``GET /api/lookup``)."""

from __future__ import annotations

from typing import Any

from callcenter.calls.visibility import event_for_user, match_for_user
from callcenter.line_events import CallEnded, CallStarted, Direction, EndState, MissReason
from callcenter.models import Role, User
from callcenter.phones import normalize
from callcenter.store.base import CallFilter, ClientInput, ContactInput, PhoneInput
from callcenter.store.sqlite import SqliteStore
from tests.calls.harness import call_core

MARIA = User(2, "maria", "Maria", Role.MANAGER, "102")
DMITRY = User(3, "dmitry", "Dmitry", Role.MANAGER, "103")
SECRETARY = User(1, "secretary", "Svetlana", Role.SECRETARY, "101")


def candidate(client_id: int, manager_id: int | None) -> dict[str, Any]:
    return {"client_id": client_id, "client_name": f"Client {client_id}", "contact_id": None,
            "contact_name": None, "manager_id": manager_id, "matched_by": "e164"}


def tie(*candidates: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "tie", "client": None, "contact": None, "manager": None,
            "candidates": list(candidates), "candidates_total": len(candidates), "user": None,
            "last_interactions": [], "open_tasks": []}


def test_a_tie_with_no_visible_candidate_is_an_unknown_caller() -> None:
    match = tie(candidate(1, DMITRY.id), candidate(2, None))
    own = match_for_user(MARIA, match, managers_see_all=False)
    assert own is not None
    assert own["kind"] == "unknown" and own["candidates"] == [] and own["candidates_total"] == 0
    assert own["client"] is None and own["manager"] is None
    assert match["kind"] == "tie" and len(match["candidates"]) == 2  # the shared one unchanged


def test_a_tie_with_one_visible_candidate_is_that_clients() -> None:
    match = tie(candidate(1, DMITRY.id), candidate(2, MARIA.id), candidate(3, None))
    own = match_for_user(MARIA, match, managers_see_all=False)
    assert own is not None and own["kind"] == "tie"  # the console shows it as a single match
    assert [c["client_id"] for c in own["candidates"]] == [2] and own["candidates_total"] == 1


def test_who_sees_the_whole_tie_shares_the_one_event() -> None:
    match = tie(candidate(1, DMITRY.id), candidate(2, MARIA.id))
    assert match_for_user(SECRETARY, match, managers_see_all=False) is None
    assert match_for_user(MARIA, match, managers_see_all=True) is None
    data = {"call": {"id": "c1"}, "match": match}
    assert event_for_user(SECRETARY, data, managers_see_all=False) is data


def test_a_client_match_stays_a_client_match() -> None:
    """Only ties change kind: the card of another manager's client, which rang at Maria's
    phone, still says whose client it is (and to whom to transfer)."""
    match = dict(tie(candidate(1, DMITRY.id)), kind="client", client={"id": 1})
    own = match_for_user(MARIA, match, managers_see_all=False)
    assert own is not None and own["kind"] == "client" and own["client"] == {"id": 1}




async def test_the_screen_pop_lists_at_most_max_candidates_and_counts_them_all(
    store: SqliteStore,
) -> None:
    number = "+74957770000"  # a business centre's switchboard, shared by 25 tenants
    for i in range(25):
        await store.create_client(ClientInput(f"Tenant {i}", contacts=[
            ContactInput(f"Reception {i}", phones=[PhoneInput(number, normalize(number))])]))
    parts = await call_core(store)
    log, registry, events = parts.log, parts.registry, parts.events
    try:
        registry.handle(CallStarted("office", "c1", 100.0, Direction.INBOUND, number, "",
                                    "74951110000"))
        registry.handle(CallEnded("c1", 120.0, EndState.MISSED, MissReason.ABANDONED))
        await log.drained()
    finally:
        await log.stop()
    cap = registry.max_candidates
    assert cap == 20
    match = events[0].data["match"]
    assert match["kind"] == "tie"
    assert len(match["candidates"]) == cap and match["candidates_total"] == 25
    [row] = await store.list_calls(CallFilter())
    assert len(row["candidates"]) == cap  # the call log row is bounded too
