"""SIP URIs, name-addrs, Via and CSeq values (RFC 3261 §19, §20, §25), parsed and printed.

Everything here is pure and bounded by the message limits of :mod:`sip.message`. Parameter
names are case-insensitive and kept lower-case; values are kept as received (a tag or a branch
is compared byte for byte). A parameter without a value (``;lr``, ``;rport``) maps to ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class SipParseError(ValueError):
    """Bad SIP input; ``reason`` is a short sentence safe to log (it never quotes the input).

    ``partial`` carries what could be read of a message before the fault (a request whose
    Via, From, To, Call-ID and CSeq are known can still be answered 400).
    """

    def __init__(self, reason: str, partial: object | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial


Params = dict[str, str | None]

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside quotes and ``<...>`` (commas inside a display name or a URI)."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    parts: list[str] = []
    buf: list[str] = []
    quoted = angle = False
    escaped = False
    for ch in text:
        if escaped:
            buf.append(ch)
            escaped = False
            continue
        if quoted:
            if ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            angle = True
        elif ch == ">":
            angle = False
        elif ch == sep and not angle:
            parts.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    if quoted:
        raise SipParseError("unterminated quoted string")
    parts.append("".join(buf))
    return parts


def parse_params(text: str) -> Params:
    """``;a=1;lr;b="x"`` (the leading ``;`` optional) into an ordered dict."""
    params: Params = {}
    for raw in split_top(text, ";"):
        item = raw.strip()
        if not item:
            continue
        name, eq, value = item.partition("=")
        name = name.strip().lower()
        if not name or not _TOKEN.fullmatch(name):
            raise SipParseError("bad parameter name")
        params[name] = value.strip() if eq else None
    return params


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- URI ---------------------------------------------------------------------------------------

_HOSTPORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+)(?::(?P<port>\d{1,5}))?")


def parse_hostport(text: str) -> tuple[str, int | None]:
    m = _HOSTPORT.fullmatch(text.strip())
    if not m:
        raise SipParseError("bad host")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError("bad port")
    return m["host"], port


@dataclass(slots=True)
class SipUri:
    """``sip:``/``sips:`` (user, password, host, port, params, headers) or ``tel:`` (user only)."""

    scheme: str = "sip"
    user: str | None = None
    host: str = ""
    port: int | None = None
    password: str | None = field(default=None, repr=False)  # deprecated in URIs; a secret
    params: Params = field(default_factory=dict)
    headers: str = ""  # the raw ``?a=b&c=d`` part, without the '?'

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not rest:
            raise SipParseError("bad URI")
        if scheme == "tel":
            number, _, params = rest.partition(";")
            if not number:
                raise SipParseError("bad tel URI")
            return cls(scheme="tel", user=number, params=parse_params(params))
        if scheme not in ("sip", "sips"):
            raise SipParseError("unsupported URI scheme")
        rest, _, headers = rest.partition("?")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
            user, pcolon, pw = userinfo.partition(":")
            password = pw if pcolon else None
            if not user:
                raise SipParseError("empty user in URI")
        hostport, _, params = rest.partition(";")
        host, port = parse_hostport(hostport)
        return cls(scheme, user, host, port, password, parse_params(params), headers)

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.user}{format_params(self.params)}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers:
            out.append("?" + self.headers)
        return "".join(out)

    @property
    def transport(self) -> str:
        """The ``transport`` param upper-cased, TLS for ``sips:``, else UDP."""
        value = self.params.get("transport")
        if value:
            return value.upper()
        return "TLS" if self.scheme == "sips" else "UDP"


# --- name-addr ---------------------------------------------------------------------------------


@dataclass(slots=True)
class NameAddr:
    """A From/To/Contact/Route value: display name, URI and the header's params (``tag``)."""

    uri: SipUri
    display: str | None = None
    params: Params = field(default_factory=dict)
    wildcard: bool = False  # ``Contact: *`` of an unregister-all

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if text == "*":
            return cls(SipUri(), wildcard=True)
        if "<" in text:
            lt = _find_unquoted(text, "<")
            if lt < 0:
                raise SipParseError("bad name-addr")
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError("unterminated <URI>")
            display = text[:lt].strip()
            uri = SipUri.parse(text[lt + 1 : gt])
            params = parse_params(text[gt + 1 :])
            return cls(uri, unquote(display) or None, params)
        # addr-spec without <>: the params after the URI belong to the header (RFC 3261 §20.10)
        uri_text, _, params = text.partition(";")
        return cls(SipUri.parse(uri_text), None, parse_params(params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        display = f"{quote(self.display)} " if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def _find_unquoted(text: str, ch: str) -> int:
    quoted = escaped = False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
        elif c == ch and not quoted:
            return i
    return -1


# --- Via, CSeq ---------------------------------------------------------------------------------

_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*(?P<transport>[A-Za-z0-9\-]+)\s+(?P<rest>.+)", re.S)


@dataclass(slots=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        m = _VIA.fullmatch(text.strip())
        if not m:
            raise SipParseError("bad Via")
        hostport, _, params = m["rest"].partition(";")
        host, port = parse_hostport(hostport)
        return cls(m["transport"].upper(), host, port, parse_params(params))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


MAX_CSEQ = 2**31 - 1


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or len(parts[0]) > 10:
            raise SipParseError("bad CSeq")
        seq = int(parts[0])
        if seq > MAX_CSEQ or not _TOKEN.fullmatch(parts[1]):
            raise SipParseError("bad CSeq")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
