"""SIGKILL with a job queued in the real hfaxd/faxq: the next start finds the HylaFAX job by
its tag and follows it, even with retry_interrupted (a second HylaFAX job would send twice)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.bus import EventBus
from callcenter.config import FaxLineConfig, PhonesConfig
from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.service import FaxService
from callcenter.matching import CallerMatcher
from callcenter.store.sqlite import SqliteStore
from fax.documents import FaxConverter
from fax.hylafax import HylaFaxLine
from fax.hylafax_protocol import HylaFaxClient
from tests.faxes.hylafax_server import HylaFaxServer, start_hylafax

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
from fax.hylafax import HylaFaxLine
from tests.calls.harness import FAKE_HASH
from tests.fax.documents_fixtures import make_pdf

async def main():
    folder, port = Path(sys.argv[1]), int(sys.argv[2])
    store = await SqliteStore.open(folder / "fax.db")
    await seed_demo(store, FAKE_HASH)
    service = FaxService(store, EventBus(), FaxConverter(folder / "work"),
                         CallerMatcher(store.caller_index, PhonesConfig()), folder / "data")
    config = FaxLineConfig(name="fax", kind="hylafax", port=port, username="crm",
                           poll_seconds=0.05)
    line = HylaFaxLine(config, service.sink("fax"), folder / "in")
    service.add_line("fax", line, RetryPolicy(max_attempts=3, retry_interrupted=True))
    await line.start()
    await service.start()
    doc = await service.prepare(make_pdf(folder / "two.pdf", 2), "two.pdf")
    job = await service.send(None, document=doc.token, number="+74957654321", client_id=1)

    async def ref():
        return (await store.get_fax_job(job["id"]))["backend_ref"]

    print("submitted", job["id"], await service.wait_for(ref, 30), flush=True)
    await asyncio.Event().wait()  # until killed

asyncio.run(main())
"""


@pytest.fixture
def hylafax() -> Iterator[HylaFaxServer]:
    parent = Path(tempfile.mkdtemp(prefix="callcenter-hylafax-"))
    parent.chmod(0o755)  # hfaxd runs as the fax user: it must reach the spool
    server = start_hylafax(parent / "spool")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


async def test_sigkill_with_a_hylafax_job_queued_follows_that_job(
        tmp_path: Path, hylafax: HylaFaxServer) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _SENDER, str(tmp_path), str(hylafax.port)],
                            stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            report = await asyncio.to_thread(proc.stdout.readline)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    _, job_id, ref = report.split()

    store = await SqliteStore.open(tmp_path / "fax.db")
    client = HylaFaxClient("127.0.0.1", hylafax.port, "crm")
    try:
        service = FaxService(store, EventBus(), FaxConverter(tmp_path / "work"),
                             CallerMatcher(store.caller_index, PhonesConfig()), tmp_path / "data")
        config = FaxLineConfig(name="fax", kind="hylafax", port=hylafax.port, username="crm",
                               poll_seconds=0.05)
        line = HylaFaxLine(config, service.sink("fax"), tmp_path / "in")
        service.add_line("fax", line, RetryPolicy(max_attempts=3, retry_interrupted=True))
        await line.start()
        await service.start()
        try:
            job = await store.get_fax_job(int(job_id))
            assert (job["state"], job["backend_ref"], job["attempts"]) == ("dialing", ref, 1)
            assert [r.tag for r in client.jobs()] == [f"crm-{job_id}-1"]  # one HylaFAX job
            client.kill(ref.removeprefix("hylafax-"))

            async def ended() -> object:
                found = await store.get_fax_job(int(job_id))
                return found if found["state"] not in ("dialing", "sending") else None

            done = await service.wait_for(ended)
            assert (done["state"], done["attempts"]) == ("cancelled", 1)
            assert len(client.jobs()) == 1
        finally:
            await service.stop()
            await line.stop()
    finally:
        client.close()
        await store.close()
