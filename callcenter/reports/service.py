"""Running a report for a user: who may see what (enforced here), then the query."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from callcenter.errors import PermissionDenied, ValidationError
from callcenter.models import Role, User
from callcenter.reports.filters import parse_filter
from callcenter.reports.model import ReportFilter, ReportName, ReportResult
from callcenter.reports.registry import REPORTS

# Which reports each role may open. Managers see only their own figures and their clients'
# (narrowed in ``scope``); secretaries the missed-call and load reports and the summary on
# a client card (they see every card); admins and supervisors everything.
ALLOWED: dict[Role, frozenset[ReportName]] = {
    Role.ADMIN: frozenset(ReportName),
    Role.SECRETARY: frozenset({ReportName.MISSED_CALLS, ReportName.LOAD,
                               ReportName.CLIENT_SUMMARY}),
    Role.MANAGER: frozenset({ReportName.CALLS_BY_MANAGER, ReportName.MISSED_CALLS,
                             ReportName.CLIENT_SUMMARY}),
    Role.SUPERVISOR: frozenset(ReportName),
}


def reports_for(user: User) -> list[ReportName]:
    """The reports the user may open, in menu order."""
    allowed = ALLOWED.get(user.role, frozenset())
    return [n for n in ReportName if n in allowed]


@dataclasses.dataclass(frozen=True, slots=True)
class Scope:
    """What a manager's report is narrowed to: their own figures, their clients' calls."""

    manager_id: int | None = None  # None: no narrowing
    # a manager's client summary only for their own clients (unless the office lets
    # managers see every client: console.managers_see_all_clients)
    own_clients_only: bool = False


def report_name(text: str) -> ReportName:
    try:
        return ReportName(text)
    except ValueError:
        raise ValidationError(f"unknown report {text[:40]!r}; reports: "
                              f"{', '.join(n.value for n in ReportName)}",
                              field="name") from None


class ReportService:
    """``run`` checks the user's rights, narrows a manager's filter to their own figures and
    clients, and runs the report's query (callcenter/reports/queries_*.py)."""

    def __init__(self, store: Any, *, timezone: Callable[[], str],
                 callback_sla_minutes: float = 15.0,
                 office_hours: Callable[[], Any] = lambda: None,
                 managers_see_all_clients: bool = False,
                 now: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._timezone = timezone
        self.callback_sla_minutes = callback_sla_minutes
        self.office_hours = office_hours
        self.managers_see_all_clients = managers_see_all_clients
        self._now = now

    def now(self) -> datetime:
        return self._now() if self._now is not None else datetime.now(UTC)

    @property
    def timezone(self) -> str:
        return self._timezone()

    def parse(self, name: ReportName, query: Mapping[str, Sequence[str]]) -> ReportFilter:
        spec = REPORTS[name]
        return parse_filter(query, timezone=self.timezone, default=spec.groupings[0],
                            allowed=spec.groupings)

    def check(self, user: User, name: ReportName) -> Scope:
        if name not in ALLOWED.get(user.role, frozenset()):
            raise PermissionDenied(f"the {name.value} report is not available to "
                                   f"{user.role.value}s")
        if user.role is Role.MANAGER:
            return Scope(manager_id=user.id,
                         own_clients_only=not self.managers_see_all_clients)
        return Scope()

    async def run(self, user: User, name: ReportName, f: ReportFilter) -> ReportResult:
        scope = self.check(user, name)
        from callcenter.reports.engine import run_report  # the queries, imported late

        return await run_report(self, name, f, scope)

    async def run_query(self, user: User, name: str,
                        query: Mapping[str, Sequence[str]]) -> ReportResult:
        """The API's entry: parse, check, run."""
        report = report_name(name)
        self.check(user, report)  # a forbidden report says so before any filter complaint
        return await self.run(user, report, self.parse(report, query))
