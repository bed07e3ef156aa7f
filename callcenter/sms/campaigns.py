"""SMS campaigns: a template, an audience, a send window, a throttle — and never a message twice.

The life of a campaign:

* **draft** — name, template, audience filter, window and rate can be edited; ``preview`` shows
  how many recipients the filter finds and a few rendered messages with their encoding and parts.
* **start** — every recipient is written with its rendered text in one transaction
  (``campaign_recipients``, one row per number): a crash leaves either a draft with none or a
  running campaign with all of them, never half.
* **running** — the runner hands recipients to the durable SMS queue one at a time, inside the
  send window and at the campaign's rate, keeping at most ``max_queued`` of them waiting there
  (the rest wait as recipients, where a STOP, a pause or the window closing still holds them
  back). A hand-over is idempotent (one live job per campaign and number): repeated after a
  crash it finds the job it made, so nothing is queued twice. The do-not-send list is
  checked at each hand-over, and a STOP that arrives later takes back the job still waiting in
  the SMS queue (a job a modem already has is left to finish).
* **paused / cancelled** — the jobs still waiting in the SMS queue are taken back (pending again,
  or cancelled); those a modem already has finish. Resume carries on where it stopped.
* **finished** — nothing pending and nothing waiting in the SMS queue.

The SMS side is reached through :class:`CampaignSms` only: a campaign never talks to a modem.

Who may run campaigns: an admin, over the whole base; a manager, over their own clients only
(the audience is restricted to clients whose responsible manager they are), and they see only
their own campaigns. A secretary may not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from callcenter.bus import BusEvent, EventBus
from callcenter.config import CampaignsConfig
from callcenter.errors import CallcenterError, PermissionDenied, ValidationError
from callcenter.models import Role, User
from callcenter.sms import segments
from callcenter.sms.campaign_audience import AudienceFilter, Recipient, choose, is_mobile
from callcenter.sms.campaign_report import (
    IN_FLIGHT,
    JobView,
    RecipientStatus,
    Replies,
    Report,
    report_csv,
    report_from,
    statuses,
)
from callcenter.sms.campaign_schedule import SendWindow, Throttle
from callcenter.sms.campaign_template import Template, parse_template

log = logging.getLogger(__name__)

MAX_NAME = 100
MAX_TEXT = 1600  # the SMS side's limit (callcenter/sms/service.py MAX_TEXT)
MAX_PARTS = 10
MAX_AUDIENCE = 100_000  # phone rows an audience may find; more is refused, never cut silently
MAX_PER_MINUTE = 6000
PREVIEW_SAMPLES = 5
IDLE = 30.0  # seconds between looks when nothing runs (a start or resume wakes the runner)
POLL = 1.0  # seconds between looks at the SMS queue when no status event woke the runner
ROOM_MADE = frozenset({"sent", "failed", "expired", "unknown"})


class CampaignSms(Protocol):
    """What a campaign needs from the SMS side (``callcenter/sms``)."""

    async def enqueue(self, *, campaign_id: int, number: str, text: str,
                      client_id: int | None, contact_id: int | None,
                      recorded: Callable[[int], Awaitable[bool]]) -> int:
        """Write a durable outbound job and return its id; ``recorded(job_id)`` marks the
        recipient queued in the same transaction (false: it was not pending, nothing is
        kept). Idempotent: while this campaign has a job to this number that was not taken
        back, that job's id is returned. Raises OptedOut for a number on the do-not-send
        list, another CallcenterError for a message the SMS side refuses."""
        ...

    async def cancel_queued(self, job_id: int) -> bool:
        """Take the job back if no modem has it yet (state queued → cancelled): true if it
        was taken back, false if it is already sending or done."""
        ...

    async def is_opted_out(self, number: str) -> bool: ...

    async def jobs(self, job_ids: Sequence[int]) -> dict[int, JobView]: ...

    async def replies(self, campaign_id: int, sent: Mapping[str, str]) -> dict[str, Replies]:
        """Per number this campaign's message reached (``sent``: number → its ISO send
        time): the replies to it and whether the number opted out after it."""
        ...

    async def status_counts(self, campaign_id: int) -> dict[str, int]:
        """Recipients per status (as :func:`status_of` gives it), counted where they are."""
        ...

    async def all_replies(self, campaign_id: int) -> dict[str, Replies]:
        """:meth:`replies` for every recipient the campaign's message reached."""
        ...

    def opted_out_number(self, event: BusEvent) -> str | None:
        """The number an event says opted out (a STOP, an admin's entry), else None."""
        ...


