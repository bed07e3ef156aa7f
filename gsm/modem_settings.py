"""The settings of one modem line, and the AT port as the modem uses it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .port import AtPort, PortState
from .ussd import UssdMode


class ModemPort(AtPort):
    """The AT port, telling the modem when its state changes (down, reopened, up), so a call
    in progress ends and waiters wake without polling. (A public state callback on AtPort
    would replace this override of its one state setter.)"""

    def __init__(self, *args: Any, on_state: Callable[[PortState], None], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._on_state = on_state

    def pdu_written_for(self, pdu: str) -> bool:
        """Whether the AT+CMGS in flight carries ``pdu`` and has written it (so withdrawing it
        no longer stops the SMS). Reads the engine's in-flight slot: AtPort has no accessor."""
        cur = getattr(self._engine, "_cur", None)
        return cur is not None and cur.cmd.pdu == pdu and bool(cur.pdu_written)

    def _set_state(self, state: PortState, reason: str) -> None:
        before = self.state
        super()._set_state(state, reason)
        if state is not before:
            self._on_state(state)


@dataclass(slots=True)
class ModemSettings:
    name: str
    path: str
    baudrate: int = 115200
    pin: str = field(default="", repr=False)  # write-only secret: never logged, never shown
    storage: str = "SM"  # where new messages are stored and read (AT+CPMS)
    status_reports: str = "auto"  # "cdsi" (stored, +CDSI), "cds" (direct, +CDS), "auto"
    ussd_mode: UssdMode = UssdMode.AUTO  # AUTO: send packed, read whatever comes
    balance_code: str = "*100#"
    own_number: str = ""  # the SIM's number: the "called" number of its incoming calls
    ring_extensions: tuple[str, ...] = ()
    poll_interval: float = 30.0
    command_timeout: float = 10.0
    send_timeout: float = 60.0  # AT+CMGS waits for the network's RP-ACK
    ussd_timeout: float = 30.0
    clip_wait: float = 1.5
    ring_gap: float = 8.0
    weak_signal_dbm: int = -105
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    sim_ready_tries: int = 10  # after the PIN, AT+CPIN? until READY
    sim_ready_wait: float = 1.0  # between those queries, cut short by a +CPIN: READY URC
    check_timeout: float = 8.0

    def __post_init__(self) -> None:
        # the storage goes into AT+CPMS="<mem>": a quote or ";" there would be another command
        if not (self.storage.isascii() and self.storage.isalnum() and len(self.storage) <= 4):
            raise ValueError(
                f"SMS storage must be a memory name like SM or ME: {self.storage!r:.20}"
            )
        self.storage = self.storage.upper()
