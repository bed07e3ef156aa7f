"""RFC 3261 messages: a header list, requests and responses, parsing and printing (sans-I/O).

* :func:`parse_message` reads one message from a UDP datagram (or from the bytes the
  :class:`StreamFramer` cut out of a TCP/TLS stream). Anything wrong raises
  :class:`SipParseError` with a short reason; nothing else is raised, whatever the bytes.
* Limits: a message is at most :data:`MAX_MESSAGE` bytes, a header line :data:`MAX_LINE`,
  at most :data:`MAX_HEADERS` header fields — so a stranger's datagram costs bounded work.
* Header names are case-insensitive and compact forms (``i``, ``f``, ``v``…) are expanded; a
  message is printed with the long names. Non-UTF-8 bytes in the head are replaced (U+FFFD).
* On UDP a missing Content-Length means "the rest of the datagram"; one larger than the body
  means the datagram was cut short (error); extra bytes after it are dropped (RFC 3261 §18.3).
  On a stream a missing Content-Length is an error: the framing cannot be trusted any more.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sip.address import CSeq, NameAddr, SipParseError, SipUri, Via, split_top

__all__ = [
    "MAX_HEADERS",
    "MAX_LINE",
    "MAX_MESSAGE",
    "Headers",
    "Message",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "reason_phrase",
]

MAX_MESSAGE = 64 * 1024
MAX_LINE = 8 * 1024
MAX_HEADERS = 256
BRANCH_MAGIC = "z9hG4bK"
MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")

COMPACT = {
    "i": "call-id", "f": "from", "t": "to", "v": "via", "m": "contact", "l": "content-length",
    "c": "content-type", "k": "supported", "e": "content-encoding", "o": "event",
    "u": "allow-events", "r": "refer-to", "b": "referred-by", "s": "subject",
}  # fmt: skip
_CANONICAL = {
    n.lower(): n
    for n in (
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Content-Length", "Content-Type",
        "Max-Forwards", "Route", "Record-Route", "Expires", "Min-Expires", "User-Agent",
        "Server", "Allow", "Supported", "Require", "Event", "Allow-Events", "Refer-To",
        "Referred-By", "Subscription-State", "WWW-Authenticate", "Proxy-Authenticate",
        "Authorization", "Proxy-Authorization", "Content-Encoding", "Subject", "Accept",
        "Reason", "P-Asserted-Identity", "Remote-Party-ID", "Privacy", "Diversion",
        "History-Info", "Retry-After", "Unsupported", "Warning", "Date", "Timestamp",
    )
}  # fmt: skip
# Response codes this package prints itself; anything else gets a generic phrase.
REASONS = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 183: "Session Progress",
    200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
    408: "Request Timeout", 413: "Request Entity Too Large", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 486: "Busy Here",
    487: "Request Terminated", 489: "Bad Event", 500: "Server Internal Error",
    501: "Not Implemented", 503: "Service Unavailable", 603: "Decline",
}  # fmt: skip


def reason_phrase(status: int) -> str:
    return REASONS.get(status) or {1: "Progress", 2: "OK", 3: "Redirect"}.get(
        status // 100, "Error"
    )


def header_key(name: str) -> str:
    low = name.strip().lower()
    return COMPACT.get(low, low)


def canonical_name(name: str) -> str:
    key = header_key(name)
    return _CANONICAL.get(key, name.strip())


def new_branch() -> str:
    return BRANCH_MAGIC + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


def new_call_id() -> str:
    return secrets.token_hex(12)


class Headers:
    """Ordered, case-insensitive, multi-valued header fields (one entry per header line)."""

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        # (printed name, value, lookup key): the key is computed once per line, not per lookup
        self._items: list[tuple[str, str, str]] = [_entry(n, v) for n, v in items]

    def get(self, name: str, default: str | None = None) -> str | None:
        key = header_key(name)
        for _, v, k in self._items:
            if k == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """The values of every ``name`` line, in order (one entry per line)."""
        key = header_key(name)
        return [v for _, v, k in self._items if k == key]

    def get_list(self, name: str) -> list[str]:
        """Every element of a comma-separated list header (Via, Contact, Route…) across lines."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(p.strip() for p in split_top(value, ",") if p.strip())
        return out

    def add(self, name: str, value: str) -> None:
        self._items.append(_entry(name, value))

    def prepend(self, name: str, value: str) -> None:
        self._items.insert(0, _entry(name, value))

    def set(self, name: str, value: str) -> None:
        """Replace all ``name`` lines by one, kept at the place of the first."""
        key = header_key(name)
        for i, item in enumerate(self._items):
            if item[2] == key:
                self._items[i] = _entry(name, value)
                self._items[i + 1 :] = [x for x in self._items[i + 1 :] if x[2] != key]
                return
        self.add(name, value)

    def remove(self, name: str) -> None:
        key = header_key(name)
        self._items = [x for x in self._items if x[2] != key]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([(n, v) for n, v, _ in self._items])

    def __len__(self) -> int:
        return len(self._items)

    def copy(self) -> Headers:
        h = Headers()
        h._items = list(self._items)
        return h

    def __repr__(self) -> str:
        return f"Headers({[(n, v) for n, v, _ in self._items]!r})"


