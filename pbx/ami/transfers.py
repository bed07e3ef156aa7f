"""Who an attended transfer went to, when Asterisk's ``AttendedTransfer`` does not say.

On Asterisk 22.10.1 the event often comes without its ``TransferTarget*`` fields: the target had
already left the consultation bridge when the bridges were merged. The PBX bridged the caller to
the target all the same, so the target is found from what is known, most certain first:

1. the leg that joined the bridge the transfer ended in (``DestBridgeUniqueid``, else the
   caller's original bridge), other than the caller and the transferer: a fact from the PBX;
2. the extension the product itself asked for in its ``Atxfer`` of this call, by this
   transferer (noted by the adapter once the PBX accepted it, see :class:`AtxferNotes`);
3. the newest ``Local/<ext>@…;1`` leg of the call to another extension than the transferer's:
   Atxfer dials the target through such a Local channel.

The rule that found the target is returned with it (:class:`TargetRule`), for the log and the
tests: the traces must show which rule resolved them.

Pure code, no I/O; used by the correlator.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class TransferLeg(Protocol):
    """The parts of a correlator leg this module reads."""

    uid: str
    channel: str
    ext: str | None
    local: bool
    bridge: str | None


L = TypeVar("L", bound=TransferLeg)


class TargetRule(enum.StrEnum):
    BRIDGE = "bridge"  # 1: the leg that joined the caller's bridge
    ATXFER = "atxfer"  # 2: the extension of our own Atxfer
    LOCAL = "local"  # 3: the call's Local/<ext>@…;1 leg


@dataclass(frozen=True, slots=True)
class FoundTarget(Generic[L]):
    rule: TargetRule
    ext: str
    leg: L | None = None  # None when only the extension is known (rule 2)


@dataclass(frozen=True, slots=True)
class AtxferNote:
    from_ext: str | None
    to_ext: str
    at: float


class AtxferNotes:
    """The Atxfers the product sent, per call, until they are over: Asterisk reported the
    transfer (:meth:`take`), the consultation ended without one (:meth:`forget` with the
    target's extension, once no leg towards it is left), or the call ended (:meth:`forget`).
    Bounded all the same: a note expires after ``ttl`` seconds, and at most ``limit`` are kept
    (the oldest go first)."""

    def __init__(self, ttl: float = 300.0, limit: int = 1000) -> None:
        self.ttl = ttl
        self.limit = limit
        self._notes: dict[str, AtxferNote] = {}

    def __len__(self) -> int:
        return len(self._notes)

    def note(self, call_key: str, from_ext: str | None, to_ext: str, at: float) -> None:
        self._notes.pop(call_key, None)  # re-inserted last: the newest request wins
        self._notes[call_key] = AtxferNote(from_ext, to_ext, at)
        self.prune(at)
        while len(self._notes) > self.limit:
            del self._notes[next(iter(self._notes))]

    def take(self, call_key: str, transferer_ext: str | None, now: float) -> AtxferNote | None:
        """The note of ``call_key`` if it is fresh and ``transferer_ext`` asked for it; used
        once. Another extension's transfer of the call (its phone's own) leaves it alone."""
        note = self._notes.get(call_key)
        if note is None:
            return None
        if now - note.at > self.ttl:
            del self._notes[call_key]
            return None
        if note.from_ext is None or note.from_ext != transferer_ext:
            return None
        del self._notes[call_key]
        return note

    def forget(self, call_key: str, to_ext: str | None = None) -> None:
        """Drop the note of ``call_key`` (only if it asked for ``to_ext``, when given)."""
        note = self._notes.get(call_key)
        if note is not None and (to_ext is None or note.to_ext == to_ext):
            del self._notes[call_key]

    def prune(self, now: float) -> None:
        for key in [k for k, n in self._notes.items() if now - n.at > self.ttl]:
            del self._notes[key]


def unnamed_target(
    h: dict[str, str],
    legs: Iterable[L],
    call_legs: Iterable[L],
    note: AtxferNote | None,
    transferer_ext: str | None,
) -> FoundTarget[L] | None:
    """The target of an AttendedTransfer without TransferTarget*, and the rule that found it
    (``legs``: every tracked leg, ``call_legs``: the caller's call's; ``note``: our Atxfer of
    the call by this transferer, if any), or None."""
    exclude = {
        uid
        for uid in (
            h.get("TransfereeUniqueid"),
            h.get("OrigTransfererUniqueid"),
            h.get("SecondTransfererUniqueid"),
        )
        if uid
    }
    leg = bridge_target(h, legs, exclude)
    if leg is not None:
        return FoundTarget(TargetRule.BRIDGE, leg.ext or "", leg)
    if note is not None:
        return FoundTarget(TargetRule.ATXFER, note.to_ext)
    leg = local_target(call_legs, transferer_ext)
    if leg is not None:
        return FoundTarget(TargetRule.LOCAL, leg.ext or "", leg)
    return None


def bridge_target(h: dict[str, str], legs: Iterable[L], exclude: set[str]) -> L | None:
    """The leg that joined the bridge the transfer ended in (a real phone preferred over the
    Local half that brought it), excluding the caller's and the transferer's legs."""
    bridges = [b for b in (h.get("DestBridgeUniqueid"), h.get("OrigBridgeUniqueid")) if b]
    for bridge in bridges:
        found = [
            leg
            for leg in legs
            if leg.bridge == bridge and leg.uid not in exclude and leg.ext is not None
        ]
        if found:
            return next((leg for leg in found if not leg.local), found[-1])
    return None


def local_target(legs: Iterable[L], transferer_ext: str | None) -> L | None:
    """The newest ``Local/<ext>@…;1`` leg towards another extension than the transferer's."""
    found = None
    for leg in legs:
        if (
            leg.local
            and leg.channel.endswith(";1")
            and leg.ext is not None
            and leg.ext != transferer_ext
        ):
            found = leg
    return found
