"""The SMS core: durable outbound jobs, delivery reports, the do-not-send list, and the sink
every modem line hands its SMS events to.

Outbound: :meth:`SmsService.enqueue` writes the message and one row per part before any modem
is asked; the pool (:mod:`callcenter.sms.pool`) sends the parts and reports back here. Inbound
parts are handled by :class:`callcenter.sms.inbound.Inbox`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from callcenter.bus import EventBus
from callcenter.config import SmsConfig
from callcenter.errors import CallcenterError, PermissionDenied, ValidationError
from callcenter.matching import CallerMatcher
from callcenter.models import InteractionKind, Role, User
from callcenter.phones import NumberKind, digits_of
from callcenter.sms.events import (
    Address,
    AddressKind,
    ReportStatus,
    SmsLineEvent,
    SmsPartReceived,
    SmsStatusReport,
    UssdReply,
)
from callcenter.sms.model import (
    MessageState,
    PartState,
    PartView,
    message_state,
)
from callcenter.sms.split import TextSplit, split_text
from callcenter.store.base import Conflict
from callcenter.store.sqlite_sms import NewMessage, SmsFilter, SmsStoreMixin

log = logging.getLogger(__name__)

MAX_TEXT = 1600  # ten concatenated GSM parts; longer is a letter, not an SMS
RECIPIENT_TAIL = 10
# A report's TP-SCTS is the SMSC's clock: it may run this much behind ours...
CLOCK_SKEW = 300.0
# ... and the SMSC takes a part at most this long after the modem was handed it.
REPORT_MAX_DELAY = 3600.0


class OptedOut(CallcenterError):
    """The number is on the do-not-send list."""

    error_id = "sms-opted-out"


def recipient_tail(value: str) -> str:
    return digits_of(value)[-RECIPIENT_TAIL:]


class SmsService:
    def __init__(self, store: SmsStoreMixin, bus: EventBus, matcher: CallerMatcher,
                 config: SmsConfig, *, region: str = "RU", managers_see_all: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.bus = bus
        self.matcher = matcher
        self.config = config
        self.region = region
        self.managers_see_all = managers_see_all
        self.clock = clock
        self._opted_out: set[str] = set()
        # A report racing the commit of its part's MR must be either matched or kept for
        # that commit to take, never fall between the two.
        self._reports = asyncio.Lock()
        # Called after a message was queued (the pool wakes up) and after a USSD reply.
        self.on_queued: Callable[[], None] = lambda: None
        self.on_ussd: Callable[[UssdReply], None] = lambda reply: None
        from callcenter.sms.inbound import Inbox

        self.inbox = Inbox(self)
        # In a cluster: this instance's name, written with each part it sends, so that its
        # restart settles only its own parts (start), not another live instance's.
        self.instance: str | None = None

    # -- start-up ----------------------------------------------------------------------------

    async def start(self) -> list[int]:
        """Crash recovery, before any modem is started: every part a previous run left
        "sending" becomes "unknown" (it may have gone out) and is never re-sent by itself.
        Returns the messages touched."""
        touched = await self.store.sms_sending_to_unknown(
            "the process stopped while the modem was sending it: check delivery",
            claimed_by=self.instance)
        for message_id in touched:
            await self.refresh(message_id)
        self._opted_out = {row["number"] for row in await self.store.sms_optout_list()}
        if touched:
            log.warning("%d SMS were being sent when the last run stopped: marked unknown",
                        len(touched))
        return touched

    # -- numbers -----------------------------------------------------------------------------

    def number_key(self, raw: str) -> str:
        """The do-not-send list's key of a number: E.164 when it has one, else its digits."""
        number = self.matcher.normalize(raw)
        return number.e164 or digits_of(raw)

    def is_opted_out(self, number: str) -> bool:
        return self.number_key(number) in self._opted_out

    def address_for(self, raw: str) -> Address:
        number = self.matcher.normalize(raw)
        if number.kind is not NumberKind.EXTERNAL or not (number.e164 or number.digits):
            raise ValidationError(f"{raw!r} is not a phone number an SMS can go to",
                                  field="to")
        if number.e164:
            return Address(AddressKind.INTERNATIONAL, number.e164)
        return Address(AddressKind.NATIONAL, digits_of(raw))

    # -- outbound ----------------------------------------------------------------------------

    def count(self, text: str) -> TextSplit:
        return split_text(text)

    async def enqueue(self, to: str, text: str, *, client_id: int | None = None,
                      contact_id: int | None = None, user_id: int | None = None,
                      campaign_id: int | None = None, kind: str | None = None,
                      valid_for: float | None = None, confirm_opted_out: bool = False,
                      resend_of: int | None = None) -> int:
        """Store an outbound SMS as a durable job (message + parts, state queued) and return
        its id. Campaign messages to an opted-out number are refused (OptedOut); a manual one
        needs ``confirm_opted_out``. ``resend_of``: the message this one sends again (a
        second resend of it raises Conflict and stores nothing)."""
        text = (text or "").replace("\r\n", "\n")
        if not text.strip():
            raise ValidationError("the message is empty", field="text")
        if len(text) > MAX_TEXT:
            raise ValidationError(f"the message is longer than {MAX_TEXT} characters",
                                  field="text")
        address = self.address_for(to)
        kind = kind or ("campaign" if campaign_id is not None else "manual")
        confirmed = kind == "system" or (kind == "manual" and confirm_opted_out)
        if not confirmed and self.is_opted_out(address.value):
            raise OptedOut(f"{to} asked not to receive SMS (opt-out); "
                           + ("confirm to send this one message anyway" if kind == "manual"
                              else "campaign messages are not sent to it"), field="to")
        split = split_text(text)
        match = self.matcher.match(address.value)
        contact = match.contact
        if client_id is None:
            client_id = match.client_id
        manager_id = next((c.manager_id for c in match.candidates if c.client_id == client_id),
                          None)
        if contact_id is None and contact is not None and contact.client_id == client_id:
            contact_id = contact.contact_id
        if client_id is not None and manager_id is None:
            # written from a card whose numbers the recipient's does not match: the client's
            # manager still sees it
            client = await self.store.get_client(client_id)  # type: ignore[attr-defined]
            manager_id = client.manager_id
        now = self.clock()
        valid = valid_for if valid_for is not None else self.config.validity_hours * 3600
        message_id = await self.store.sms_create(NewMessage(
            direction="out", number=address.value,
            e164=address.value if address.kind is AddressKind.INTERNATIONAL else None,
            text=text, encoding=split.encoding.value, parts=split.parts,
            state=MessageState.QUEUED.value, created_at=now, client_id=client_id,
            contact_id=contact_id, manager_id=manager_id, user_id=user_id,
            campaign_id=campaign_id, kind=kind, valid_until=now + valid, resend_of=resend_of,
        ), part_state=PartState.QUEUED.value)
        if client_id is not None and kind != "campaign":
            await self.store.add_interaction(  # type: ignore[attr-defined]
                InteractionKind.SMS, datetime.fromtimestamp(now, UTC), text[:200],
                client_id=client_id, contact_id=contact_id, user_id=user_id,
                ref=f"sms:{message_id}",
                data={"direction": "out", "sms_id": message_id, "number": address.value})
        await self.publish_status(message_id)
        self.on_queued()
        return message_id

    async def refresh(self, message_id: int) -> dict[str, Any]:
        """Recompute the message's state from its parts, store it, return the message."""
        message = await self.store.sms_get(message_id)
        if message["direction"] != "out":
            return message
        state, error = message_state(
            PartView(p["seq"], p["total"], PartState(p["state"]), p["error"])
            for p in message["parts"])
        changes: dict[str, Any] = {}
        if state.value != message["state"] or error != message["error"]:
            changes |= {"state": state.value, "error": error, "updated_at": self.clock()}
        if state in (MessageState.SENT, MessageState.DELIVERED) and not message["sent_at"]:
            changes["sent_at"] = max(p["sent_at"] or 0 for p in message["parts"]) or self.clock()
        if state is MessageState.DELIVERED and not message["delivered_at"]:
            changes["delivered_at"] = max(p["report_at"] or 0 for p in message["parts"])
        if changes:
            await self.store.sms_update(message_id, **changes)
            message.update(changes)
        return message

    async def publish_status(self, message_id: int, message: dict[str, Any] | None = None
                             ) -> None:
        message = message or await self.refresh(message_id)
        self.bus.publish("sms.status", {"sms": sms_json(message, self.region)})

    async def resend(self, user: User, message_id: int, *, text: str | None = None,
                     confirm_opted_out: bool = False, confirm_unknown: bool = False) -> int:
        """A person's decision to send a failed, expired or unknown message again: a new job
        with the same text (the old one keeps its history). Once per message (Conflict the
        second time); an "unknown" one may have arrived, so it needs ``confirm_unknown``."""
        old = await self.get(user, message_id)
        if old["direction"] != "out" or old["state"] not in (
                MessageState.FAILED, MessageState.EXPIRED, MessageState.UNKNOWN):
            raise ValidationError("only a failed, expired or unknown SMS can be sent again")
        if old["resent_as"] is not None:
            raise Conflict(f"this SMS was already sent again (SMS {old['resent_as']})")
        if old["state"] == MessageState.UNKNOWN and not confirm_unknown:
            raise ValidationError("this SMS may have reached the recipient (its delivery is"
                                  " unknown): confirm to send it again", field="confirm_unknown")
        return await self.enqueue(old["number"], text or old["text"], client_id=old["client_id"],
                                  contact_id=old["contact_id"], user_id=user.id,
                                  kind="manual", confirm_opted_out=confirm_opted_out,
                                  resend_of=message_id)

    # -- reports and other line events -------------------------------------------------------

    async def handle(self, event: SmsLineEvent) -> None:
        """The sink a modem awaits: returns only once the event is committed (an inbound part
        may be deleted from the SIM afterwards)."""
        if isinstance(event, SmsPartReceived):
            await self.inbox.receive(event)
        elif isinstance(event, SmsStatusReport):
            await self.on_report(event)
        elif isinstance(event, UssdReply):
            self.on_ussd(event)

    async def on_report(self, report: SmsStatusReport) -> int | None:
        """Match a status report to the most recent outstanding part with the same modem,
        TP-MR and recipient; returns the message id, or None when it was kept unmatched."""
        async with self._reports:
            return await self._on_report(report)

    def report_window(self, report: SmsStatusReport) -> tuple[float, float]:
        """When the part a report is about may have been handed to the modem: shortly
        before the SMSC's time stamp when the report carries one, else within the validity
        period (the SMSC gives up after it)."""
        if report.submitted_time is not None:
            return (report.submitted_time - REPORT_MAX_DELAY,
                    report.submitted_time + CLOCK_SKEW)
        now = self.clock()
        return now - self.config.validity_hours * 3600 - CLOCK_SKEW, now + CLOCK_SKEW

    async def _on_report(self, report: SmsStatusReport) -> int | None:
        tail = recipient_tail(report.recipient.value)
        since, until = self.report_window(report)
        part = await self.store.sms_match_report(report.line, report.message_ref, tail,
                                                 since, until)
        if part is None:
            part = await self._unknown_part_for(report, tail, since, until)
        if part is None:
            await self.store.sms_keep_report(
                report.line, report.message_ref, report.recipient.value, report.status.value,
                report.status_code, self.clock(), report.pdu)
            log.info("status report from %s for MR %d matched no part yet", report.line,
                     report.message_ref)
            return None
        await self._apply_report(part, report.status.value, report.status_code,
                                 report.message_ref)
        return int(part["message_id"])

    async def _unknown_part_for(self, report: SmsStatusReport, tail: str, since: float,
                                until: float) -> dict[str, Any] | None:
        """A part whose MR was never stored (the process stopped between +CMGS and the
        commit, or the answer was lost) may be what a report with an MR no part has is
        about. An MR a part of that modem already has is a repeated report, never that.
        Of the candidates, the one the modem's MR sequence points at comes first."""
        if await self.store.sms_mr_seen(report.line, report.message_ref, since):
            return None
        unknown = await self.store.sms_unknown_by_modem(report.line, tail, since, until)
        if not unknown:
            return None
        expected = [p for p in unknown if p["prev_mr"] is not None
                    and (p["prev_mr"] + 1) % 256 == report.message_ref]
        return (expected or unknown)[0]

    async def _apply_report(self, part: dict[str, Any], status: str, code: int,
                            mr: int | None = None) -> None:
        now = self.clock()
        changes: dict[str, Any] = {"report_status": status, "report_code": code,
                                   "report_at": now}
        if mr is not None and part["mr"] is None:
            changes["mr"] = mr
        if status == ReportStatus.DELIVERED.value:
            changes["state"] = PartState.DELIVERED.value
            changes["error"] = ""
        elif status == ReportStatus.FAILED.value:
            changes["state"] = PartState.FAILED.value
            changes["error"] = f"not delivered (network status {code:#04x})"
        elif part["state"] == PartState.UNKNOWN.value:
            changes["state"] = PartState.SENT.value  # the network has it: it did go out
            changes["error"] = ""
        if part["sent_at"] is None:
            changes["sent_at"] = now
        await self.store.sms_update_part(part["id"], **changes)
        await self.publish_status(part["message_id"])

    async def part_sent(self, part: dict[str, Any], modem: str, mr: int, to: str) -> None:
        """The modem answered +CMGS for this part: store the MR, then take a report that
        arrived before this commit."""
        async with self._reports:
            await self._part_sent(part, modem, mr, to)

    async def _part_sent(self, part: dict[str, Any], modem: str, mr: int, to: str) -> None:
        now = self.clock()
        await self.store.sms_update_part(part["id"], state=PartState.SENT.value, mr=mr,
                                         recipient=to, sent_at=now, error="")
        early = await self.store.sms_take_report(modem, mr, recipient_tail(to),
                                                 part["sending_at"] or 0)
        if early is not None:
            fresh = dict(part, state=PartState.SENT.value, mr=mr, sent_at=now)
            await self._apply_report(fresh, early["status"], early["code"])

    # -- the do-not-send list ----------------------------------------------------------------

    async def opt_out(self, number: str, *, source: str, keyword: str = "") -> bool:
        key = self.number_key(number)
        if not key:
            raise ValidationError(f"{number!r} is not a phone number", field="number")
        added = await self.store.sms_optout_add(key, number, self.clock(), source, keyword)
        self.opted_out_added(key)
        return added

    def opted_out_added(self, key: str) -> None:
        """A do-not-send entry committed (by opt_out, or an inbound STOP's transaction): the
        list in memory has it, then ``sms.opt_out`` tells the campaigns."""
        self._opted_out.add(key)
        self.bus.publish("sms.opt_out", {"opt_out": {"number": key}})

    async def opt_in(self, number: str) -> bool:
        key = self.number_key(number)
        self._opted_out.discard(key)
        return await self.store.sms_optout_remove(key)

    async def opt_out_list(self) -> list[dict[str, Any]]:
        return await self.store.sms_optout_list()

    # -- reading, as a user may see it -------------------------------------------------------

    def restricted(self, user: User) -> bool:
        return user.role is Role.MANAGER and not self.managers_see_all

    async def list(self, user: User, f: SmsFilter) -> list[dict[str, Any]]:
        if self.restricted(user):
            f.visible_to = user.id
        return await self.store.sms_list(f)

    async def get(self, user: User, message_id: int) -> dict[str, Any]:
        message = await self.store.sms_get(message_id)  # NotFound: a 404
        if self.restricted(user) and not can_see_sms(user, message):
            raise PermissionDenied("this SMS is not with one of your clients")
        if message["direction"] == "in":
            message["inbound_parts"] = await self.store.sms_inbound_parts_of(message_id)
        return message