def _entry(name: str, value: str) -> tuple[str, str, str]:
    key = header_key(name)
    return _CANONICAL.get(key, name.strip()), str(value), key


@dataclass(slots=True, eq=False)
class Message:
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    # -- typed views of the common headers (parsed on access; raise SipParseError) --

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.headers.get("CSeq") or "")

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("To") or "")

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.headers.get_list("Via")]

    @property
    def top_via(self) -> Via:
        first = self.headers.get_list("Via")
        if not first:
            raise SipParseError("missing Via")
        return Via.parse(first[0])

    @property
    def branch(self) -> str | None:
        return self.top_via.branch

    @property
    def contacts(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_list("Contact")]

    @property
    def record_route(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_list("Record-Route")]

    def _head_lines(self) -> list[str]:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Print the message; Content-Length is always set from the body. A CR, LF or NUL in
        the start line or a header (a caller's number, a display name) raises ValueError:
        it would end the line and let that string write headers of its own."""
        lines = self._head_lines()
        for name, value in self.headers:
            if header_key(name) != "content-length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        if any("\r" in line or "\n" in line or "\0" in line for line in lines):
            raise ValueError("CR, LF or NUL inside a SIP start line or header")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(slots=True, init=False, eq=False)
class Request(Message):
    method: str = "OPTIONS"
    uri: SipUri = field(default_factory=SipUri)

    def __init__(
        self,
        method: str,
        uri: SipUri | str,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        self.method = method
        self.uri = uri if isinstance(uri, SipUri) else SipUri.parse(uri)
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body

    def _head_lines(self) -> list[str]:
        return [f"{self.method} {self.uri} SIP/2.0"]

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.call_id!r}>"


@dataclass(slots=True, init=False, eq=False)
class Response(Message):
    status: int = 200
    reason: str = "OK"

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        self.status = status
        self.reason = reason if reason is not None else reason_phrase(status)
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body

    @classmethod
    def for_request(
        cls,
        request: Request,
        status: int,
        reason: str | None = None,
        *,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        """A response to ``request`` (RFC 3261 §8.2.6): Via, From, To, Call-ID, CSeq copied;
        ``to_tag`` added to To when it has none (not for 100); Record-Route copied for the
        dialog-forming responses of the UAS (18x/2xx)."""
        h = Headers()
        for v in request.headers.get_all("Via"):
            h.add("Via", v)
        for name in ("From", "To", "Call-ID", "CSeq"):
            value = request.headers.get(name)
            if value is not None:
                h.add(name, value)
        to_value = h.get("To")
        # appended, so the rest of To stays byte-exact
        if to_tag and status != 100 and to_value and NameAddr.parse(to_value).tag is None:
            h.set("To", f"{to_value};tag={to_tag}")
        if 100 < status < 300:
            for v in request.headers.get_all("Record-Route"):
                h.add("Record-Route", v)
        for n, v in headers:
            h.add(n, v)
        return cls(status, reason, h, body)

    def _head_lines(self) -> list[str]:
        return [f"SIP/2.0 {self.status} {self.reason}"]

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r} call-id={self.call_id!r}>"


# --- parsing -----------------------------------------------------------------------------------


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    # Keep-alive CRLFs (RFC 5626) may precede a message on a stream; a datagram of just CRLF
    # is a keep-alive too, and the caller handles it before parsing.
    end = data.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = data.find(b"\n\n")
        sep = 2
    if end < 0:
        raise SipParseError("no end of header section (message cut short?)")
    return data[:end], data[end + sep :]


def _parse_head(head: bytes) -> tuple[Request | Response, int | None]:
    if len(head) > MAX_MESSAGE:
        raise SipParseError("message too large")
    text = head.decode("utf-8", errors="replace").replace("\r\n", "\n")
    raw_lines = text.split("\n")
    if not raw_lines or not raw_lines[0].strip():
        raise SipParseError("empty start line")
    start = raw_lines[0]
    if len(start) > MAX_LINE:
        raise SipParseError("start line too long")
    # folded continuations (RFC 3261 §7.3.1) are collected as parts and joined once, so a
    # stranger's thousands of one-byte folds cost linear time
    folded: list[list[str]] = []
    size = 0
    for line in raw_lines[1:]:
        if line[:1] in (" ", "\t") and folded:
            part = line.strip()
            folded[-1].append(part)
            size += len(part) + 1
        else:
            if len(folded) >= MAX_HEADERS:
                raise SipParseError("too many header fields")
            folded.append([line])
            size = len(line)
        if size > MAX_LINE:
            raise SipParseError("header line too long")
    lines = [" ".join(parts) for parts in folded]
    msg = _parse_start(start)
    fields = text[len(start) :]
    if "\r" in fields or "\0" in fields:  # echoed in a response, a lone CR could end a line
        raise SipParseError("CR or NUL inside the header section")
    headers = msg.headers
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name or any(c in name for c in " \t"):
            raise SipParseError("malformed header line", msg)
        headers.add(name, value.strip())
    length_text = headers.get("Content-Length")
    length: int | None = None
    if length_text is not None:
        if not length_text.isdigit() or len(length_text) > 6:
            raise SipParseError("bad Content-Length", msg)
        length = int(length_text)
        if length > MAX_MESSAGE:
            raise SipParseError("message too large", msg)
    return msg, length


def _parse_start(start: str) -> Request | Response:
    parts = start.strip().split(" ", 2)
    if start.startswith("SIP/"):
        if len(parts) < 2 or parts[0] != "SIP/2.0":
            raise SipParseError("bad status line")
        code = parts[1]
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise SipParseError("bad status code")
        return Response(int(code), parts[2] if len(parts) > 2 else "")
    if len(parts) != 3 or parts[2] != "SIP/2.0":
        raise SipParseError("bad request line")
    method = parts[0]
    if not method.isascii() or not method.isalpha() or len(method) > 32:
        raise SipParseError("bad method")
    try:
        uri = SipUri.parse(parts[1])
    except SipParseError as exc:
        raise SipParseError(f"bad Request-URI: {exc.reason}") from None
    return Request(method, uri)


def _check(msg: Request | Response) -> None:
    for name in MANDATORY:
        if msg.headers.get(name) is None:
            raise SipParseError(f"missing {name}", msg)
    try:
        cseq = msg.cseq
        for via in msg.headers.get_list("Via"):
            Via.parse(via)
        msg.from_  # noqa: B018 - parsed for validation only
        msg.to  # noqa: B018
    except SipParseError as exc:
        raise SipParseError(exc.reason, msg) from None
    if not msg.call_id:
        raise SipParseError("empty Call-ID", msg)
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise SipParseError("CSeq method differs from the request method", msg)


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """One message from ``data`` (a datagram, or one message cut by :class:`StreamFramer`)."""
    if len(data) > MAX_MESSAGE:
        raise SipParseError("message too large")
    try:
        head, body = _split_head(data.lstrip(b"\r\n"))
        msg, length = _parse_head(head)
        if length is None:
            if stream:
                raise SipParseError("missing Content-Length on a stream", msg)
        elif length > len(body):
            raise SipParseError("body shorter than Content-Length (datagram cut short?)", msg)
        else:
            body = body[:length]
        msg.body = body
        _check(msg)
    except SipParseError:
        raise
    except Exception as exc:  # a bug must not let a stranger's bytes crash the transport
        raise SipParseError(f"unparseable message ({type(exc).__name__})") from None
    return msg


class StreamFramer:
    """Cut a TCP/TLS byte stream into whole messages using Content-Length.

    ``feed(data)`` returns the raw messages now complete (give each to :func:`parse_message`
    with ``stream=True``). A head over the limit, or one without a valid Content-Length,
    raises :class:`SipParseError`: the stream is out of step and the connection must be closed.
    CRLF keep-alives between messages are skipped (``pings`` counts the double-CRLF ones).
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._buf = bytearray()
        self.pings = 0  # RFC 5626 "\r\n\r\n" keep-alives seen (the transport answers "\r\n")

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            while self._buf[:2] == b"\r\n":
                if self._buf[:4] == b"\r\n\r\n":
                    self.pings += 1
                    del self._buf[:4]
                elif len(self._buf) >= 4 or self._buf[2:3] not in (b"", b"\r"):
                    del self._buf[:2]
                else:
                    return out  # maybe the start of a "\r\n\r\n": wait for more
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > self.max_message:
                    raise SipParseError("header section too large")
                return out
            if end > self.max_message:
                raise SipParseError("header section too large")
            length = _content_length(bytes(self._buf[:end]))
            total = end + 4 + length
            if total > self.max_message:
                raise SipParseError("message too large")
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _content_length(head: bytes) -> int:
    """Only the framing: a head whose other faults are reported by parse_message (answerable
    with 400) still frames, as long as its Content-Length is one clear number."""
    values = set()
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            values.add(value.strip())
    if not values:
        raise SipParseError("missing Content-Length on a stream")
    if len(values) > 1:
        raise SipParseError("conflicting Content-Length values")
    text = values.pop()
    if not text.isdigit() or len(text) > 6:
        raise SipParseError("bad Content-Length")
    return int(text)
