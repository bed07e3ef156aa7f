"""Dialog subscriptions (RFC 6665 + RFC 4235) for the extensions a SIP line watches (asyncio).

One :class:`Subscription` per extension: SUBSCRIBE ``Event: dialog``, refreshed in its dialog
before it expires (at 80 %), rebuilt from scratch when a refresh gets 481 or the notifier
ends it, retried with backoff when the PBX does not answer. A refusal (404, 480, 403) or a
``terminated;reason=noresource|rejected`` means the extension has no phone to watch: it shows
as offline, not free, and is tried again later. :meth:`DialogWatcher.rebuild` starts every
subscription again (the line calls it when the PBX came back: it lost them all).

NOTIFY bodies are parsed by :mod:`sip.dialog_info`. A storm is bounded per subscription by a
token bucket: a NOTIFY over the rate is answered 200 (an error would end the subscription at
some notifiers) but its body is not read; the subscription is refreshed once the storm
passes, which makes the notifier send the full state again. The same refresh is asked for when
a partial dialog-info document shows a NOTIFY was lost (RFC 4235 4.1): the tracker does not
apply changes to state it no longer knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sip.address import SipParseError
from sip.dialog import Dialog, DialogError
from sip.dialog_info import DialogChange, DialogInfoError, DialogTracker, Presence, parse
from sip.endpoint import IncomingRequest, SipError
from sip.message import Request, Response

log = logging.getLogger(__name__)

OFFLINE_STATUSES = frozenset({403, 404, 480, 410, 604})
OFFLINE_REASONS = frozenset({"noresource", "rejected"})
STORM_CALM = 1.0  # seconds without a skipped NOTIFY before the refresh
FULL_RETRY = 5.0  # seconds before the full state is asked for again (a notifier that ignores it)


@dataclass
class Bucket:
    rate: float  # tokens per second
    burst: float
    tokens: float = 0.0
    at: float = 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass
class Subscription:
    extension: str
    tracker: DialogTracker = field(default_factory=DialogTracker)
    dialog: Dialog | None = None
    call_id: str = ""
    from_tag: str = ""
    expires: int = 600
    task: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    renew: bool = False  # refresh now (after a storm, a refused one)
    fresh: bool = True  # start a new subscription (not a refresh)
    bucket: Bucket | None = None
    dropped: int = 0
    calm_at: float = 0.0  # the storm counts as over at this time
    full_asked_at: float = float("-inf")  # when a refresh last asked for the full state
    last_error: str = ""


# (a builder of the request, given its CSeq) -> (the request last sent, its final response),
# challenges answered
Send = Callable[[Callable[[int], Request]], Awaitable[tuple[Request, Response]]]
OnChanges = Callable[[str, list[DialogChange]], None]
OnPresence = Callable[[str, Presence], None]


def in_dialog(incoming: IncomingRequest, dialog: Dialog | None, local_tag: str) -> bool:
    """Is this in-dialog request (NOTIFY, BYE) really of our dialog? A Call-ID alone is no
    proof: the To tag must be ours and, once the dialog is known, the From tag the peer's
    (a stranger's guess is answered 481 and dropped). True: answered 200, act on it. A CSeq
    out of order is still taken: UDP reorders a burst of NOTIFYs, a 500 would end the
    subscription at the notifier, and dialog-info's version orders the bodies anyway."""
    req = incoming.request
    try:
        to_tag = req.to.tag
    except SipParseError:
        to_tag = None
    if dialog is not None:
        if not dialog.matches(req):
            incoming.respond(481)
            return False
        with contextlib.suppress(DialogError):
            dialog.receive_request(req)
    elif to_tag != local_tag:
        incoming.respond(481)
        return False
    incoming.respond(200)
    return True


class DialogWatcher:
    def __init__(self, extensions: tuple[str, ...], *, new_subscribe: Callable[[str, str, str, int],
                 Request], send: Send, on_changes: OnChanges, on_presence: OnPresence,
                 clock: Callable[[], float], contact: Callable[[], str],
                 expires: int = 600, retry_max: float = 60.0,
                 notify_rate: float = 20.0, notify_burst: float = 50.0) -> None:
        self._new_subscribe = new_subscribe  # (extension, call_id, from_tag, cseq)
        self._send = send
        self._on_changes = on_changes
        self._on_presence = on_presence
        self._clock = clock
        self._contact = contact  # our Contact header value (a refresh carries it too)
        self.retry_max = retry_max
        self.subs = {ext: Subscription(ext, expires=expires,
                                       bucket=Bucket(notify_rate, notify_burst, notify_burst))
                     for ext in extensions}
        self._by_call_id: dict[str, Subscription] = {}
        self.running = False
        # Set while every extension has a subscription the PBX accepted (or refused: offline).
        self.established = asyncio.Event()
        self._settled: set[str] = set()

    def presence(self) -> dict[str, str]:
        return {ext: sub.tracker.presence().value for ext, sub in self.subs.items()}

    def start(self) -> None:
        self.running = True
        for sub in self.subs.values():
            sub.task = asyncio.create_task(self._keep(sub), name=f"sip-watch-{sub.extension}")

    async def stop(self) -> None:
        self.running = False
        tasks = [s.task for s in self.subs.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def rebuild(self) -> None:
        """The PBX lost our subscriptions (it restarted, or the line was down): new ones now."""
        self.established.clear()
        self._settled.clear()
        for sub in self.subs.values():
            sub.fresh = True
            sub.wake.set()

    async def _keep(self, sub: Subscription) -> None:
        delay = 1.0
        while True:
            sub.wake.clear()
            try:
                wait = await self._subscribe(sub)
                delay = 1.0
            except (SipError, OSError) as exc:
                sub.last_error = f"no answer from the PBX ({exc})"
                sub.fresh = True
                wait = delay * random.uniform(0.8, 1.2)
                delay = min(delay * 2, self.retry_max)
                log.info("SIP watch %s: %s; again in %.0f s", sub.extension, sub.last_error,
                         wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), wait)

    async def _subscribe(self, sub: Subscription) -> float:
        """One SUBSCRIBE (new or refresh); returns how long to wait before the next."""
        sub.renew = False
        if sub.fresh or sub.dialog is None:
            from sip.message import new_call_id, new_tag

            old = sub.call_id
            sub.call_id, sub.from_tag, sub.dialog = new_call_id(), new_tag(), None
            sub.tracker.new_subscription()
            self._by_call_id.pop(old, None)
            self._by_call_id[sub.call_id] = sub
            sub.fresh = False

            def build(cseq: int) -> Request:
                return self._new_subscribe(sub.extension, sub.call_id, sub.from_tag, cseq)
            sent, response = await self._send(build)
            if 200 <= response.status < 300:
                with contextlib.suppress(DialogError):
                    sub.dialog = Dialog.as_uac(sent, response)
        else:
            dialog = sub.dialog
            sub.tracker.refreshing()

            def build(_cseq: int) -> Request:
                return dialog.new_request("SUBSCRIBE", headers=[
                    ("Event", "dialog"), ("Accept", "application/dialog-info+xml"),
                    ("Contact", self._contact()), ("Expires", str(sub.expires))])
            _, response = await self._send(build)
            if response.status == 481:
                sub.fresh = True
                return 0.0
        if 200 <= response.status < 300:
            granted = _expires(response, sub.expires)
            sub.last_error = ""
            if sub.tracker.offline:  # accepted: the phone is back (its dialogs follow)
                sub.tracker.offline = False
                self._on_presence(sub.extension, sub.tracker.presence())
            self._settle(sub)
            return max(1.0, granted * 0.8)
        sub.last_error = f"SUBSCRIBE refused: {response.status} {response.reason}"[:200]
        sub.fresh = True
        if response.status in OFFLINE_STATUSES:
            self._offline(sub)
            self._settle(sub)
        log.info("SIP watch %s: %s", sub.extension, sub.last_error)
        return min(self.retry_max, 30.0)

    def _after_storm(self, sub: Subscription) -> None:
        """Refresh (the notifier then sends its full state) once no NOTIFY was skipped for
        ``STORM_CALM`` seconds."""
        left = sub.calm_at - self._clock()
        if left > 0:
            asyncio.get_running_loop().call_later(left, self._after_storm, sub)
            return
        sub.wake.set()

    def _settle(self, sub: Subscription) -> None:
        self._settled.add(sub.extension)
        if len(self._settled) == len(self.subs):
            self.established.set()

    def _offline(self, sub: Subscription) -> None:
        was = sub.tracker.presence()
        changes = sub.tracker.go_offline()
        if changes:
            self._on_changes(sub.extension, changes)
        if was is not Presence.OFFLINE:
            self._on_presence(sub.extension, Presence.OFFLINE)

    def notify(self, incoming: IncomingRequest) -> bool:
        """A NOTIFY of the dialog package: True if it was ours (answered here)."""
        req = incoming.request
        sub = self._by_call_id.get(req.call_id)
        if sub is None:
            return False
        if not in_dialog(incoming, sub.dialog, sub.from_tag):
            return True
        state = (req.headers.get("Subscription-State") or "").lower()
        if state.startswith("terminated"):
            reason = _param(state, "reason")
            sub.fresh = True
            if reason in OFFLINE_REASONS:
                self._offline(sub)
            else:
                sub.wake.set()
            return True
        assert sub.bucket is not None
        if not sub.bucket.take(self._clock()):
            sub.dropped += 1
            sub.calm_at = self._clock() + STORM_CALM
            if not sub.renew:
                sub.renew = True
                asyncio.get_running_loop().call_later(STORM_CALM, self._after_storm, sub)
                log.warning("SIP watch %s: NOTIFY storm, bodies skipped until a refresh",
                            sub.extension)
            return True
        if not req.body:
            return True
        try:
            info = parse(req.body)
        except DialogInfoError as exc:
            log.warning("SIP watch %s: %s", sub.extension, exc)
            return True
        was = sub.tracker.presence()
        changes = sub.tracker.apply(info)
        if changes:
            self._on_changes(sub.extension, changes)
        now = sub.tracker.presence()
        if now is not was:
            self._on_presence(sub.extension, now)
        if sub.tracker.needs_full:
            self._ask_full(sub)
        return True

    def _ask_full(self, sub: Subscription) -> None:
        """Refresh the subscription: the notifier answers with a NOTIFY of its full state."""
        now = self._clock()
        if sub.renew or now < sub.full_asked_at + FULL_RETRY:
            return  # a refresh is on its way
        sub.full_asked_at = now
        sub.renew = True
        log.info("SIP watch %s: a dialog-info NOTIFY was lost; refreshing for the full state",
                 sub.extension)
        sub.wake.set()


def _param(value: str, name: str) -> str:
    for part in value.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip() == name:
            return val.strip()
    return ""


def _expires(response: Response, asked: int) -> int:
    value = response.headers.get("Expires") or ""
    return int(value) if value.strip().isdigit() else asked
