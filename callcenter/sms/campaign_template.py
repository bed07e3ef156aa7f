"""The campaign message template: ``Hello {contact.first_name|there}, …`` with client fields.

A restricted renderer, not ``str.format`` on objects: ``str.format`` walks attributes and
indexes (``{contact.__class__.__init__.__globals__}``), so a template typed in the console could
read anything the process holds. Here a placeholder is one of a fixed list of names (or
``custom.<field>`` for a custom field that exists), checked when the template is saved; an
unknown name is a validation error naming it and its position. Values come from plain strings
the caller built, never from objects: each is stripped of control and bidi-override characters,
its whitespace collapsed and its length bounded, so a client name with a newline or 2,000
characters cannot reshape the message.

Syntax: ``{name}`` or ``{name|fallback}`` (the fallback is shown when the value is empty);
``{{`` and ``}}`` are literal braces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from callcenter.errors import ValidationError

MAX_TEMPLATE = 1000  # characters of template text
MAX_VALUE = 60  # characters of one rendered field value
MAX_FALLBACK = 40

# The fields every template may use, with what they hold.
FIELDS: dict[str, str] = {
    "contact.name": "the contact's full name",
    "contact.first_name": "the first word of the contact's name",
    "contact.last_name": "the last word of the contact's name",
    "contact.position": "the contact's position",
    "client.name": "the client's (company's or person's) name",
    "manager.name": "the name of the client's responsible manager",
}
CUSTOM_PREFIX = "custom."

_NAME = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?\Z")
# Bidi overrides and isolates flip how the rest of the message reads; zero-width joiners stay
# (emoji sequences need them).
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


@dataclass(frozen=True, slots=True)
class Literal:
    text: str


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    fallback: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    source: str
    pieces: tuple[Literal | Field, ...]

    @property
    def fields(self) -> list[str]:
        return [p.name for p in self.pieces if isinstance(p, Field)]

    def render(self, values: Mapping[str, str]) -> str:
        """The message for one recipient. ``values`` maps field names to plain strings; a field
        with no value (or an empty one) renders as its fallback."""
        out = []
        for piece in self.pieces:
            if isinstance(piece, Literal):
                out.append(piece.text)
            else:
                out.append(clean_value(values.get(piece.name, "")) or piece.fallback)
        return "".join(out).strip()


def clean_value(value: object, limit: int = MAX_VALUE) -> str:
    """A field value safe to put in a message: text only, one line, bounded."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    kept = []
    for ch in text:
        if ch in _BIDI:
            continue
        category = unicodedata.category(ch)
        if category == "Cc" or category in ("Zl", "Zp"):
            kept.append(" ")  # a newline or tab between two words still separates them
        elif category in ("Cs", "Co", "Cn"):
            continue  # lone surrogates, private use, unassigned: nothing a phone shows
        else:
            kept.append(ch)
    text = " ".join("".join(kept).split())
    if len(text) > limit:
        text = text[:limit].rstrip()
        # never end on half of a surrogate pair's worth of meaning: drop a dangling joiner
        text = text.rstrip("\u200d")
    return text


def parse_template(source: str, custom_fields: Iterable[str] = ()) -> Template:
    """Parse and check a template; ValidationError (field "template") says what is wrong
    and where."""
    if not isinstance(source, str) or not source.strip():
        raise ValidationError("the template must not be empty", field="template")
    if len(source) > MAX_TEMPLATE:
        raise ValidationError(f"the template is longer than {MAX_TEMPLATE} characters",
                              field="template")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n" for ch in source):
        raise ValidationError("the template must not contain control characters",
                              field="template")
    allowed = set(FIELDS) | {CUSTOM_PREFIX + name for name in custom_fields}
    pieces: list[Literal | Field] = []
    text: list[str] = []
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "{" and source.startswith("{{", i):
            text.append("{")
            i += 2
        elif ch == "}" and source.startswith("}}", i):
            text.append("}")
            i += 2
        elif ch == "}":
            raise ValidationError(
                f"a closing brace at position {i + 1} has no opening one (write }}}} for a"
                " literal brace)", field="template")
        elif ch == "{":
            end = source.find("}", i + 1)
            if end < 0:
                raise ValidationError(
                    f"the placeholder at position {i + 1} is not closed with }}",
                    field="template")
            inner = source[i + 1:end]
            if "{" in inner:
                raise ValidationError(
                    f"the placeholder at position {i + 1} is not closed with }}",
                    field="template")
            name, _, fallback = inner.partition("|")
            name = name.strip()
            if not _NAME.match(name) or name not in allowed:
                shown = name[:40]
                raise ValidationError(
                    f"unknown field {{{shown}}} at position {i + 1}; known fields: "
                    + ", ".join(sorted(allowed)), field="template")
            if len(fallback) > MAX_FALLBACK:
                raise ValidationError(
                    f"the fallback of {{{name}}} is longer than {MAX_FALLBACK} characters",
                    field="template")
            if text:
                pieces.append(Literal("".join(text)))
                text = []
            pieces.append(Field(name, clean_value(fallback, MAX_FALLBACK)))
            i = end + 1
        else:
            text.append(ch)
            i += 1
    if text:
        pieces.append(Literal("".join(text)))
    return Template(source, tuple(pieces))


def split_name(name: str) -> tuple[str, str]:
    """First and last word of a contact's name ("Ivan Petrov" → Ivan, Petrov)."""
    words = clean_value(name, 200).split()
    if not words:
        return "", ""
    return words[0], words[-1] if len(words) > 1 else ""
