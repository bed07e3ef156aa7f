"""REGISTER client: digest challenges, refresh, backoff, clear errors, unregister (asyncio).

``Registration(endpoint, registrar=..., user=..., password=...)``; ``await reg.start()`` runs it
in a task owned by the object until ``await reg.stop()`` (which unregisters). Every change of
:class:`RegistrationStatus` goes to the ``on_change`` callbacks and to ``reg.changes()``
iterators, for the line to turn into its ``LineStatus``.

Rules, each with the reason written into the status:

* 401/407: answered once per challenge. A second challenge of the same realm after we
  answered, not ``stale=true``, is **"wrong user or password"** — no loop; a stale nonce is
  answered again (at most :data:`MAX_CHALLENGES` per attempt).
* 403: **"registrar refused (403 Forbidden)"**. Both are "refused": retried only after
  ``refused_retry`` seconds (default 10 minutes; ``None``: never), not in a storm — a PBX
  bans an address that keeps sending a wrong password.
* 423 Interval Too Brief: retried at once with its Min-Expires. 503/480 with Retry-After:
  that delay. Other final errors: retried with backoff.
* 2xx: registered for the expires granted for our Contact (its ``expires`` param, else the
  Expires header, else what we asked), refreshed at ``refresh_fraction`` (½) of it.
* No answer (timer F), a refused/reset connection, an ICMP error: "registrar unreachable",
  retried with exponential backoff and jitter (``backoff_min`` doubling to ``backoff_max``);
  on TCP/TLS a lost connection to the registrar triggers a new REGISTER at once.
* A new attempt starts with a fresh REGISTER (same Call-ID, next CSeq); credentials are never
  cached across attempts, so a registrar that changes its nonce is never taken for a refusal.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from sip.address import NameAddr, SipParseError, SipUri
from sip.digest import DigestClient
from sip.endpoint import SipEndpoint, SipError, SipTimeout, SipTransportError
from sip.message import Request, Response, new_call_id, new_tag
from sip.transport import Peer

log = logging.getLogger(__name__)

MAX_CHALLENGES = 3
UNREGISTER_TIMEOUT = 3.0


class RegState(enum.StrEnum):
    IDLE = "idle"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"  # temporary: retrying with backoff
    REFUSED = "refused"  # wrong user or password, 403: waits refused_retry
    STOPPED = "stopped"


class RegProblem(enum.StrEnum):
    NONE = ""
    WRONG_CREDENTIALS = "wrong-credentials"
    FORBIDDEN = "forbidden"
    UNREACHABLE = "unreachable"
    REJECTED = "rejected"  # another final error response
    UNSUPPORTED_AUTH = "unsupported-auth"  # a challenge we cannot answer (auth-int only…)


@dataclass(frozen=True, slots=True)
class RegistrationStatus:
    state: RegState
    reason: str = ""  # a sentence for the admin; never contains the password
    problem: RegProblem = RegProblem.NONE
    status_code: int | None = None
    expires: int | None = None  # granted, while registered
    retry_in: float | None = None  # seconds until the next attempt, if one is planned
    at: float = 0.0  # time.time() of the change

    @property
    def ok(self) -> bool:
        return self.state is RegState.REGISTERED


class Registration:
    def __init__(
        self,
        endpoint: SipEndpoint,
        *,
        registrar: SipUri | str,
        user: str,
        password: str,
        domain: str | None = None,
        auth_user: str | None = None,
        display: str | None = None,
        expires: int = 300,
        dest: Peer | None = None,
        refresh_fraction: float = 0.5,
        backoff_min: float = 1.0,
        backoff_max: float = 60.0,
        refused_retry: float | None = 600.0,
    ) -> None:
        self.endpoint = endpoint
        self.registrar = registrar if isinstance(registrar, SipUri) else SipUri.parse(registrar)
        self.user = user
        self.domain = domain or self.registrar.host
        self.display = display
        self.expires = expires
        self.dest = dest
        self.refresh_fraction = refresh_fraction
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.refused_retry = refused_retry
        self._digest = DigestClient(auth_user or user, password)
        self._call_id = new_call_id()
        self._from_tag = new_tag()
        self._cseq = 0
        self._status = RegistrationStatus(RegState.IDLE, at=time.time())
        self._callbacks: list[Callable[[RegistrationStatus], None]] = []
        self._queues: list[asyncio.Queue[RegistrationStatus]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._peer: Peer | None = None
        self._failures = 0
        self._unanswerable = False
        self._sent_contact: SipUri | None = None  # the Contact of our last REGISTER
        self.attempts = 0  # REGISTER attempts made (a refresh counts as one)

    # --- status ------------------------------------------------------------------------------

    @property
    def status(self) -> RegistrationStatus:
        return self._status

    def on_change(self, callback: Callable[[RegistrationStatus], None]) -> None:
        self._callbacks.append(callback)

    async def changes(self) -> AsyncIterator[RegistrationStatus]:
        """Every status from now on (the current one first); ends after STOPPED."""
        queue: asyncio.Queue[RegistrationStatus] = asyncio.Queue(maxsize=256)
        self._queues.append(queue)
        queue.put_nowait(self._status)
        try:
            while True:
                status = await queue.get()
                yield status
                if status.state is RegState.STOPPED:
                    return
        finally:
            self._queues.remove(queue)

    def _set(self, status: RegistrationStatus) -> None:
        self._status = status
        log.info("registration %s@%s: %s %s", self.user, self.domain, status.state, status.reason)
        for cb in list(self._callbacks):
            try:
                cb(status)
            except Exception:
                log.exception("registration callback failed")
        for q in self._queues:
            if q.full():  # a consumer that stopped reading: drop its oldest, keep the newest
                q.get_nowait()
            q.put_nowait(status)

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self.endpoint.on_lost(self._on_lost)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, *, unregister: bool = True) -> None:
        task, self._task = self._task, None
        self.endpoint.off_lost(self._on_lost)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if unregister and self._status.state is RegState.REGISTERED:
            try:
                async with asyncio.timeout(UNREGISTER_TIMEOUT):
                    await self._attempt(0)
            except (TimeoutError, SipError, SipParseError) as exc:
                log.info("unregister of %s failed: %s", self.user, exc)
        self._set(RegistrationStatus(RegState.STOPPED, "stopped", at=time.time()))

    async def register_once(self) -> RegistrationStatus:
        """One attempt with challenge handling and no retry (the admin page's live check)."""
        self._set(RegistrationStatus(RegState.REGISTERING, "registering", at=time.time()))
        status, _ = await self._try(self.expires)
        self._set(status)
        return status

    def _on_lost(self, peer: Peer, reason: str) -> None:
        if peer == self._peer and self._status.state is RegState.REGISTERED:
            log.info("connection to registrar lost (%s): registering again", reason)
            self._wake.set()

    async def _run(self) -> None:
        while True:
            if self._status.state is not RegState.REGISTERED:
                self._set(RegistrationStatus(RegState.REGISTERING, "registering", at=time.time()))
            try:
                status, delay = await self._try(self.expires)
            except Exception:  # a bug must show as a failure being retried, not a dead task
                log.exception("registration of %s failed", self.user)
                delay = self._backoff()
                status = RegistrationStatus(
                    RegState.FAILED,
                    "registration failed (internal error, see the log)",
                    RegProblem.REJECTED,
                    retry_in=delay,
                    at=time.time(),
                )
            self._set(status)
            if delay is None:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # --- one attempt -------------------------------------------------------------------------

    def _backoff(self) -> float:
        self._failures += 1
        base = min(self.backoff_max, self.backoff_min * 2 ** (self._failures - 1))
        return base * random.uniform(0.8, 1.0)

    async def _try(self, expires: int) -> tuple[RegistrationStatus, float | None]:
        """Register (or unregister with 0); the status and the delay before the next try."""
        now = time.time()
        try:
            resp = await self._attempt(expires)
        except SipTimeout:
            delay = self._backoff()
            return RegistrationStatus(
                RegState.FAILED,
                "registrar unreachable (no answer)",
                RegProblem.UNREACHABLE,
                retry_in=delay,
                at=now,
            ), delay
        except (SipTransportError, OSError) as exc:
            delay = self._backoff()
            return RegistrationStatus(
                RegState.FAILED,
                f"registrar unreachable ({exc})",
                RegProblem.UNREACHABLE,
                retry_in=delay,
                at=now,
            ), delay
        except ValueError as exc:  # the settings cannot make a REGISTER (a line break in them)
            return RegistrationStatus(
                RegState.REFUSED,
                f"cannot send REGISTER: {exc}",
                RegProblem.REJECTED,
                retry_in=self.refused_retry,
                at=now,
            ), self.refused_retry
        code = resp.status
        if 200 <= code < 300:
            self._failures = 0
            granted = self._granted(resp, expires)
            delay = max(0.5, granted * self.refresh_fraction)
            return RegistrationStatus(
                RegState.REGISTERED,
                f"registered for {granted} s",
                status_code=code,
                expires=granted,
                retry_in=delay,
                at=now,
            ), delay
        if code in (401, 407) and self._unanswerable:
            return RegistrationStatus(
                RegState.REFUSED,
                "registrar asks for an authentication we do not support",
                RegProblem.UNSUPPORTED_AUTH,
                status_code=code,
                retry_in=self.refused_retry,
                at=now,
            ), self.refused_retry
        if code in (401, 407):
            return RegistrationStatus(
                RegState.REFUSED,
                "wrong user or password",
                RegProblem.WRONG_CREDENTIALS,
                status_code=code,
                retry_in=self.refused_retry,
                at=now,
            ), self.refused_retry
        if code == 403:
            return RegistrationStatus(
                RegState.REFUSED,
                f"registrar refused ({code} {resp.reason or 'Forbidden'})",
                RegProblem.FORBIDDEN,
                status_code=code,
                retry_in=self.refused_retry,
                at=now,
            ), self.refused_retry
        delay = self._retry_after(resp) or self._backoff()
        return RegistrationStatus(
            RegState.FAILED,
            f"registrar answered {code} {resp.reason}".strip(),
            RegProblem.REJECTED,
            status_code=code,
            retry_in=delay,
            at=now,
        ), delay

    @staticmethod
    def _retry_after(resp: Response) -> float | None:
        value = (resp.headers.get("Retry-After") or "").split(";")[0].strip()
        if value.isdigit() and resp.status in (480, 486, 500, 503, 600, 603):
            return float(min(int(value), 3600))
        return None

    def _build(self, expires: int) -> Request:
        self._cseq += 1
        aor = SipUri("sip", self.user, self.domain)
        who = NameAddr(aor, self.display)
        self._sent_contact = self.endpoint.contact(self.user)
        contact = NameAddr(self._sent_contact, params={"expires": str(expires)})
        req = self.endpoint.new_request(
            "REGISTER",
            self.registrar,
            NameAddr(aor, self.display, {"tag": self._from_tag}),
            who,
            call_id=self._call_id,
            cseq=self._cseq,
            headers=[("Expires", str(expires))],
        )
        req.headers.set("Contact", str(contact))
        return req

    async def _send(self, req: Request) -> Response:
        if self._peer is None or self.dest is None:
            self._peer = self.dest or await self.endpoint.resolve(req)
        return await self.endpoint.request(req, self._peer)

    async def _attempt(self, expires: int) -> Response:
        """REGISTER, answering up to MAX_CHALLENGES challenges; returns the final response
        (a 401/407 returned means the credentials were refused)."""
        self.attempts += 1
        self._unanswerable = False
        self._digest.forget()
        resp = await self._send(self._build(expires))
        brief_retried = False
        for _ in range(MAX_CHALLENGES + 1):
            if resp.status == 423 and not brief_retried and expires:
                # Interval Too Brief: ask again, once, for what the registrar wants
                least = (resp.headers.get("Min-Expires") or "").strip()
                if not least.isdigit() or int(least) <= expires:
                    return resp
                expires = self.expires = min(int(least), 86400)
                brief_retried = True
                req = self._build(expires)
                self._digest.forget()
                resp = await self._send(req)
                continue
            if resp.status not in (401, 407) or self._digest.is_rejection(resp):
                return resp
            req = self._build(expires)
            if not self._digest.authorize(req, resp):
                self._unanswerable = True
                return resp
            resp = await self._send(req)
        return resp

    def _granted(self, resp: Response, asked: int) -> int:
        # the Contact we sent, not endpoint.contact(): this very response may have taught the
        # endpoint a public address (received/rport) that the registered binding lacks
        ours = self._sent_contact or self.endpoint.contact(self.user)
        try:
            for c in resp.contacts:
                same = (c.uri.user, c.uri.host, c.uri.port) == (ours.user, ours.host, ours.port)
                value = c.params.get("expires")
                if same and value and value.isdigit():
                    return int(value)
        except SipParseError:
            pass
        value = (resp.headers.get("Expires") or "").strip()
        if value.isdigit():
            return int(value)
        return asked
