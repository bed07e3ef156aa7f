"""Click-to-call on real dialplans: the outside number in the form the office dials, and the
channel that rings the user's phone first. Pure code.

Offices dial out in E.164 (``+79161234567``), in national form (``89161234567``, ``030123456``)
or with an international prefix (``0079161234567``), often behind an outside-line prefix
(``9``). Numbers are parsed with phonenumbers (through the core's ``normalize``, the same
parsing the caller lookup uses) in the office's region; what it cannot make a valid number of
(a short service number, an internal number) is dialled as entered.

What the user typed may hold digits, a leading ``+``, spaces and ``( ) - . /`` (dashes and
spaces of any kind, as pasted from a web page or a document); an extension after the number
(``доб. 12``, ``ext 12``, ``x12``, ``#12``) is cut off, since the outside party's switchboard
asks for it, not the dial string. Anything else (a letter, a line break) is refused, never
dropped silently: ``+7 916 123-45-67 call me`` is no number.
"""

from __future__ import annotations

import re

import phonenumbers

from callcenter.errors import CallActionFailed
from callcenter.phones import NumberKind, normalize

_DIGITS = frozenset("0123456789")
_SEPARATORS = frozenset(" ()-./\u2010\u2011\u2012\u2013\u2014")
_MAX_DIGITS = 32
_MAX_TYPED = 64
# An extension after the number: "доб. 12", "доп 12", "ext. 12", "extension 12", "x12", "#12".
_EXTENSION = re.compile(r"(?:\s*[,;]?\s*(?:доб|доп|ext(?:ension)?)\.?|\s*x|\s*#)\s*\d*\s*$",
                        re.IGNORECASE)


def dialable(number: str) -> str:
    """The number as typed, reduced to digits and a leading +, its extension cut off; anything
    beyond digits, ``+`` and separators is refused (nothing a stranger could use to reach
    another context or inject a header, and no letter silently dropped)."""
    if len(number) > _MAX_TYPED:
        raise CallActionFailed(f"a number to dial has at most {_MAX_TYPED} characters")
    main = _EXTENSION.sub("", number)
    bad = sorted({ch for ch in main if not (ch in _DIGITS or ch == "+" or ch in _SEPARATORS
                                             or ch.isspace())})
    if bad:
        shown = " ".join(repr(ch) for ch in bad[:5])
        raise CallActionFailed(f"{number!r} is not a number that can be dialled: {shown} is"
                               " not a digit, + or a separator ( ) - . /")
    cleaned = "".join(ch for ch in main if ch in _DIGITS or ch == "+")
    if not cleaned or len(cleaned) > _MAX_DIGITS or "+" in cleaned[1:]:
        raise CallActionFailed(f"{number!r} is not a number that can be dialled")
    return cleaned


def dial_string(number: str, fmt: str, region: str, *, prefix: str = "",
                international_prefix: str = "00") -> str:
    """What goes into the Originate's ``Exten`` (see callcenter.config.DIAL_FORMATS)."""
    typed = dialable(number)
    if fmt == "as_entered":
        return prefix + typed
    parsed = normalize(typed, region)
    if parsed.kind is not NumberKind.EXTERNAL or parsed.e164 is None:
        return prefix + typed  # not a full outside number: the dialplan gets it as typed
    if fmt == "e164":
        return prefix + parsed.e164
    intl = international_prefix + parsed.e164[1:]
    if fmt == "international":
        return prefix + intl
    number_obj = phonenumbers.parse(parsed.e164)
    if number_obj.country_code != phonenumbers.country_code_for_region(region.upper()):
        return prefix + intl  # another country: national form means nothing there
    national = phonenumbers.format_number(number_obj, phonenumbers.PhoneNumberFormat.NATIONAL)
    return prefix + "".join(ch for ch in national if ch.isdigit())


def ring_first_channel(template: str, technology: str, extension: str) -> str:
    """``PJSIP/{ext}`` (the default, from ``extension_technology``) or a template such as
    ``Local/{ext}@from-internal`` for PBXs that reach a user only through follow-me."""
    if not template:
        return f"{technology}/{extension}"
    return template.replace("{ext}", extension)
