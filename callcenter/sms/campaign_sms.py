"""The campaigns' view of the SMS core: :class:`~callcenter.sms.campaigns.CampaignSms` over
:class:`~callcenter.sms.service.SmsService` and the SMS tables.

A job taken back from the queue (pause, cancel, a STOP, the window closing) has every part
"expired" with :data:`CANCELLED` as its error, in one transaction that first checks no part left
the queue; the pool's claim of a part (queued → sending) then fails, so it is never sent.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from callcenter.bus import BusEvent
from callcenter.sms.campaign_report import JobView, PartView, Replies
from callcenter.sms.campaigns import HandOverRefused, OptedOut
from callcenter.sms.model import opt_out_keyword
from callcenter.sms.service import OptedOut as SmsOptedOut
from callcenter.sms.service import SmsService

CANCELLED = "cancelled: taken back by the campaign before any modem had it"


class CoreCampaignSms:
    def __init__(self, service: SmsService, store: Any,
                 clock: Callable[[], float] = time.time) -> None:
        self.service = service
        self.store = store  # a SqliteStore (SmsStoreMixin + CampaignsMixin)
        self.clock = clock

    async def enqueue(self, *, campaign_id: int, number: str, text: str,
                      client_id: int | None, contact_id: int | None,
                      recorded: Callable[[int], Awaitable[bool]]) -> int:
        async with self.store.campaign_transaction():
            job_id = await self.store.campaign_live_job(campaign_id, number, CANCELLED)
            if job_id is None:
                try:
                    job_id = await self.service.enqueue(
                        number, text, client_id=client_id, contact_id=contact_id,
                        campaign_id=campaign_id, kind="campaign")
                except SmsOptedOut as exc:
                    raise OptedOut(exc.message) from None
            if not await recorded(job_id):
                # the recipient is no longer pending: the job must not outlive the rollback
                raise HandOverRefused("the recipient changed state during its hand-over")
        return job_id

    async def cancel_queued(self, job_id: int) -> bool:
        taken = await self.store.campaign_take_back_job(job_id, CANCELLED, self.clock())
        if taken:
            await self.service.publish_status(job_id)
        return taken

    async def is_opted_out(self, number: str) -> bool:
        return self.service.is_opted_out(number) or await self.store.campaign_number_opted_out(
            self.service.number_key(number))

    async def jobs(self, job_ids: Sequence[int]) -> dict[int, JobView]:
        rows: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for row in await self.store.campaign_jobs(job_ids):
            rows[row[0]].append(row)
        out = {}
        for job_id, parts in rows.items():
            _id, state, error, sent_at, *_ = parts[0]
            views = tuple(PartView(seq, pstate, perror) for *_x, seq, pstate, perror in parts
                          if seq is not None)
            if views and all(p.error == CANCELLED for p in views):
                state, error = "cancelled", CANCELLED
            out[job_id] = JobView(job_id, state, views, error,
                                  datetime.fromtimestamp(sent_at, UTC).isoformat(
                                      timespec="seconds") if sent_at else None)
        return out

    async def status_counts(self, campaign_id: int) -> dict[str, int]:
        return await self.store.campaign_status_counts(campaign_id, CANCELLED)

    async def all_replies(self, campaign_id: int) -> dict[str, Replies]:
        return await self._replies(campaign_id,
                                   await self.store.campaign_sent_times(campaign_id))

    async def replies(self, campaign_id: int, sent: Mapping[str, str]) -> dict[str, Replies]:
        """Per number sent to: the inbound SMS after its send and before another campaign's
        next send to it, less opt-out keywords; and whether it opted out in that span."""
        return await self._replies(
            campaign_id, {n: datetime.fromisoformat(at).timestamp() for n, at in sent.items()})

    async def _replies(self, campaign_id: int, times: Mapping[str, float]
                       ) -> dict[str, Replies]:
        if not times:
            return {}
        inbound, others, optouts = await self.store.campaign_reply_rows(
            campaign_id, list(times), min(times.values()))
        nexts: dict[str, float] = {}
        for number, at in others:
            if at > times[number]:
                nexts[number] = min(at, nexts.get(number, float("inf")))

        def ours(number: str, at: float) -> bool:
            return times[number] < at < nexts.get(number, float("inf"))

        counts: dict[str, int] = {}
        for number, at, text in inbound:
            if ours(number, at) and not opt_out_keyword(text):
                counts[number] = counts.get(number, 0) + 1
        left = {number for number, at in optouts if number in times and ours(number, at)}
        return {n: Replies(counts.get(n, 0), n in left) for n in set(counts) | left}

    def opted_out_number(self, event: BusEvent) -> str | None:
        """The number an opt-out event names: ``sms.opt_out`` (the list has it: an admin's
        entry, an inbound STOP, a long STOP completed late), or an inbound STOP announced as
        ``sms.received`` a moment before the list in memory learns of it."""
        if event.topic == "sms.opt_out":
            number = (event.data.get("opt_out") or {}).get("number")
            return number if isinstance(number, str) and number else None
        if event.topic != "sms.received":
            return None
        sms = event.data.get("sms") or {}
        number, text = sms.get("number"), sms.get("text")
        if (sms.get("direction") == "in" and isinstance(number, str) and isinstance(text, str)
                and any(ch.isdigit() for ch in number) and opt_out_keyword(text)):
            return self.service.number_key(number)
        return None
