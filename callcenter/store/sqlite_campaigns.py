"""SMS campaigns and their recipients in SQLite (tables of migration 0012_campaigns)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from callcenter.sms.campaign_audience import AudienceFilter, AudienceRow
from callcenter.store.base import NotFound
from callcenter.store.sqlite_calls import now_utc, ts
from callcenter.store.sqlite_db import SqliteDb

_CAMPAIGN_COLUMNS = ("id", "name", "template", "audience", "owner_id", "state", "per_minute",
                     "time_zone", "window_start", "window_end", "created_at", "started_at",
                     "finished_at")
_EDITABLE = {"name", "template", "audience", "per_minute", "time_zone", "window_start",
             "window_end"}
_RECIPIENT_COLUMNS = ("id", "campaign_id", "client_id", "contact_id", "number", "text", "state",
                      "job_id", "updated_at", "error")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _campaign(row: Sequence[Any]) -> dict[str, Any]:
    out = dict(zip(_CAMPAIGN_COLUMNS, row, strict=True))
    out["audience"] = json.loads(out["audience"] or "{}")
    return out


class CampaignsMixin:
    """Campaigns (migration 0012_campaigns)."""

    _db: SqliteDb

    async def create_campaign(self, data: dict[str, Any]) -> dict[str, Any]:
        row = {**data, "audience": json.dumps(data.get("audience") or {}, ensure_ascii=False),
               "created_at": ts(now_utc())}
        cols = [c for c in _CAMPAIGN_COLUMNS if c in row and c != "id"]
        cursor = await self._db.execute(
            f"INSERT INTO campaigns ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
            [row[c] for c in cols])
        return await self.get_campaign(int(cursor.lastrowid or 0))

    async def get_campaign(self, campaign_id: int) -> dict[str, Any]:
        row = await self._db.one(
            f"SELECT {', '.join(_CAMPAIGN_COLUMNS)} FROM campaigns WHERE id = ?",
            (campaign_id,), "campaign", campaign_id)
        return _campaign(row)

    async def list_campaigns(self, *, owner_id: int | None = None, states: Sequence[str] = (),
                             limit: int = 100) -> list[dict[str, Any]]:
        where, params = ["1 = 1"], []
        if owner_id is not None:
            where.append("owner_id = ?")
            params.append(owner_id)
        if states:
            where.append(f"state IN ({','.join('?' * len(states))})")
            params += list(states)
        rows = await self._db.rows(
            f"SELECT {', '.join(_CAMPAIGN_COLUMNS)} FROM campaigns WHERE {' AND '.join(where)}"
            " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [_campaign(r) for r in rows]

    async def update_campaign(self, campaign_id: int, **changes: Any) -> dict[str, Any]:
        """Edit a draft (a started campaign's recipients and texts are fixed)."""
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a campaign")
        if "audience" in changes:
            changes["audience"] = json.dumps(changes["audience"] or {}, ensure_ascii=False)
        if changes:
            cursor = await self._db.execute(
                f"UPDATE campaigns SET {', '.join(f'{k} = ?' for k in changes)}"
                " WHERE id = ? AND state = 'draft'", (*changes.values(), campaign_id))
            if not cursor.rowcount:
                await self.get_campaign(campaign_id)  # NotFound when missing
        return await self.get_campaign(campaign_id)

    async def delete_campaign(self, campaign_id: int) -> bool:
        """Only a draft is deleted: a started campaign is history (its report stays)."""
        cursor = await self._db.execute(
            "DELETE FROM campaigns WHERE id = ? AND state = 'draft'", (campaign_id,))
        return cursor.rowcount > 0

    async def set_campaign_state(self, campaign_id: int, from_states: Sequence[str],
                                 to_state: str) -> bool:
        """Compare and set: true when the campaign was in one of ``from_states``."""
        stamp = ts(now_utc())
        extra = ", finished_at = ?" if to_state in ("cancelled", "finished") else ""
        params: list[Any] = [to_state] + ([stamp] if extra else [])
        cursor = await self._db.execute(
            f"UPDATE campaigns SET state = ?{extra} WHERE id = ? AND state IN"
            f" ({','.join('?' * len(from_states))})", (*params, campaign_id, *from_states))
        if not cursor.rowcount:
            await self.get_campaign(campaign_id)
        return cursor.rowcount > 0

    async def start_campaign(self, campaign_id: int,
                             recipients: Sequence[tuple[int | None, int | None, str, str]]
                             ) -> bool:
        """Write every recipient (client, contact, number, rendered text) and set the campaign
        running, in one transaction: after a crash it is either a draft with no recipients or
        running with all of them. False when it was not a draft any more."""
        stamp = ts(now_utc())
        async with self._db.transaction():
            cursor = await self._db.execute(
                "UPDATE campaigns SET state = 'running', started_at = ? WHERE id = ?"
                " AND state = 'draft'", (stamp, campaign_id))
            if not cursor.rowcount:
                await self.get_campaign(campaign_id)
                return False
            await self._db.executemany(
                "INSERT INTO campaign_recipients (campaign_id, client_id, contact_id, number,"
                " text, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (campaign_id, number) DO NOTHING",
                [(campaign_id, c, k, n, t, stamp) for c, k, n, t in recipients])
        return True

    async def pending_recipients(self, campaign_id: int, limit: int) -> list[dict[str, Any]]:
        rows = await self._db.rows(
            f"SELECT {', '.join(_RECIPIENT_COLUMNS)} FROM campaign_recipients"
            " WHERE campaign_id = ? AND state = 'pending' ORDER BY id LIMIT ?",
            (campaign_id, limit))
        return [dict(zip(_RECIPIENT_COLUMNS, r, strict=True)) for r in rows]

    async def mark_recipient(self, recipient_id: int, state: str, *, job_id: int | None = None,
                             from_states: Sequence[str] = ("pending",), error: str = ""
                             ) -> bool:
        cursor = await self._db.execute(
            "UPDATE campaign_recipients SET state = ?, job_id = COALESCE(?, job_id),"
            " error = ?, updated_at = ?"
            f" WHERE id = ? AND state IN ({','.join('?' * len(from_states))})",
            (state, job_id, error[:500], ts(now_utc()), recipient_id, *from_states))
        return cursor.rowcount > 0

    def campaign_transaction(self) -> AbstractAsyncContextManager[None]:
        """One transaction for a hand-over: the SMS job and the recipient's mark commit
        together (nested store writes join it), so no job exists that the recipient does not
        name."""
        return self._db.transaction()

    async def campaign_number_opted_out(self, key: str) -> bool:
        """The do-not-send list as committed (an inbound STOP's row is committed with its
        message, before the SMS side's list in memory learns of it)."""
        return bool(await self._db.rows("SELECT 1 FROM sms_optout WHERE number = ?", (key,)))

    async def recall_recipient(self, recipient_id: int, job_id: int, to_state: str = "pending"
                               ) -> bool:
        """The recipient's job was taken back from the SMS queue before any modem had it: it is
        pending again (its next hand-over makes a new job) or ``to_state`` (cancelled,
        opted_out; the job stays linked for the record)."""
        cursor = await self._db.execute(
            "UPDATE campaign_recipients SET state = ?, job_id = CASE WHEN ? = 'pending' THEN NULL"
            " ELSE job_id END, updated_at = ? WHERE id = ? AND state = 'queued' AND job_id = ?",
            (to_state, to_state, ts(now_utc()), recipient_id, job_id))
        return cursor.rowcount > 0

    async def queued_recipients(self, *, campaign_id: int | None = None,
                                number: str | None = None) -> list[dict[str, Any]]:
        """Recipients handed to the SMS queue, of one campaign or to one number."""
        where, params = ["state = 'queued'"], []
        if campaign_id is not None:
            where.append("campaign_id = ?")
            params.append(campaign_id)
        if number is not None:
            where.append("number = ?")
            params.append(number)
        rows = await self._db.rows(
            f"SELECT {', '.join(_RECIPIENT_COLUMNS)} FROM campaign_recipients"
            f" WHERE {' AND '.join(where)} ORDER BY id", params)
        return [dict(zip(_RECIPIENT_COLUMNS, r, strict=True)) for r in rows]

    async def cancel_pending_recipients(self, campaign_id: int) -> int:
        cursor = await self._db.execute(
            "UPDATE campaign_recipients SET state = 'cancelled', updated_at = ?"
            " WHERE campaign_id = ? AND state = 'pending'", (ts(now_utc()), campaign_id))
        return cursor.rowcount

    async def list_recipients(self, campaign_id: int, *, state: str | None = None,
                              limit: int = 100_000, offset: int = 0) -> list[dict[str, Any]]:
        where, params = "campaign_id = ?", [campaign_id]
        if state:
            where += " AND state = ?"
            params.append(state)
        rows = await self._db.rows(
            f"SELECT {', '.join('r.' + c for c in _RECIPIENT_COLUMNS)}, cl.name, ct.name"
            " FROM campaign_recipients r LEFT JOIN clients cl ON cl.id = r.client_id"
            f" LEFT JOIN contacts ct ON ct.id = r.contact_id WHERE {where}"
            " ORDER BY r.id LIMIT ? OFFSET ?", (*params, limit, offset))
        out = []
        n = len(_RECIPIENT_COLUMNS)
        for r in rows:
            row = dict(zip(_RECIPIENT_COLUMNS, r[:n], strict=True))
            row["client_name"], row["contact_name"] = r[n], r[n + 1]
            out.append(row)
        return out

    async def recipient_counts(self, campaign_id: int) -> dict[str, int]:
        rows = await self._db.rows(
            "SELECT state, COUNT(*) FROM campaign_recipients WHERE campaign_id = ?"
            " GROUP BY state", (campaign_id,))
        return {r[0]: int(r[1]) for r in rows}

    async def campaign_status_counts(self, campaign_id: int, cancelled_mark: str
                                     ) -> dict[str, int]:
        """Recipients per status: its own state, or its SMS job's once handed over (a job
        whose parts were all taken back counts "cancelled")."""
        rows = await self._db.rows(
            "SELECT CASE WHEN r.state != 'queued' THEN r.state WHEN m.id IS NULL THEN 'queued'"
            " WHEN NOT EXISTS (SELECT 1 FROM sms_parts p WHERE p.message_id = m.id AND"
            " (p.error IS NULL OR p.error != ?)) THEN 'cancelled' ELSE m.state END, COUNT(*)"
            " FROM campaign_recipients r LEFT JOIN sms_messages m ON m.id = r.job_id"
            " WHERE r.campaign_id = ? GROUP BY 1", (cancelled_mark, campaign_id))
        return {r[0]: int(r[1]) for r in rows}

    async def campaign_sent_times(self, campaign_id: int) -> dict[str, float]:
        """Number → send time of the recipients whose message went out."""
        rows = await self._db.rows(
            "SELECT r.number, m.sent_at FROM campaign_recipients r JOIN sms_messages m"
            " ON m.id = r.job_id WHERE r.campaign_id = ? AND r.state = 'queued'"
            " AND m.sent_at IS NOT NULL", (campaign_id,))
        return {r[0]: float(r[1]) for r in rows}

    async def campaign_of_job(self, job_id: int) -> tuple[int, int] | None:
        rows = await self._db.rows(
            "SELECT campaign_id, id FROM campaign_recipients WHERE job_id = ?", (job_id,))
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    async def audience_rows(self, f: AudienceFilter, *, limit: int = 100_000
                            ) -> list[AudienceRow]:
        """Every phone of every contact of the clients the filter matches, in the order the
        recipients are chosen in (client name, client, contact, phone)."""
        where, params = ["1 = 1"], []
        if f.manager_id is not None:
            where.append("cl.manager_id = ?")
            params.append(f.manager_id)
        if f.client_ids:
            where.append(f"cl.id IN ({','.join('?' * len(f.client_ids))})")
            params += list(f.client_ids)
        if f.search:
            pattern = f"%{_like_escape(f.search.casefold())}%"
            where.append("(casefold(cl.name) LIKE ? ESCAPE '\\' OR casefold(c.name) LIKE ?"
                         " ESCAPE '\\')")
            params += [pattern, pattern]
        for name, value in f.custom.items():
            where.append("EXISTS (SELECT 1 FROM custom_values v JOIN custom_fields cf ON"
                         " cf.id = v.field_id WHERE v.client_id = cl.id AND cf.name = ?"
                         " AND casefold(v.value) = ?)")
            params += [name, value.casefold()]
        rows = await self._db.rows(
            "SELECT cl.id, cl.name, COALESCE(u.name, ''), c.id, c.name, c.position, p.id, p.raw,"
            " p.e164, p.kind FROM clients cl JOIN contacts c ON c.client_id = cl.id"
            " JOIN phones p ON p.contact_id = c.id LEFT JOIN users u ON u.id = cl.manager_id"
            f" WHERE {' AND '.join(where)}"
            " ORDER BY cl.name COLLATE NOCASE, cl.id, c.id, p.id LIMIT ?", (*params, limit))
        client_ids = sorted({r[0] for r in rows})
        custom: dict[int, dict[str, str]] = {}
        for start in range(0, len(client_ids), 500):
            chunk = client_ids[start:start + 500]
            for client_id, name, value in await self._db.rows(
                "SELECT v.client_id, f.name, v.value FROM custom_values v JOIN custom_fields f"
                f" ON f.id = v.field_id WHERE v.client_id IN ({','.join('?' * len(chunk))})",
                chunk):
                custom.setdefault(client_id, {})[name] = value
        return [AudienceRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                            custom.get(r[0], {})) for r in rows]

    async def require_campaign(self, campaign_id: int) -> None:
        rows = await self._db.rows("SELECT 1 FROM campaigns WHERE id = ?", (campaign_id,))
        if not rows:
            raise NotFound("campaign", campaign_id)

    # -- the SMS jobs of campaigns (tables of migration 0006_sms) ----------------------------

    async def campaign_live_job(self, campaign_id: int, number: str, cancelled_mark: str
                                ) -> int | None:
        """This campaign's job to ``number`` that was not taken back, if any."""
        rows = await self._db.rows(
            "SELECT m.id FROM sms_messages m WHERE m.campaign_id = ? AND m.number = ?"
            " AND m.direction = 'out' AND NOT EXISTS (SELECT 1 FROM sms_parts p"
            " WHERE p.message_id = m.id AND p.error = ?) ORDER BY m.id DESC LIMIT 1",
            (campaign_id, number, cancelled_mark))
        return int(rows[0][0]) if rows else None

    async def campaign_take_back_job(self, job_id: int, cancelled_mark: str, now: float
                                     ) -> bool:
        """In one transaction: if every part of the job is still queued (no modem has any),
        all become expired with ``cancelled_mark`` as their error; the pool's claim of a part
        (queued → sending) then fails and it is never sent."""
        async with self._db.transaction():
            states = [r[0] for r in await self._db.rows(
                "SELECT state FROM sms_parts WHERE message_id = ?", (job_id,))]
            if not states or any(s != "queued" for s in states):
                return False
            await self._db.execute(
                "UPDATE sms_parts SET state = 'expired', error = ? WHERE message_id = ?"
                " AND state = 'queued'", (cancelled_mark, job_id))
            await self._db.execute(
                "UPDATE sms_messages SET state = 'expired', error = ?, updated_at = ?"
                " WHERE id = ?", (cancelled_mark, now, job_id))
        return True

    async def campaign_jobs(self, job_ids: Sequence[int]) -> list[tuple[Any, ...]]:
        """(job id, state, error, sent_at, part seq, part state, part error) per part."""
        out: list[tuple[Any, ...]] = []
        ids = list(job_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            out += [tuple(r) for r in await self._db.rows(
                "SELECT m.id, m.state, m.error, m.sent_at, p.seq, p.state, p.error"
                " FROM sms_messages m LEFT JOIN sms_parts p ON p.message_id = m.id"
                f" WHERE m.id IN ({','.join('?' * len(chunk))}) ORDER BY m.id, p.seq", chunk)]
        return out

    async def campaign_reply_rows(self, campaign_id: int, numbers: Sequence[str], since: float
                                  ) -> tuple[list[tuple[str, float, str]],
                                             list[tuple[str, float]], list[tuple[str, float]]]:
        """For the numbers (E.164) since ``since`` (unix time): inbound SMS (number, time,
        text), other campaigns' sends (number, sent time) and opt-outs (number, time)."""
        inbound: list[tuple[str, float, str]] = []
        others: list[tuple[str, float]] = []
        optouts: list[tuple[str, float]] = []
        wanted = sorted(set(numbers))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            inbound += [(r[0], float(r[1]), r[2] or "") for r in await self._db.rows(
                "SELECT COALESCE(e164, number), created_at, text FROM sms_messages"
                f" WHERE direction = 'in' AND created_at > ? AND COALESCE(e164, number) IN"
                f" ({marks})", (since, *chunk))]
            others += [(r[0], float(r[1])) for r in await self._db.rows(
                "SELECT COALESCE(e164, number), sent_at FROM sms_messages WHERE direction ="
                " 'out' AND campaign_id IS NOT NULL AND campaign_id != ? AND sent_at > ? AND"
                f" COALESCE(e164, number) IN ({marks})", (campaign_id, since, *chunk))]
            optouts += [(r[0], float(r[1])) for r in await self._db.rows(
                f"SELECT number, at FROM sms_optout WHERE at > ? AND number IN ({marks})",
                (since, *chunk))]
        return inbound, others, optouts
