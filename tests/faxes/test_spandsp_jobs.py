"""Fax jobs over the spandsp loopback line: a real T.30 exchange (libspandsp) under the job
machine — sent only with every page, a call broken off after page 2 of 4 is failed 2 of 4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.words import result_words
from callcenter.store.sqlite_faxes import FaxFilter
from fax.documents import FaxConverter
from fax.spandsp import Transport
from fax.spandsp_line import CallPlan, SpandspLoopbackLine
from tests.fax.documents_fixtures import make_pdf
from tests.faxes.fakes import fax_core


def _plan(number: str) -> CallPlan:
    return CallPlan(hang_up_after=2) if number.endswith("99") else CallPlan()


async def test_jobs_over_a_real_t30_exchange(tmp_path: Path) -> None:
    async with fax_core(tmp_path, RetryPolicy(max_attempts=1), start=False,
                        converter=FaxConverter(tmp_path / "work")) as core:
        line = SpandspLoopbackLine("fax", core.service.sink("fax"), tmp_path / "spool",
                                   transport=Transport.T38, speed=None, paced=False,
                                   own_number="+74951110000", plan=_plan)
        core.service.backends.clear()
        core.service.add_line("fax", line, RetryPolicy(max_attempts=1))
        await line.start()
        await core.service.start()
        try:
            doc = await core.service.prepare(make_pdf(tmp_path / "four.pdf", 4), "four.pdf")
            good = await core.service.send(None, document=doc.token, number="+74957654321")
            done = await core.until_state(good["id"], "sent", "failed", timeout=15)
            assert done["state"] == "sent" and done["pages_confirmed"] == 4, done
            assert done["t30_code"] == 0

            async def inbox() -> Any:
                return await core.store.list_received_faxes(FaxFilter())

            [fax] = await core.service.wait_for(inbox, 15)
            assert fax["pages"] == 4 and Path(fax["pdf"]).read_bytes().startswith(b"%PDF")

            cut = await core.service.send(None, document=doc.token, number="+74957654399")
            broken = await core.until_state(cut["id"], "sent", "failed", timeout=15)
            assert (broken["state"], broken["pages_confirmed"]) == ("failed", 2), broken
            assert result_words(broken).startswith("failed: pages 1–2 of 4 sent")
        finally:
            await core.service.stop()
            await line.stop()
