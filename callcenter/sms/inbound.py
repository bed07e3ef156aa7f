"""Inbound SMS: each part stored once, long messages reassembled, the sender matched to a client
like a caller, the message stored as an interaction and pushed live; "STOP" opts out."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

from callcenter.sms.events import AddressKind, SmsPartReceived
from callcenter.sms.model import MessageState, opt_out_keyword
from callcenter.store.sqlite_sms import InboundOptOut, NewMessage, SmsFilter

if TYPE_CHECKING:
    from callcenter.sms.service import SmsService

log = logging.getLogger(__name__)

MAX_INBOUND_TEXT = 10_000  # a 255-part message at most, bounded anyway
MISSING = "[…]"  # where a part of an incomplete message would be


def dedup_key(part: SmsPartReceived) -> str:
    """The same SMS delivered twice by the SMSC (a late acknowledgement) has the same line,
    sender, SMSC time stamp, text and concatenation header. Not the raw PDU: a redelivery
    may differ in its first octet (TP-MMS, TP-RP) and is still the same SMS."""
    text = hashlib.sha256(part.text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    tail = f"t{text}"
    if part.concat is not None:
        c = part.concat
        tail = f"c{c.ref}/{c.total}/{c.seq}|{tail}"
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
            if known is None or known[1] is not None:
                log.info("duplicate SMS part from %s on %s stored once", part.sender.value,
                         part.line)
                return None
            # stored, but the last try failed before its message was made: make it now
            part_id = known[0]
        if concat is None:
            return await self._make(part.line, part.sender.value, part.sender.kind, part.text,
                                    part.encoding.value, 1, None, [part_id], complete=True)
        group = await svc.store.sms_inbound_group(part.line, part.sender.value, concat.ref,
                                                  concat.total, part.smsc_time)
        text, whole = joined(group, concat.total)
        existing = next((p["message_id"] for p in group if p["message_id"]), None)
        if existing is not None:
            # a late part joins the message already shown incomplete
            state = MessageState.RECEIVED if whole else MessageState.INCOMPLETE
            optout = self._opt_out_of(part.sender.value, part.sender.kind, text) \
                if whole else None
            added = await svc.store.sms_complete_inbound(
                existing, [p["id"] for p in group], text, state.value, now, optout)
            await self._after(existing, optout, added, new=False)
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
        for line, sender, ref, total, first, stored_kind in await svc.store.sms_stale_groups(
                before):
            group = await svc.store.sms_inbound_group(line, sender, ref, total, first)
            if not group or any(p["message_id"] for p in group):
                continue
            text, whole = joined(group, total)
            kind = AddressKind(stored_kind)
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
        optout = self._opt_out_of(sender, kind, text) if complete else None
        message_id, added = await svc.store.sms_make_inbound(NewMessage(
            direction="in", number=sender, e164=e164, text=text, encoding=encoding,
            parts=[""] * total, state=state.value, created_at=now, client_id=client_id,
            contact_id=contact_id, manager_id=manager_id, modem=line, concat_ref=ref),
            part_ids, optout)
        await self._after(message_id, optout, added, new=True)
        return message_id

    def _opt_out_of(self, sender: str, kind: AddressKind, text: str) -> InboundOptOut | None:
        svc = self.service
        keyword = opt_out_keyword(text)
        if keyword is None or kind is AddressKind.ALPHANUMERIC:
            return None
        number = svc.number_key(sender)
        if not number:
            return None
        return InboundOptOut(number, sender, svc.clock(), keyword)

    async def _after(self, message_id: int, optout: InboundOptOut | None, added: bool, *,
                     new: bool) -> None:
        """Once the message is committed: the live event, the do-not-send list in memory
        and the optional confirmation."""
        svc = self.service
        await self._announce(message_id, new=new)
        if optout is None:
            return
        svc.opted_out_added(optout.number)
        log.info("%s opted out of SMS (%r)", optout.raw, optout.keyword)
        if added and svc.config.optout_confirmation:
            await svc.enqueue(optout.raw, svc.config.optout_confirmation, kind="system",
                              confirm_opted_out=True)

    async def _announce(self, message_id: int, *, new: bool) -> None:
        from callcenter.sms.service import sms_json

        svc = self.service
        rows = await svc.store.sms_list(SmsFilter(id=message_id, limit=1))
        message = rows[0] if rows else await svc.store.sms_get(message_id)
        message.setdefault("parts", [])
        svc.bus.publish("sms.received" if new else "sms.status",
                        {"sms": sms_json(message, svc.region)})
