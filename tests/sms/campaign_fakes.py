"""A fake SMS side for campaign tests, a clock to move by hand, and a small client base."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from callcenter.bus import BusEvent
from callcenter.config import CampaignsConfig
from callcenter.models import ClientKind, FieldType, Role, User
from callcenter.phones import normalize
from callcenter.sms.campaign_report import JobView, PartView, Replies, status_of
from callcenter.sms.campaigns import CampaignService, OptedOut
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.sqlite import SqliteStore


@dataclass
class FakeJob:
    id: int
    number: str
    text: str
    campaign_id: int
    state: str = "queued"
    parts: list[str] = field(default_factory=lambda: ["queued"])
    sent_at: str | None = None


class FakeSms:
    """Jobs in memory, idempotent by key like the real queue; tests move their states."""

    def __init__(self) -> None:
        self.jobs_: dict[int, FakeJob] = {}
        self.opted: set[str] = set()
        self.inbound: list[tuple[str, str]] = []  # (number, ISO time)
        self.store: SqliteStore | None = None  # set by service(): the recipients' store

    async def enqueue(self, *, campaign_id: int, number: str, text: str,
                      client_id: int | None, contact_id: int | None,
                      recorded: Callable[[int], Awaitable[bool]]) -> int:
        for job in self.jobs_.values():
            if job.campaign_id == campaign_id and job.number == number and (
                    job.state != "cancelled"):
                await recorded(job.id)
                return job.id
        if number in self.opted:
            raise OptedOut("opted out")
        job = FakeJob(len(self.jobs_) + 1, number, text, campaign_id)
        self.jobs_[job.id] = job
        await recorded(job.id)
        return job.id

    async def cancel_queued(self, job_id: int) -> bool:
        job = self.jobs_[job_id]
        if job.state != "queued":
            return False
        job.state = "cancelled"
        return True

    async def is_opted_out(self, number: str) -> bool:
        return number in self.opted

    def opted_out_number(self, event: BusEvent) -> str | None:
        return None

    async def jobs(self, job_ids: Sequence[int]) -> dict[int, JobView]:
        return {i: JobView(i, self.jobs_[i].state,
                           tuple(PartView(n, s) for n, s in enumerate(self.jobs_[i].parts, 1)),
                           sent_at=self.jobs_[i].sent_at)
                for i in job_ids if i in self.jobs_}

    async def status_counts(self, campaign_id: int) -> dict[str, int]:
        assert self.store is not None
        counts: dict[str, int] = {}
        jobs = await self.jobs(list(self.jobs_))
        for r in await self.store.list_recipients(campaign_id):
            status = status_of(r, jobs)
            counts[status] = counts.get(status, 0) + 1
        return counts

    async def all_replies(self, campaign_id: int) -> dict[str, Replies]:
        assert self.store is not None
        sent = {r["number"]: str(self.jobs_[r["job_id"]].sent_at)
                for r in await self.store.list_recipients(campaign_id)
                if r["state"] == "queued" and self.jobs_[r["job_id"]].sent_at}
        return await self.replies(campaign_id, sent)

    async def replies(self, campaign_id: int, sent: Mapping[str, str]) -> dict[str, Replies]:
        out: dict[str, Replies] = {}
        for number, at in self.inbound:
            if number in sent and at > sent[number]:
                out[number] = Replies(out.get(number, Replies()).count + 1)
        return out

    def queued(self) -> list[FakeJob]:
        return [j for j in self.jobs_.values() if j.state == "queued"]

    def finish(self, state: str = "delivered", jobs: list[FakeJob] | None = None,
               at: str | None = None) -> None:
        """What the pool would do: the jobs go out (at ``at``) and end in ``state``."""
        for job in self.queued() if jobs is None else jobs:
            job.state = state
            job.parts = [state]
            if state in ("sent", "delivered"):
                job.sent_at = at or NOON_MSK.isoformat()

    def sent_numbers(self) -> list[str]:
        return [j.number for j in self.jobs_.values() if j.state != "cancelled"]


class Clock:
    def __init__(self, start: datetime) -> None:
        self.wall = start
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


# 12:00 in Moscow on a weekday: inside the default 09:00-21:00 window.
NOON_MSK = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


@dataclass
class Base:
    admin: User
    maria: User
    dmitry: User
    secretary: User
    clients: dict[str, int]


async def seed(store: SqliteStore) -> Base:
    admin = await store.create_user("admin", "Admin", Role.ADMIN)
    maria = await store.create_user("maria", "Maria Ivanova", Role.MANAGER, "102")
    dmitry = await store.create_user("dmitry", "Dmitry Volkov", Role.MANAGER, "103")
    secretary = await store.create_user("sveta", "Svetlana", Role.SECRETARY, "101")
    await store.create_custom_field("segment", "Segment", FieldType.TEXT)

    def phones(*raws: str) -> list[PhoneInput]:
        return [PhoneInput(raw, normalize(raw)) for raw in raws]

    drafts = [
        # name, manager, segment, contacts [(name, phones)]
        ("Alfa", maria, "vip", [("Ivan Petrov", phones("+7 916 123-45-67"))]),
        # a landline only: skipped
        ("Beta", maria, "vip", [("Olga Sokolova", phones("+7 495 123-45-67"))]),
        # a landline first, then a mobile: the mobile is used, once
        ("Gamma", dmitry, "vip", [("Anna Smirnova", phones("+7 499 111-22-33",
                                                           "8 916 111-11-11", "+79162222222"))]),
        # the same mobile as Alfa's Ivan: reached once
        ("Delta", dmitry, "basic", [("Boris Kozlov", phones("89161234567"))]),
        ("Epsilon", maria, "basic", [("Сергей Кузнецов", phones("+79167778899")),
                                     ("Pavel\n\x1b[31mSidorov", phones("+79165554433"))]),
    ]
    ids = {}
    for name, manager, segment, contacts in drafts:
        client = await store.create_client(ClientInput(
            name, ClientKind.COMPANY, manager.id, custom={"segment": segment},
            contacts=[ContactInput(c, phones=p) for c, p in contacts]))
        ids[name] = client.id
    return Base(admin, maria, dmitry, secretary, ids)


def service(store: SqliteStore, sms: FakeSms, clock: Clock, **config: Any) -> CampaignService:
    sms.store = store
    return CampaignService(store, sms, CampaignsConfig(**config), time_zone="Europe/Moscow",
                           now=clock.now,
                           monotonic=clock.monotonic)
