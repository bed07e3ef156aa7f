"""Fax events on the websocket hub: a manager sees only their clients' faxes."""

from __future__ import annotations

from callcenter.calls.visibility import can_see_event
from callcenter.models import Role, User

MARIA = User(3, "maria", "Maria", Role.MANAGER, "102")
DMITRY = User(4, "dmitry", "Dmitry", Role.MANAGER, "103")
SECRETARY = User(2, "secretary", "Svetlana", Role.SECRETARY, "101")


def test_fax_events_follow_the_client_manager() -> None:
    received = {"fax": {"direction": "in", "id": 1, "manager_id": MARIA.id, "client_id": 1}}
    unmatched = {"fax": {"direction": "in", "id": 2, "manager_id": None, "client_id": None}}
    own_job = {"fax": {"direction": "out", "id": 3, "manager_id": None, "user_id": DMITRY.id}}
    assert can_see_event(MARIA, received, False)
    assert not can_see_event(DMITRY, received, False)
    assert can_see_event(DMITRY, received, True)  # the office lets managers see all clients
    assert not can_see_event(MARIA, unmatched, False)
    assert can_see_event(SECRETARY, unmatched, False)
    assert can_see_event(DMITRY, own_job, False) and not can_see_event(MARIA, own_job, False)