def can_see_sms(user: User, sms: dict[str, Any]) -> bool:
    """A restricted manager sees the SMS of their clients and those they wrote."""
    return user.id in (sms.get("manager_id"), sms.get("user_id"))


def iso_time(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")


def sms_json(message: dict[str, Any], region: str = "RU") -> dict[str, Any]:
    """A message as the bus, the websocket and the API show it."""
    from callcenter.phones import display, normalize

    number = message["number"]
    parts = message.get("parts") or []
    return {
        "id": message["id"], "direction": message["direction"], "number": number,
        "display": display(normalize(number, region), region) if any(
            ch.isdigit() for ch in number) else number,
        "client_id": message["client_id"], "client_name": message.get("client_name"),
        "contact_id": message["contact_id"], "manager_id": message["manager_id"],
        "user_id": message["user_id"], "campaign_id": message["campaign_id"],
        "kind": message["kind"], "text": message["text"], "encoding": message["encoding"],
        "parts_total": message["parts_total"], "state": message["state"],
        "error": message["error"], "modem": message["modem"],
        "created_at": iso_time(message["created_at"]), "sent_at": iso_time(message["sent_at"]),
        "delivered_at": iso_time(message["delivered_at"]),
        "resent_as": message.get("resent_as"),
        "parts": [{"seq": p["seq"], "total": p["total"], "state": p["state"],
                   "modem": p["modem"], "mr": p["mr"], "error": p["error"],
                   "report_status": p["report_status"], "report_code": p["report_code"],
                   "sent_at": iso_time(p["sent_at"]), "report_at": iso_time(p["report_at"])}
                  for p in parts],
    }
