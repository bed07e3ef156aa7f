"""Inbound SMS: each part stored once, long messages reassembled, the sender matched to a client
like a caller, the message stored as an interaction and pushed live; "STOP" opts out."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from callcenter.models import InteractionKind
from callcenter.sms.events import AddressKind, SmsPartReceived
from callcenter.sms.model import MessageState, opt_out_keyword
from callcenter.store.sqlite_sms import NewMessage, SmsFilter

if TYPE_CHECKING:
    from callcenter.sms.service import SmsService

log = logging.getLogger(__name__)

MAX_INBOUND_TEXT = 10_000  # a 255-part message at most, bounded anyway
MISSING = "[…]"  # where a part of an incomplete message would be


def dedup_key(part: SmsPartReceived) -> str:
    """The same SMS delivered twice by the SMSC (a late acknowledgement) has the same line,
    sender, SMSC time stamp and concatenation header; a message of one part also its PDU."""
    if part.concat is not None:
        c = part.concat
        tail = f"c{c.ref}/{c.total}/{c.seq}"
    else:
        tail = "p" + hashlib.sha256(part.pdu.upper().encode()).hexdigest()[:32]
    return f"{part.line}|{part.sender.value}|{part.smsc_time:.0f}|{tail}"


def joined(parts: list[dict[str, Any]], total: int) -> tuple[str, bool]:
    """The text of the parts in order, with a mark for every missing one; and whether
    all are there."""
    by_seq = {p["seq"]: p["text"] for p in parts}
    whole = all(seq in by_seq for seq in range(1, total + 1))
    return "".join(by_seq.get(seq, MISSING) for seq in range(1, total + 1)), whole


class Inbox:
    def __init__(self, service: SmsService) -> None:
        self.service = service
        # Parts of one message read from two modems (or in one +CMTI burst) must not both
        # find the group whole and make it twice: one part, or one sweep, at a time.
        self._lock = asyncio.Lock()

    async def receive(self, part: SmsPartReceived) -> int | None:
        """Store the part (once), then make or complete its message. Returns the message id
        when a message was made or completed."""
        async with self._lock:
            return await self._receive(part)

    async def sweep(self) -> list[int]:
        """Long messages whose missing parts did not come within the reassembly timeout are
        shown as incomplete messages (what arrived stays visible)."""
        async with self._lock:
            return await self._sweep()

    async def _receive(self, part: SmsPartReceived) -> int | None:
        svc = self.service
        now = svc.clock()
        concat = part.concat if part.concat is not None and part.concat.total > 1 else None
        key = dedup_key(part)
        part_id = await svc.store.sms_store_inbound_part({
            "dedup_key": key, "line": part.line, "sender": part.sender.value,
            "sender_kind": part.sender.kind.value, "text": part.text[:MAX_INBOUND_TEXT],
            "encoding": part.encoding.value, "smsc_time": part.smsc_time,
            "concat_ref": concat.ref if concat else None,
            "concat_total": concat.total if concat else None,
            "concat_seq": concat.seq if concat else None, "pdu": part.pdu[:2000],
            "received_at": now})
        if part_id is None:
            known = await svc.store.sms_inbound_part_by_key(key)
            if known is None or known[1] is not None or concat is not None:
                log.info("duplicate SMS part from %s on %s stored once", part.sender.value,
                         part.line)
                return None
            # stored, but the last try failed before its message was made: make it now
            part_id = known[0]
        if concat is None:
            return await self._make(part.line, part.sender.value, part.sender.kind, part.text,
                                    part.encoding.value, 1, None, [part_id], complete=True)
        group = await svc.store.sms_inbound_group(part.line, part.sender.value, concat.ref,
                                                  concat.total)
        text, whole = joined(group, concat.total)
        existing = next((p["message_id"] for p in group if p["message_id"]), None)
        if existing is not None:
            # a late part joins the message already shown incomplete
            await svc.store.sms_link_inbound(existing, [p["id"] for p in group])
            state = MessageState.RECEIVED if whole else MessageState.INCOMPLETE
            await svc.store.sms_update(existing, text=text, state=state.value, updated_at=now)
            await self._announce(existing, new=False)
            if whole:
                await self._maybe_opt_out(existing, part.sender.value, part.sender.kind, text)
            return existing
        if not whole:
            return None  # waits for the rest, or for the reassembly timeout
        return await self._make(part.line, part.sender.value, part.sender.kind, text,
                                group[0]["encoding"], concat.total, concat.ref,
                                [p["id"] for p in group], complete=True)

    async def _sweep(self) -> list[int]:
        svc = self.service
        made = []
        before = svc.clock() - svc.config.reassembly_timeout
        for line, sender, ref, total in await svc.store.sms_stale_groups(before):
            group = await svc.store.sms_inbound_group(line, sender, ref, total)
            if not group or any(p["message_id"] for p in group):
                continue
            text, whole = joined(group, total)
            kind = AddressKind.ALPHANUMERIC if not any(ch.isdigit() for ch in sender) \
                else AddressKind.INTERNATIONAL
            made.append(await self._make(line, sender, kind, text, group[0]["encoding"], total,
                                         ref, [p["id"] for p in group], complete=whole))
        return made

    async def _make(self, line: str, sender: str, kind: AddressKind, text: str, encoding: str,
                    total: int, ref: int | None, part_ids: list[int], *, complete: bool) -> int:
        svc = self.service
        now = svc.clock()
        client_id = contact_id = manager_id = None
        e164 = None
        if kind is not AddressKind.ALPHANUMERIC:
            match = svc.matcher.match(sender)
            e164 = match.number.e164 or svc.matcher.normalize(sender).e164
            client_id = match.client_id
            contact = match.contact
            if contact is not None:
                contact_id = contact.contact_id
            manager_id = next((c.manager_id for c in match.candidates
                               if c.client_id == client_id), None)
        state = MessageState.RECEIVED if complete else MessageState.INCOMPLETE
        message_id = await svc.store.sms_create(NewMessage(
            direction="in", number=sender, e164=e164, text=text, encoding=encoding,
            parts=[""] * total, state=state.value, created_at=now, client_id=client_id,
            contact_id=contact_id, manager_id=manager_id, modem=line, concat_ref=ref))
        await svc.store.sms_link_inbound(message_id, part_ids)
        if client_id is not None:
            await svc.store.add_interaction(  # type: ignore[attr-defined]
                InteractionKind.SMS, datetime.fromtimestamp(now, UTC), text[:200],
                client_id=client_id, contact_id=contact_id, ref=f"sms:{message_id}",
                data={"direction": "in", "sms_id": message_id, "number": sender})
        await self._announce(message_id, new=True)
        if complete:
            await self._maybe_opt_out(message_id, sender, kind, text)
        return message_id

    async def _announce(self, message_id: int, *, new: bool) -> None:
        from callcenter.sms.service import sms_json

        svc = self.service
        rows = await svc.store.sms_list(SmsFilter(id=message_id, limit=1))
        message = rows[0] if rows else await svc.store.sms_get(message_id)
        message.setdefault("parts", [])
        svc.bus.publish("sms.received" if new else "sms.status",
                        {"sms": sms_json(message, svc.region)})

    async def _maybe_opt_out(self, message_id: int, sender: str, kind: AddressKind,
                             text: str) -> None:
        svc = self.service
        keyword = opt_out_keyword(text)
        if keyword is None or kind is AddressKind.ALPHANUMERIC:
            return
        added = await svc.opt_out(sender, source=f"sms:{message_id}", keyword=keyword)
        log.info("%s opted out of SMS (%r)", sender, keyword)
        if added and svc.config.optout_confirmation:
            await svc.enqueue(sender, svc.config.optout_confirmation, kind="system",
                              confirm_opted_out=True)

