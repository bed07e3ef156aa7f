"""Dialog-info bodies (RFC 4235) and the presence they mean for one extension. Pure code.

A NOTIFY of the ``dialog`` event package carries ``application/dialog-info+xml``: the dialogs of
one entity (an extension's AOR), either all of them (``state="full"``) or only those that
changed (``state="partial"``), with a ``version`` that rises by one per NOTIFY of the
subscription. :class:`DialogTracker` keeps one entity's dialogs: a full document replaces
them, a partial one updates them, a terminated dialog is dropped, and a version that does not
rise (a NOTIFY overtaken by a later one, or replayed) is ignored. Versions count per
subscription (RFC 4235 4.1): :meth:`DialogTracker.new_subscription` starts them again. A
partial document after a version gap (a NOTIFY lost) is not applied on state we no longer
know: :attr:`DialogTracker.needs_full` asks the watcher for a refresh, whose NOTIFY carries the
full state. So does a full document with an old version (overtaken, or a notifier that restarted
its count in the same subscription); the full state a refresh brings is taken whatever its
version, and a refresh answered with partial state is taken as the newest word.

A SIP dialog only moves forward (RFC 4235 3.7.1: trying, proceeding, early, confirmed,
terminated), yet a notifier's documents can say it went back: kamailio's pua_dialoginfo
PUBLISHes each state from the worker that handled the phone's response, so when a phone
answers at once its 180 and 200 race and "early" may be published after "confirmed" -- the
presence server then NOTIFYs, in order and with rising versions, confirmed then early, and
keeps saying early until the call ends (seen in the kamailio observer test, about 1 run in 8).
So a dialog that names its SIP dialog (a ``call-id``) never goes back to an earlier state, and
once said to be terminated never comes back. Asterisk names no call-id and reuses one dialog id (the
extension) for every call: its states are the extension's, and go any way.

The XML is a stranger's: the body is bounded (``MAX_BODY``), any DTD is refused before parsing
(no entity can be declared, so none can expand -- what defusedxml does, without the
dependency), at most ``MAX_DIALOGS`` dialogs are read, and every text is cut to ``MAX_TEXT``.
"""

from __future__ import annotations

import enum
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from sip.identity import parse_name_addr

MAX_BODY = 64 * 1024
MAX_DIALOGS = 64
MAX_TEXT = 256
MAX_ENDED = 256  # terminated SIP dialogs remembered per extension (a stale copy stays dead)
NS = "urn:ietf:params:xml:ns:dialog-info"


class DialogInfoError(ValueError):
    """The body is not a dialog-info document we accept (the reason says why)."""


class DialogState(enum.StrEnum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Presence(enum.StrEnum):
    FREE = "free"
    RINGING = "ringing"
    ON_CALL = "busy"  # the console's word (callcenter.calls.registry.presence)
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Dialog:
    id: str
    state: DialogState
    direction: str = ""  # "initiator" (the extension called out) | "recipient" | ""
    call_id: str = ""
    local_identity: str = ""  # URI
    local_display: str = ""
    remote_identity: str = ""
    remote_display: str = ""
    event: str = ""  # the state's event attribute ("cancelled", "rejected", "replaced", ...)

    @property
    def remote_user(self) -> str:
        return parse_name_addr(f"<{self.remote_identity}>").user if self.remote_identity else ""


@dataclass(frozen=True, slots=True)
class DialogInfo:
    entity: str
    version: int
    full: bool
    dialogs: tuple[Dialog, ...]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: str | None) -> str:
    # a stranger's display name: no line breaks or terminal escapes into logs and screens
    return _CONTROL.sub("", (value or "")[:MAX_TEXT * 4]).strip()[:MAX_TEXT]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(elem: ET.Element, name: str) -> ET.Element | None:
    for child in elem:
        if _local(child.tag) == name:
            return child
    return None


def _identity(elem: ET.Element | None) -> tuple[str, str]:
    if elem is None:
        return "", ""
    ident = _child(elem, "identity")
    if ident is not None and _text(ident.text):
        return _text(ident.text), _text(ident.get("display"))
    target = _child(elem, "target")  # some PBXs give only the target
    if target is not None:
        return _text(target.get("uri")), ""
    return "", ""


