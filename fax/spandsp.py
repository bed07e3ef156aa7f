"""The spandsp fax engine: two T.30 terminals of libspandsp talking to each other, over G.711
audio (the modems really modulate: V.21 signalling, V.17/V.29/V.27ter pages) or over T.38 (IFP
packets), with ECM.

:class:`BackToBack` is a steppable machine with no I/O and no clock of its own: ``step()``
advances both terminals by 20 ms of simulated line time, ``run()`` loops until both have reached
phase E. The asyncio adapter (:mod:`fax.spandsp_line`) decides how fast simulated time goes.
What happens is reported as :class:`EngineEvent` values (call connected, page confirmed or
received, call finished with the T.30 completion code).

One caveat from libspandsp: its callbacks fire inside ``fax_rx``/``fax_tx`` and
``t38_terminal_send_timeout``, so T.38 packets are queued there and delivered to the other side
after the call returns, never from inside the callback.
"""

from __future__ import annotations

import ctypes
import enum
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fax import spandsp_lib as sp

MAX_PATH_BYTES = 255  # spandsp copies file names into fixed 256-byte buffers
IDENT_CHARS = 20  # T.30 station identifiers are at most 20 characters


class Transport(enum.StrEnum):
    AUDIO = "g711"  # A-law audio between two fax modems
    T38 = "t38"  # IFP packets between two T.38 terminals


class Side(enum.StrEnum):
    SEND = "send"
    RECEIVE = "receive"


class EventKind(enum.StrEnum):
    CONNECTED = "connected"  # phase B: the far end's capabilities arrived
    PAGE = "page"  # one more page confirmed (sender) or received (receiver)
    DONE = "done"  # phase E, with the completion code


@dataclass(frozen=True, slots=True)
class EngineEvent:
    side: Side
    kind: EventKind
    pages: int  # pages confirmed by the receiver (send side) or received (receive side)
    pages_in_file: int | None  # the sender's document; None on the receive side
    remote_station: str = ""  # what the far end sent as its ident: free text
    code: int | None = None  # T.30 completion code, on DONE
    at_samples: int = 0  # simulated line time, in 8 kHz samples


@dataclass(frozen=True, slots=True)
class SideReport:
    side: Side
    code: int  # T.30 completion code (sp.T30_ERR)
    words: str  # spandsp's words for it
    pages: int  # confirmed (send) / received (receive)
    pages_in_file: int | None
    remote_station: str
    bit_rate: int
    ecm: bool

    @property
    def code_name(self) -> str:
        return code_name(self.code)


def code_name(code: int) -> str:
    """"CALLDROPPED" for T30_ERR_CALLDROPPED: a stable key for translations."""
    try:
        return sp.T30_ERR(code).name
    except ValueError:
        return f"UNKNOWN_{code}"


def _path_bytes(path: Path) -> bytes:
    raw = str(path).encode()
    if len(raw) > MAX_PATH_BYTES:
        raise ValueError(f"spandsp cannot open paths longer than {MAX_PATH_BYTES} bytes: {path}")
    return raw


def _ident_bytes(ident: str) -> bytes:
    # T.30 idents are digits, '+' and spaces in practice; anything else would be sent raw.
    return "".join(c for c in ident if c.isascii() and c.isprintable())[:IDENT_CHARS].encode()


