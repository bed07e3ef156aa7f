"""The context every report query runs in, and the dispatch from a name to its query."""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.errors import ValidationError
from callcenter.reports.model import Grouping, ReportFilter, ReportName, ReportResult
from callcenter.reports.periods import Buckets, Period, utc_text
from callcenter.reports.registry import REPORTS, ReportSpec
from callcenter.store.sqlite_reports import CallWhere


@dataclass
class Context:
    store: Any
    f: ReportFilter
    spec: ReportSpec
    period: Period
    now: datetime
    sla_seconds: float
    hours: Any  # callcenter.routing.hours.OfficeHours | None
    manager_id: int | None  # a manager's report: narrowed to them
    own_clients_only: bool = False  # a manager's client summary: their clients only
    users: dict[int, tuple[str, str, str | None, bool]] = field(default_factory=dict)
    user_filter: tuple[int, ...] = ()  # the users asked for (groups expanded), scope applied
    _open: list[str] | None = None

    @property
    def grouping(self) -> Grouping:
        return self.f.group_by

    def buckets(self) -> Buckets:
        return self.period.buckets(self.grouping)

    def call_where(self, **overrides: Any) -> CallWhere:
        f = self.f
        seg = (f.segment.field, f.segment.value) if f.segment else None
        values: dict[str, Any] = {
            "lo": self.period.lo, "hi": self.period.hi, "lines": f.lines, "dids": f.dids,
            "direction": f.direction, "users": self.user_filter, "client_id": f.client_id,
            "segment": seg}
        values.update(overrides)
        return CallWhere(**values)

    def user_name(self, user_id: int | None) -> str:
        if user_id is None:
            return ""
        found = self.users.get(user_id)
        return found[0] if found else f"#{user_id}"

    def ext_users(self) -> dict[str, int]:
        return {ext: uid for uid, (_n, _r, ext, _a) in self.users.items() if ext}

    def opening(self) -> list[str] | None:
        """The office's opening intervals over the period as a flat sorted list of UTC
        texts [open, close, open, close, ...] (an instant is open when a bisect of it is
        odd); None without office hours."""
        if self.hours is None:
            return None
        if self._open is None:
            flat: list[str] = []
            for day in _days_around(self.period):
                for a, b in self.hours.open_intervals(day):
                    flat += [utc_text(a), utc_text(b)]
            self._open = sorted(flat)
        return self._open

    def is_open(self, stamp: str) -> bool:
        """Whether the office was open at a stored instant (no hours set: always open)."""
        opening = self.opening()
        return opening is None or bisect.bisect_right(opening, stamp) % 2 == 1


def _days_around(period: Period) -> list[Any]:
    day, out = period.start - timedelta(days=1), []
    while day <= period.end + timedelta(days=1):
        out.append(day)
        day += timedelta(days=1)
    return out


Query = Callable[[Context], Awaitable[ReportResult]]


def queries() -> dict[ReportName, Query]:
    from callcenter.reports import calls_reports, other_reports

    return {
        ReportName.CALLS_BY_MANAGER: calls_reports.calls_by_manager,
        ReportName.MISSED_CALLS: calls_reports.missed_calls,
        ReportName.LOAD: calls_reports.load,
        ReportName.SMS: other_reports.sms,
        ReportName.FAXES: other_reports.faxes,
        ReportName.CLIENT_SUMMARY: other_reports.client_summary,
    }


async def run_report(service: Any, name: ReportName, f: ReportFilter, scope: Any
                     ) -> ReportResult:
    store = service.store
    users = {int(r[0]): (r[1], r[2], r[3], bool(r[4])) for r in await store.report_users()}
    wanted = list(f.user_ids) + await store.report_group_members(f.group_ids)
    unknown = [u for u in wanted if u not in users]
    if unknown:
        raise ValidationError(f"no user with id {unknown[0]}", field="user")
    if f.group_ids and not wanted:
        raise ValidationError("the groups chosen have no members", field="group")
    user_filter = tuple(dict.fromkeys(wanted))
    if scope.manager_id is not None:
        if user_filter and scope.manager_id not in user_filter:
            raise_scope()
        user_filter = (scope.manager_id,)
    now = service.now()
    ctx = Context(store, f, REPORTS[name], Period.of(f), now.astimezone(UTC),
                  service.callback_sla_minutes * 60, service.office_hours(),
                  scope.manager_id, scope.own_clients_only, users, user_filter)
    return await queries()[name](ctx)


def raise_scope() -> None:
    from callcenter.errors import PermissionDenied

    raise PermissionDenied("a manager sees their own figures only")


def result(ctx: Context, rows: list[tuple[Any, ...]], totals: tuple[Any, ...] | None = None,
           sections: dict[str, Any] | None = None) -> ReportResult:
    spec = ctx.spec
    return ReportResult(spec.name, ctx.f, spec.columns_for(ctx.grouping), rows, spec.chart,
                        totals, sections or {}, ctx.now)


def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None