def parse(body: bytes) -> DialogInfo:
    if len(body) > MAX_BODY:
        raise DialogInfoError(f"dialog-info body of {len(body)} bytes (at most {MAX_BODY})")
    if b"<!" in body:  # DOCTYPE, ENTITY, CDATA: none belongs in dialog-info
        raise DialogInfoError("dialog-info body with a DTD or markup declaration refused")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise DialogInfoError(f"dialog-info body is not well-formed XML: {exc}") from None
    if _local(root.tag) != "dialog-info":
        raise DialogInfoError(f"not a dialog-info document (root {_local(root.tag)[:40]!r})")
    try:
        version = int(root.get("version", ""))
    except ValueError:
        raise DialogInfoError("dialog-info without a numeric version") from None
    state = root.get("state", "")
    if state not in ("full", "partial"):
        raise DialogInfoError("dialog-info state must be full or partial")
    dialogs = []
    for elem in root:
        if _local(elem.tag) != "dialog":
            continue
        if len(dialogs) >= MAX_DIALOGS:
            break
        state_elem = _child(elem, "state")
        raw = _text(state_elem.text if state_elem is not None else "").lower()
        try:
            dstate = DialogState(raw)
        except ValueError:
            raise DialogInfoError(f"dialog state {raw[:40]!r} is not an RFC 4235 state"
                                  ) from None
        local, local_display = _identity(_child(elem, "local"))
        remote, remote_display = _identity(_child(elem, "remote"))
        dialogs.append(Dialog(
            id=_text(elem.get("id")), state=dstate, direction=_text(elem.get("direction")),
            call_id=_text(elem.get("call-id")), local_identity=local,
            local_display=local_display, remote_identity=remote,
            remote_display=remote_display,
            event=_text(state_elem.get("event")) if state_elem is not None else ""))
    return DialogInfo(_text(root.get("entity")), version, state == "full", tuple(dialogs))


@dataclass(frozen=True, slots=True)
class DialogChange:
    """What one NOTIFY changed for the entity: the dialogs it moved, in order."""

    before: Dialog | None
    after: Dialog  # TERMINATED when it ended (or vanished from a full document)


# RFC 4235 3.7.1: the order a dialog's states go through
_RANK = {DialogState.TRYING: 0, DialogState.PROCEEDING: 1, DialogState.EARLY: 2,
         DialogState.CONFIRMED: 3, DialogState.TERMINATED: 4}


