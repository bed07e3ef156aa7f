"""The modem pool: which modem sends which part, and when.

One scheduler pass (:meth:`ModemPool.run_once`) looks at the messages with a part still to
send, oldest first, and hands each the next part on a modem that may send now: ready (up, SIM
ready, registered), inside its SIM's send window, under its per-minute and per-day limits, and
not already sending. A message is bound to a modem when its first part starts and all its parts
go through that modem (the recipient's phone joins parts by sender number and reference); one
that has not started yet goes to the least loaded modem that may send, so a modem going down
leaves its not-yet-started work to the others.

Each part is marked "sending" durably before ``send_part`` is called. A temporary refusal
(:class:`SmsSendError`) is retried later with a back-off stored in the message row, so retries
survive restarts and do not hold the modem (why not tenacity: its retry loop lives in one
coroutine and forgets on restart). :class:`SmsSendUnknown` and anything unexpected make the
part "unknown": never sent again by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zoneinfo
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from typing import Any

from callcenter.errors import LineUnavailable
from callcenter.sms.events import Address, AddressKind, SmsEncoding, UssdReply
from callcenter.sms.model import PartState, backoff
from callcenter.sms.ports import OutboundPart, SmsModem, SmsSendError, SmsSendUnknown
from callcenter.sms.service import SmsService, iso_time

log = logging.getLogger(__name__)

# A modem that raised LineUnavailable (down, not written) is tried again after this long.
DOWN_RETRY = 5.0
OPTED_OUT = "opted out"  # a campaign part's reason when its number opted out meanwhile
COMMIT_TRIES = 5  # storing a +CMGS answer: tries, COMMIT_RETRY s * n apart
COMMIT_RETRY = 0.1
IDLE_WAKE = 30.0
NOT_READY_POLL = 1.0
BALANCE_POLL = 20.0  # how often modems that became ready are looked at for their balance


@dataclass(frozen=True, slots=True)
class SimLimits:
    per_minute: int = 6
    per_day: int = 500
    window: tuple[dtime, dtime] | None = None  # local start, end; None: any time

    @classmethod
    def parse(cls, per_minute: int, per_day: int, start: str, end: str) -> SimLimits:
        window = None
        if start and end:
            window = (dtime.fromisoformat(start), dtime.fromisoformat(end))
        return cls(per_minute, per_day, window)


def in_window(window: tuple[dtime, dtime] | None, local: datetime) -> bool:
    if window is None:
        return True
    start, end = window
    now = local.time().replace(tzinfo=None)
    if start <= end:
        return start <= now < end
    return now >= start or now < end  # a window across midnight ("22:00"-"06:00")


@dataclass
class ModemSlot:
    modem: SmsModem
    limits: SimLimits
    busy: bool = False
    recent: deque[float] = field(default_factory=deque)  # send times within the last minute
    day: str = ""
    sent_today: int = 0
    last_error: str = ""
    last_error_at: float | None = None
    balance: str = ""
    balance_at: float | None = None
    down_until: float = 0.0


class ModemPool:
    def __init__(self, service: SmsService, modems: list[tuple[SmsModem, SimLimits]], *,
                 timezone: str = "UTC", clock: Callable[[], float] = time.time,
                 balance_ussd: str = "", balance_interval: float = 0.0) -> None:
        self.service = service
        self.store = service.store
        self.clock = clock
        self.zone = zoneinfo.ZoneInfo(timezone)
        self.slots: dict[str, ModemSlot] = {m.name: ModemSlot(m, lim) for m, lim in modems}
        self.balance_ussd = balance_ussd
        self.balance_interval = balance_interval
        self._wake = asyncio.Event()
        self._inflight: dict[int, asyncio.Task[None]] = {}  # message id -> its send
        # sends cancelled while the modem had the PDU: id(OutboundPart) -> (part, to)
        self._late: dict[int, tuple[dict[str, Any], str]] = {}
        self._late_tasks: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._balance_task: asyncio.Task[None] | None = None
        service.on_queued = self.wake
        service.on_ussd = self._on_ussd

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        await self.load_counters()
        self._task = asyncio.create_task(self._run(), name="sms-pool")
        if self.balance_ussd and self.balance_interval > 0:
            self._balance_task = asyncio.create_task(self._balances(), name="sms-balance")

    async def stop(self) -> None:
        for task in (self._task, self._balance_task, *self._inflight.values()):
            if task is not None:
                task.cancel()
        for task in (self._task, self._balance_task, *list(self._inflight.values())):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def wake(self) -> None:
        self._wake.set()

    async def load_counters(self) -> None:
        """Sent today and the last minute's sends, from the part rows (they survive a
        restart: a SIM's daily limit is not reset by restarting the product)."""
        now = self.clock()
        day_start = self._local(now).replace(hour=0, minute=0, second=0, microsecond=0)
        today = await self.store.sms_sent_since(day_start.timestamp())
        recent = await self.store.sms_recent_sends(now - 60)
        for name, slot in self.slots.items():
            slot.day = day_start.date().isoformat()
            slot.sent_today = today.get(name, 0)
            slot.recent = deque(t for modem, t in recent if modem == name)

    # -- the scheduler -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_once()
                await self.housekeeping()
                expire_in = await self.next_wake()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("SMS pool pass failed; trying again shortly")
                expire_in = DOWN_RETRY
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), expire_in)

    async def housekeeping(self) -> None:
        """Incomplete long inbound SMS shown after their timeout; reports no part claimed
        within the validity period dropped (the SMSC has given up on those parts too)."""
        await self.service.inbox.sweep()
        await self.store.sms_purge_reports(
            self.clock() - self.service.config.validity_hours * 3600)

    async def next_wake(self) -> float:
        """Seconds until something may change without an event: a back-off ends, a minute's
        limit frees up, a modem marked down is retried."""
        now = self.clock()
        due = [IDLE_WAKE]
        next_try = await self.store.sms_next_try()
        if next_try is not None and next_try > now:
            due.append(next_try - now)
        if next_try is not None and any(not s.modem.ready for s in self.slots.values()):
            # work waits and a modem is down: look again soon (a modem coming back up
            # tells nobody)
            due.append(NOT_READY_POLL)
        for slot in self.slots.values():
            if slot.recent and len(slot.recent) >= slot.limits.per_minute:
                due.append(slot.recent[0] + 60 - now)
            if slot.down_until > now:
                due.append(slot.down_until - now)
        return max(0.05, min(due))

    async def run_once(self) -> list[asyncio.Task[None]]:
        """One pass: expire what ran out of time, then start one send per free modem.
        Returns the sends started (tests await them)."""
        now = self.clock()
        started: list[asyncio.Task[None]] = []
        for message in await self.store.sms_expired(now):
            if message["id"] not in self._inflight:
                await self._expire(message)
        waiting = await self.store.sms_waiting(now)
        # started messages first (their modem is theirs, and their parts should not wait
        # behind new messages), then a person's messages before a campaign's
        waiting.sort(key=lambda m: (m["modem"] is None, m["kind"] == "campaign", m["id"]))
        for message in waiting:
            if message["id"] in self._inflight:
                continue
            if message["valid_until"] is not None and message["valid_until"] < now:
                await self._expire(message)
                continue
            slot = self._choose(message, now)
            if slot is None:
                continue
            parts = await self.store.sms_parts(message["id"])
            part = next((p for p in parts if p["state"] == PartState.QUEUED.value), None)
            if part is None:
                continue
            slot.busy = True
            task = asyncio.create_task(self._send(slot, message, part),
                                       name=f"sms-send-{message['id']}")
            self._inflight[message["id"]] = task
            started.append(task)
        return started

    def may_send(self, slot: ModemSlot, now: float) -> bool:
        if slot.busy or slot.down_until > now or not slot.modem.ready:
            return False
        self._roll_day(slot, now)
        while slot.recent and slot.recent[0] <= now - 60:
            slot.recent.popleft()
        if len(slot.recent) >= slot.limits.per_minute:
            return False
        if slot.sent_today >= slot.limits.per_day:
            return False
        return in_window(slot.limits.window, self._local(now))

    def _choose(self, message: dict[str, Any], now: float) -> ModemSlot | None:
        bound = message["modem"]
        if bound is not None:
            slot = self.slots.get(bound)
            return slot if slot is not None and self.may_send(slot, now) else None
        free = [s for s in self.slots.values() if self.may_send(s, now)]
        if not free:
            return None
        # the least used share of its daily limit, then the fewest sends this minute
        return min(free, key=lambda s: (s.sent_today / s.limits.per_day, len(s.recent),
                                        s.modem.name))

    def _roll_day(self, slot: ModemSlot, now: float) -> None:
        day = self._local(now).date().isoformat()
        if day != slot.day:
            slot.day, slot.sent_today = day, 0

    def _local(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, self.zone)

    # -- one part ----------------------------------------------------------------------------

    async def _send(self, slot: ModemSlot, message: dict[str, Any], part: dict[str, Any]
                    ) -> None:
        name = slot.modem.name
        svc = self.service
        try:
            now = self.clock()
            if message["kind"] == "campaign" and svc.is_opted_out(message["number"]):
                # the campaign takes such jobs back itself; this is the last line of defence
                await self._opted_out(message)
                return
            if not await self.store.sms_mark_sending(part["id"], message["id"], name, now,
                                                     claimed_by=svc.instance):
                return  # no longer queued (a campaign took it back): never sent
            slot.recent.append(now)
            slot.sent_today += 1
            await svc.publish_status(message["id"])
            to = _address(message)
            outbound = OutboundPart(
                to=to, text=part["text"], encoding=SmsEncoding(message["encoding"]),
                seq=part["seq"], total=part["total"],
                concat_ref=(message["id"] % 256) if part["total"] > 1 else None)
            try:
                mr = await slot.modem.send_part(outbound)
            except asyncio.CancelledError:
                self._late[id(outbound)] = (dict(part, sending_at=now), to.value)
                raise
            except SmsSendUnknown as exc:
                self._error(slot, f"no answer to a send: {exc}")
                await self.store.sms_update_part(
                    part["id"], state=PartState.UNKNOWN.value,
                    error=f"the modem did not answer ({exc}): check delivery")
            except SmsSendError as exc:
                self._error(slot, exc.reason)
                if await self._refused(message, part, exc):
                    self._uncount(slot, now)
            except LineUnavailable as exc:
                # refused before anything was written: not sent, free to go elsewhere
                self._error(slot, str(exc))
                slot.down_until = self.clock() + DOWN_RETRY
                await self._not_sent(message, part, self.clock() + DOWN_RETRY)
                self._uncount(slot, now)
            except Exception as exc:  # a bug or a fault we cannot classify: maybe sent
                log.exception("sending part %d of SMS %d on %s failed", part["seq"],
                              message["id"], name)
                self._error(slot, f"{type(exc).__name__}: {exc}")
                await self.store.sms_update_part(
                    part["id"], state=PartState.UNKNOWN.value,
                    error="the modem failed while sending: check delivery")
            else:
                # shielded: the pool stopping now must not lose the MR the modem just gave
                await asyncio.shield(self._store_sent(dict(part, sending_at=now), name, mr,
                                                      to.value))
            await svc.publish_status(message["id"])
        finally:
            slot.busy = False
            self._inflight.pop(message["id"], None)
            self.wake()

    async def _store_sent(self, part: dict[str, Any], modem: str, mr: int, to: str) -> None:
        """The +CMGS answer is the only record that the part went out: a failed commit (the
        database busy) is retried, and if it never succeeds the part is left "sending",
        which a restart turns into "unknown" - never sent again."""
        for attempt in range(COMMIT_TRIES):
            try:
                await self.service.part_sent(part, modem, mr, to)
                return
            except Exception:
                if attempt == COMMIT_TRIES - 1:
                    log.exception("SMS %d part %d went out on %s as MR %d, but storing that"
                                  " failed", part["message_id"], part["seq"], modem, mr)
                    return
                log.warning("storing MR %d of SMS %d failed; trying again", mr,
                            part["message_id"], exc_info=True)
                await asyncio.sleep(COMMIT_RETRY * (attempt + 1))

    def late_result(self, modem: str, outbound: OutboundPart, mr: int | None) -> None:
        """A send the pool gave up waiting for (cancelled) was answered after all: a modem's
        ``on_late_result``. With an MR the part is "sent" and its report can be matched;
        without, it stays as it is (a restart makes it "unknown")."""
        entry = self._late.pop(id(outbound), None)
        if entry is None or mr is None:
            return
        part, to = entry
        task = asyncio.create_task(self._store_sent(part, modem, mr, to),
                                   name=f"sms-late-{part['message_id']}")
        self._late_tasks.add(task)
        task.add_done_callback(self._late_tasks.discard)

    def _uncount(self, slot: ModemSlot, at: float) -> None:
        """A part put back in the queue did not go out: the counters forget it as the part
        row does (its sending_at is cleared, and a restart counts from the rows)."""
        with contextlib.suppress(ValueError):
            slot.recent.remove(at)
        if self._local(at).date().isoformat() == slot.day:
            slot.sent_today = max(0, slot.sent_today - 1)

    async def _refused(self, message: dict[str, Any], part: dict[str, Any],
                       exc: SmsSendError) -> bool:
        """True when the part went back to the queue for a later try."""
        attempts = part["attempts"] + 1
        if exc.permanent or attempts >= self.service.config.max_attempts:
            await self.store.sms_update_part(part["id"], state=PartState.FAILED.value,
                                             error=exc.reason)
            # the rest of a message whose part failed is not sent: the phone could not
            # join it anyway
            for other in await self.store.sms_parts(message["id"]):
                if other["state"] == PartState.QUEUED.value:
                    await self.store.sms_update_part(
                        other["id"], state=PartState.FAILED.value,
                        error=f"not sent: part {part['seq']} failed")
            return False
        delay = backoff(attempts, base=self.service.config.retry_seconds)
        await self._not_sent(message, part, self.clock() + delay, error=exc.reason)
        return True

    async def _opted_out(self, message: dict[str, Any]) -> None:
        for other in await self.store.sms_parts(message["id"]):
            if other["state"] == PartState.QUEUED.value:
                await self.store.sms_update_part(other["id"], state=PartState.FAILED.value,
                                                 error=OPTED_OUT)
        await self.service.publish_status(message["id"])

    async def _not_sent(self, message: dict[str, Any], part: dict[str, Any], retry_at: float,
                        error: str = "") -> None:
        await self.store.sms_update_part(part["id"], state=PartState.QUEUED.value,
                                         error=error, sending_at=None, modem=None)
        parts = await self.store.sms_parts(message["id"])
        gone = any(p["state"] != PartState.QUEUED.value for p in parts)
        # nothing of it left the modem: another modem may take the whole message
        await self.store.sms_update(message["id"], next_try_at=retry_at,
                                    modem=message["modem"] if gone else None,
                                    updated_at=self.clock())

    async def _expire(self, message: dict[str, Any]) -> None:
        for part in await self.store.sms_parts(message["id"]):
            if part["state"] == PartState.QUEUED.value:
                await self.store.sms_update_part(part["id"], state=PartState.EXPIRED.value,
                                                 error="validity ran out")
        await self.service.publish_status(message["id"])

    def _error(self, slot: ModemSlot, text: str) -> None:
        slot.last_error, slot.last_error_at = text, self.clock()
        log.warning("SMS modem %s: %s", slot.modem.name, text)

    # -- USSD and status ---------------------------------------------------------------------

    def _on_ussd(self, reply: UssdReply) -> None:
        slot = self.slots.get(reply.line)
        if slot is not None and reply.text:
            slot.balance = reply.text[:500]

    async def check_balance(self, name: str) -> str:
        slot = self.slots[name]
        text = await slot.modem.ussd(self.balance_ussd or "*100#")
        slot.balance = text[:500]
        return slot.balance

    async def _balances(self) -> None:
        """Each modem's balance soon after it is first ready, then every balance_interval."""
        while True:
            now = self.clock()
            for name, slot in self.slots.items():
                due = slot.balance_at is None or now - slot.balance_at >= self.balance_interval
                if due and slot.modem.ready:
                    slot.balance_at = now
                    try:
                        await self.check_balance(name)
                    except Exception as exc:  # a USSD that fails must not stop the others
                        self._error(slot, f"balance request failed: {exc}")
            await asyncio.sleep(min(BALANCE_POLL, self.balance_interval))

    async def status(self) -> list[dict[str, Any]]:
        now = self.clock()
        queued = await self.store.sms_queue_counts()
        out = []
        for name, slot in self.slots.items():
            info = slot.modem.info()
            self._roll_day(slot, now)
            while slot.recent and slot.recent[0] <= now - 60:
                slot.recent.popleft()
            line_status = getattr(slot.modem, "status", None)  # the Line lifecycle, if any
            state = detail = line_error = ""
            if callable(line_status):
                with contextlib.suppress(Exception):
                    current = line_status()
                    state = str(getattr(current, "state", ""))
                    detail = str(getattr(current, "detail", ""))
                    line_error = str(getattr(current, "last_error", ""))
            window = slot.limits.window
            out.append({
                "name": name, "ready": bool(slot.modem.ready), "state": state, "detail": detail,
                "signal_dbm": info.signal_dbm, "operator": info.operator,
                "registered": info.registered, "roaming": info.roaming, "model": info.model,
                "balance": slot.balance or info.balance,
                "queue": queued.get(name, 0),
                "sending": slot.busy,
                "sent_today": slot.sent_today, "per_day": slot.limits.per_day,
                "sent_last_minute": len(slot.recent), "per_minute": slot.limits.per_minute,
                "window": None if window is None else
                [window[0].strftime("%H:%M"), window[1].strftime("%H:%M")],
                "in_window": in_window(window, self._local(now)),
                "last_error": slot.last_error or line_error,
                "last_error_at": iso_time(slot.last_error_at),
            })
        return out

    async def waiting_unassigned(self) -> int:
        return (await self.store.sms_queue_counts()).get(None, 0)


def _address(message: dict[str, Any]) -> Address:
    if message["e164"]:
        return Address(AddressKind.INTERNATIONAL, message["e164"])
    return Address(AddressKind.NATIONAL, message["number"])
