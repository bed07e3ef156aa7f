"""Who calls and whom they called, from the headers of an INVITE; why a CANCEL came. Pure code.

The functions read headers through :class:`Headers` (``get_all(name)``: every value of that
header, in order, compact forms already folded by the parser), so they work on any parsed
message. Values are strangers' text: every result is bounded in length and stripped of
control characters; nothing here is ever used to build a command.

Caller ID, in the order a PBX's own view is trusted: P-Asserted-Identity (RFC 3325, set by the
PBX or the carrier), Remote-Party-ID (the draft older PBXs still send), then From. ``Privacy:
id`` (or ``header``/``user``, or RPID's ``privacy=full``/``screen=no;privacy=uri``) means the
caller withheld the number: the number is still returned for the PBX admin's log, with
``withheld`` set, and the console never shows it (callcenter.calls.registry).

The dialled number: the To user, else the Request-URI user. A forwarded call names the number
first dialled in Diversion (RFC 5806, the first value is the newest diversion: its target is
the To, so the original is the *last* value) or History-Info (RFC 7044, the first entry is the
number first dialled).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

from sip.address import SipParseError, split_top

MAX_VALUE = 256  # characters kept of a name or number
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WITHHELD_USERS = frozenset({"anonymous", "restricted", "unavailable", "unknown", "private",
                             "withheld", ""})


class Headers(Protocol):
    def get_all(self, name: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class NameAddr:
    display: str
    uri: str
    params: dict[str, str]

    @property
    def user(self) -> str:
        return uri_user(self.uri)


@dataclass(frozen=True, slots=True)
class CallerId:
    number: str  # the user part as received ("" when none), "anonymous" kept as is
    name: str  # display name, unquoted, "" when none
    withheld: bool
    source: str  # "P-Asserted-Identity", "Remote-Party-ID" or "From"


@dataclass(frozen=True, slots=True)
class Dialled:
    number: str  # the number the call reached us on (To, else the Request-URI)
    original: str = ""  # the number first dialled when the call was forwarded, else ""


class CancelOutcome(enum.StrEnum):
    ANSWERED_ELSEWHERE = "answered_elsewhere"  # Reason: SIP;cause=200 (RFC 3326)
    CALLER_GAVE_UP = "caller_gave_up"  # a plain CANCEL, or the caller's own Q.850 cause


def _clean(text: str) -> str:
    return _CONTROL.sub("", text).strip()[:MAX_VALUE]


def split_list(value: str) -> list[str]:
    """Comma-separated header values, commas inside quotes or <...> kept (an unterminated
    quote from a stranger: plain commas, nothing lost)."""
    try:
        parts = split_top(value, ",")
    except SipParseError:
        parts = value.split(",")
    return [p.strip() for p in parts if p.strip()]


def _params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        key, _, val = part.partition("=")
        out[key.strip().lower()] = val.strip().strip('"')
    return out


def parse_name_addr(value: str) -> NameAddr:
    """``"Name" <sip:101@pbx;user=phone>;tag=1`` or ``sip:101@pbx;tag=1`` or ``Name <tel:+7..>``."""
    value = value.strip()
    display = ""
    rest = value
    if value.startswith('"'):
        end, i = -1, 1
        while i < len(value):
            if value[i] == "\\":
                i += 2
                continue
            if value[i] == '"':
                end = i
                break
            i += 1
        if end < 0:
            return NameAddr(_clean(value.strip('"')), "", {})
        display = re.sub(r"\\(.)", r"\1", value[1:end])
        rest = value[end + 1:]
    lt = rest.find("<")
    if lt >= 0:
        gt = rest.find(">", lt)
        if gt < 0:
            return NameAddr(_clean(display), _clean(rest[lt + 1:]), {})
        if not display:
            display = rest[:lt]
        uri, params = rest[lt + 1:gt], _params(rest[gt + 1:])
    else:
        uri, _, tail = rest.strip().partition(";")
        params = _params(tail)
    return NameAddr(_clean(display), _clean(uri), params)


def uri_user(uri: str) -> str:
    """The user part of a sip:/sips:/tel: URI (``101``, ``+79161234567``), unescaped."""
    uri = uri.strip()
    scheme, sep, rest = uri.partition(":")
    if not sep:
        return ""
    scheme = scheme.lower()
    if scheme == "tel":
        return _clean(unquote(rest.split(";", 1)[0]))
    if scheme not in ("sip", "sips"):
        return ""
    if "@" not in rest:
        return ""
    user = rest.rsplit("@", 1)[0].split(";", 1)[0].split(":", 1)[0]
    return _clean(unquote(user))


def _first(headers: Headers, name: str) -> str | None:
    values = headers.get_all(name)
    for value in values:
        for part in split_list(value):
            return part
    return None


def _privacy_withheld(headers: Headers) -> bool:
    tokens = {t.strip().lower() for v in headers.get_all("Privacy") for t in v.split(";")}
    return bool(tokens & {"id", "header", "user"})


def caller_id(headers: Headers) -> CallerId:
    withheld = _privacy_withheld(headers)
    pai = None
    for value in headers.get_all("P-Asserted-Identity"):
        for part in split_list(value):
            addr = parse_name_addr(part)
            # A PAI may hold a sip: and a tel: URI; the first with a user wins.
            if addr.user and (pai is None or not pai.user):
                pai = addr
    if pai is not None and pai.user:
        source, addr = "P-Asserted-Identity", pai
    else:
        rpid_value = _first(headers, "Remote-Party-ID")
        rpid = parse_name_addr(rpid_value) if rpid_value else None
        if rpid is not None and rpid.user:
            source, addr = "Remote-Party-ID", rpid
            if rpid.params.get("privacy", "off").lower() in ("full", "uri", "name"):
                withheld = True
        else:
            from_value = _first(headers, "From") or ""
            source, addr = "From", parse_name_addr(from_value)
    number = addr.user
    if number.lower() in _WITHHELD_USERS:
        withheld = True
    name = addr.display
    if name.lower() in ("anonymous", "restricted", "withheld"):
        name = ""
    return CallerId(number, name, withheld, source)


def dialled(headers: Headers, request_uri: str) -> Dialled:
    to = _first(headers, "To")
    number = parse_name_addr(to).user if to else ""
    if not number:
        number = uri_user(request_uri)
    original = ""
    history = [parse_name_addr(p) for v in headers.get_all("History-Info")
               for p in split_list(v)]
    if len(history) > 1:
        original = history[0].user
    diversions = [parse_name_addr(p) for v in headers.get_all("Diversion")
                  for p in split_list(v)]
    if diversions:
        original = diversions[-1].user or original
    return Dialled(number, original if original != number else "")


def cancel_outcome(headers: Headers) -> CancelOutcome:
    """RFC 3326: ``Reason: SIP;cause=200;text="Call completed elsewhere"`` is the PBX saying
    another phone answered; so is ``Q.850;cause=26`` ("non-selected user clearing", what
    ISDN-minded PBXs send). Anything else (no Reason, ``Q.850;cause=16``, ``SIP;cause=487``)
    means the caller stopped waiting."""
    for value in headers.get_all("Reason"):
        for part in split_list(value):
            protocol, _, rest = part.partition(";")
            cause = (_params(rest).get("cause") or "").strip()
            if (protocol.strip().upper(), cause) in (("SIP", "200"), ("Q.850", "26")):
                return CancelOutcome.ANSWERED_ELSEWHERE
    return CancelOutcome.CALLER_GAVE_UP
