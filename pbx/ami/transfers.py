"""Who an attended transfer went to, when Asterisk's ``AttendedTransfer`` does not say.

On Asterisk 22.10.1 the event often comes without its ``TransferTarget*`` fields: the target had
already left the consultation bridge when the bridges were merged. The PBX bridged the caller to
the target all the same, so the target is found from what is known, most certain first:

1. the leg that joined the bridge the transfer ended in (``DestBridgeUniqueid``, else the
   caller's original bridge), other than the caller and the transferer: a fact from the PBX;
2. the extension the product itself asked for in its ``Atxfer`` of this call (noted by the
   adapter before sending it, see :class:`AtxferNotes`);
3. the newest ``Local/<ext>@…;1`` leg of the call to another extension than the transferer's:
   Atxfer dials the target through such a Local channel.

Pure code, no I/O; used by the correlator.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar


class TransferLeg(Protocol):
    """The parts of a correlator leg this module reads."""

    uid: str
    channel: str
    ext: str | None
    local: bool
    bridge: str | None


L = TypeVar("L", bound=TransferLeg)


@dataclass(frozen=True, slots=True)
class AtxferNote:
    from_ext: str | None
    to_ext: str
    at: float


class AtxferNotes:
    """The Atxfers the product sent, per call, until Asterisk reports the transfer. Bounded: a
    note expires after ``ttl`` seconds (a consultation nobody completed), and at most ``limit``
    are kept (the oldest go first)."""

    def __init__(self, ttl: float = 3600.0, limit: int = 1000) -> None:
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

    def take(self, call_key: str, now: float) -> AtxferNote | None:
        note = self._notes.pop(call_key, None)
        if note is None or now - note.at > self.ttl:
            return None
        return note

    def forget(self, call_key: str) -> None:
        self._notes.pop(call_key, None)

    def prune(self, now: float) -> None:
        for key in [k for k, n in self._notes.items() if now - n.at > self.ttl]:
            del self._notes[key]


def unnamed_target(
    h: dict[str, str],
    legs: Iterable[L],
    call_legs: Iterable[L],
    note: AtxferNote | None,
    transferer_ext: str | None,
) -> L | str | None:
    """The target of an AttendedTransfer without TransferTarget*: its leg when one is known
    (``legs``: every tracked leg, ``call_legs``: the caller's call's), else the extension the
    product asked for, else None."""
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
        return leg
    if note is not None:
        return note.to_ext
    return local_target(call_legs, transferer_ext)


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