@dataclass
class DialogTracker:
    """One extension's dialogs, fed the NOTIFY bodies of its subscription."""

    version: int = -1
    dialogs: dict[str, Dialog] = field(default_factory=dict)
    offline: bool = False
    # A partial document came after a gap: our state is not the notifier's until a full one.
    needs_full: bool = False
    stale: int = 0  # dialog states refused as going backwards (a count for diagnosis)
    # (dialog id, Call-ID) of SIP dialogs said to be terminated, the least recently named first
    _ended: dict[tuple[str, str], None] = field(default_factory=dict)
    # A refresh was sent in the subscription's dialog: the full state it brings is taken
    # whatever its version (a notifier that restarted its count numbers it from 0 again).
    _refreshed: bool = False

    def presence(self) -> Presence:
        if self.offline:
            return Presence.OFFLINE
        states = [(d.state, d.direction) for d in self.dialogs.values()]
        if any(s is DialogState.CONFIRMED for s, _ in states):
            return Presence.ON_CALL
        if any(d == "initiator" for _, d in states):
            return Presence.ON_CALL  # dialling out: not free for a transfer
        if states:
            return Presence.RINGING
        return Presence.FREE

    def apply(self, info: DialogInfo) -> list[DialogChange]:
        if info.version <= self.version and not (info.full and self._refreshed):
            if info.full:
                # overtaken, or a notifier that restarted its count in the same subscription
                # (back with its subscriptions persisted, not their versions): a refresh tells
                self.needs_full = True
            return []  # overtaken by a later NOTIFY, or replayed
        if info.full:
            self._refreshed = False
        gap = self.version < 0 or info.version != self.version + 1
        self.version = info.version
        if not info.full and self.needs_full and not gap and self._refreshed:
            # the refresh we sent for the full state was answered with a partial document:
            # this notifier gives no other, and refusing all would freeze the phone for good.
            # Its partial state is the newest word on the dialogs it names: taken.
            self.needs_full = self._refreshed = False
        if not info.full and (gap or self.needs_full):
            # RFC 4235 4.1: a NOTIFY was lost (or we never had the full state): a partial
            # document is a change to state we do not know. Ask for the full state instead.
            self.needs_full = True
            return []
        if info.full:
            self.needs_full = False
        self.offline = False
        changes: list[DialogChange] = []
        seen: set[str] = set()
        for dialog in info.dialogs:
            seen.add(dialog.id)
            before = self.dialogs.get(dialog.id)
            if self._backwards(before, dialog):
                self.stale += 1
                continue
            if dialog.state is DialogState.TERMINATED:
                self._end(dialog)
                if before is not None:
                    del self.dialogs[dialog.id]
                    changes.append(DialogChange(before, dialog))
                continue
            if before is None and not info.full and len(self.dialogs) >= MAX_DIALOGS:
                # partial documents add up (a full one is bounded by itself): past the bound
                # the notifier's word is not held -- its full state will replace ours
                self.needs_full = True
                continue
            if before is None or before.state is not dialog.state:
                changes.append(DialogChange(before, dialog))
            self.dialogs[dialog.id] = dialog
        if info.full:
            # Left out is not "terminated": the notifier stopped naming it, which says
            # nothing of its state -- it is dropped, not remembered as over.
            for gone in [d for key, d in self.dialogs.items() if key not in seen]:
                del self.dialogs[gone.id]
                changes.append(DialogChange(gone, _terminated(gone)))
        return changes

    def _backwards(self, before: Dialog | None, dialog: Dialog) -> bool:
        """Would this state take a SIP dialog back (a stale publication, see the module's
        doc)? Only dialogs with a Call-ID are held to the order: without one, the "dialog" is
        an extension's state (Asterisk)."""
        if not dialog.call_id:
            return False
        key = (dialog.id, dialog.call_id)
        if key in self._ended:
            # named again: keep it remembered as long as the notifier keeps its stale copy
            del self._ended[key]
            self._ended[key] = None
            return dialog.state is not DialogState.TERMINATED
        return (before is not None and before.call_id == dialog.call_id
                and _RANK[dialog.state] < _RANK[before.state])

    def _end(self, dialog: Dialog) -> None:
        if not dialog.call_id:
            return
        self._ended[(dialog.id, dialog.call_id)] = None
        while len(self._ended) > MAX_ENDED:
            del self._ended[next(iter(self._ended))]

    def refreshing(self) -> None:
        """The subscription is refreshed in its dialog: its NOTIFY carries the full state."""
        self._refreshed = True

    def new_subscription(self) -> None:
        """A new subscription: its NOTIFYs count versions from the start again."""
        self.version = -1
        self.needs_full = False
        self._refreshed = False

    def go_offline(self) -> list[DialogChange]:
        """The extension's phone is unregistered or its subscription was refused: its
        dialogs are over as far as we can tell."""
        changes = [DialogChange(d, _terminated(d)) for d in self.dialogs.values()]
        self.dialogs.clear()
        self.offline = True
        self.version = -1
        self.needs_full = False
        return changes


def _terminated(dialog: Dialog) -> Dialog:
    return Dialog(dialog.id, DialogState.TERMINATED, dialog.direction, dialog.call_id,
                  dialog.local_identity, dialog.local_display, dialog.remote_identity,
                  dialog.remote_display, "vanished")


def parse_sipfrag(body: bytes) -> tuple[int, str]:
    """A REFER's NOTIFY body (RFC 3420 ``message/sipfrag``): ``SIP/2.0 180 Ringing`` -> (180,
    "Ringing"). Raises :class:`ValueError` on anything else."""
    line = body[:512].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    parts = line.split(" ", 2)
    if len(parts) < 2 or parts[0].upper() != "SIP/2.0" or not (
            parts[1].isdigit() and len(parts[1]) == 3):
        raise ValueError(f"not a sipfrag status line: {line[:60]!r}")
    return int(parts[1]), (parts[2] if len(parts) > 2 else "")[:MAX_TEXT]
