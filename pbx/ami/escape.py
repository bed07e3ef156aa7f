"""Undoing the escaping that AMI (and PJSIP before it) applies to caller names.

AMI runs CallerIDName / ConnectedLineName / ChanVariable values through ``ast_escape_c``:
``\\a \\b \\f \\n \\r \\t \\v \\\\ \\' \\" \\?`` stand for the control character or the literal
one. chan_pjsip on top keeps the SIP quoted-string escape of a display name (RFC 3261
``quoted-pair``: a backslash followed by any character stands for that character), so the SIP
name ``"Иван \\"Ромашка\\""`` reaches us as ``Иван \\\\\\"Ромашка\\\\\\"``. UTF-8 passes through
untouched: the escaping is byte-wise on ASCII only.
"""

from __future__ import annotations

import re

_C_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _c_pair(m: re.Match[str]) -> str:
    return _C_ESCAPES.get(m.group(1), m.group(0))  # an unknown escape stays as it was


def unescape_c(value: str) -> str:
    """Reverse ``ast_escape_c``. A lone trailing backslash or an unknown escape is kept."""
    if "\\" not in value:
        return value
    return _PAIR.sub(_c_pair, value)


def unescape_sip_quoted(value: str) -> str:
    """Reverse the SIP quoted-string escape (``\\x`` -> ``x``) of a display name."""
    if "\\" not in value:
        return value
    return _PAIR.sub(lambda m: m.group(1), value)


def display_name(value: str | None, sip: bool = True) -> str:
    """A caller name as a person should read it: AMI escape undone, then (for SIP channels) the
    SIP quoted-string escape. ``<unknown>`` (Asterisk's "no name") becomes empty."""
    if not value or value == "<unknown>":
        return ""
    name = unescape_c(value)
    if sip:
        name = unescape_sip_quoted(name)
    return name
