"""The incoming-call side of :class:`gsm.modem.Modem`: RING, +CRING, +CLIP and each family's
"answered" and "ended" lines fed to the sans-I/O :class:`gsm.modem_calls.CallTracker`, whose
events go to the call sink, and the timer its deadlines need."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from callcenter.errors import LineUnavailable
from callcenter.line_events import LineEvent

from . import modem_parse as mp
from .at import Urc
from .modem_calls import CallTracker
from .modem_settings import ModemSettings
from .port import AtCommandError, AtPort

log = logging.getLogger(__name__)


class CallUrcs:
    """A mixin: the Modem provides these."""

    name: str
    config: ModemSettings
    _calls: CallTracker
    _call_sink: Callable[[LineEvent], None]
    _call_timer: asyncio.TimerHandle | None
    _clock: Callable[[], float]
    _non_voice_until = 0.0  # a +CRING: FAX/DATA rang: its +CLIP lines open no card

    def _require_up(self) -> AtPort:
        raise NotImplementedError

    # -- calls --------------------------------------------------------------------------------
    async def answer(self) -> None:
        """ATA: pick up the call that rings on this modem."""
        port = self._require_up()
        try:
            await port.command("ATA", timeout=self.config.command_timeout, wait=False)
        except AtCommandError as exc:
            raise LineUnavailable(f"cannot answer: {exc.response.final_text}") from None
        self._emit(self._calls.answered(self._clock()))

    def _emit(self, events: list[LineEvent]) -> None:
        for ev in events:
            try:
                self._call_sink(ev)
            except Exception:
                log.exception("modem %s: call sink failed on %s", self.name, type(ev).__name__)
        self._arm_call_timer()

    def _arm_call_timer(self) -> None:
        if self._call_timer is not None:
            self._call_timer.cancel()
            self._call_timer = None
        deadline = self._calls.next_deadline()
        if deadline is None:
            return
        delay = max(0.0, deadline - self._clock())
        self._call_timer = asyncio.get_running_loop().call_later(delay, self._call_tick)

    def _call_tick(self) -> None:
        self._call_timer = None
        self._emit(self._calls.advance(self._clock()))

    def _on_ring(self, urc: Urc) -> None:
        self._emit(self._calls.ring(self._clock()))

    def _on_cring(self, urc: Urc) -> None:
        # +CRING: VOICE is a call for the console; FAX, DATA, ASYNC... are not (no card)
        kind = urc.line.split(":", 1)[-1].strip().upper()
        if kind.startswith("VOICE") or not kind:
            self._non_voice_until = 0.0
            self._on_ring(urc)
        else:
            # its +CLIP follows: that number is a fax machine's, not a caller for the card
            self._non_voice_until = self._clock() + self.config.ring_gap
            log.info("modem %s: incoming %s call ignored", self.name, kind[:20])

    def _on_clip(self, urc: Urc) -> None:
        if not self._calls.busy and self._clock() < self._non_voice_until:
            return
        self._emit(self._calls.clip(mp.clip(urc.args), self._clock()))

    def _on_conn(self, urc: Urc) -> None:
        self._emit(self._calls.answered(self._clock()))

    def _on_voice_call(self, urc: Urc) -> None:
        if "BEGIN" in urc.line:
            self._emit(self._calls.answered(self._clock()))
        elif "END" in urc.line:
            self._emit(self._calls.ended(self._clock(), urc.line[:60]))

    def _on_wind(self, urc: Urc) -> None:
        args = urc.args
        if args and args[0] == "6":
            self._emit(self._calls.ended(self._clock(), urc.line[:60]))

    def _on_call_end(self, urc: Urc) -> None:
        self._emit(self._calls.ended(self._clock(), urc.line[:60]))
