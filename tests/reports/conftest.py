from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from callcenter.reports.service import ReportService
from callcenter.routing.hours import OfficeHours
from callcenter.store.sqlite import SqliteStore
from tests.reports import dataset


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[tuple[SqliteStore, dataset.Office]]:
    store = await SqliteStore.open(tmp_path / "reports.db")
    try:
        yield store, await dataset.build(store)
    finally:
        await store.close()


def service(store: SqliteStore, *, hours: bool = True, see_all: bool = False,
            tz: str = "Europe/Berlin") -> ReportService:
    office_hours = OfficeHours.from_json(dataset.HOURS) if hours else None
    return ReportService(store, timezone=lambda: tz, callback_sla_minutes=15,
                         office_hours=lambda: office_hours, managers_see_all_clients=see_all,
                         now=lambda: dataset.NOW)
