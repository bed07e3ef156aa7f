"""Complete T.30 exchanges through the real libspandsp, back to back, over T.38 and G.711."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import shutil
from pathlib import Path

import pikepdf
import pytest
from PIL import Image, ImageChops

from callcenter.errors import LineUnavailable
from callcenter.faxes.ports import (
    FaxBackend,
    FaxDocument,
    FaxEvent,
    FaxOutcome,
    FaxProgress,
    FaxReceived,
    FaxResult,
    Resolution,
)
from callcenter.lines.lifecycle import Line, LineState
from fax import spandsp_lib as sp
from fax.documents import FaxConverter
from fax.spandsp import BackToBack, EventKind, Side, SideReport, Transport
from fax.spandsp_line import Answer, CallPlan, SpandspLoopbackLine, outcome_of
from tests.fax.documents_fixtures import make_image, make_pdf

TRANSPORTS = [Transport.T38, Transport.AUDIO]
_REVERSED_BITS = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def assert_same_pages(sent: Path, received: Path, pages: int) -> None:
    with Image.open(sent) as a, Image.open(received) as b:
        assert b.n_frames == pages
        for i in range(pages):
            a.seek(i)
            b.seek(i)
            assert b.size == a.size
            assert b.info["dpi"] == a.info["dpi"]
            assert ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None, i


@pytest.fixture(scope="module")
def four_pages(tmp_path_factory: pytest.TempPathFactory) -> FaxDocument:
    """Three rendered PDF pages and a dithered photo page (dense data, many ECM frames)."""
    tmp = tmp_path_factory.mktemp("doc")
    converter = FaxConverter(tmp / "work")
    doc = asyncio.run(converter.to_fax(make_pdf(tmp / "letter.pdf", 3)))
    photo = asyncio.run(converter.to_fax(make_image(tmp / "photo.png", "PNG")))
    combined = tmp / "four.tiff"
    with Image.open(doc.tiff) as im, Image.open(photo.tiff) as ph:
        frames = []
        for i in range(3):
            im.seek(i)
            frames.append(im.copy())
        frames.append(ph.copy())
    frames[0].save(combined, format="TIFF", compression="group4", save_all=True,
                   append_images=frames[1:], dpi=(204, 196))
    return FaxDocument(combined, 4, Resolution.FINE, doc.paper, doc.thumbnail_png)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_complete_exchange_delivers_every_pixel(transport: Transport, four_pages: FaxDocument,
                                                tmp_path: Path) -> None:
    received = tmp_path / "rx.tiff"
    with BackToBack(transport, four_pages.tiff, received, sender_ident="+44 20 7946 0001",
                    receiver_ident="+44 20 7946 0999") as line:
        sent, got = line.run()
        events = list(line.events)
    assert (sent.code, sent.code_name, sent.words) == (0, "OK", "OK")
    assert (sent.pages, sent.pages_in_file) == (4, 4)
    assert (got.code, got.pages) == (0, 4)
    assert sent.ecm and got.ecm
    assert sent.remote_station == "+44 20 7946 0999"
    assert got.remote_station == "+44 20 7946 0001"
    assert_same_pages(four_pages.tiff, received, 4)
    with Image.open(received) as im:
        assert im.info["compression"] == "group4"  # what img2pdf embeds without re-encoding
    # per-page progress on both sides, in order, then phase E
    send_pages = [e.pages for e in events if e.side is Side.SEND and e.kind is EventKind.PAGE]
    recv_pages = [e.pages for e in events if e.side is Side.RECEIVE and e.kind is EventKind.PAGE]
    assert send_pages == recv_pages == [1, 2, 3, 4]
    done = [e for e in events if e.kind is EventKind.DONE]
    assert {(e.side, e.code) for e in done} == {(Side.SEND, 0), (Side.RECEIVE, 0)}


def test_paced_t38_takes_line_time_and_delivers_every_pixel(four_pages: FaxDocument,
                                                            tmp_path: Path) -> None:
    with BackToBack(Transport.T38, four_pages.tiff, tmp_path / "rx.tiff", paced=True) as line:
        sent, got = line.run()
        line_seconds = line.samples / sp.SAMPLE_RATE
    with BackToBack(Transport.T38, four_pages.tiff, tmp_path / "rx2.tiff") as unpaced:
        unpaced.run()
        unpaced_seconds = unpaced.samples / sp.SAMPLE_RATE
    assert (sent.code, sent.pages, got.pages) == (0, 4, 4)
    assert line_seconds > 4 * unpaced_seconds  # the pages went at modem speed
    assert_same_pages(four_pages.tiff, tmp_path / "rx.tiff", 4)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_exchange_without_ecm_still_completes(transport: Transport, four_pages: FaxDocument,
                                              tmp_path: Path) -> None:
    with BackToBack(transport, four_pages.tiff, tmp_path / "rx.tiff", ecm=False) as line:
        sent, got = line.run()
    assert (sent.code, sent.pages, got.pages) == (0, 4, 4)
    assert not sent.ecm


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_broken_off_after_page_two_is_failed_two_of_four(transport: Transport,
                                                         four_pages: FaxDocument,
                                                         tmp_path: Path) -> None:
    received = tmp_path / "rx.tiff"
    with BackToBack(transport, four_pages.tiff, received, hang_up_after=2) as line:
        sent, got = line.run()
    assert sent.code_name == "CALLDROPPED"
    assert sent.words == "The call dropped prematurely"
    assert (sent.pages, sent.pages_in_file) == (2, 4)
    assert got.pages == 2
    assert outcome_of(sent, 4) is FaxOutcome.FAILED
    assert_same_pages(four_pages.tiff, received, 2)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_voice_answer_ends_in_t0_expired(transport: Transport, four_pages: FaxDocument,
                                           tmp_path: Path) -> None:
    with BackToBack(transport, four_pages.tiff, tmp_path / "rx.tiff",
                    fax_answers=False) as line:
        sent, _ = line.run()
        assert [e.kind for e in line.events] == [EventKind.DONE]
    assert (sent.code_name, sent.pages) == ("T0_EXPIRED", 0)
    assert outcome_of(sent, 4) is FaxOutcome.NO_ANSWER


@pytest.mark.parametrize("seed", [1, 2])
def test_ecm_repairs_lost_audio_packets(seed: int, four_pages: FaxDocument,
                                        tmp_path: Path) -> None:
    # 0.1% of the 20 ms packets lost, as over RTP: the lost frames of each page are sent again
    received = tmp_path / "rx.tiff"
    with BackToBack(Transport.AUDIO, four_pages.tiff, received, loss=0.001,
                    seed=seed) as line:
        sent, got = line.run()
        assert line.lost_packets > 0
    assert (sent.code_name, sent.pages, got.pages) == ("OK", 4, 4)
    assert_same_pages(four_pages.tiff, received, 4)


@pytest.mark.parametrize("seed", [1, 2])
def test_a_line_too_lossy_for_fax_is_never_sent(seed: int, four_pages: FaxDocument,
                                                tmp_path: Path) -> None:
    with BackToBack(Transport.AUDIO, four_pages.tiff, tmp_path / "rx.tiff", loss=0.03,
                    seed=seed) as line:
        sent, _ = line.run()
    assert sent.code != sp.T30_ERR.OK
    assert sent.pages < 4
    assert outcome_of(sent, 4) in (FaxOutcome.FAILED, FaxOutcome.LINE_ERROR)


def _report(code: int, pages: int) -> SideReport:
    return SideReport(Side.SEND, code, "", pages, pages, "", 14400, True)


def test_outcome_is_sent_only_when_every_page_was_confirmed() -> None:
    assert outcome_of(_report(sp.T30_ERR.OK, 4), 4) is FaxOutcome.SENT
    # a clean T.30 end with fewer pages than the document is still a failure
    assert outcome_of(_report(sp.T30_ERR.OK, 3), 4) is FaxOutcome.FAILED
    assert outcome_of(_report(sp.T30_ERR.CALLDROPPED, 2), 4) is FaxOutcome.FAILED
    assert outcome_of(_report(sp.T30_ERR.T0_EXPIRED, 0), 4) is FaxOutcome.NO_ANSWER
    assert outcome_of(_report(sp.T30_ERR.CANNOT_TRAIN, 0), 4) is FaxOutcome.LINE_ERROR
    assert outcome_of(_report(sp.T30_ERR.CALLDROPPED, 1), 4,
                      cancelled=True) is FaxOutcome.CANCELLED


def test_completion_words_come_from_the_library() -> None:
    assert sp.completion_text(sp.T30_ERR.T0_EXPIRED) == (
        "Timed out waiting for initial communication")
    # the enum copied from t30.h lines up with the library's table to its last entry
    assert sp.completion_text(sp.T30_ERR.CALLDROPPED) == "The call dropped prematurely"
    assert sp.completion_text(sp.T30_ERR.CSA_UNACCEPTABLE) == (
        "Called subscriber internet address not accepted")


class Recorder:
    """The fax sink: keeps every event and lets a test wait for the one it expects. Like the
    core, it stores a received fax (a copy in ``store``) when the event arrives: the line
    removes its spool file once the sink has returned."""

    def __init__(self, store: Path | None = None) -> None:
        self.events: list[FaxEvent] = []
        self._changed = asyncio.Event()
        self.on_event = None
        self.store = store
        self.copies: dict[Path, Path] = {}

    async def __call__(self, event: FaxEvent) -> None:
        self.events.append(event)
        self._changed.set()
        if isinstance(event, FaxReceived) and self.store is not None:
            self.store.mkdir(parents=True, exist_ok=True)
            copy = self.store / f"fax-{len(self.copies)}.tiff"
            shutil.copyfile(event.tiff, copy)
            self.copies[event.tiff] = copy
        if self.on_event is not None:
            await self.on_event(event)

    async def wait_for(self, predicate) -> FaxEvent:
        async with asyncio.timeout(120):  # a broken line fails the test instead of hanging it
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


async def _line(tmp_path: Path, sink: Recorder, transport: Transport = Transport.T38,
                **kw) -> SpandspLoopbackLine:
    line = SpandspLoopbackLine("fax-loop", sink, tmp_path / "spool", transport=transport,
                               speed=None, own_number="+15550100", **kw)
    await line.start()
    return line


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_loopback_line_sends_and_receives(transport: Transport, four_pages: FaxDocument,
                                                tmp_path: Path) -> None:
    sink = Recorder(tmp_path / "inbox")
    line = await _line(tmp_path, sink, transport)
    assert isinstance(line, Line)
    backend: FaxBackend = line
    assert line.status().state is LineState.UP
    ref = await backend.submit("+15550199", four_pages, job_id=7)
    result = await sink.wait_for(lambda e: isinstance(e, FaxResult))
    received = await sink.wait_for(lambda e: isinstance(e, FaxReceived))
    await line.stop()
    assert result == FaxResult(ref, result.at, FaxOutcome.SENT, 4, 4, "LOOPBACK FAX", 0,
                               "OK: OK")
    progress = sink.of(FaxProgress)
    assert progress[0].state == "dialing"
    assert [p.page for p in progress if p.state == "sending"] == [0, 1, 2, 3, 4]
    assert all(p.job_ref == ref and p.pages == 4 for p in progress)
    assert (received.line, received.pages, received.ok) == ("fax-loop", 4, True)
    assert (received.caller_num, received.remote_station) == ("+15550100", "CALLCENTER")
    assert_same_pages(four_pages.tiff, sink.copies[received.tiff], 4)
    assert list((tmp_path / "spool").iterdir()) == []  # stored by the sink, then removed


async def test_loopback_line_broken_off_after_page_two(four_pages: FaxDocument,
                                                       tmp_path: Path) -> None:
    sink = Recorder()
    line = await _line(tmp_path, sink, plan=lambda n: CallPlan(hang_up_after=2))
    ref = await line.submit("+15550199", four_pages, job_id=8)
    result = await sink.wait_for(lambda e: isinstance(e, FaxResult))
    received = await sink.wait_for(lambda e: isinstance(e, FaxReceived))
    await line.stop()
    assert (result.job_ref, result.outcome, result.pages_confirmed, result.pages) == (
        ref, FaxOutcome.FAILED, 2, 4)
    assert result.detail == "CALLDROPPED: The call dropped prematurely"
    assert [e.outcome for e in sink.of(FaxResult)] == [FaxOutcome.FAILED]  # never "sent"
    assert (received.pages, received.ok) == (2, False)


@pytest.mark.parametrize(("answer", "outcome"), [(Answer.BUSY, FaxOutcome.BUSY),
                                                 (Answer.NO_ANSWER, FaxOutcome.NO_ANSWER),
                                                 (Answer.VOICE, FaxOutcome.NO_ANSWER)])
async def test_loopback_line_busy_and_no_answer(answer: Answer, outcome: FaxOutcome,
                                                four_pages: FaxDocument, tmp_path: Path) -> None:
    sink = Recorder()
    line = await _line(tmp_path, sink, plan=lambda n: CallPlan(answer=answer))
    await line.submit("+15550199", four_pages, job_id=9)
    result = await sink.wait_for(lambda e: isinstance(e, FaxResult))
    await line.stop()
    assert (result.outcome, result.pages_confirmed) == (outcome, 0)
    assert sink.of(FaxReceived) == []
    assert list((tmp_path / "spool").iterdir()) == []  # no half-made files left behind


async def test_cancel_during_a_send(four_pages: FaxDocument, tmp_path: Path) -> None:
    # G.711 audio takes ~30 s of line time for four pages, many slices: the cancel issued at
    # the first confirmed page lands while pages 2-4 are still to come.
    sink = Recorder()
    line = await _line(tmp_path, sink, Transport.AUDIO)
    refs: list[str] = []

    async def cancel_at_page_one(event: FaxEvent) -> None:
        if isinstance(event, FaxProgress) and event.page == 1:
            await line.cancel(refs[0])

    sink.on_event = cancel_at_page_one
    refs.append(await line.submit("+15550199", four_pages, job_id=10))
    result = await sink.wait_for(lambda e: isinstance(e, FaxResult))
    await line.stop()
    assert (result.outcome, result.pages_confirmed, result.pages) == (
        FaxOutcome.CANCELLED, 1, 4)


async def test_incoming_fax_lands_in_the_receive_path(four_pages: FaxDocument,
                                                      tmp_path: Path) -> None:
    sink = Recorder(tmp_path / "inbox")
    line = await _line(tmp_path, sink)
    await line.receive(four_pages.tiff, caller_num="+74951234567", station_id="BANK <b>")
    await line.stop()
    (received,) = sink.of(FaxReceived)
    assert (received.caller_num, received.remote_station, received.pages) == (
        "+74951234567", "BANK <b>", 4)
    assert sink.of(FaxResult) == []  # not a job of ours
    assert_same_pages(four_pages.tiff, sink.copies[received.tiff], 4)
    assert not received.tiff.exists()


async def test_a_received_fax_the_sink_failed_to_store_stays_in_the_spool(
        four_pages: FaxDocument, tmp_path: Path) -> None:
    events: list[FaxEvent] = []

    async def broken_store(event: FaxEvent) -> None:
        events.append(event)
        raise OSError("disk full")

    line = await _line(tmp_path, broken_store)
    await line.receive(four_pages.tiff, caller_num="+74951234567", station_id="BANK")
    await line.stop()
    (received,) = [e for e in events if isinstance(e, FaxReceived)]
    assert list((tmp_path / "spool").iterdir()) == [received.tiff]
    assert_same_pages(four_pages.tiff, received.tiff, 4)  # nothing lost


async def test_stopping_the_line_interrupts_a_send_retryably(four_pages: FaxDocument,
                                                             tmp_path: Path) -> None:
    # G.711: pages 2-4 still to come when the line is stopped at the first confirmed page
    sink = Recorder()
    line = await _line(tmp_path, sink, Transport.AUDIO)
    await line.submit("+15550199", four_pages, job_id=13)
    await sink.wait_for(lambda e: isinstance(e, FaxProgress) and e.page == 1)
    await line.stop()
    (result,) = sink.of(FaxResult)  # stop() returned after the job's end was reported
    assert result.outcome is FaxOutcome.LINE_ERROR  # retryable; not the user's "cancelled"
    assert 1 <= result.pages_confirmed < 4
    assert line.status().state is LineState.STOPPED


async def test_stop_waits_for_a_fax_being_received(four_pages: FaxDocument,
                                                   tmp_path: Path) -> None:
    line = await _line(tmp_path, Recorder(), Transport.AUDIO)
    task = asyncio.create_task(line.receive(four_pages.tiff, caller_num="", station_id=""))
    await asyncio.sleep(0)  # one turn of the loop: the receive has begun
    await line.stop()
    assert task.done()
    await task
    assert list((tmp_path / "spool").iterdir()) == []


async def test_check_and_a_stopped_line(four_pages: FaxDocument, tmp_path: Path) -> None:
    line = SpandspLoopbackLine("fax-loop", Recorder(), tmp_path / "spool", speed=None)
    check = await line.check()
    assert check.ok
    assert check.facts == {"engine": "libspandsp 0.0.6", "transport": "T.38"}
    assert line.status().state is LineState.STOPPED
    with pytest.raises(LineUnavailable):
        await line.submit("+15550199", four_pages, job_id=11)


async def test_a_received_fax_becomes_a_pdf_without_reencoding(four_pages: FaxDocument,
                                                               tmp_path: Path) -> None:
    # spandsp writes its G4 pages LSB-first (FillOrder 2): img2pdf must still embed them
    received = tmp_path / "rx.tiff"
    with BackToBack(Transport.T38, four_pages.tiff, received) as line:
        line.run()
    data = received.read_bytes()
    with Image.open(received) as im:
        strips, pixels = [], []
        for i in range(im.n_frames):
            im.seek(i)
            (offset,), (count,) = im.tag_v2[273], im.tag_v2[279]
            strip = data[offset:offset + count]
            if im.tag_v2.get(266, 1) == 2:  # LSB first: PDF wants MSB first, bit for bit
                strip = strip.translate(_REVERSED_BITS)
            strips.append(strip)
            pixels.append(im.convert("L"))
    converter = FaxConverter(tmp_path / "work")
    assert await converter.to_pdf(received, tmp_path / "rx.pdf") == 4
    with pikepdf.open(tmp_path / "rx.pdf") as pdf:
        assert len(pdf.pages) == 4
        for page, strip, want in zip(pdf.pages, strips, pixels, strict=True):
            (image,) = page.get_images().values()
            assert image.Filter in (pikepdf.Name.CCITTFaxDecode,
                                    pikepdf.Array([pikepdf.Name.CCITTFaxDecode]))
            assert image.read_raw_bytes() == strip
            got = pikepdf.PdfImage(image).as_pil_image().convert("L")
            assert ImageChops.difference(got, want).getbbox() is None


async def test_an_engine_failure_still_ends_the_job(four_pages: FaxDocument,
                                                    tmp_path: Path) -> None:
    # spandsp keeps file names in 256-byte buffers: a spool that deep cannot be used, and the
    # job must hear so instead of waiting forever
    sink = Recorder()
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    line = SpandspLoopbackLine("fax-loop", sink, deep, speed=None)
    await line.start()
    await line.submit("+15550199", four_pages, job_id=12)
    result = await sink.wait_for(lambda e: isinstance(e, FaxResult))
    await line.stop()
    assert (result.outcome, result.pages_confirmed, result.pages) == (
        FaxOutcome.LINE_ERROR, 0, 4)
    assert result.detail.startswith("engine error: spandsp cannot open paths longer than 255")
    assert list(deep.iterdir()) == []


@pytest.mark.parametrize("samples", [0, -1, 161, 4000])
def test_step_refuses_more_samples_than_its_buffers(samples: int, four_pages: FaxDocument,
                                                    tmp_path: Path) -> None:
    with BackToBack(Transport.AUDIO, four_pages.tiff, tmp_path / "rx.tiff") as line:
        with pytest.raises(ValueError, match="1 to 160 samples"):
            line.step(samples)
        assert line.step(160) is False  # still usable


def test_a_path_too_long_allocates_nothing(four_pages: FaxDocument, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    lib = sp.load()
    made: list[int] = []
    real_init = lib.fax_init

    def counting_init(*args):
        made.append(1)
        return real_init(*args)

    monkeypatch.setattr(lib, "fax_init", counting_init)
    with pytest.raises(ValueError, match="longer than 255"):
        BackToBack(Transport.AUDIO, tmp_path / ("x" * 300), tmp_path / "rx.tiff")
    assert made == []  # refused before a state existed: nothing to leak


def test_a_closed_engine_refuses_to_report(four_pages: FaxDocument, tmp_path: Path) -> None:
    line = BackToBack(Transport.T38, four_pages.tiff, tmp_path / "rx.tiff")
    line.close()
    assert line.sender.t30 is None
    with pytest.raises(RuntimeError, match="closed"):
        line.sender.report()
    line.close()  # twice is harmless


def test_a_hang_up_always_ends_the_call(four_pages: FaxDocument, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # should t30_terminate not fire phase E, the hang-up still ends the call (no endless run)
    lib = sp.load()
    monkeypatch.setattr(lib, "t30_terminate", lambda _t30: None)
    with BackToBack(Transport.T38, four_pages.tiff, tmp_path / "rx.tiff") as line:
        line.hang_up()
        assert line.step() is True
        sent, got = line.reports()
    assert (sent.code_name, got.code_name) == ("CALLDROPPED", "CALLDROPPED")


def test_the_library_is_loaded_by_its_soname(monkeypatch: pytest.MonkeyPatch) -> None:
    # find_library could name another major version with other structs: never asked
    monkeypatch.setattr(ctypes.util, "find_library", lambda _name: "/nonexistent/libspandsp.so.3")
    sp.load.cache_clear()
    try:
        assert sp.load()._name == "libspandsp.so.2"
    finally:
        sp.load.cache_clear()
    assert ctypes.sizeof(sp.Stats) > 15 * ctypes.sizeof(ctypes.c_int)  # room to spare


def test_a_codec_that_cannot_start_frees_the_terminals(four_pages: FaxDocument, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    lib = sp.load()
    freed: list[int] = []
    real_free = lib.fax_free

    def counting_free(state):
        freed.append(1)
        return real_free(state)

    monkeypatch.setattr(lib, "g711_init", lambda _state, _law: None)
    monkeypatch.setattr(lib, "fax_free", counting_free)
    with pytest.raises(MemoryError, match="g711_init failed"):
        BackToBack(Transport.AUDIO, four_pages.tiff, tmp_path / "rx.tiff")
    assert freed == [1, 1]  # sender and receiver, not left to leak