class _Terminal:
    """One T.30 endpoint (audio or T.38) with its callbacks kept referenced."""

    def __init__(self, lib: ctypes.CDLL, transport: Transport, side: Side, ident: str,
                 tiff: Path, emit: Callable[[EngineEvent], None],
                 clock: Callable[[], int], *, ecm: bool, paced: bool = False) -> None:
        self.lib, self.transport, self.side = lib, transport, side
        self._emit, self._clock = emit, clock
        self.completion: int | None = None
        self.outbox: deque[bytes] = deque()  # T.38 packets waiting for the other side
        self._seq = 0
        calling = 1 if side is Side.SEND else 0
        self._file = _path_bytes(tiff)  # checked before any state exists: nothing to free
        self._ident = _ident_bytes(ident)  # spandsp copies it, but keep it for good measure
        self._pages_reported = 0
        self.state = None
        self.t30 = None
        try:
            self._setup(transport, calling, side, ecm=ecm, paced=paced)
        except BaseException:
            self.close()
            raise

    def _setup(self, transport: Transport, calling: int, side: Side, *, ecm: bool,
               paced: bool) -> None:
        lib = self.lib
        if transport is Transport.AUDIO:
            self.state = lib.fax_init(None, calling)
            if not self.state:
                raise MemoryError("fax_init failed")
            lib.fax_set_transmit_on_idle(self.state, 1)  # always a full buffer of samples
            self.t30 = lib.fax_get_t30_state(self.state)
        else:
            self._on_packet = sp.T38_TX_PACKET_HANDLER(self._packet)
            self.state = lib.t38_terminal_init(None, calling, self._on_packet, None)
            if not self.state:
                raise MemoryError("t38_terminal_init failed")
            self.core = lib.t38_terminal_get_t38_core_state(self.state)
            # Unpaced: packets go out as soon as they are ready, the line time shrinks to what
            # T.30 needs; paced: at the rate of the modem T.38 stands in for, as over UDP.
            config = 0 if paced else sp.T38_TERMINAL_OPTION_NO_PACING
            lib.t38_terminal_set_config(self.state, config)
            self.t30 = lib.t38_terminal_get_t30_state(self.state)
        lib.t30_set_tx_ident(self.t30, self._ident)
        lib.t30_set_ecm_capability(self.t30, 1 if ecm else 0)
        lib.t30_set_supported_compressions(
            self.t30, sp.COMPRESSION_T4_1D | sp.COMPRESSION_T4_2D | sp.COMPRESSION_T6)
        lib.t30_set_supported_modems(self.t30, sp.MODEMS_ALL)
        if side is Side.SEND:
            lib.t30_set_tx_file(self.t30, self._file, -1, -1)
        else:
            lib.t30_set_rx_encoding(self.t30, sp.T4_COMPRESSION_ITU_T6)  # G4: img2pdf embeds it
            lib.t30_set_rx_file(self.t30, self._file, -1)
        self._on_b = sp.PHASE_B_HANDLER(self._phase_b)
        self._on_d = sp.PHASE_D_HANDLER(self._phase_d)
        self._on_e = sp.PHASE_E_HANDLER(self._phase_e)
        lib.t30_set_phase_b_handler(self.t30, self._on_b, None)
        lib.t30_set_phase_d_handler(self.t30, self._on_d, None)
        lib.t30_set_phase_e_handler(self.t30, self._on_e, None)

    # -- what the library tells us (called from inside fax_rx/fax_tx/send_timeout) --------

    def stats(self) -> sp.Stats:
        if self.t30 is None:  # freed: the pointer would be a use after free
            raise RuntimeError("the fax terminal is closed")
        stats = sp.Stats()
        self.lib.t30_get_transfer_statistics(self.t30, ctypes.byref(stats))
        return stats

    def pages(self, stats: sp.Stats | None = None) -> int:
        stats = stats or self.stats()
        return stats.pages_tx if self.side is Side.SEND else stats.pages_rx

    def pages_in_file(self, stats: sp.Stats) -> int | None:
        if self.side is Side.RECEIVE or stats.pages_in_file < 0:
            return None
        return stats.pages_in_file

    def remote_station(self) -> str:
        if self.t30 is None:
            raise RuntimeError("the fax terminal is closed")
        raw = self.lib.t30_get_rx_ident(self.t30)  # may be NULL before phase B
        if not raw:
            return ""
        return raw.decode("latin-1").strip()[:IDENT_CHARS]

    def _event(self, kind: EventKind, stats: sp.Stats, code: int | None = None) -> None:
        self._emit(EngineEvent(self.side, kind, self.pages(stats), self.pages_in_file(stats),
                               self.remote_station(), code, self._clock()))

    def _phase_b(self, _t30, _user, _result) -> int:
        self._event(EventKind.CONNECTED, self.stats())
        return 0

    def _phase_d(self, _t30, _user, _result) -> int:
        stats = self.stats()
        # Phase D also follows partial pages (ECM blocks) and retrains: report only growth.
        if self.pages(stats) > self._pages_reported:
            self._pages_reported = self.pages(stats)
            self._event(EventKind.PAGE, stats)
        return 0

    def _phase_e(self, _t30, _user, code) -> None:
        self.completion = int(code)
        stats = self.stats()
        if self.pages(stats) > self._pages_reported:
            self._pages_reported = self.pages(stats)
            self._event(EventKind.PAGE, stats)
        self._event(EventKind.DONE, stats, self.completion)

    def _packet(self, _core, _user, buf, length, _count) -> int:
        # count is the redundancy the library asks for; a lossless loop needs one copy
        self.outbox.append(ctypes.string_at(buf, length))
        return 0

    # -- driving it -----------------------------------------------------------------------

    def deliver(self, packet: bytes, seq: int) -> None:
        buf = (ctypes.c_uint8 * len(packet)).from_buffer_copy(packet)
        self.lib.t38_core_rx_ifp_packet(self.core, buf, len(packet), seq & 0xFFFF)

    def next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) & 0xFFFF
        return seq

    def terminate(self) -> None:
        """The call is gone (hang-up, cancel): phase E fires with CALLDROPPED unless the
        exchange had already finished cleanly."""
        if self.completion is None:
            self.lib.t30_terminate(self.t30)
        if self.completion is None:
            # spandsp fires phase E from t30_terminate in every state we know; should it not,
            # the call is still over: end it here rather than step a dead line forever
            self._phase_e(None, None, sp.T30_ERR.CALLDROPPED)

    def report(self) -> SideReport:
        stats = self.stats()
        code = self.completion if self.completion is not None else stats.current_status
        return SideReport(self.side, code, sp.completion_text(code), self.pages(stats),
                          self.pages_in_file(stats), self.remote_station(), stats.bit_rate,
                          bool(stats.error_correcting_mode))

    def close(self) -> None:
        if self.state:
            if self.transport is Transport.AUDIO:
                self.lib.fax_free(self.state)
            else:
                self.lib.t38_terminal_free(self.state)
            self.state = None
        self.t30 = None