class CampaignStore(Protocol):
    async def create_campaign(self, data: dict[str, Any]) -> dict[str, Any]: ...
    async def get_campaign(self, campaign_id: int) -> dict[str, Any]: ...
    async def list_campaigns(self, *, owner_id: int | None = None, states: Sequence[str] = (),
                             limit: int = 100) -> list[dict[str, Any]]: ...
    async def update_campaign(self, campaign_id: int, **changes: Any) -> dict[str, Any]: ...
    async def delete_campaign(self, campaign_id: int) -> bool: ...
    async def set_campaign_state(self, campaign_id: int, from_states: Sequence[str],
                                 to_state: str) -> bool: ...
    async def start_campaign(self, campaign_id: int,
                             recipients: Sequence[tuple[int | None, int | None, str, str]]
                             ) -> bool: ...
    async def pending_recipients(self, campaign_id: int, limit: int) -> list[dict[str, Any]]: ...
    async def mark_recipient(self, recipient_id: int, state: str, *, job_id: int | None = None,
                             from_states: Sequence[str] = ("pending",), error: str = ""
                             ) -> bool: ...
    async def recall_recipient(self, recipient_id: int, job_id: int, to_state: str = "pending"
                               ) -> bool: ...
    async def queued_recipients(self, *, campaign_id: int | None = None,
                                number: str | None = None) -> list[dict[str, Any]]: ...
    async def cancel_pending_recipients(self, campaign_id: int) -> int: ...
    async def list_recipients(self, campaign_id: int, *, state: str | None = None,
                              limit: int = 100_000, offset: int = 0) -> list[dict[str, Any]]: ...
    async def recipient_counts(self, campaign_id: int) -> dict[str, int]: ...
    async def audience_rows(self, f: AudienceFilter, *, limit: int = 100_000) -> list[Any]: ...
    async def list_custom_fields(self) -> list[Any]: ...
    def campaign_transaction(self) -> AbstractAsyncContextManager[None]: ...


class OptedOut(CallcenterError):
    """The number is on the do-not-send list (the SMS side's own OptedOut is one of these)."""

    error_id = "sms-opted-out"


class HandOverRefused(CallcenterError):
    """The recipient left "pending" while its job was being made: the job is rolled back."""

    error_id = "campaign-hand-over-refused"


def may_run_campaigns(user: User) -> bool:
    return user.role in (Role.ADMIN, Role.MANAGER)


