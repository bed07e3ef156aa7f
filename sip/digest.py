"""Digest authentication, client side (RFC 2617, RFC 7616, RFC 3261 §22; sans-I/O).

:func:`challenges` reads the ``WWW-Authenticate`` (401) or ``Proxy-Authenticate`` (407) fields
of a response; :class:`DigestClient` answers one by adding ``Authorization`` or
``Proxy-Authorization`` to the next request, counting ``nc`` per nonce. MD5, MD5-sess, SHA-256
(and SHA-256-sess) with ``qop=auth`` or without qop (RFC 2069 style); ``auth-int`` is not
offered by the registrars we meet, so a challenge that allows only ``auth-int`` is unusable.

A challenge repeated after we answered its realm, and not marked ``stale=true``, means the
credentials are wrong (:meth:`DigestClient.is_rejection`): the caller must stop, not loop.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sip.address import SipParseError, split_top, unquote
from sip.message import Request, Response

_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
MAX_FIELD = 4096  # a challenge is ~200 bytes; a longer one is not worth parsing


class DigestError(Exception):
    """A challenge we cannot answer (unknown algorithm, only auth-int, no nonce)."""


@dataclass(frozen=True, slots=True)
class Challenge:
    realm: str
    nonce: str
    algorithm: str = "MD5"  # upper-case: MD5, MD5-SESS, SHA-256, SHA-256-SESS
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False  # from Proxy-Authenticate (407): answer with Proxy-Authorization

    @property
    def supported(self) -> bool:
        base = self.algorithm.removesuffix("-SESS")
        return base in _HASHES and (not self.qop or "auth" in self.qop)


def parse_challenge(value: str, *, proxy: bool = False) -> Challenge:
    """One ``Digest realm=…, nonce=…`` field. Raises :class:`SipParseError` or DigestError."""
    if len(value) > MAX_FIELD:
        raise SipParseError("authentication challenge too long")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("not a Digest challenge")
    params: dict[str, str] = {}
    for item in split_top(rest, ","):
        name, eq, val = item.strip().partition("=")
        if eq:
            params[name.strip().lower()] = unquote(val.strip())
    if "nonce" not in params or "realm" not in params:
        raise DigestError("challenge without realm or nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=params.get("algorithm", "MD5").upper(),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        proxy=proxy,
    )


def challenges(response: Response) -> list[Challenge]:
    """The usable Digest challenges of a 401/407, strongest algorithm first."""
    proxy = response.status == 407
    name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
    found: list[Challenge] = []
    for value in response.headers.get_all(name):
        try:
            ch = parse_challenge(value, proxy=proxy)
        except (DigestError, SipParseError):
            continue
        if ch.supported:
            found.append(ch)
    found.sort(key=lambda c: 0 if c.algorithm.startswith("SHA-256") else 1)
    return found


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm.removesuffix("-SESS")](text.encode()).hexdigest()


def digest_response(
    ch: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    *,
    cnonce: str,
    nc: int,
) -> str:
    """The ``response=`` value (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1)."""
    alg = ch.algorithm
    ha1 = _h(alg, f"{username}:{ch.realm}:{password}")
    if alg.endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{ch.nonce}:{cnonce}")
    ha2 = _h(alg, f"{method}:{uri}")
    if ch.qop:
        return _h(alg, f"{ha1}:{ch.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return _h(alg, f"{ha1}:{ch.nonce}:{ha2}")


def authorization_value(
    ch: Challenge,
    username: str,
    password: str,
    method: str,
    uri: str,
    *,
    cnonce: str,
    nc: int,
) -> str:
    if not ch.supported:
        raise DigestError(f"cannot answer a {ch.algorithm} challenge with qop {ch.qop}")
    resp = digest_response(ch, username, password, method, uri, cnonce=cnonce, nc=nc)
    # SIP usernames and realms are quoted strings: a quote or backslash would break out
    esc = [v.replace("\\", "\\\\").replace('"', '\\"') for v in (username, ch.realm)]
    parts = [
        f'Digest username="{esc[0]}"',
        f'realm="{esc[1]}"',
        f'nonce="{ch.nonce}"',
        f'uri="{uri}"',
        f'response="{resp}"',
        f"algorithm={ch.algorithm if ch.algorithm != 'MD5-SESS' else 'MD5-sess'}",
    ]
    if ch.qop:
        parts += [f'cnonce="{cnonce}"', "qop=auth", f"nc={nc:08x}"]
    if ch.opaque is not None:
        parts.append(f'opaque="{ch.opaque}"')
    return ", ".join(parts)


@dataclass
class DigestClient:
    """Answers challenges for one account; remembers nonces so nc increases per nonce."""

    username: str
    password: str = field(repr=False)  # a secret: never in a repr or a log
    _nc: dict[str, int] = field(default_factory=dict, repr=False)
    _answered: dict[tuple[bool, str], str] = field(default_factory=dict, repr=False)
    # every challenge answered in this attempt: a proxy's 407 and then the registrar's 401
    # must both be answered in the next request (RFC 3261 §22.3), not one at a time
    _pending: dict[tuple[bool, str], Challenge] = field(default_factory=dict, repr=False)

    def is_rejection(self, response: Response) -> bool:
        """True if this 401/407 re-challenges a realm we answered with a non-stale nonce:
        the registrar refused our credentials (wrong user or password)."""
        if response.status not in (401, 407):
            return False
        for ch in challenges(response):
            if (ch.proxy, ch.realm) in self._answered and not ch.stale:
                return True
        return False

    def authorize(self, request: Request, response: Response) -> bool:
        """Add the answer to ``response``'s challenge to ``request`` (a fresh copy the caller
        sends with a new CSeq and branch). False if no challenge can be answered."""
        found = challenges(response)
        if not found:
            return False
        ch = found[0]
        self._pending[(ch.proxy, ch.realm)] = ch
        self._answered[(ch.proxy, ch.realm)] = ch.nonce
        request.headers.remove("Authorization")
        request.headers.remove("Proxy-Authorization")
        for each in self._pending.values():
            nc = self._nc.get(each.nonce, 0) + 1
            if len(self._nc) > 32:  # a registrar that changes nonce every time: bounded
                self._nc.clear()
            self._nc[each.nonce] = nc
            value = authorization_value(
                each,
                self.username,
                self.password,
                request.method,
                str(request.uri),
                cnonce=secrets.token_hex(8),
                nc=nc,
            )
            request.headers.add("Proxy-Authorization" if each.proxy else "Authorization", value)
        return True

    def forget(self) -> None:
        """After a success: a later challenge of the same realm is a fresh one, not a refusal."""
        self._answered.clear()
        self._pending.clear()
