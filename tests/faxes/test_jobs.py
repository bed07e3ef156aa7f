"""The fax job state machine through the fax service, with a backend the test drives."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.faxes.jobs import RetryPolicy
from callcenter.faxes.ports import FaxOutcome
from callcenter.faxes.service import FaxRejected
from callcenter.faxes.words import result_words
from tests.faxes.fakes import fax_core, upload


async def test_sent_only_when_every_page_is_confirmed(tmp_path: Path) -> None:
    async with fax_core(tmp_path) as core:
        job = await core.send(pages=2)
        assert job["state"] == "queued" and job["pages"] == 2
        ref = await core.until_submits(1)
        assert (await core.job(job["id"]))["state"] == "dialing"
        core.backend.progress(ref, 0, 2, "+7 495 765-43-21")
        await core.until_state(job["id"], "sending")
        core.backend.progress(ref, 1, 2)
        sending = await core.service.wait_for(
            lambda: _confirmed(core, job["id"], 1))
        assert sending["page"] == 2 and sending["state"] == "sending"
        core.backend.result(ref, FaxOutcome.SENT, 2, 2, "+7 495 765-43-21")
        done = await core.until_state(job["id"], "sent")
        assert done["pages_confirmed"] == 2 and done["remote_station"] == "+7 495 765-43-21"
        assert result_words(done) == "sent: all 2 pages confirmed by the far end"
        history = await core.store.list_interactions(1)
        assert [i.ref for i in history] == [f"fax-out-{job['id']}"]
        states = [e.data["fax"]["state"] for e in core.events if e.topic == "fax.status"]
        assert states == ["queued", "dialing", "sending", "sending", "sent"]


async def _confirmed(core, job_id: int, pages: int):  # type: ignore[no-untyped-def]
    job = await core.job(job_id)
    return job if job["pages_confirmed"] >= pages else None


async def test_a_success_with_pages_missing_is_a_failure_naming_the_pages(tmp_path: Path
                                                                          ) -> None:
    async with fax_core(tmp_path) as core:
        job = await core.send(pages=28)
        ref = await core.until_submits(1)
        core.backend.result(ref, FaxOutcome.SENT, 26, 28)
        done = await core.until_state(job["id"], "failed", "sent")
        assert done["state"] == "failed" and done["pages_confirmed"] == 26
        assert result_words(done) == "failed: pages 1–26 of 28 sent"
        assert result_words(done, "ru") == "не отправлен: переданы страницы 1–26 из 28"
        assert len(core.backend.submits) == 1  # a partial fax is not sent again on its own


async def test_broken_off_after_page_2_of_4_is_failed_2_of_4(tmp_path: Path) -> None:
    async with fax_core(tmp_path) as core:
        job = await core.send(pages=4)
        ref = await core.until_submits(1)
        core.backend.progress(ref, 2, 4)
        core.backend.result(ref, FaxOutcome.FAILED, 2, 4, code=49)
        done = await core.until_state(job["id"], "failed", "sent")
        assert (done["state"], done["pages_confirmed"], done["pages"]) == ("failed", 2, 4)


@pytest.mark.parametrize("outcome", [FaxOutcome.BUSY, FaxOutcome.NO_ANSWER,
                                     FaxOutcome.LINE_ERROR])
async def test_a_line_error_after_pages_got_through_is_failed_never_retried(
        tmp_path: Path, outcome: FaxOutcome) -> None:
    """A retry would call again from page 1: the far end would get pages 1-2 twice."""
    async with fax_core(tmp_path, RetryPolicy(max_attempts=3, retry_seconds=0.0)) as core:
        job = await core.send(pages=4)
        ref = await core.until_submits(1)
        core.backend.progress(ref, 2, 4)
        core.backend.result(ref, outcome, 2, 4)
        done = await core.until_state(job["id"], "failed", "retry_scheduled")
        assert (done["state"], done["pages_confirmed"]) == ("failed", 2)
        assert result_words(done) == "failed: pages 1–2 of 4 sent"
        assert len(core.backend.submits) == 1


async def test_a_new_attempt_starts_with_no_page_confirmed(tmp_path: Path) -> None:
    async with fax_core(tmp_path, RetryPolicy(max_attempts=2, retry_seconds=0.0,
                                              retry_interrupted=True), start=False) as core:
        job = await core.send(pages=4)
        # The last run saw 3 pages of an attempt that was then cut by a restart.
        await core.store.update_fax_job(job["id"], state="retry_scheduled", pages_confirmed=3,
                                        attempts=1, next_try_at="2000-01-01T00:00:00.000+00:00")
        await core.service.start()
        ref = await core.until_submits(1)
        core.backend.progress(ref, 1, 4)
        sending = await core.service.wait_for(lambda: _confirmed(core, job["id"], 1))
        assert sending["pages_confirmed"] == 1


@pytest.mark.parametrize("outcome", [FaxOutcome.BUSY, FaxOutcome.NO_ANSWER,
                                     FaxOutcome.LINE_ERROR])
async def test_busy_no_answer_and_line_errors_are_retried_then_given_up(
        tmp_path: Path, outcome: FaxOutcome) -> None:
    async with fax_core(tmp_path, RetryPolicy(max_attempts=3, retry_seconds=0.0)) as core:
        job = await core.send(pages=1)
        for attempt in (1, 2, 3):
            ref = await core.until_submits(attempt)
            core.backend.result(ref, outcome, 0, 1)
            if attempt < 3:
                await core.service.wait_for(lambda n=attempt: len(core.backend.submits) > n)
        done = await core.until_state(job["id"], "failed")
        assert done["attempts"] == 3 and done["result"] == outcome.value
        assert len(core.backend.submits) == 3


async def test_retry_waits_with_backoff(tmp_path: Path) -> None:
    async with fax_core(tmp_path, RetryPolicy(max_attempts=3, retry_seconds=600.0)) as core:
        job = await core.send(pages=1)
        ref = await core.until_submits(1)
        core.backend.result(ref, FaxOutcome.BUSY, 0, 1)
        waiting = await core.until_state(job["id"], "retry_scheduled")
        assert waiting["next_try_at"] > waiting["updated_at"]
        assert len(core.backend.submits) == 1
    assert RetryPolicy(retry_seconds=60, backoff=2).delay(3) == 240


async def test_a_rejected_document_never_becomes_a_job(tmp_path: Path) -> None:
    async with fax_core(tmp_path) as core:
        bad = tmp_path / "bad.pdf"
        bad.write_bytes(b"BAD not a pdf")
        with pytest.raises(FaxRejected, match="not a PDF"):
            await core.service.prepare(bad, "bad.pdf")
        assert await core.store.fax_jobs_in(("queued", "dialing", "failed")) == []
        assert core.backend.submits == []


async def test_a_line_that_is_down_counts_as_a_line_error(tmp_path: Path) -> None:
    async with fax_core(tmp_path, RetryPolicy(max_attempts=1)) as core:
        core.backend.down = True
        job = await core.send(pages=1)
        done = await core.until_state(job["id"], "failed")
        assert done["result"] == "no_line"
        assert result_words(done) == "the fax line is not connected"


async def test_cancel_a_waiting_job_and_a_job_in_a_call(tmp_path: Path) -> None:
    async with fax_core(tmp_path, RetryPolicy(max_attempts=3, retry_seconds=600.0)) as core:
        admin = (await core.store.user_by_login("admin"))[0]  # type: ignore[index]
        first = await core.send(pages=3)
        ref = await core.until_submits(1)
        core.backend.progress(ref, 1, 3)
        await core.until_state(first["id"], "sending")
        await core.service.cancel(admin, first["id"])
        assert core.backend.cancels == [ref]
        core.backend.result(ref, FaxOutcome.CANCELLED, 1, 3)
        done = await core.until_state(first["id"], "cancelled")
        assert done["pages_confirmed"] == 1
        second = await core.send(pages=1)
        ref2 = await core.until_submits(2)
        core.backend.result(ref2, FaxOutcome.BUSY, 0, 1)
        await core.until_state(second["id"], "retry_scheduled")
        cancelled = await core.service.cancel(admin, second["id"])
        assert cancelled["state"] == "cancelled" and len(core.backend.submits) == 2


async def test_restart_marks_a_job_cut_mid_call_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "fax.db"
    async with fax_core(tmp_path, db=db) as core:
        job = await core.send(pages=3)
        ref = await core.until_submits(1)
        core.backend.progress(ref, 2, 3)
        await core.service.wait_for(lambda: _confirmed(core, job["id"], 2))
    async with fax_core(tmp_path, db=db) as core:
        after = await core.job(job["id"])
        assert after["state"] == "failed" and after["interrupted"] == 1
        assert result_words(after) == "interrupted, pages 2 of 3 confirmed"
        assert core.backend.submits == []  # not called again: the policy does not say so


async def test_restart_retries_an_interrupted_job_when_the_policy_says_so(tmp_path: Path
                                                                          ) -> None:
    db = tmp_path / "fax.db"
    async with fax_core(tmp_path, db=db) as core:
        job = await core.send(pages=2)
        await core.until_submits(1)
    policy = RetryPolicy(retry_seconds=0.0, retry_interrupted=True)
    async with fax_core(tmp_path, policy, db=db) as core:
        ref = await core.until_submits(1)
        again = await core.job(job["id"])
        assert again["state"] == "dialing" and again["attempts"] == 2
        core.backend.result(ref, FaxOutcome.SENT, 2, 2)
        await core.until_state(job["id"], "sent")


async def test_bad_numbers_are_refused(tmp_path: Path) -> None:
    from callcenter.errors import ValidationError

    async with fax_core(tmp_path) as core:
        doc = await core.service.prepare(upload(tmp_path, 1), "a.pdf")
        for number in ("", "12", "+7 495; rm -rf", "PJSIP/100", "1" * 40, "1--", "+1 ( )-",
                       "1" + "-" * 30):
            with pytest.raises(ValidationError):
                await core.service.send(None, document=doc.token, number=number)
        job = await core.service.send(None, document=doc.token, number="+7 (495) 765-43-21")
        assert job["number"] == "+74957654321"


async def test_a_line_that_never_reports_is_failed_result_unknown_and_freed(tmp_path: Path
                                                                            ) -> None:
    policy = RetryPolicy(max_attempts=3, retry_seconds=0.0, dial_timeout=0.2, page_timeout=0.1)
    async with fax_core(tmp_path, policy) as core:
        first = await core.send(pages=2)
        second = await core.send(pages=1)
        ref = await core.until_submits(1)
        core.backend.progress(ref, 1, 2)
        await core.service.wait_for(lambda: _confirmed(core, first["id"], 1))
        # No result ever comes for the first call: the deadline ends it, the line goes on.
        done = await core.until_state(first["id"], "failed", "sent", "retry_scheduled")
        assert (done["state"], done["result"], done["pages_confirmed"]) == ("failed",
                                                                            "unknown", 1)
        assert result_words(done) == "failed, result unknown: pages 1 of 2 confirmed"
        assert core.backend.cancels == [ref]
        ref2 = await core.until_submits(2)
        assert core.backend.submits[1][1] == second["id"]
        core.backend.result(ref2, FaxOutcome.SENT, 1, 1)
        assert (await core.until_state(second["id"], "sent"))["state"] == "sent"
        assert len(core.backend.submits) == 2  # the unknown one was not called again


async def test_a_result_the_core_cannot_store_still_frees_the_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.faxes import jobs

    policy = RetryPolicy(max_attempts=1, retry_seconds=0.0, dial_timeout=0.2, page_timeout=0.1)
    async with fax_core(tmp_path, policy) as core:
        first = await core.send(pages=1)
        second = await core.send(pages=1)
        ref = await core.until_submits(1)
        real = jobs.on_result
        calls = []

        def broken(job, result, policy, now):  # type: ignore[no-untyped-def]
            calls.append(result.outcome)
            if len(calls) == 1:
                raise RuntimeError("store broke")
            return real(job, result, policy, now)

        monkeypatch.setattr(jobs, "on_result", broken)
        core.backend.result(ref, FaxOutcome.SENT, 1, 1)
        done = await core.until_state(first["id"], "failed")
        assert done["result"] == "unknown"
        await core.until_submits(2)
        assert core.backend.submits[1][1] == second["id"]


async def test_a_submit_whose_fate_is_unknown_is_failed_never_retried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.faxes.ports import ResultUnknown

    async with fax_core(tmp_path, RetryPolicy(max_attempts=3, retry_seconds=0.0)) as core:
        calls = []

        async def lost(number, document, *, job_id):  # type: ignore[no-untyped-def]
            calls.append(job_id)
            raise ResultUnknown("no answer to JSUBM")

        monkeypatch.setattr(core.backend, "submit", lost)
        job = await core.send(pages=2)
        done = await core.until_state(job["id"], "failed", "retry_scheduled")
        assert (done["state"], done["result"]) == ("failed", "unknown")
        assert calls == [job["id"]]


def test_retry_waits_are_capped_at_a_day() -> None:
    from callcenter.faxes.jobs import MAX_RETRY_SECONDS

    policy = RetryPolicy(max_attempts=20, retry_seconds=120.0, backoff=10.0)
    assert policy.delay(1) == 120.0
    assert policy.delay(19) == MAX_RETRY_SECONDS
    assert RetryPolicy(retry_seconds=1.0, backoff=1e10).delay(400) == MAX_RETRY_SECONDS


async def test_a_cancel_while_the_backend_is_being_asked_reaches_the_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    async with fax_core(tmp_path) as core:
        entered, release = asyncio.Event(), asyncio.Event()
        real = core.backend.submit

        async def slow(number, document, *, job_id):  # type: ignore[no-untyped-def]
            entered.set()
            await release.wait()
            return await real(number, document, job_id=job_id)

        monkeypatch.setattr(core.backend, "submit", slow)
        job = await core.send(pages=1)
        await entered.wait()
        admin = (await core.store.user_by_login("admin"))[0]
        await core.service.cancel(admin, job["id"])
        assert core.backend.cancels == []  # no reference yet
        release.set()
        ref = await core.until_submits(1)
        await core.service.wait_for(lambda: core.backend.cancels)
        assert core.backend.cancels == [ref]
        core.backend.result(ref, FaxOutcome.CANCELLED, 0, 1)
        assert (await core.until_state(job["id"], "cancelled"))["state"] == "cancelled"


async def test_the_documents_resolution_and_paper_reach_the_backend(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from callcenter.faxes.ports import Paper, Resolution

    async with fax_core(tmp_path) as core:
        seen = []
        real = core.backend.submit

        async def keep(number, document, *, job_id):  # type: ignore[no-untyped-def]
            seen.append((document.resolution, document.paper, document.attempt))
            return await real(number, document, job_id=job_id)

        monkeypatch.setattr(core.backend, "submit", keep)
        doc = await core.service.prepare(upload(tmp_path, 1), "a.pdf",
                                         resolution=Resolution.NORMAL, paper=Paper.LETTER)
        job = await core.service.send(None, document=doc.token, number="+74957654321")
        assert (job["resolution"], job["paper"]) == ("normal", "letter")
        await core.until_submits(1)
        assert seen == [(Resolution.NORMAL, Paper.LETTER, 1)]


async def test_more_pages_confirmed_than_the_document_has_is_named_so(tmp_path: Path) -> None:
    async with fax_core(tmp_path) as core:
        job = await core.send(pages=2)
        ref = await core.until_submits(1)
        core.backend.result(ref, FaxOutcome.FAILED, 5, 2)
        done = await core.until_state(job["id"], "failed")
        assert result_words(done) == ("failed: the far end confirmed more pages than the 2 of"
                                      " this document")


async def test_uploads_that_never_became_a_job_are_removed_after_a_day(tmp_path: Path) -> None:
    import os

    async with fax_core(tmp_path) as core:
        job = await core.send(pages=1)
        left = await core.service.prepare(upload(tmp_path, 1), "left.pdf")
        fresh = await core.service.prepare(upload(tmp_path, 1), "fresh.pdf")
        documents = tmp_path / "data" / "faxes" / "documents"
        old = core.service.clock() - 2 * 86400
        for token in (left.token, Path(job["document"]).parent.name):
            os.utime(documents / token, (old, old))
        assert await core.service.prune_documents() == 1
        assert sorted(p.name for p in documents.iterdir()) == sorted(
            [fresh.token, Path(job["document"]).parent.name])


async def test_a_store_error_after_submit_does_not_stop_the_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy = RetryPolicy(max_attempts=1, retry_seconds=0.0, dial_timeout=0.2, page_timeout=0.1)
    async with fax_core(tmp_path, policy) as core:
        real = core.store.update_fax_job
        broken = []

        async def update(job_id, **changes):  # type: ignore[no-untyped-def]
            if "backend_ref" in changes and changes["backend_ref"] and not broken:
                broken.append(job_id)
                raise OSError("disk I/O error")
            return await real(job_id, **changes)

        monkeypatch.setattr(core.store, "update_fax_job", update)
        first = await core.send(pages=1)
        second = await core.send(pages=1)
        done = await core.until_state(first["id"], "failed")
        assert done["result"] == "unknown"
        ref = await core.until_submits(2)
        assert core.backend.submits[1][1] == second["id"]
        core.backend.result(ref, FaxOutcome.SENT, 1, 1)
        await core.until_state(second["id"], "sent")
