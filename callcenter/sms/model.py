"""Outbound and inbound SMS as the core sees them: states, the rule that combines the parts'
states into the message's, and the opt-out keywords. Pure code, no I/O."""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass


class MessageState(enum.StrEnum):
    QUEUED = "queued"  # stored, no part handed to a modem yet (or a retry is due)
    SENDING = "sending"  # some parts went out, others not yet
    SENT = "sent"  # every part accepted by the network (+CMGS answered)
    DELIVERED = "delivered"  # every part's status report said delivered
    FAILED = "failed"  # a part was refused or its report said failed
    EXPIRED = "expired"  # validity ran out before all parts went out
    UNKNOWN = "unknown"  # a part may or may not have gone out: check delivery
    RECEIVED = "received"  # inbound, whole
    INCOMPLETE = "incomplete"  # inbound, some parts never came


class PartState(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"  # durably marked before send_part is called
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PartView:
    seq: int
    total: int
    state: PartState
    error: str = ""


def message_state(parts: Iterable[PartView]) -> tuple[MessageState, str]:
    """The message's state and error text from its parts: delivered only when every part is;
    a failed part fails the message and is named ("part 2 of 3 failed: …")."""
    parts = sorted(parts, key=lambda p: p.seq)
    states = [p.state for p in parts]
    failed = [p for p in parts if p.state is PartState.FAILED]
    if failed:
        p = failed[0]
        what = "failed" if len(parts) == 1 else f"part {p.seq} of {p.total} failed"
        return MessageState.FAILED, f"{what}: {p.error}" if p.error else what
    expired = [p for p in parts if p.state is PartState.EXPIRED]
    if expired and not any(s in (PartState.QUEUED, PartState.SENDING) for s in states):
        p = expired[0]
        what = "expired" if len(parts) == 1 else f"part {p.seq} of {p.total} expired"
        return MessageState.EXPIRED, f"{what} before it could be sent"
    if all(s is PartState.DELIVERED for s in states):
        return MessageState.DELIVERED, ""
    if any(s in (PartState.QUEUED, PartState.SENDING) for s in states):
        if all(s is PartState.QUEUED for s in states):
            return MessageState.QUEUED, ""
        return MessageState.SENDING, ""
    unknown = [p for p in parts if p.state is PartState.UNKNOWN]
    if unknown:
        p = unknown[0]
        what = "" if len(parts) == 1 else f"part {p.seq} of {p.total}: "
        return MessageState.UNKNOWN, f"{what}{p.error or 'unknown whether it was sent'}"
    return MessageState.SENT, ""


# Opt-out: the whole message is one of these words, whatever the case, with spaces and
# punctuation around it ("Stop.", " СТОП! "); "stop sending me offers" is a reply, not an
# opt-out (a false opt-out silently loses a customer, a missed one is answered by a person).
OPT_OUT_WORDS = frozenset({"stop", "стоп", "отписка", "stopp", "unsubscribe", "отписаться"})
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")


def opt_out_keyword(text: str) -> str | None:
    """The opt-out keyword ``text`` consists of, or None."""
    word = unicodedata.normalize("NFKC", text or "").strip()
    if len(word) > 40:
        return None
    word = _EDGE.sub("", word).casefold()
    return word if word in OPT_OUT_WORDS else None


def backoff(attempts: int, base: float = 30.0, cap: float = 1800.0) -> float:
    """Seconds before retry number ``attempts`` (1-based) of a part the network refused."""
    return min(cap, base * 2 ** max(0, attempts - 1))
