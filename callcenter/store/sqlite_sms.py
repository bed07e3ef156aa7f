"""SMS messages, parts, inbound parts and the do-not-send list in SQLite (migration 0010_sms)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from callcenter.models import InteractionKind
from callcenter.store.base import Conflict, NotFound
from callcenter.store.sqlite_db import SqliteDb

MESSAGE_COLUMNS = (
    "id", "direction", "number", "e164", "client_id", "contact_id", "manager_id", "user_id",
    "campaign_id", "kind", "text", "encoding", "parts_total", "state", "modem", "concat_ref",
    "error", "created_at", "updated_at", "valid_until", "sent_at", "delivered_at", "next_try_at",
    "resent_as",
)
PART_COLUMNS = (
    "id", "message_id", "seq", "total", "text", "state", "modem", "mr", "recipient", "attempts",
    "error", "report_status", "report_code", "sending_at", "sent_at", "report_at",
)
_MESSAGE_CHANGES = set(MESSAGE_COLUMNS) - {"id", "direction", "created_at", "resent_as"}
_PART_CHANGES = set(PART_COLUMNS) - {"id", "message_id", "seq", "total"}


@dataclass(slots=True)
class SmsFilter:
    direction: str | None = None
    id: int | None = None
    state: str | None = None
    client_id: int | None = None
    campaign_id: int | None = None
    number: str | None = None  # digits tail or E.164
    modem: str | None = None
    visible_to: int | None = None  # a restricted manager: own clients' and own messages only
    since: float | None = None
    limit: int = 100
    offset: int = 0


@dataclass(slots=True)
class NewMessage:
    direction: str
    number: str
    e164: str | None
    text: str
    encoding: str
    parts: Sequence[str]
    state: str
    created_at: float
    client_id: int | None = None
    contact_id: int | None = None
    manager_id: int | None = None
    user_id: int | None = None
    campaign_id: int | None = None
    kind: str = "manual"
    modem: str | None = None
    concat_ref: int | None = None
    valid_until: float | None = None
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    resend_of: int | None = None  # a person's "send again" of this message: once only


@dataclass(frozen=True, slots=True)
class InboundOptOut:
    """The do-not-send entry an inbound "STOP" makes (``number``: the list's key)."""

    number: str
    raw: str
    at: float
    keyword: str


class _OtherModem(Exception):
    """Rolls back a part's start: its message is bound to another modem."""


def _message(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(MESSAGE_COLUMNS, row, strict=True))


def _part(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(PART_COLUMNS, row, strict=True))


# parts of one long inbound SMS: their SMSC times within this of each other (the one-octet
# reference comes round again)
REASSEMBLY_SPAN = 86400.0
INBOUND_GROUP_SQL = (
    "SELECT p.id, p.concat_seq, p.text, p.encoding, p.smsc_time, p.received_at,"
    " p.message_id FROM sms_inbound_parts p LEFT JOIN sms_messages m"
    " ON m.id = p.message_id WHERE p.line = ? AND p.sender = ? AND p.concat_ref = ?"
    " AND p.concat_total = ? AND p.smsc_time BETWEEN ? AND ?"
    " AND (p.message_id IS NULL OR m.state = 'incomplete')"
    " ORDER BY p.concat_seq, p.id")

_M = ", ".join(MESSAGE_COLUMNS)
# A client's SMS are seen by the client's manager now, not by the one at the time it was
# stored: the list, the details and the live events all read the manager through this.
_MANAGER_NOW = "CASE WHEN m.client_id IS NULL THEN m.manager_id ELSE cl.manager_id END"
_M_NOW = ", ".join(_MANAGER_NOW if c == "manager_id" else "m." + c for c in MESSAGE_COLUMNS)
_P = ", ".join(PART_COLUMNS)


class SmsStoreMixin:
    """The SMS tables; every write that moves a part and its message together is one
    transaction."""

    _db: SqliteDb

    # -- messages ----------------------------------------------------------------------------

    async def sms_create(self, m: NewMessage, part_state: str | None = None) -> int:
        """The message and one row per part, in one transaction (outbound: before any modem
        is asked). Inbound messages pass ``part_state=None``: their parts live in
        sms_inbound_parts."""
        async with self._db.transaction():
            cursor = await self._db.execute(
                "INSERT INTO sms_messages (direction, number, e164, client_id, contact_id,"
                " manager_id, user_id, campaign_id, kind, text, encoding, parts_total, state,"
                " modem, concat_ref, error, created_at, updated_at, valid_until)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (m.direction, m.number, m.e164, m.client_id, m.contact_id, m.manager_id,
                 m.user_id, m.campaign_id, m.kind, m.text, m.encoding, len(m.parts), m.state,
                 m.modem, m.concat_ref, m.error, m.created_at, m.created_at, m.valid_until))
            message_id = int(cursor.lastrowid or 0)
            if m.resend_of is not None:
                # the check and the new job in one transaction: a second click, or a second
                # tab, finds the old one taken and makes nothing
                taken = await self._db.execute(
                    "UPDATE sms_messages SET resent_as = ? WHERE id = ? AND resent_as IS NULL",
                    (message_id, m.resend_of))
                if not taken.rowcount:
                    raise Conflict(f"SMS {m.resend_of} was already sent again")
            if part_state is not None:
                for seq, text in enumerate(m.parts, start=1):
                    await self._db.execute(
                        "INSERT INTO sms_parts (message_id, seq, total, text, state)"
                        " VALUES (?, ?, ?, ?, ?)", (message_id, seq, len(m.parts), text,
                                                    part_state))
        return message_id

    async def sms_get(self, message_id: int) -> dict[str, Any]:
        row = await self._db.one(
            f"SELECT {_M_NOW}, cl.name FROM sms_messages m"
            " LEFT JOIN clients cl ON cl.id = m.client_id WHERE m.id = ?", (message_id,),
            "SMS", message_id)
        message = _message(row[:-1])
        message["client_name"] = row[-1]
        message["parts"] = await self.sms_parts(message_id)
        return message

    async def sms_parts(self, message_id: int) -> list[dict[str, Any]]:
        rows = await self._db.rows(
            f"SELECT {_P} FROM sms_parts WHERE message_id = ? ORDER BY seq", (message_id,))
        return [_part(r) for r in rows]

    async def sms_update(self, message_id: int, **changes: Any) -> None:
        await self._sms_update_row("sms_messages", _MESSAGE_CHANGES, message_id, changes)

    async def sms_update_part(self, part_id: int, **changes: Any) -> None:
        await self._sms_update_row("sms_parts", _PART_CHANGES, part_id, changes)

    async def _sms_update_row(self, table: str, allowed: set[str], ident: int,
                              changes: dict[str, Any]) -> None:
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))} of {table}")
        if not changes:
            return
        cursor = await self._db.execute(
            f"UPDATE {table} SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
            (*changes.values(), ident))
        if not cursor.rowcount:
            raise NotFound(table, ident)

    async def sms_list(self, f: SmsFilter) -> list[dict[str, Any]]:
        where, params = ["1 = 1"], []
        for column in ("id", "direction", "state", "client_id", "campaign_id", "modem"):
            value = getattr(f, column)
            if value is not None:
                where.append(f"m.{column} = ?")
                params.append(value)
        if f.number:
            digits = "".join(ch for ch in f.number if ch.isdigit())
            where.append("(m.e164 = ? OR m.number LIKE ?)")
            params += [f.number, f"%{digits[-10:]}"]
        if f.since is not None:
            where.append("m.created_at >= ?")
            params.append(f.since)
        if f.visible_to is not None:
            where.append(f"(m.user_id = ? OR {_MANAGER_NOW} = ?)")
            params += [f.visible_to] * 2
        rows = await self._db.rows(
            f"SELECT {_M_NOW}, cl.name FROM sms_messages m"
            f" LEFT JOIN clients cl ON cl.id = m.client_id WHERE {' AND '.join(where)}"
            " ORDER BY m.created_at DESC, m.id DESC LIMIT ? OFFSET ?",
            (*params, f.limit, f.offset))
        out = []
        for r in rows:
            message = _message(r[:-1])
            message["client_name"] = r[-1]
            out.append(message)
        return out

    # -- the send path -----------------------------------------------------------------------

    async def sms_waiting(self, now: float, limit: int = 200) -> list[dict[str, Any]]:
        """Outbound messages with a part still to send whose retry time has come: a person's
        messages before campaign ones, then oldest first (started ones - a modem already
        chosen - included; the pool keeps them on it)."""
        rows = await self._db.rows(
            f"SELECT {_M} FROM sms_messages WHERE direction = 'out'"
            " AND state IN ('queued', 'sending') AND next_try_at <= ?"
            " AND EXISTS (SELECT 1 FROM sms_parts p WHERE p.message_id = sms_messages.id"
            " AND p.state = 'queued') ORDER BY kind = 'campaign', id LIMIT ?", (now, limit))
        return [_message(r) for r in rows]

    async def sms_expired(self, now: float, limit: int = 200) -> list[dict[str, Any]]:
        """Outbound messages with a part still to send whose validity ran out, whatever their
        retry time (a long backoff must not keep one "queued" past it)."""
        rows = await self._db.rows(
            f"SELECT {_M} FROM sms_messages WHERE direction = 'out'"
            " AND state IN ('queued', 'sending') AND valid_until < ?"
            " AND EXISTS (SELECT 1 FROM sms_parts p WHERE p.message_id = sms_messages.id"
            " AND p.state = 'queued') ORDER BY id LIMIT ?", (now, limit))
        return [_message(r) for r in rows]

    async def sms_queue_counts(self) -> dict[str | None, int]:
        """Outbound messages not yet through, by the modem they are bound to (None: any)."""
        rows = await self._db.rows(
            "SELECT modem, COUNT(*) FROM sms_messages WHERE direction = 'out'"
            " AND state IN ('queued', 'sending') GROUP BY modem")
        return {r[0]: int(r[1]) for r in rows}

    async def sms_next_try(self) -> float | None:
        rows = await self._db.rows(
            "SELECT MIN(next_try_at) FROM sms_messages WHERE direction = 'out'"
            " AND state IN ('queued', 'sending')")
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def sms_mark_sending(self, part_id: int, message_id: int, modem: str,
                               now: float, claimed_by: str | None = None) -> bool:
        """Durably: this part is being handed to ``modem`` (a crash from here on makes it
        "unknown", never re-sent), and the whole message is bound to that modem. False when
        the part was no longer queued (taken back by a campaign meanwhile) or the message is
        bound to another modem: do not send."""
        try:
            async with self._db.transaction():
                cursor = await self._db.execute(
                    "UPDATE sms_parts SET state = 'sending', modem = ?, sending_at = ?,"
                    " attempts = attempts + 1, claimed_by = ? WHERE id = ? AND state = 'queued'",
                    (modem, now, claimed_by, part_id))
                if not cursor.rowcount:
                    return False
                # every part through the same modem (the phone joins them by its SMSC):
                # a message another modem has begun is not this one's
                bound = await self._db.execute(
                    "UPDATE sms_messages SET state = 'sending', modem = ?, updated_at = ?"
                    " WHERE id = ? AND (modem IS NULL OR modem = ?)",
                    (modem, now, message_id, modem))
                if not bound.rowcount:
                    raise _OtherModem
        except _OtherModem:
            return False  # rolled back: the part stays queued
        return True

    async def sms_sending_to_unknown(self, reason: str, claimed_by: str | None = None
                                     ) -> list[int]:
        """After a restart: every part still "sending" may have gone out. It becomes
        "unknown" (a later report may resolve it) and is never sent again by itself.
        ``claimed_by``: only the parts that instance claimed (or nobody named) -- another live
        instance's parts are still being sent."""
        where, args = "state = 'sending'", ()
        if claimed_by is not None:
            where, args = f"{where} AND (claimed_by = ? OR claimed_by IS NULL)", (claimed_by,)
        if not await self._db.rows(f"SELECT 1 FROM sms_parts WHERE {where} LIMIT 1", args):
            return []  # the usual start-up: no write transaction
        async with self._db.transaction():
            rows = await self._db.rows(
                f"SELECT DISTINCT message_id FROM sms_parts WHERE {where}", args)
            await self._db.execute(
                f"UPDATE sms_parts SET state = 'unknown', error = ? WHERE {where}",
                (reason, *args))
        return [r[0] for r in rows]

    async def sms_sent_since(self, since: float) -> dict[str, int]:
        """Parts handed to each modem since ``since`` (sent-today and per-minute counters are
        counted from the part rows themselves: they survive a restart)."""
        rows = await self._db.rows(
            "SELECT modem, COUNT(*) FROM sms_parts WHERE sending_at >= ? AND modem IS NOT NULL"
            " GROUP BY modem", (since,))
        return {r[0]: int(r[1]) for r in rows}

    async def sms_recent_sends(self, since: float) -> list[tuple[str, float]]:
        rows = await self._db.rows(
            "SELECT modem, sending_at FROM sms_parts WHERE sending_at >= ?"
            " AND modem IS NOT NULL ORDER BY sending_at", (since,))
        return [(r[0], float(r[1])) for r in rows]

    async def sms_match_report(self, modem: str, mr: int, recipient_tail: str, since: float,
                               until: float) -> dict[str, Any] | None:
        """The most recent outstanding part sent by ``modem`` with this TP-MR to this
        recipient, handed to the modem between ``since`` and ``until`` (TP-MR wraps at 256:
        an older part with the same MR lost its claim). An empty recipient matches nothing."""
        if not recipient_tail:
            return None
        rows = await self._db.rows(
            f"SELECT {', '.join('p.' + c for c in PART_COLUMNS)} FROM sms_parts p"
            " JOIN sms_messages m ON m.id = p.message_id"
            " WHERE p.modem = ? AND p.mr = ? AND p.state IN ('sent', 'unknown')"
            " AND p.sending_at BETWEEN ? AND ? AND (p.recipient LIKE ? OR m.number LIKE ?)"
            " ORDER BY p.sending_at DESC, p.id DESC LIMIT 1",
            (modem, mr, since, until, f"%{recipient_tail}", f"%{recipient_tail}"))
        return _part(rows[0]) if rows else None

    async def sms_mr_seen(self, modem: str, mr: int, since: float) -> bool:
        """Whether a part handed to ``modem`` since ``since`` has this TP-MR, in any state (a
        repeated report for it must not be taken for an unknown part's)."""
        rows = await self._db.rows(
            "SELECT 1 FROM sms_parts WHERE modem = ? AND mr = ? AND sending_at >= ? LIMIT 1",
            (modem, mr, since))
        return bool(rows)

    async def sms_unknown_by_modem(self, modem: str, recipient_tail: str, since: float = 0.0,
                                   until: float = float("inf")) -> list[dict[str, Any]]:
        """Unknown parts (no MR was stored) sent by ``modem`` to this recipient between
        ``since`` and ``until``, newest first, each with ``prev_mr``: the MR of the part the
        modem sent just before it (the modem's next MR is most likely that + 1)."""
        if not recipient_tail:
            return []
        rows = await self._db.rows(
            f"SELECT {', '.join('p.' + c for c in PART_COLUMNS)},"
            " (SELECT q.mr FROM sms_parts q WHERE q.modem = p.modem AND q.mr IS NOT NULL"
            "  AND q.sending_at <= p.sending_at AND q.id != p.id"
            "  ORDER BY q.sending_at DESC, q.id DESC LIMIT 1)"
            " FROM sms_parts p JOIN sms_messages m ON m.id = p.message_id"
            " WHERE p.modem = ? AND p.mr IS NULL AND p.state = 'unknown' AND m.number LIKE ?"
            " AND p.sending_at BETWEEN ? AND ?"
            " ORDER BY p.sending_at DESC, p.id DESC",
            (modem, f"%{recipient_tail}", since, until))
        return [_part(r[:-1]) | {"prev_mr": r[-1]} for r in rows]

    async def sms_keep_report(self, modem: str, mr: int, recipient: str, status: str,
                              code: int, at: float, pdu: str) -> None:
        await self._db.execute(
            "INSERT INTO sms_reports_unmatched (modem, mr, recipient, status, code, at, pdu)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", (modem, mr, recipient, status, code, at, pdu))

    async def sms_purge_reports(self, before: float) -> int:
        cursor = await self._db.execute(
            "DELETE FROM sms_reports_unmatched WHERE at < ?", (before,))
        return int(cursor.rowcount or 0)

    async def sms_take_report(self, modem: str, mr: int, recipient_tail: str, after: float
                              ) -> dict[str, Any] | None:
        """An unmatched report for a part whose MR was only just stored; removed when taken."""
        async with self._db.transaction():
            rows = await self._db.rows(
                "SELECT id, status, code, at FROM sms_reports_unmatched WHERE modem = ?"
                " AND mr = ? AND recipient LIKE ? AND at >= ? ORDER BY id LIMIT 1",
                (modem, mr, f"%{recipient_tail}", after))
            if not rows:
                return None
            await self._db.execute("DELETE FROM sms_reports_unmatched WHERE id = ?",
                                   (rows[0][0],))
        return {"status": rows[0][1], "code": rows[0][2], "at": rows[0][3]}

    # -- inbound -----------------------------------------------------------------------------

    async def sms_store_inbound_part(self, row: dict[str, Any]) -> int | None:
        """The part's row id, or None when the same part was stored before (the SMSC
        delivered it twice)."""
        columns = ("dedup_key", "line", "sender", "sender_kind", "text", "encoding",
                   "smsc_time", "concat_ref", "concat_total", "concat_seq", "pdu",
                   "received_at")
        cursor = await self._db.execute(
            f"INSERT INTO sms_inbound_parts ({', '.join(columns)}) VALUES"
            f" ({', '.join('?' * len(columns))}) ON CONFLICT (dedup_key) DO NOTHING",
            [row[c] for c in columns])
        return int(cursor.lastrowid) if cursor.rowcount else None

    async def sms_inbound_part_by_key(self, key: str) -> tuple[int, int | None] | None:
        rows = await self._db.rows(
            "SELECT id, message_id FROM sms_inbound_parts WHERE dedup_key = ?", (key,))
        return (rows[0][0], rows[0][1]) if rows else None

    async def sms_inbound_group(self, line: str, sender: str, ref: int, total: int,
                                near: float) -> list[dict[str, Any]]:
        """The parts of one long inbound message not yet joined to a message (or joined to
        an incomplete one), by sequence. The reference is one octet: only parts whose SMSC
        time is within a day of ``near`` are the same message."""
        rows = await self._db.rows(
            INBOUND_GROUP_SQL,
            (line, sender, ref, total, near - REASSEMBLY_SPAN, near + REASSEMBLY_SPAN))
        keys = ("id", "seq", "text", "encoding", "smsc_time", "received_at", "message_id")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    async def sms_link_inbound(self, message_id: int, part_ids: Sequence[int]) -> None:
        marks = ",".join("?" * len(part_ids))
        await self._db.execute(
            f"UPDATE sms_inbound_parts SET message_id = ? WHERE id IN ({marks})",
            (message_id, *part_ids))

    async def sms_make_inbound(self, m: NewMessage, part_ids: Sequence[int],
                               optout: InboundOptOut | None = None) -> tuple[int, bool]:
        """An inbound message, its parts linked to it, its interaction on the client's card
        and the opt-out it asks for, in one transaction: a crash leaves either all of it
        or none (the SIM keeps the SMS and delivers it again). Returns the message id and
        whether the number was newly put on the do-not-send list."""
        async with self._db.transaction():
            message_id = await self.sms_create(m)
            await self.sms_link_inbound(message_id, part_ids)
            await self._sms_inbound_interaction(message_id, m.client_id, m.contact_id,
                                                m.number, m.text, m.created_at)
            added = await self._sms_inbound_optout(message_id, optout)
        return message_id, added

    async def sms_complete_inbound(self, message_id: int, part_ids: Sequence[int], text: str,
                                   state: str, now: float,
                                   optout: InboundOptOut | None = None) -> bool:
        """A late part joins the message shown incomplete: linked, the text (and its
        interaction's) updated and the opt-out it completes, in one transaction."""
        async with self._db.transaction():
            await self.sms_link_inbound(message_id, part_ids)
            await self.sms_update(message_id, text=text, state=state, updated_at=now)
            rows = await self._db.rows(
                "SELECT client_id, contact_id, number, created_at FROM sms_messages"
                " WHERE id = ?", (message_id,))
            client_id, contact_id, number, created_at = rows[0]
            await self._sms_inbound_interaction(message_id, client_id, contact_id, number,
                                                text, created_at)
            return await self._sms_inbound_optout(message_id, optout)

    async def _sms_inbound_interaction(self, message_id: int, client_id: int | None,
                                       contact_id: int | None, number: str, text: str,
                                       at: float) -> None:
        if client_id is None:
            return
        # idempotent by its ref: a completed message updates the row it made
        await self.add_interaction(  # type: ignore[attr-defined]
            InteractionKind.SMS, datetime.fromtimestamp(at, UTC), text[:200],
            client_id=client_id, contact_id=contact_id, ref=f"sms:{message_id}",
            data={"direction": "in", "sms_id": message_id, "number": number})

    async def _sms_inbound_optout(self, message_id: int, optout: InboundOptOut | None
                                  ) -> bool:
        if optout is None:
            return False
        return await self.sms_optout_add(optout.number, optout.raw, optout.at,
                                         f"sms:{message_id}", optout.keyword)

    async def sms_stale_groups(self, before: float
                               ) -> list[tuple[str, str, int, int, float, str]]:
        """(line, sender, ref, total, the first part's SMSC time, the sender's kind) of long
        inbound messages still missing parts whose first part arrived before ``before``."""
        rows = await self._db.rows(
            "SELECT line, sender, concat_ref, concat_total, MIN(smsc_time), MIN(sender_kind)"
            " FROM sms_inbound_parts WHERE message_id IS NULL AND concat_ref IS NOT NULL"
            " GROUP BY line, sender, concat_ref, concat_total HAVING MIN(received_at) < ?",
            (before,))
        return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    async def sms_inbound_parts_of(self, message_id: int) -> list[dict[str, Any]]:
        rows = await self._db.rows(
            "SELECT concat_seq, concat_total, smsc_time, received_at FROM sms_inbound_parts"
            " WHERE message_id = ? ORDER BY concat_seq, id", (message_id,))
        return [{"seq": r[0] or 1, "total": r[1] or 1, "smsc_time": r[2], "received_at": r[3]}
                for r in rows]

    # -- do-not-send list --------------------------------------------------------------------

    async def sms_optout_add(self, number: str, raw: str, at: float, source: str,
                             keyword: str = "") -> bool:
        cursor = await self._db.execute(
            "INSERT INTO sms_optout (number, raw, at, source, keyword) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (number) DO NOTHING", (number, raw, at, source, keyword))
        return bool(cursor.rowcount)

    async def sms_optout_remove(self, number: str) -> bool:
        cursor = await self._db.execute("DELETE FROM sms_optout WHERE number = ?", (number,))
        return bool(cursor.rowcount)

    async def sms_optout_list(self) -> list[dict[str, Any]]:
        rows = await self._db.rows(
            "SELECT number, raw, at, source, keyword FROM sms_optout ORDER BY at DESC")
        return [dict(zip(("number", "raw", "at", "source", "keyword"), r, strict=True))
                for r in rows]