class BackToBack:
    """A sender and a receiver joined by a lossless line (audio or T.38).

    ``hang_up_after`` cuts the line as soon as the sender has that many pages confirmed (the
    call drops: both ends see T.30 CALLDROPPED). ``hang_up()`` does the same from outside, at
    the next step (cancel). ``fax_answers=False``: a person (or nothing) answered, the sender
    hears silence until its T.30 timer gives up (T0_EXPIRED). ``loss``: the share of 20 ms
    audio packets lost on the way (as over RTP); the receiving modem is told with
    ``fax_rx_fillin`` instead of hearing silence, which no modem survives."""

    def __init__(self, transport: Transport, send_tiff: Path, receive_tiff: Path, *,
                 sender_ident: str = "+1 555 0100", receiver_ident: str = "+1 555 0199",
                 ecm: bool = True, paced: bool = False, hang_up_after: int | None = None,
                 fax_answers: bool = True, loss: float = 0.0, seed: int = 1,
                 on_event: Callable[[EngineEvent], None] | None = None) -> None:
        self.lib = sp.load()
        self.transport = Transport(transport)
        self.samples = 0
        self.events: list[EngineEvent] = []
        self._on_event = on_event
        self._hang_up_after = hang_up_after
        self._hang_up = False
        self.hung_up = False
        self.fax_answers = fax_answers
        self.loss = loss
        self.lost_packets = 0
        self._random = random.Random(seed)
        self._g711: tuple[int, int] | None = None
        self.sender = _Terminal(self.lib, self.transport, Side.SEND, sender_ident,
                                Path(send_tiff), self._emit, self._clock, ecm=ecm,
                                paced=paced)
        try:
            self.receiver = _Terminal(self.lib, self.transport, Side.RECEIVE, receiver_ident,
                                      Path(receive_tiff), self._emit, self._clock, ecm=ecm,
                                      paced=paced)
        except BaseException:
            self.sender.close()
            raise
        if self.transport is Transport.AUDIO:
            n = sp.SAMPLES_PER_20MS
            codecs = (self.lib.g711_init(None, sp.G711_ALAW),
                      self.lib.g711_init(None, sp.G711_ALAW))
            if not all(codecs):
                for codec in codecs:
                    if codec:
                        self.lib.g711_free(codec)
                self.sender.close()
                self.receiver.close()
                raise MemoryError("g711_init failed")
            self._g711 = codecs
            self._amp = ((ctypes.c_int16 * n)(), (ctypes.c_int16 * n)())
            self._alaw = (ctypes.c_uint8 * n)()

    def _clock(self) -> int:
        return self.samples

    def _emit(self, event: EngineEvent) -> None:
        self.events.append(event)
        if (self._hang_up_after is not None and event.side is Side.SEND
                and event.kind is EventKind.PAGE and event.pages >= self._hang_up_after):
            self._hang_up = True
        if self._on_event is not None:
            self._on_event(event)

    @property
    def finished(self) -> bool:
        if not self.fax_answers:
            return self.sender.completion is not None
        return self.sender.completion is not None and self.receiver.completion is not None

    def hang_up(self) -> None:
        self._hang_up = True

    def step(self, samples: int = sp.SAMPLES_PER_20MS) -> bool:
        """Advance the line by ``samples`` (1 to 160, 20 ms); True once both ends are done."""
        # the sample buffers hold 160: more would be written past their end by libspandsp
        if not 1 <= samples <= sp.SAMPLES_PER_20MS:
            raise ValueError(f"step() takes 1 to {sp.SAMPLES_PER_20MS} samples, not {samples}")
        if self.finished:
            return True
        if self._hang_up:
            self.hung_up = True
            self.sender.terminate()
            if self.fax_answers:
                self.receiver.terminate()
            return self.finished
        if not self.fax_answers:
            self._silent_step(samples)
        elif self.transport is Transport.AUDIO:
            self._audio_step(samples)
        else:
            self._t38_step(samples)
        self.samples += samples
        return self.finished

    def _audio_step(self, samples: int) -> None:
        lib = self.lib
        for src, dst, amp, codec in ((self.sender, self.receiver, self._amp[0], self._g711[0]),
                                     (self.receiver, self.sender, self._amp[1], self._g711[1])):
            n = lib.fax_tx(src.state, amp, samples)
            # through the codec of the line: what a real G.711 channel would let through
            lib.g711_encode(codec, self._alaw, amp, n)
            if self.loss and self._random.random() < self.loss:
                self.lost_packets += 1
                lib.fax_rx_fillin(dst.state, n)
                continue
            lib.g711_decode(codec, amp, self._alaw, n)
            lib.fax_rx(dst.state, amp, n)

    def _silent_step(self, samples: int) -> None:
        lib = self.lib
        if self.transport is Transport.AUDIO:
            amp, silence = self._amp
            lib.fax_tx(self.sender.state, amp, samples)
            ctypes.memset(silence, 0, ctypes.sizeof(silence))
            lib.fax_rx(self.sender.state, silence, samples)
        else:
            lib.t38_terminal_send_timeout(self.sender.state, samples)
            self.sender.outbox.clear()

    def _t38_step(self, samples: int) -> None:
        lib = self.lib
        lib.t38_terminal_send_timeout(self.sender.state, samples)
        lib.t38_terminal_send_timeout(self.receiver.state, samples)
        for src, dst in ((self.sender, self.receiver), (self.receiver, self.sender)):
            while src.outbox:
                dst.deliver(src.outbox.popleft(), src.next_seq())

    def run(self, max_seconds: float = 1800.0) -> tuple[SideReport, SideReport]:
        """Run to the end (or to ``max_seconds`` of line time, then hang up)."""
        limit = int(max_seconds * sp.SAMPLE_RATE)
        while not self.step():
            if self.samples >= limit:
                self.hang_up()
        return self.reports()

    def reports(self) -> tuple[SideReport, SideReport]:
        return self.sender.report(), self.receiver.report()

    def close(self) -> None:
        self.sender.close()
        self.receiver.close()
        if self._g711 is not None:
            for codec in self._g711:
                self.lib.g711_free(codec)
            self._g711 = None

    def __enter__(self) -> BackToBack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
