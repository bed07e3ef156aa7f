"""SIGKILL during a send: the process sending a fax is killed mid-call; the next start finds
the job "interrupted, pages k of n confirmed" and does not send it again on its own."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from callcenter.bus import EventBus
from callcenter.config import FaxLineConfig, PhonesConfig
from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.service import FaxService
from callcenter.faxes.words import result_words
from callcenter.matching import CallerMatcher
from callcenter.store.sqlite import SqliteStore
from fax.documents import FaxConverter
from fax.loopback import LoopbackFaxLine

_SENDER = r"""
import asyncio, sys
from pathlib import Path
from callcenter.bus import EventBus
from callcenter.config import FaxLineConfig, PhonesConfig
from callcenter.demo import seed_demo
from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.service import FaxService
from callcenter.matching import CallerMatcher
from callcenter.store.sqlite import SqliteStore
from fax.documents import FaxConverter
from fax.loopback import LoopbackFaxLine
from tests.calls.harness import FAKE_HASH
from tests.fax.documents_fixtures import make_pdf

async def main():
    folder = Path(sys.argv[1])
    store = await SqliteStore.open(folder / "fax.db")
    await seed_demo(store, FAKE_HASH)
    bus = EventBus()
    service = FaxService(store, bus, FaxConverter(folder / "work"),
                         CallerMatcher(store.caller_index, PhonesConfig()), folder / "data")
    line = LoopbackFaxLine(FaxLineConfig(name="fax", kind="loopback", page_seconds=0.3),
                           service.sink("fax"), folder / "in")
    service.add_line("fax", line, RetryPolicy(max_attempts=3))
    await line.start()
    await service.start()

    def report(event):
        fax = event.data["fax"]
        print(f"{fax['state']} {fax.get('pages_confirmed', 0)}", flush=True)

    bus.subscribe(report)
    doc = await service.prepare(make_pdf(folder / "three.pdf", 3), "three.pdf")
    await service.send(None, document=doc.token, number="+74957654321", client_id=1)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


async def test_sigkill_mid_send_leaves_an_interrupted_job(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _SENDER, str(tmp_path)],
                            stdout=subprocess.PIPE, env=env, text=True)
    seen: list[str] = []
    try:
        assert proc.stdout is not None
        # The sender's own reports, in order; a sender that hangs fails the test, not CI.
        async with asyncio.timeout(60):
            while not seen or not seen[-1].startswith("sending 1"):
                line = await asyncio.to_thread(proc.stdout.readline)
                assert line, f"the sender ended early: {seen}"
                seen.append(line.strip())
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert seen[:2] == ["queued 0", "dialing 0"] and seen[-1] == "sending 1", seen

    store = await SqliteStore.open(tmp_path / "fax.db")
    try:
        service = FaxService(store, EventBus(), FaxConverter(tmp_path / "work"),
                             CallerMatcher(store.caller_index, PhonesConfig()), tmp_path / "data")
        line = LoopbackFaxLine(FaxLineConfig(name="fax", kind="loopback", page_seconds=0.3),
                               service.sink("fax"), tmp_path / "in")
        submitted: list[int] = []
        submit = line.submit

        async def counted(number, document, *, job_id):  # type: ignore[no-untyped-def]
            submitted.append(job_id)
            return await submit(number, document, job_id=job_id)

        line.submit = counted  # type: ignore[method-assign]
        service.add_line("fax", line, RetryPolicy(max_attempts=3))
        await line.start()
        await service.start()
        [job] = await store.fax_jobs_in(("failed",))
        assert job["interrupted"] == 1 and job["attempts"] == 1
        confirmed = job["pages_confirmed"]
        assert 1 <= confirmed < 3  # what was stored before the kill, never more than sent
        assert result_words(job) == f"interrupted, pages {confirmed} of 3 confirmed"
        assert await store.fax_jobs_in(("queued", "dialing", "sending", "retry_scheduled")) == []
        await service.stop()
        await line.stop()
        assert submitted == []  # not dialled again: the policy does not ask for it
    finally:
        await store.close()
