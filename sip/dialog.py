"""Dialog state (RFC 3261 §12) and the requests built inside one (sans-I/O).

A dialog is made by a UAC from a 1xx-with-To-tag or 2xx to its INVITE/SUBSCRIBE/REFER
(:meth:`Dialog.as_uac`) or by a UAS from the request it accepts (:meth:`Dialog.as_uas`). It
holds the tags, both CSeq counters, the route set (Record-Route: reversed on the UAC side) and
the remote target (the peer's Contact, refreshed by target-refresh requests and responses).

:meth:`Dialog.new_request` builds BYE/REFER/NOTIFY/re-SUBSCRIBE/INFO with the next local CSeq,
Request-URI and Route per §12.2.1.1 (loose routing; a strict-routing first hop gets the RFC's
treatment). The caller's endpoint adds Via. :meth:`ack` builds the ACK of a 2xx (same CSeq
number as the INVITE, a new transaction). :meth:`respond` answers an in-dialog request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sip.address import NameAddr, SipParseError, SipUri
from sip.message import Headers, Request, Response

TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogError(Exception):
    """A request or response that does not belong to (or breaks) this dialog."""


@dataclass(slots=True)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr  # our From in requests we send
    remote_uri: NameAddr  # our To
    remote_target: SipUri
    route_set: list[NameAddr] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    secure: bool = False
    early: bool = False  # made from a 1xx: becomes confirmed on a 2xx

    @property
    def id(self) -> tuple[str, str, str]:
        return self.call_id, self.local_tag, self.remote_tag

    @classmethod
    def as_uac(cls, request: Request, response: Response) -> Dialog:
        """From our request and its 1xx/2xx (§12.1.2). The response must carry a To tag."""
        remote_tag = response.to.tag
        local_tag = request.from_.tag
        if not remote_tag or not local_tag:
            raise DialogError("a dialog needs both tags")
        contacts = response.contacts
        if not contacts:
            raise DialogError("response without Contact")
        local = request.from_
        local.params = {}
        remote = response.to
        remote.params = {}
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=local,
            remote_uri=remote,
            remote_target=contacts[0].uri,
            route_set=list(reversed(response.record_route)),
            local_seq=request.cseq.seq,
            secure=request.uri.scheme == "sips",
            early=response.status < 200,
        )

    @classmethod
    def as_uas(cls, request: Request, local_tag: str) -> Dialog:
        """From a request we accept with ``local_tag`` in our To (§12.1.1)."""
        remote_tag = request.from_.tag
        if not remote_tag:
            raise DialogError("request without From tag")
        contacts = request.contacts
        if not contacts:
            raise DialogError("request without Contact")
        local = request.to
        local.params = {}
        remote = request.from_
        remote.params = {}
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=remote_tag,
            local_uri=local,
            remote_uri=remote,
            remote_target=contacts[0].uri,
            route_set=request.record_route,
            local_seq=0,
            remote_seq=request.cseq.seq,
            secure=request.uri.scheme == "sips",
        )

    def matches(self, message: Request | Response, *, incoming_request: bool = True) -> bool:
        """Does ``message`` belong here? For a request we received, its From tag is the
        remote tag and its To tag ours; for a response to our request, the reverse."""
        try:
            frm, to = message.from_.tag, message.to.tag
        except SipParseError:
            return False
        if message.call_id != self.call_id:
            return False
        if incoming_request:
            return frm == self.remote_tag and to == self.local_tag
        return frm == self.local_tag and to == self.remote_tag

    def receive_request(self, request: Request) -> None:
        """Check the remote CSeq (§12.2.2) and refresh the target. Raises DialogError for an
        out-of-order request: answer it 500 and do not act on it."""
        seq = request.cseq.seq
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq <= self.remote_seq:
                raise DialogError("CSeq lower than the last one")
            self.remote_seq = seq
        if request.method in TARGET_REFRESH:
            contacts = request.contacts
            if contacts:
                self.remote_target = contacts[0].uri

    def receive_response(self, response: Response) -> None:
        """A response to a request we sent in this dialog: a 2xx to a target refresh moves
        the target; the first 2xx confirms an early dialog (and fixes its route set)."""
        if not 200 <= response.status < 300:
            return
        if response.cseq.method in TARGET_REFRESH and response.contacts:
            self.remote_target = response.contacts[0].uri
        if self.early and response.cseq.method == "INVITE":
            self.early = False
            self.route_set = list(reversed(response.record_route))

    def _base(self, method: str, seq: int, extra: Iterable[tuple[str, str]]) -> Request:
        uri = self.remote_target
        routes = [str(r) for r in self.route_set]
        if self.route_set and "lr" not in self.route_set[0].uri.params:
            # §12.2.1.1 strict router: it becomes the Request-URI, the target goes last
            uri = self.route_set[0].uri
            routes = [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]
        h = Headers()
        h.add("Max-Forwards", "70")
        h.add("From", f"{self.local_uri};tag={self.local_tag}")
        h.add("To", f"{self.remote_uri};tag={self.remote_tag}")
        h.add("Call-ID", self.call_id)
        h.add("CSeq", f"{seq} {method}")
        for r in routes:
            h.add("Route", r)
        for n, v in extra:
            h.add(n, v)
        return Request(method, SipUri.parse(str(uri)), h)

    def new_request(
        self, method: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> Request:
        """The next in-dialog request (BYE, REFER, NOTIFY, SUBSCRIBE, INFO…); no Via yet."""
        if method in ("ACK", "CANCEL"):
            raise ValueError(f"{method} is not built with a new CSeq; use ack() / cancel")
        self.local_seq += 1
        req = self._base(method, self.local_seq, headers)
        req.body = body
        return req

    def ack(self, response: Response, headers: Iterable[tuple[str, str]] = ()) -> Request:
        """The ACK of a 2xx to INVITE (§13.2.2.4): the INVITE's CSeq number, method ACK."""
        if response.cseq.method != "INVITE":
            raise DialogError("ACK is for INVITE only")
        self.receive_response(response)
        return self._base("ACK", response.cseq.seq, headers)

    def respond(
        self,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """Answer an in-dialog request we received (a NOTIFY's 200, a BYE's 200…)."""
        return Response.for_request(
            request, status, reason, to_tag=self.local_tag, headers=headers, body=body
        )