class CampaignService:
    def __init__(self, store: CampaignStore, sms: CampaignSms, config: CampaignsConfig, *,
                 time_zone: str = "UTC", bus: EventBus | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.sms = sms
        self.config = config
        self.time_zone = time_zone  # the office's (sms.timezone): a new campaign's default
        self.bus = bus
        self._now = now
        self._monotonic = monotonic
        self._lock = asyncio.Lock()  # one runner step or one control action at a time
        self._wake = asyncio.Event()
        self._throttles: dict[int, Throttle] = {}
        # per running campaign: job id → recipient id of the jobs not settled yet
        self._unsettled: dict[int, dict[int, int]] = {}
        self._task: asyncio.Task[None] | None = None
        self._opt_outs: set[str] = set()  # numbers that sent STOP since the last step
        self._unsubscribe: Callable[[], None] | None = None
        self._tidied = False  # paused/cancelled campaigns looked at once since start-up
        self._go = asyncio.Event()  # set by release(): the product has started

    # -- access ----------------------------------------------------------------------------

    def _check_role(self, user: User) -> None:
        if not may_run_campaigns(user):
            raise PermissionDenied("campaigns need the role admin or manager")

    async def _visible(self, user: User, campaign_id: int) -> dict[str, Any]:
        self._check_role(user)
        campaign = await self.store.get_campaign(campaign_id)
        if user.role is not Role.ADMIN and campaign["owner_id"] != user.id:
            raise PermissionDenied("this campaign belongs to someone else")
        return campaign

    def _audience_for(self, user: User, audience: AudienceFilter) -> AudienceFilter:
        if user.role is Role.ADMIN:
            return audience
        if audience.manager_id not in (None, user.id):
            raise PermissionDenied("a manager's campaign can only go to their own clients")
        return AudienceFilter(user.id, audience.search, audience.custom, audience.client_ids)

    # -- drafts ----------------------------------------------------------------------------

    async def _validated(self, user: User, data: Mapping[str, Any],
                         base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        merged = {**(base or {}), **data}
        allowed = {"name", "template", "audience", "per_minute", "time_zone", "window_start",
                   "window_end"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValidationError(f"unknown field {unknown[0][:40]}; allowed: "
                                  + ", ".join(sorted(allowed)), field=unknown[0][:80])
        name = merged.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise ValidationError(f"name must be text of 1 to {MAX_NAME} characters",
                                  field="name")
        await self._template(merged.get("template"))
        audience = self._audience_for(user, AudienceFilter.from_json(merged.get("audience")))
        per_minute = merged.get("per_minute", self.config.per_minute)
        if not isinstance(per_minute, int) or isinstance(per_minute, bool) or not (
                0 <= per_minute <= MAX_PER_MINUTE):
            raise ValidationError(f"per_minute must be a whole number from 0 (only the SIMs'"
                                  f" limits) to {MAX_PER_MINUTE}", field="per_minute")
        out = {
            "name": name.strip(), "template": merged["template"],
            "audience": audience.to_json(), "per_minute": per_minute,
            "time_zone": merged.get("time_zone") or self.time_zone,
            "window_start": merged.get("window_start") or self.config.window_start,
            "window_end": merged.get("window_end") or self.config.window_end,
        }
        for key in ("time_zone", "window_start", "window_end"):
            if not isinstance(out[key], str):
                raise ValidationError(f"{key} must be text", field=key)
        SendWindow.of(out["time_zone"], out["window_start"], out["window_end"])
        return out

    async def _template(self, source: Any) -> Template:
        fields = [f.name for f in await self.store.list_custom_fields()]
        if not isinstance(source, str):
            raise ValidationError("template must be text", field="template")
        return parse_template(source, fields)

    async def create(self, user: User, data: Mapping[str, Any]) -> dict[str, Any]:
        self._check_role(user)
        row = await self._validated(user, data)
        return await self.store.create_campaign({**row, "owner_id": user.id})

    async def update(self, user: User, campaign_id: int, data: Mapping[str, Any]
                     ) -> dict[str, Any]:
        campaign = await self._visible(user, campaign_id)
        if campaign["state"] != "draft":
            raise ValidationError("only a draft can be changed: this campaign has started",
                                  field="state")
        row = await self._validated(user, data, campaign)
        return await self.store.update_campaign(campaign_id, **row)

    async def delete(self, user: User, campaign_id: int) -> None:
        await self._visible(user, campaign_id)
        if not await self.store.delete_campaign(campaign_id):
            raise ValidationError("only a draft can be deleted: a started campaign keeps its"
                                  " report (cancel it instead)", field="state")

    async def get(self, user: User, campaign_id: int) -> dict[str, Any]:
        campaign = await self._visible(user, campaign_id)
        return {**campaign, "counts": await self.store.recipient_counts(campaign_id)}

    async def list_for(self, user: User) -> list[dict[str, Any]]:
        self._check_role(user)
        owner = None if user.role is Role.ADMIN else user.id
        return await self.store.list_campaigns(owner_id=owner)

    # -- audience and preview --------------------------------------------------------------

    async def _recipients(self, campaign: Mapping[str, Any]
                          ) -> tuple[Template, list[tuple[Recipient, str]], dict[str, int]]:
        template = await self._template(campaign["template"])
        audience = AudienceFilter.from_json(campaign["audience"])
        rows = await self.store.audience_rows(audience, limit=MAX_AUDIENCE + 1)
        if len(rows) > MAX_AUDIENCE:
            raise ValidationError(f"the audience finds more than {MAX_AUDIENCE:,} phone numbers:"
                                  " narrow the filter or split the campaign", field="audience")
        chosen = choose(rows)
        rendered = [(r, template.render(r.values)) for r in chosen]
        kept = [(r, text) for r, text in rendered if text]
        contacts = {row.contact_id for row in rows}
        mobile = {row.contact_id for row in rows if is_mobile(row.e164, row.phone_kind)}
        stats = {"contacts": len(contacts), "without_mobile": len(contacts) - len(mobile),
                 "duplicates": len(mobile) - len(chosen), "empty_text": len(rendered) - len(kept)}
        return template, kept, stats

    async def preview(self, user: User, campaign_id: int | None = None,
                      data: Mapping[str, Any] | None = None,
                      samples: int = PREVIEW_SAMPLES) -> dict[str, Any]:
        """How many would get it, and the first few messages as they would read."""
        if campaign_id is not None:
            campaign = await self._visible(user, campaign_id)
            if data:
                campaign = {**campaign, **await self._validated(user, data, campaign)}
        else:
            self._check_role(user)
            campaign = await self._validated(user, data or {})
        _template, kept, stats = await self._recipients(campaign)
        parts = [segments.count(text) for _r, text in kept]
        return {
            "count": len(kept),
            "parts_total": sum(c.parts for c in parts),
            "skipped": stats,
            "samples": [
                {"number": r.number, "client_id": r.client_id, "contact_id": r.contact_id,
                 "text": text, "encoding": c.encoding.value, "parts": c.parts,
                 "characters": c.characters}
                for (r, text), c in zip(kept[:samples], parts[:samples], strict=True)],
        }

    # -- control ---------------------------------------------------------------------------

    async def start(self, user: User, campaign_id: int) -> dict[str, Any]:
        campaign = await self._visible(user, campaign_id)
        if campaign["state"] != "draft":
            raise ValidationError(f"the campaign is {campaign['state']}, not a draft",
                                  field="state")
        _template, kept, _stats = await self._recipients(campaign)
        if not kept:
            raise ValidationError("the audience has no one with a mobile number",
                                  field="audience")
        for r, text in kept:
            parts = segments.count(text).parts
            if len(text) > MAX_TEXT or parts > MAX_PARTS:
                raise ValidationError(
                    f"the message to {r.number} (client {r.client_id}) would be {len(text)}"
                    f" characters in {parts} parts; at most {MAX_TEXT} characters and"
                    f" {MAX_PARTS} parts: shorten the template", field="template")
        async with self._lock:
            started = await self.store.start_campaign(
                campaign_id, [(r.client_id, r.contact_id, r.number, text) for r, text in kept])
        if not started:
            raise ValidationError("the campaign has already started", field="state")
        self._publish(campaign, "running")
        self.wake()
        return await self.get(user, campaign_id)

    async def pause(self, user: User, campaign_id: int) -> dict[str, Any]:
        campaign = await self._visible(user, campaign_id)
        # the state and the take-back commit together: a crash leaves it running, or paused
        # with nothing of it left in the SMS queue
        async with self._lock, self.store.campaign_transaction():
            if not await self.store.set_campaign_state(campaign_id, ["running"], "paused"):
                raise ValidationError("only a running campaign can be paused", field="state")
            await self._recall(campaign_id, "pending")
        self._publish(campaign, "paused")
        return await self.get(user, campaign_id)

    async def resume(self, user: User, campaign_id: int) -> dict[str, Any]:
        campaign = await self._visible(user, campaign_id)
        async with self._lock:
            if not await self.store.set_campaign_state(campaign_id, ["paused"], "running"):
                raise ValidationError("only a paused campaign can be resumed", field="state")
        self._publish(campaign, "running")
        self.wake()
        return await self.get(user, campaign_id)

    async def cancel(self, user: User, campaign_id: int) -> dict[str, Any]:
        """Pending recipients and jobs still waiting in the SMS queue are cancelled; a message
        a modem already has is left to finish (it may be on the air)."""
        campaign = await self._visible(user, campaign_id)
        async with self._lock, self.store.campaign_transaction():
            if not await self.store.set_campaign_state(campaign_id, ["running", "paused"],
                                                       "cancelled"):
                raise ValidationError("only a running or paused campaign can be cancelled",
                                      field="state")
            await self.store.cancel_pending_recipients(campaign_id)
            await self._recall(campaign_id, "cancelled")
        self._publish(campaign, "cancelled")
        return await self.get(user, campaign_id)

    async def _recall(self, campaign_id: int, to_state: str) -> int:
        """Take back this campaign's jobs no modem has yet."""
        return await self._take_back(await self.store.queued_recipients(campaign_id=campaign_id),
                                     to_state)

    async def opted_out(self, number: str) -> int:
        """A STOP from ``number`` arrived: its messages still waiting in the SMS queue are
        taken back and marked opted out (pending ones are checked when their turn comes)."""
        async with self._lock:
            return await self._take_back(await self.store.queued_recipients(number=number),
                                         "opted_out")

    async def _take_back(self, handed: Sequence[Mapping[str, Any]], to_state: str) -> int:
        # one read for all of them: only jobs still queued are worth a take-back transaction
        jobs = await self.sms.jobs([r["job_id"] for r in handed]) if handed else {}
        taken = 0
        for r in handed:
            job = jobs.get(r["job_id"])
            if job is None or job.state != "queued":
                continue
            if await self.sms.cancel_queued(r["job_id"]):
                await self.store.recall_recipient(r["id"], r["job_id"], to_state)
                self._unsettled.get(r["campaign_id"], {}).pop(r["job_id"], None)
                taken += 1
        return taken

    # -- progress and report ---------------------------------------------------------------

    async def _statuses(self, campaign: Mapping[str, Any], *, limit: int = 100_000,
                        offset: int = 0) -> list[RecipientStatus]:
        recipients = await self.store.list_recipients(campaign["id"], limit=limit,
                                                      offset=offset)
        job_ids = [r["job_id"] for r in recipients if r["job_id"] is not None]
        jobs = await self.sms.jobs(job_ids) if job_ids else {}
        sent = {r["number"]: job.sent_at for r in recipients if r["state"] == "queued"
                and (job := jobs.get(r["job_id"])) is not None and job.sent_at}
        replies = await self.sms.replies(campaign["id"], sent) if sent else {}
        return statuses(recipients, jobs, replies)

    async def progress(self, user: User, campaign_id: int, *, limit: int = 100,
                       offset: int = 0) -> dict[str, Any]:
        campaign = await self._visible(user, campaign_id)
        # the page's recipients only; the report counted in SQL (GROUP BY), not loaded
        rows = await self._statuses(campaign, limit=limit, offset=offset)
        report = report_from(await self.sms.status_counts(campaign_id),
                             await self.sms.all_replies(campaign_id))
        return {"campaign": campaign, "report": report, "recipients": rows}

    async def report(self, user: User, campaign_id: int) -> Report:
        await self._visible(user, campaign_id)
        return report_from(await self.sms.status_counts(campaign_id),
                           await self.sms.all_replies(campaign_id))

    async def export_csv(self, user: User, campaign_id: int) -> tuple[str, str]:
        """(file name, CSV text)."""
        campaign = await self._visible(user, campaign_id)
        rows = await self._statuses(campaign)
        return f"campaign-{campaign_id}.csv", report_csv(campaign, rows)

    # -- the runner ------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def _on_event(self, event: BusEvent) -> None:
        if not event.topic.startswith("sms."):
            return  # every call event passes here: nothing to do for them
        # A campaign job left the queue (sent, or failed, expired, unknown): room opened in the
        # SMS queue. Other changes (sending, a delivery report) free no room: no step for them.
        if event.topic == "sms.status":
            sms = event.data.get("sms") or {}
            if sms.get("campaign_id") is not None and sms.get("state") in ROOM_MADE:
                self._wake.set()
        number = self.sms.opted_out_number(event)
        if number:
            self.note_opt_out(number)

    def note_opt_out(self, number: str) -> None:
        """A STOP arrived (called from a bus subscriber: no waiting here); the runner takes
        back that number's queued messages at its next step."""
        self._opt_outs.add(number)
        self._wake.set()

    def _publish(self, campaign: Mapping[str, Any], state: str) -> None:
        if self.bus is not None:
            self.bus.publish("campaign.status", {"campaign": {
                "id": campaign["id"], "state": state, "owner_id": campaign["owner_id"]}})

    def release(self) -> None:
        """The product has started (its lines too): the runner may take its first look."""
        self._go.set()

    async def start_runner(self, *, hold: bool = False) -> None:
        """``hold``: the first step waits for :meth:`release` (the app's lifespan calls it
        once every line has started; a step racing the lines' start-up delayed them)."""
        if not hold:
            self._go.set()
        if self.bus is not None:
            self._unsubscribe = self.bus.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run(), name="campaign-runner")

    async def stop_runner(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        await self._go.wait()
        while True:
            self._wake.clear()
            try:
                delay = await self.step()
            except Exception:
                log.exception("campaign runner step failed; trying again")
                delay = 5.0
            if delay > 0:
                # asyncio.timeout, not wait_for: on 3.11 a wait_for whose timeout fires as the
                # task is cancelled can swallow the cancellation, and stop_runner hung for ever
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    async def step(self) -> float:
        """Advance every running campaign once; returns the seconds until there is something
        to do (a wake-up comes earlier when a campaign starts or a job changes state)."""
        delay = IDLE
        for number in sorted(self._opt_outs):
            await self.opted_out(number)
            self._opt_outs.discard(number)  # only once handled: a failure tries it again
        async with self._lock:
            if not self._tidied:
                await self._tidy()
                self._tidied = True
            running = await self.store.list_campaigns(states=["running"], limit=1000)
            for gone in set(self._unsettled) - {c["id"] for c in running}:
                self._unsettled.pop(gone, None)
                self._throttles.pop(gone, None)
            for campaign in running:
                try:
                    delay = min(delay, await self._advance(campaign))
                except Exception:  # one campaign's trouble must not stop the others
                    log.exception("campaign %s: step failed; trying again", campaign["id"])
                    delay = min(delay, 5.0)
        return delay

    async def _tidy(self) -> None:
        """A pause or cancel the last run did not finish (older versions, or a take-back
        that failed): what is still in the SMS queue for a paused or cancelled campaign comes
        back now (the step only visits running ones)."""
        for campaign in await self.store.list_campaigns(states=["paused", "cancelled"],
                                                        limit=1000):
            if not await self.store.queued_recipients(campaign_id=campaign["id"]):
                continue
            if campaign["state"] == "cancelled":
                await self.store.cancel_pending_recipients(campaign["id"])
            taken = await self._recall(campaign["id"], "pending" if campaign["state"] == "paused"
                                       else "cancelled")
            log.info("campaign %s (%s): %d jobs taken back at start-up", campaign["id"],
                     campaign["state"], taken)

    async def _advance(self, campaign: Mapping[str, Any]) -> float:
        cid = campaign["id"]
        window = SendWindow.of(campaign["time_zone"], campaign["window_start"],
                               campaign["window_end"])
        throttle = self._throttles.get(cid)
        if throttle is None or throttle.per_minute != campaign["per_minute"]:
            throttle = self._throttles[cid] = Throttle(campaign["per_minute"])
        unsettled = self._unsettled.get(cid)
        if unsettled is None:  # first look since start-up: what earlier runs handed over
            unsettled = self._unsettled[cid] = {
                r["job_id"]: r["id"] for r in await self.store.queued_recipients(campaign_id=cid)}
        if unsettled:
            jobs = await self.sms.jobs(list(unsettled))
            for job_id, recipient_id in list(unsettled.items()):
                job = jobs.get(job_id)
                if job is not None and job.state not in IN_FLIGHT:
                    del unsettled[job_id]
                    if job.state == "cancelled":
                        # taken back, and the process stopped before the recipient was told:
                        # it goes again (its number's opt-out is checked then)
                        await self.store.recall_recipient(recipient_id, job_id, "pending")
        now = self._now()
        if not window.is_open(now):
            # Night: whatever still waits in the SMS queue comes back and goes in the morning.
            await self._recall(cid, "pending")
            return max(0.5, (window.next_open(now) - now).total_seconds())
        room = self.config.max_queued - len(unsettled)
        if room <= 0:
            return POLL
        batch = await self.store.pending_recipients(cid, room)
        if not batch:
            if not unsettled:
                if await self.store.set_campaign_state(cid, ["running"], "finished"):
                    self._publish(campaign, "finished")
                return IDLE
            return POLL
        for recipient in batch:
            wait = throttle.wait(self._monotonic())
            if wait > 0:
                return wait
            rid = recipient["id"]
            # a STOP noted since the last step may not be on the SMS side's list yet
            if recipient["number"] in self._opt_outs or await self.sms.is_opted_out(
                    recipient["number"]):
                await self.store.mark_recipient(rid, "opted_out")
                continue

            async def recorded(job_id: int, rid: int = rid) -> bool:
                return await self.store.mark_recipient(rid, "queued", job_id=job_id)

            try:
                job_id = await self.sms.enqueue(
                    campaign_id=cid, number=recipient["number"], text=recipient["text"],
                    client_id=recipient["client_id"], contact_id=recipient["contact_id"],
                    recorded=recorded)
            except OptedOut:
                await self.store.mark_recipient(rid, "opted_out")
                continue
            except CallcenterError as exc:  # this message is refused; the others go on
                log.warning("campaign %s: recipient %s refused: %s", cid, rid, exc.message)
                await self.store.mark_recipient(rid, "failed", error=exc.message)
                continue
            unsettled[job_id] = rid
            throttle.take(self._monotonic())
        return throttle.wait(self._monotonic())
