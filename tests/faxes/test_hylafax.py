"""The HylaFAX line against HylaFAX's own hfaxd and faxq, started here on a private spool."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from callcenter.config import FaxLineConfig
from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.ports import FaxOutcome, Paper, Resolution
from callcenter.store.sqlite_faxes import FaxFilter
from fax.documents import FaxConverter, tiff_pages
from fax.hylafax import HylaFaxLine, outcome_of
from fax.hylafax_protocol import HylaFaxClient, JobRow, parse_job, parse_received
from tests.fax.documents_fixtures import make_pdf
from tests.faxes.fakes import fax_core
from tests.faxes.hylafax_server import ADMIN_PASSWORD, HylaFaxServer, start_hylafax


@pytest.fixture
def hylafax() -> Iterator[HylaFaxServer]:
    # Not under pytest's tmp_path: hfaxd runs as the fax user, who must reach the spool
    # through every parent folder (pytest's are private to their owner).
    parent = Path(tempfile.mkdtemp(prefix="callcenter-hylafax-"))
    parent.chmod(0o755)
    server = start_hylafax(parent / "spool")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(parent, ignore_errors=True)


async def test_submit_status_and_kill_on_real_hfaxd(tmp_path: Path, hylafax: HylaFaxServer
                                                    ) -> None:
    converter = FaxConverter(tmp_path / "work")
    config = FaxLineConfig(name="fax", kind="hylafax", port=hylafax.port, username="crm",
                           poll_seconds=0.05)
    async with fax_core(tmp_path, RetryPolicy(max_attempts=1), start=False,
                        converter=converter) as core:
        line = HylaFaxLine(config, core.service.sink("fax"), tmp_path / "hylafax-in")
        core.service.backends.clear()
        core.service.add_line("fax", line, RetryPolicy(max_attempts=1))
        check = await line.check()
        assert check.ok and "HylaFAX" in check.facts["server"]
        await line.start()
        await core.service.start()
        try:
            doc = await core.service.prepare(make_pdf(tmp_path / "two.pdf", 2), "two.pdf")
            job = await core.service.send(None, document=doc.token, number="+74957654321")
            dialing = await core.until_state(job["id"], "dialing")
            ref = await core.service.wait_for(lambda: _ref(core, job["id"]))
            hyla_id = ref.removeprefix("hylafax-")
            # Its status, read back through the protocol: waiting (no modem), our number.
            client = HylaFaxClient("127.0.0.1", hylafax.port, "crm")
            try:
                [row] = [r for r in client.jobs() if r.job_id == hyla_id]
                assert row.state in "TW" and row.owner == "crm"
                assert dialing["pages"] == 2
                await core.service.cancel(await _admin(core), job["id"])
                done = await core.until_state(job["id"], "cancelled", "failed", "sent")
                assert done["state"] == "cancelled", done
                [killed] = [r for r in client.jobs() if r.job_id == hyla_id]
                assert killed.state == "F" and "abort" in killed.status.lower()
                qfile = (hylafax.spool / "doneq" / f"q{hyla_id}").read_text()
                assert "number:+74957654321" in qfile and "maxdials:1" in qfile
                assert "maxtries:1" in qfile and "resolution:196" in qfile
                assert f"jobtag:crm-{job['id']}-1" in qfile and "modem:any" in qfile
                # A second job in the same session (JNEW inherits the last job's values):
                # every parameter is its own.
                letter = await converter.to_fax(make_pdf(tmp_path / "l.pdf", 1),
                                                resolution=Resolution.NORMAL,
                                                paper=Paper.LETTER, name="l.pdf")
                ref2 = await line.submit("84951234567", letter, job_id=99)
                second = (hylafax.spool / "sendq" / f"q{ref2.removeprefix('hylafax-')}"
                          ).read_text()
                for field in ("number:84951234567", "external:84951234567",
                              "resolution:98", "pagewidth:216", "pagelength:279",
                              "jobtag:crm-99-1", "maxdials:1"):
                    assert field in second.splitlines(), field
                assert "number:+74957654321" in qfile.splitlines()
            finally:
                client.close()
        finally:
            await line.stop()


async def _ref(core: Any, job_id: int) -> str | None:
    return (await core.job(job_id))["backend_ref"]


async def _admin(core: Any) -> Any:
    found = await core.store.user_by_login("admin")
    return found[0]


async def test_received_fax_is_taken_from_recvq_after_it_is_stored(
        tmp_path: Path, hylafax: HylaFaxServer) -> None:
    converter = FaxConverter(tmp_path / "work")
    doc = await converter.to_fax(make_pdf(tmp_path / "in.pdf", 2), name="in.pdf")
    queued = hylafax.put_received("fax00001.tif", doc.tiff.read_bytes())
    config = FaxLineConfig(name="fax", kind="hylafax", port=hylafax.port, username="crm",
                           poll_seconds=0.05, admin_password=ADMIN_PASSWORD)
    async with fax_core(tmp_path, start=False, converter=converter) as core:
        line = HylaFaxLine(config, core.service.sink("fax"), tmp_path / "hylafax-in")
        core.service.backends.clear()
        core.service.add_line("fax", line, RetryPolicy())
        await core.service.start()
        await line.start()
        try:
            async def stored() -> list[dict[str, Any]]:
                return await core.store.list_received_faxes(FaxFilter())

            [fax] = await core.service.wait_for(stored)
            assert fax["pages"] == 2 and fax["ok"] == 1
            assert Path(fax["pdf"]).read_bytes().startswith(b"%PDF")
            async with asyncio.timeout(10):
                while not line.removed:
                    line.picked_up.clear()
                    await line.picked_up.wait()
            assert line.removed == ["fax00001.tif"] and not queued.exists()
        finally:
            await line.stop()
    assert tiff_pages(doc.tiff) == 2


def test_job_and_receive_rows_parse_and_map() -> None:
    row = parse_job("12|F| 1:3 | 1:1 |crm|crm-4-2|Busy | signal detected")
    assert row == JobRow("12", "F", 1, 3, 1, "crm", "Busy | signal detected", "crm-4-2")
    assert outcome_of(row) is FaxOutcome.BUSY
    assert outcome_of(parse_job("3|F| 0:1 | 1:1 |crm|-|No answer from remote")
                      ) is FaxOutcome.NO_ANSWER  # type: ignore[arg-type]
    assert outcome_of(parse_job("3|F| 0:1 | 1:1 |crm|-|Job aborted by request")
                      ) is FaxOutcome.CANCELLED  # type: ignore[arg-type]
    assert outcome_of(parse_job("3|D| 2:2 | 1:1 |crm|-|")) is FaxOutcome.SENT  # type: ignore[arg-type]
    assert parse_job("garbage") is None
    got = parse_received("fax00001.tif|2| |+74957654321||ACME | x")
    assert got is not None and (got.station, got.caller, got.pages) == ("ACME | x",
                                                                         "+74957654321", 2)
    assert parse_received("../etc/passwd|1| |||") is None
    for name in ("..", "a..b", ".hidden", "x/y"):
        assert parse_received(f"{name}|1| |||") is None, name


async def test_a_job_gone_from_every_queue_is_reported_result_unknown(tmp_path: Path) -> None:
    class Gone:
        def jobs(self) -> list[JobRow]:
            return [JobRow("7", "W", 0, 1, 0, "crm", "")]  # another of ours, still waiting

        def received(self) -> list[Any]:
            return []

    events: list[Any] = []
    line = HylaFaxLine(FaxLineConfig(name="fax", kind="hylafax"), events.append,
                       tmp_path / "in")
    line.client = Gone()  # type: ignore[assignment]
    line._jobs = {"5": {"pages": 3, "page": 1}, "7": {"pages": 1, "page": -1}}
    await line.poll_once()
    [result] = events
    assert (result.job_ref, result.outcome, result.pages_confirmed) == (
        "hylafax-5", FaxOutcome.UNKNOWN, 1)
    assert list(line._jobs) == ["7"]


async def test_a_restart_finds_its_hylafax_job_again_and_never_submits_twice(
        tmp_path: Path, hylafax: HylaFaxServer) -> None:
    """The process dies with a job queued in HylaFAX, even before it stored the job id: the
    next start finds the job by its tag (crm-<job>-<attempt>) and follows it; with
    retry_interrupted a second HylaFAX job would send the fax twice."""
    converter = FaxConverter(tmp_path / "work")
    config = FaxLineConfig(name="fax", kind="hylafax", port=hylafax.port, username="crm",
                           poll_seconds=0.05)
    policy = RetryPolicy(max_attempts=3, retry_interrupted=True)
    db = tmp_path / "fax.db"
    async with fax_core(tmp_path, policy, start=False, converter=converter, db=db) as core:
        line = HylaFaxLine(config, core.service.sink("fax"), tmp_path / "hylafax-in")
        core.service.backends.clear()
        core.service.add_line("fax", line, policy)
        await line.start()
        await core.service.start()
        try:
            doc = await core.service.prepare(make_pdf(tmp_path / "one.pdf", 1), "one.pdf")
            job = await core.service.send(None, document=doc.token, number="+74957654321")
            ref = await core.service.wait_for(lambda: _ref(core, job["id"]))
        finally:
            await line.stop()
        # As if the crash came between JSUBM and storing the id.
        await core.store.update_fax_job(job["id"], backend_ref=None)
    async with fax_core(tmp_path, policy, start=False, converter=converter, db=db) as core:
        line = HylaFaxLine(config, core.service.sink("fax"), tmp_path / "hylafax-in")
        core.service.backends.clear()
        core.service.add_line("fax", line, policy)
        await line.start()
        await core.service.start()
        client = HylaFaxClient("127.0.0.1", hylafax.port, "crm")
        try:
            again = await core.job(job["id"])
            assert (again["state"], again["backend_ref"], again["attempts"]) == (
                "dialing", ref, 1)
            assert [r.tag for r in client.jobs()] == [f"crm-{job['id']}-1"]
            # Followed as before: its end (here a kill) settles the job.
            client.kill(ref.removeprefix("hylafax-"))
            done = await core.until_state(job["id"], "cancelled", "failed", "sent",
                                          "retry_scheduled")
            assert done["state"] == "cancelled" and done["attempts"] == 1
            assert len(client.jobs()) == 1
        finally:
            client.close()
            await line.stop()


async def test_a_job_hylafax_no_longer_has_is_interrupted_at_start(tmp_path: Path,
                                                                   hylafax: HylaFaxServer
                                                                   ) -> None:
    config = FaxLineConfig(name="fax", kind="hylafax", port=hylafax.port, username="crm")
    async with fax_core(tmp_path, RetryPolicy(), start=False) as core:
        job = await core.send(pages=1)
        await core.store.update_fax_job(job["id"], state="dialing", attempts=1)
        line = HylaFaxLine(config, core.service.sink("fax"), tmp_path / "hylafax-in")
        core.service.backends.clear()
        core.service.add_line("fax", line, RetryPolicy())
        await core.service.start()
        done = await core.job(job["id"])
        assert (done["state"], done["result"], done["interrupted"]) == ("failed",
                                                                        "interrupted", 1)


async def test_a_line_without_admin_password_warns_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    line = HylaFaxLine(FaxLineConfig(name="fax", kind="hylafax", port=1, poll_seconds=60),
                       lambda event: None, tmp_path / "in")
    await line.start()
    await line.stop()
    assert any("admin_password" in r.getMessage() for r in caplog.records)
