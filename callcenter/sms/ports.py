"""What the SMS core needs from a modem line, so the pool never imports ``gsm/``.

``gsm.modem.Modem`` implements :class:`SmsModem` (and :class:`callcenter.lines.lifecycle.Line`).
The composition root hands the modems to the pool; the pool decides which modem sends what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from callcenter.sms.events import Address, SmsEncoding


@dataclass(frozen=True, slots=True)
class OutboundPart:
    """One part of an outbound message, as the core split it (``callcenter/sms/segments.py``).

    ``text`` is exactly this part's characters: the core never cuts a surrogate pair or a GSM
    escape sequence in two. ``concat_ref`` is None for a message of one part."""

    to: Address
    text: str
    encoding: SmsEncoding
    seq: int  # 1-based
    total: int
    concat_ref: int | None
    status_report: bool = True  # a delivery report is requested for every part


class SmsSendError(Exception):
    """The modem or the network refused the part (``+CMS ERROR``): it was not sent.

    ``permanent`` is true when retrying cannot help (invalid number, barred); false for a
    network/congestion error the pool may retry on this or another modem."""

    def __init__(self, reason: str, *, code: int | None = None, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.permanent = permanent


class SmsSendUnknown(Exception):
    """``AT+CMGS`` and the PDU were written but no answer came (timeout, modem unplugged): the
    part may or may not have gone out. Never re-sent automatically; a later status report with
    a matching reference resolves it."""


class UssdError(Exception):
    """A USSD request got no usable answer (refused, unsupported, timed out); in words."""


@dataclass(frozen=True, slots=True)
class ModemInfo:
    """What a modem says about itself, for the pool's status view."""

    model: str = ""
    imei: str = ""
    operator: str = ""
    signal_dbm: int | None = None
    registered: bool = False
    roaming: bool = False
    sim_ready: bool = False
    smsc: str = ""
    balance: str = ""  # the last USSD balance reply, as text


class SmsModem(Protocol):
    name: str

    def info(self) -> ModemInfo: ...

    @property
    def ready(self) -> bool:
        """Up, SIM ready, registered: may be given a part now."""
        ...

    async def send_part(self, part: OutboundPart) -> int:
        """Encode as SMS-SUBMIT (TP-SRR set when ``status_report``), send in PDU mode, and
        return the TP-MR the modem answered with ``+CMGS: <mr>``. Raises SmsSendError or
        SmsSendUnknown (see above); LineUnavailable when the modem is down."""
        ...

    async def ussd(self, code: str, timeout: float = 30.0) -> str:
        """Send a USSD request (``*100#``) and return the decoded reply text."""
        ...
