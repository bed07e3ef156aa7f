"""Who may open which report, enforced in the report service: managers their own figures
and their clients, secretaries the missed-call and load reports (and a client card's
summary), admins and supervisors everything."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from callcenter.errors import PermissionDenied
from callcenter.models import Role, User
from callcenter.reports.model import ReportName
from callcenter.reports.service import reports_for
from tests.reports import expected as ex
from tests.reports.conftest import service

FIRST, LAST = date(2026, 3, 26), date(2026, 4, 1)
Q = {"from": [FIRST.isoformat()], "to": [LAST.isoformat()]}

ALLOWED = {
    Role.ADMIN: set(ReportName),
    Role.SUPERVISOR: set(ReportName),
    Role.SECRETARY: {ReportName.MISSED_CALLS, ReportName.LOAD, ReportName.CLIENT_SUMMARY},
    Role.MANAGER: {ReportName.CALLS_BY_MANAGER, ReportName.MISSED_CALLS,
                   ReportName.CLIENT_SUMMARY},
}
LOGINS = {Role.ADMIN: "adm", Role.SUPERVISOR: "boss", Role.SECRETARY: "sec1",
          Role.MANAGER: "anna"}


def user(o: Any, login: str, role: Role) -> User:
    return User(o.users[login], login, login.title(), role)


def own_client(o: Any, manager: int) -> int:
    return next(c for c, v in o.clients.items() if v["manager"] == manager)


@pytest.mark.parametrize("role", list(ALLOWED))
async def test_each_role_opens_exactly_its_reports(office, role: Role) -> None:
    store, o = office
    who = user(o, LOGINS[role], role)
    svc = service(store)
    assert set(reports_for(who)) == ALLOWED[role]
    for name in ReportName:
        query = dict(Q)
        if name is ReportName.CLIENT_SUMMARY:
            query["client"] = [str(own_client(o, o.users["anna"]))]
        if name in ALLOWED[role]:
            doc = (await svc.run_query(who, name.value, query)).to_json()
            assert doc["name"] == name.value
        else:
            with pytest.raises(PermissionDenied):
                await svc.run_query(who, name.value, query)


async def test_a_manager_sees_only_their_own_row(office) -> None:
    store, o = office
    anna = user(o, "anna", Role.MANAGER)
    doc = (await service(store).run_query(anna, "calls_by_manager",
                                          Q | {"group_by": ["user"]})).to_json()
    assert [r[0] for r in doc["rows"]] == ["Anna"]
    want = ex.calls_by_manager(o, FIRST, LAST, "user", users={anna.id})
    assert doc["rows"][0][1:4] == [want[anna.id]["in"], want[anna.id]["out"],
                                   want[anna.id]["out_ans"]]
    # by day: still only her own figures
    by_day = (await service(store).run_query(anna, "calls_by_manager",
                                             Q | {"group_by": ["day"]})).to_json()
    assert by_day["totals"][1] == want[anna.id]["in"]


async def test_a_manager_cannot_ask_for_someone_else(office) -> None:
    store, o = office
    anna = user(o, "anna", Role.MANAGER)
    with pytest.raises(PermissionDenied):
        await service(store).run_query(anna, "calls_by_manager",
                                       Q | {"user": [str(o.users["boris"])]})


async def test_a_managers_missed_calls_are_their_clients(office) -> None:
    store, o = office
    anna = user(o, "anna", Role.MANAGER)
    doc = (await service(store).run_query(anna, "missed_calls", Q)).to_json()
    mine = [c for c in o.calls if c["direction"] == "inbound"
            and ex.within(c["ringing_at"], FIRST, LAST)
            and ((c["client_id"] and o.clients[c["client_id"]]["manager"] == anna.id)
                 or anna.id in (c.get("answered_by_user"), c.get("user_id")))]
    assert doc["totals"][1] == len(mine)
    assert doc["totals"][2] == sum(ex.miss(c) is not None for c in mine)
    everyone = (await service(store).run_query(user(o, "boss", Role.SUPERVISOR),
                                               "missed_calls", Q)).to_json()
    assert everyone["totals"][1] > doc["totals"][1]
    # the open callbacks: hers (assigned to her or of her clients) only
    tasks = {t["id"] for t in o.tasks if not t["done"] and (
        t["assignee_id"] == anna.id
        or (t["client_id"] and o.clients[t["client_id"]]["manager"] == anna.id))}
    assert {r[0] for r in doc["sections"]["open_callbacks"]["rows"]} == tasks


async def test_a_managers_client_summary_is_for_their_clients(office) -> None:
    store, o = office
    anna = user(o, "anna", Role.MANAGER)
    other = own_client(o, o.users["boris"])
    with pytest.raises(PermissionDenied):
        await service(store).run_query(anna, "client_summary", Q | {"client": [str(other)]})
    # unless the office lets managers see every client
    doc = (await service(store, see_all=True).run_query(
        anna, "client_summary", Q | {"client": [str(other)]})).to_json()
    assert doc["sections"]["summary"]["rows"][0][0] == other
    # a secretary sees any client's card
    sec = user(o, "sec1", Role.SECRETARY)
    doc = (await service(store).run_query(sec, "client_summary",
                                          Q | {"client": [str(other)]})).to_json()
    assert doc["sections"]["summary"]["rows"][0][0] == other
