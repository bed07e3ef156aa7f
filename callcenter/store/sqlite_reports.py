"""The report queries' reads (callcenter/reports): minimal columns over indexed time ranges.

Plain SQL that runs on SQLite and PostgreSQL alike: no date functions — the report engine
computes every period and bucket boundary in Python (office time zone, DST) and compares the
stored UTC text timestamps (or unix times, for SMS) against them. Rows come ordered by time
so the engine buckets them with a bisect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from callcenter.store.sqlite_db import SqliteDb

# The call columns a report may ask for (whitelisted: they name SQL).
CALL_FIELDS = {
    "ringing_at": "c.ringing_at", "answered_at": "c.answered_at", "ended_at": "c.ended_at",
    "direction": "c.direction", "state": "c.state", "reason": "c.reason",
    "handled_by_pbx": "c.handled_by_pbx", "answered_by_user": "c.answered_by_user",
    "answered_by_outside": "c.answered_by_outside",
    "user_id": "c.user_id", "client_id": "c.client_id", "manager_id": "cl.manager_id",
    "talk_seconds": "c.talk_seconds", "transfers": "c.transfers", "line": "c.line",
    "called": "c.called", "queue": "c.queue", "caller_e164": "c.caller_e164",
    # one small number instead of four columns (OUTCOME_*)
    "outcome": "CASE WHEN c.answered_at IS NOT NULL THEN 1 WHEN c.state = 'ringing' THEN 3"
               " WHEN c.handled_by_pbx = 1 THEN 2 ELSE 0 END",
}
# outcome: not answered (ended), answered by a person, handled by the PBX alone, going on
OUTCOME_UNANSWERED, OUTCOME_ANSWERED, OUTCOME_PBX, OUTCOME_LIVE = range(4)


@dataclass(frozen=True, slots=True)
class CallWhere:
    """Which calls: rang in [lo, hi) (UTC text), and the report filters."""

    lo: str
    hi: str
    lines: tuple[str, ...] = ()
    dids: tuple[str, ...] = ()
    direction: str | None = None
    # calls answered or placed by these users, or with one of their clients
    users: tuple[int, ...] = ()
    client_id: int | None = None
    segment: tuple[str, str] | None = None  # (custom field name, value)
    only: str | None = None  # a key of ONLY: a report that needs just those calls


# Calls a report can leave out in SQL (fewer rows to read into Python).
ONLY = {
    # calls by manager: answered inbound calls and every outbound one
    "worked": "(({a}.direction = 'inbound' AND {a}.answered_at IS NOT NULL)"
              " OR {a}.direction = 'outbound')",
    # missed calls: those no person answered
    "unanswered": "{a}.answered_at IS NULL",
}


def _in(column: str, values: Sequence[Any], where: list[str], params: list[Any]) -> None:
    where.append(f"{column} IN ({', '.join('?' * len(values))})")
    params.extend(values)


def call_where(w: CallWhere, alias: str = "c") -> tuple[str, list[Any]]:
    where = [f"{alias}.ringing_at >= ?", f"{alias}.ringing_at < ?"]
    params: list[Any] = [w.lo, w.hi]
    if w.lines:
        _in(f"{alias}.line", w.lines, where, params)
    if w.dids:
        _in(f"{alias}.called", w.dids, where, params)
    if w.direction:
        where.append(f"{alias}.direction = ?")
        params.append(w.direction)
    if w.client_id is not None:
        where.append(f"{alias}.client_id = ?")
        params.append(w.client_id)
    if w.users:
        marks = ", ".join("?" * len(w.users))
        where.append(f"({alias}.answered_by_user IN ({marks}) OR {alias}.user_id IN ({marks})"
                     f" OR {alias}.client_id IN (SELECT id FROM clients WHERE manager_id IN"
                     f" ({marks})))")
        params += [*w.users, *w.users, *w.users]
    if w.segment is not None:
        where.append(f"{alias}.client_id IN (SELECT cv.client_id FROM custom_values cv"
                     " JOIN custom_fields f ON f.id = cv.field_id"
                     " WHERE f.name = ? AND cv.value = ?)")
        params += list(w.segment)
    if w.only is not None:
        where.append(ONLY[w.only].format(a=alias))
    return " AND ".join(where), params


class ReportsMixin:
    """Reads for the reports (no writes; migration 0013 adds their indexes)."""

    _db: SqliteDb

    def report_calls_sql(self, w: CallWhere, fields: Sequence[str]) -> tuple[str, list[Any]]:
        unknown = set(fields) - set(CALL_FIELDS)
        if unknown:
            raise ValueError(f"not a report call field: {sorted(unknown)}")
        join = (" LEFT JOIN clients cl ON cl.id = c.client_id"
                if "manager_id" in fields else "")
        where, params = call_where(w)
        return (f"SELECT {', '.join(CALL_FIELDS[f] for f in fields)} FROM calls c{join}"
                f" WHERE {where} ORDER BY c.ringing_at", params)

    async def report_calls(self, w: CallWhere, fields: Sequence[str]) -> list[tuple[Any, ...]]:
        """The chosen columns of the calls that rang in the period, oldest first."""
        sql, params = self.report_calls_sql(w, fields)
        return await self._db.rows(sql, params)  # plain tuples: no row factory

    def report_hour_counts_sql(self, w: CallWhere) -> tuple[str, list[Any]]:
        where, params = call_where(w)
        return ("SELECT substr(c.ringing_at, 1, 13), c.line, COUNT(*) FROM calls c"
                f" WHERE {where} GROUP BY substr(c.ringing_at, 1, 13), c.line", params)

    async def report_hour_counts(self, w: CallWhere) -> list[tuple[Any, ...]]:
        """(UTC hour as "2026-03-29T01", line, calls) of the calls that rang in the period:
        counted in SQL when every bucket starts on a whole UTC hour (zones whose offset is
        whole hours), instead of reading every row."""
        sql, params = self.report_hour_counts_sql(w)
        return await self._db.rows(sql, params)

    def report_callbacks_sql(self, w: CallWhere, opened_before: str) -> tuple[str, list[Any]]:
        # Driven by the tasks' own index: a callback is opened when its call ends, so it is
        # opened in [lo, opened_before) where opened_before covers the longest call.
        where, params = call_where(w)
        return ("SELECT c.ringing_at, c.line, t.done, t.done_at, t.id FROM tasks t"
                " JOIN calls c ON c.id = t.ref WHERE t.kind = 'callback' AND t.created_at >= ?"
                f" AND t.created_at < ? AND {where} ORDER BY c.ringing_at",
                [w.lo, opened_before, *params])

    async def report_callbacks(self, w: CallWhere, opened_before: str
                               ) -> list[tuple[Any, ...]]:
        """(call rang at, line, done, done at, task id) of the callback tasks opened for the
        missed calls that rang in the period."""
        sql, params = self.report_callbacks_sql(w, opened_before)
        return [tuple(r) for r in await self._db.rows(sql, params)]

    def report_open_callbacks_sql(self, manager_id: int | None, client_id: int | None,
                                  limit: int) -> tuple[str, list[Any]]:
        where, params = ["t.done = 0", "t.kind = 'callback'"], []
        if manager_id is not None:
            where.append("(t.assignee_id = ? OR cl.manager_id = ?)")
            params += [manager_id, manager_id]
        if client_id is not None:
            where.append("t.client_id = ?")
            params.append(client_id)
        return ("SELECT t.id, t.phone, cl.name, u.name, t.assignee_role, t.created_at,"
                " t.due_at FROM tasks t LEFT JOIN clients cl ON cl.id = t.client_id"
                " LEFT JOIN users u ON u.id = t.assignee_id"
                f" WHERE {' AND '.join(where)} ORDER BY t.created_at, t.id LIMIT ?",
                [*params, limit])

    async def report_open_callbacks(self, manager_id: int | None, client_id: int | None,
                                    limit: int = 500) -> list[tuple[Any, ...]]:
        """Open callback tasks, oldest first: (id, phone, client, assignee, assignee role,
        opened at, due at)."""
        sql, params = self.report_open_callbacks_sql(manager_id, client_id, limit)
        return [tuple(r) for r in await self._db.rows(sql, params)]

    async def report_users(self) -> list[tuple[Any, ...]]:
        """(id, name, role, extension, active) of every user."""
        return [tuple(r) for r in await self._db.rows(
            "SELECT id, name, role, extension, active FROM users ORDER BY name, id")]

    async def report_group_members(self, group_ids: Sequence[int]) -> list[int]:
        if not group_ids:
            return []
        marks = ", ".join("?" * len(group_ids))
        return [int(r[0]) for r in await self._db.rows(
            f"SELECT DISTINCT user_id FROM group_members WHERE group_id IN ({marks})",
            list(group_ids))]

    # -- SMS -------------------------------------------------------------------------------

    async def report_campaigns(self, lo: str, hi: str) -> list[tuple[Any, ...]]:
        """(id, name, state) of the campaigns started in [lo, hi)."""
        return [tuple(r) for r in await self._db.rows(
            "SELECT id, name, state FROM campaigns WHERE started_at >= ? AND started_at < ?"
            " ORDER BY started_at, id", (lo, hi))]

    async def report_sms_since(self, since: float) -> dict[str, list[tuple[Any, ...]]]:
        """What campaign replies are counted from, for every campaign at once (one range
        read each instead of one per campaign and 500 numbers): inbound SMS (number, time,
        text), campaign sends (campaign id, number, sent at) and opt-outs (number, time), all
        after ``since`` (unix time)."""
        db = self._db
        return {
            "inbound": [tuple(r) for r in await db.rows(
                "SELECT COALESCE(e164, number), created_at, text FROM sms_messages"
                " WHERE created_at > ? AND direction = 'in'", (since,))],
            "sends": [tuple(r) for r in await db.rows(
                "SELECT campaign_id, COALESCE(e164, number), sent_at FROM sms_messages"
                " WHERE campaign_id IS NOT NULL AND direction = 'out' AND sent_at > ?",
                (since,))],
            "optouts": [tuple(r) for r in await db.rows(
                "SELECT number, at FROM sms_optout WHERE at > ?", (since,))],
        }

    def report_sms_sql(self, lo: float, hi: float) -> tuple[str, list[Any]]:
        return ("SELECT created_at, direction, state, modem, error FROM sms_messages"
                " WHERE created_at >= ? AND created_at < ? ORDER BY created_at", [lo, hi])

    async def report_sms(self, lo: float, hi: float) -> list[tuple[Any, ...]]:
        """(created at (unix), direction, state, modem, error) of the SMS in [lo, hi)."""
        sql, params = self.report_sms_sql(lo, hi)
        return [tuple(r) for r in await self._db.rows(sql, params)]

    # -- faxes -----------------------------------------------------------------------------

    def report_fax_sql(self, lo: str, hi: str) -> tuple[str, list[Any]]:
        # Lines are filtered by the caller: "line IN (...)" would make the planner prefer
        # fax_received's (line, source_key) index over its time index.
        return ("SELECT created_at, 'out', line, state, pages, pages_confirmed, result"
                " FROM fax_jobs WHERE created_at >= ? AND created_at < ?"
                " UNION ALL SELECT received_at, 'in', line, CASE WHEN ok = 1 THEN 'received'"
                " ELSE 'failed' END, pages, pages, CASE WHEN ok = 1 THEN '' ELSE"
                " 'receive_failed' END FROM fax_received WHERE received_at >= ?"
                " AND received_at < ? ORDER BY 1", [lo, hi, lo, hi])

    async def report_faxes(self, lo: str, hi: str) -> list[tuple[Any, ...]]:
        """(at, 'out'|'in', line, state, pages, pages confirmed, result key), by time."""
        sql, params = self.report_fax_sql(lo, hi)
        return [tuple(r) for r in await self._db.rows(sql, params)]

    # -- a client's summary ----------------------------------------------------------------

    async def report_client_activity(self, client_id: int, lo: str, hi: str, lo_f: float,
                                     hi_f: float) -> dict[str, list[tuple[Any, ...]]]:
        """The client's calls, SMS and faxes in the period (time-ordered rows each)."""
        db = self._db
        return {
            "calls": [tuple(r) for r in await db.rows(
                "SELECT ringing_at, direction, answered_at, handled_by_pbx, talk_seconds, state,"
                " reason FROM calls WHERE client_id = ? AND ringing_at >= ? AND ringing_at < ?"
                " ORDER BY ringing_at", (client_id, lo, hi))],
            "sms": [tuple(r) for r in await db.rows(
                "SELECT created_at, direction FROM sms_messages WHERE client_id = ?"
                " AND created_at >= ? AND created_at < ? ORDER BY created_at",
                (client_id, lo_f, hi_f))],
            "faxes": [tuple(r) for r in await db.rows(
                "SELECT created_at, 'out' FROM fax_jobs WHERE client_id = ? AND created_at >= ?"
                " AND created_at < ? UNION ALL SELECT received_at, 'in' FROM fax_received"
                " WHERE client_id = ? AND received_at >= ? AND received_at < ? ORDER BY 1",
                (client_id, lo, hi, client_id, lo, hi))],
        }

    async def report_client_card(self, client_id: int) -> tuple[Any, ...] | None:
        """(id, name, manager id, manager name, calls ever, last contact at, its kind,
        open tasks, open callbacks), or None when there is no such client."""
        rows = await self._db.rows(
            "SELECT cl.id, cl.name, cl.manager_id, u.name,"
            " (SELECT COUNT(*) FROM calls c WHERE c.client_id = cl.id),"
            " (SELECT i.at FROM interactions i WHERE i.client_id = cl.id"
            "  ORDER BY i.at DESC LIMIT 1),"
            " (SELECT i.kind FROM interactions i WHERE i.client_id = cl.id"
            "  ORDER BY i.at DESC LIMIT 1),"
            " (SELECT COUNT(*) FROM tasks t WHERE t.client_id = cl.id AND t.done = 0),"
            " (SELECT COUNT(*) FROM tasks t WHERE t.client_id = cl.id AND t.done = 0"
            "  AND t.kind = 'callback')"
            " FROM clients cl LEFT JOIN users u ON u.id = cl.manager_id WHERE cl.id = ?",
            (client_id,))
        return tuple(rows[0]) if rows else None
