"""Asterisk channel names and dial strings, taken apart.

* ``PJSIP/101-0000000b`` (also ``SIP/``, ``IAX2/101-12345``): technology, endpoint, counter.
* ``Local/103@from-internal-00000000;1``: a Local channel half; the endpoint is the dialled
  extension ``103``, the context ``from-internal``, the half ``1`` or ``2``. Options after the
  context (``Local/101@from-queue/n``) are dropped.
* ``PJSIP/103`` is what OriginateResponse names on failure: the dial string, no counter.
* ``<ZOMBIE>`` / ``<MASQ>`` suffixes of masqueraded channels are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True, slots=True)
class ChannelName:
    tech: str  # "PJSIP", "Local", ... ("" when the name has no technology)
    endpoint: str  # PJSIP endpoint, or the extension a Local channel dials
    context: str = ""  # Local channels only
    local_half: int = 0  # 1 or 2 for Local channels

    @property
    def is_local(self) -> bool:
        return self.tech == "Local"


def parse_channel(name: str) -> ChannelName:
    """Split a channel name (or a ``Tech/resource`` dial string). Never raises."""
    if name.endswith(">"):
        lt = name.rfind("<")
        if lt > 0:
            name = name[:lt]
    tech, sep, rest = name.partition("/")
    if not sep:
        return ChannelName("", name)
    half = 0
    if tech == "Local" and len(rest) > 2 and rest[-2] == ";" and rest[-1] in "12":
        half = int(rest[-1])
        rest = rest[:-2]
    head, dash, tail = rest.rpartition("-")
    if (
        dash
        and head
        and (
            (len(tail) == 8 and _HEX.issuperset(tail))
            or (tech in ("IAX2", "DAHDI") and tail.isdigit())
        )
    ):
        rest = head
    if tech == "Local":
        exten, _, context = rest.partition("@")
        return ChannelName(tech, exten, context.partition("/")[0], half)
    return ChannelName(tech, rest)


def is_extension(value: str | None, max_digits: int) -> bool:
    """An office extension: 1..max_digits ASCII digits."""
    return (
        value is not None and 0 < len(value) <= max_digits and value.isascii() and value.isdigit()
    )


def looks_like_number(value: str | None) -> bool:
    """Digits, optionally with a leading ``+`` (what a dial plan can send to a trunk)."""
    if not value:
        return False
    digits = value[1:] if value[0] == "+" else value
    return bool(digits) and digits.isascii() and digits.isdigit()


def dial_number(dial_string: str) -> str:
    """The number in a Dial() destination: ``89031234567@trunk`` -> ``89031234567``,
    ``PJSIP/+74957654321@faxtrunk`` -> ``+74957654321``,
    ``PJSIP/trunk/sip:89031234567@host`` -> ``89031234567``, ``102`` -> ``102``.
    Only the first of several ``&``-joined destinations is looked at."""
    ds = dial_string.partition("&")[0].strip()
    _tech, sep, rest = ds.partition("/")
    if not sep:
        rest = ds
    elif "/" in rest:  # Tech/endpoint/URI
        rest = rest.partition("/")[2]
    for scheme in ("sip:", "sips:", "tel:"):
        if rest.startswith(scheme):
            rest = rest[len(scheme) :]
            break
    return rest.partition("@")[0].partition(";")[0]
