"""A stored line and the kinds of line the product knows, as plain core types.

A kind (``asterisk`` now; GSM modems, fax backends, SIP lines later) is registered with the
line manager by the composition root: its settings schema (:class:`FieldSpec`), a validator for
what the schema cannot say, and a factory that builds the adapter. Adding a kind is one
:meth:`LineManager.register` call; neither the manager, the API nor the lines page change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callcenter.errors import ValidationError
from callcenter.lines.lifecycle import Line

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")
MAX_SETTING = 1000  # characters of one text setting
_BREAKS = "\r\n\x00"


@dataclass(frozen=True, slots=True)
class LineRecord:
    """One line as stored: ``settings`` are shown, ``secrets`` are write-only."""

    name: str
    kind: str
    enabled: bool = True
    settings: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    def public(self) -> dict[str, Any]:
        """What the API and the CLI may show: never a secret's value, only whether it is set."""
        return {"name": self.name, "kind": self.kind, "enabled": self.enabled,
                "settings": dict(self.settings),
                "secrets_set": sorted(k for k, v in self.secrets.items() if v)}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One setting of a kind. ``type`` is "str", "int", "float", "bool" or "list" (of
    strings); ``choices`` limits a "str"; ``secret`` fields are write-only."""

    name: str
    type: str = "str"
    default: Any = ""
    label: str = ""
    help: str = ""
    choices: tuple[str, ...] = ()
    secret: bool = False
    minimum: float | None = None
    maximum: float | None = None
    # A "list" the page shows as several lines (a column pasted from a spreadsheet or CSV).
    multiline: bool = False

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "label": self.label or self.name,
                "help": self.help, "choices": list(self.choices), "secret": self.secret,
                "default": None if self.secret else self.default,
                "minimum": self.minimum, "maximum": self.maximum,
                "multiline": self.multiline}


@dataclass(frozen=True, slots=True)
class LineKind:
    """A registered kind of line. ``build`` makes an adapter (not started) from a record;
    ``validate`` gets the settings already type-checked against ``fields`` and the secrets, and
    raises :class:`ValidationError` naming the field for what the schema cannot check."""

    name: str
    label: str
    fields: tuple[FieldSpec, ...]
    build: Callable[[LineRecord], Line]
    validate: Callable[[dict[str, Any], dict[str, str]], None] | None = None
    # Settings that say where the secrets go (host, port, user, TLS): when one changes, a
    # stored secret is not reused, the admin enters it again.
    secret_bound: tuple[str, ...] = ()
    # What else a line of this kind offers the lines page ("trunks": SIP trunks on the PBX).
    capabilities: tuple[str, ...] = ()

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.secret)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.name, "label": self.label,
                "fields": [f.describe() for f in self.fields],
                "capabilities": list(self.capabilities)}

    def clean(self, settings: Mapping[str, Any], secrets: Mapping[str, str]
              ) -> tuple[dict[str, Any], dict[str, str]]:
        """Type-check against the schema, fill defaults, run the kind's own checks."""
        known = {f.name: f for f in self.fields}
        unknown = sorted((set(settings) | set(secrets)) - set(known))
        if unknown:
            raise ValidationError(f"a {self.name} line has no setting {unknown[0]!r}",
                                  field=unknown[0])
        out: dict[str, Any] = {}
        hidden: dict[str, str] = {}
        for spec in self.fields:
            if spec.secret:
                if spec.name in settings:
                    raise ValidationError(f"{spec.name} is a secret: send it as a secret",
                                          field=spec.name)
                value = secrets.get(spec.name, "")
                # A line break would end the AMI header it is sent in (and a NUL the C
                # string of most peers): refused in words, never a failure later.
                if not isinstance(value, str) or len(value) > MAX_SETTING or any(
                        c in value for c in _BREAKS):
                    raise ValidationError(f"{spec.name} must be one line of up to "
                                          f"{MAX_SETTING} characters", field=spec.name)
                hidden[spec.name] = value
                continue
            out[spec.name] = _typed(spec, settings.get(spec.name, spec.default))
        if self.validate is not None:
            self.validate(out, hidden)
        return out, hidden


def _typed(spec: FieldSpec, value: Any) -> Any:
    name = spec.name
    if spec.type == "bool":
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false", field=name)
        return value
    if spec.type in ("int", "float"):
        if isinstance(value, bool) or not isinstance(value, int | float) or (
                spec.type == "int" and not isinstance(value, int)):
            raise ValidationError(f"{name} must be a {'whole ' if spec.type == 'int' else ''}"
                                  "number", field=name)
        if spec.minimum is not None and value < spec.minimum:
            raise ValidationError(f"{name} must be at least {spec.minimum:g}", field=name)
        if spec.maximum is not None and value > spec.maximum:
            raise ValidationError(f"{name} must be at most {spec.maximum:g}", field=name)
        return float(value) if spec.type == "float" else value
    if spec.type == "list":
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(
                value) > 50 or any(len(v) > 200 or any(c in v for c in _BREAKS)
                                   for v in value):
            raise ValidationError(f"{name} must be a list of up to 50 names", field=name)
        return [v.strip() for v in value if v.strip()]
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be text", field=name)
    value = value.strip()
    if len(value) > MAX_SETTING or any(c in value for c in _BREAKS):
        raise ValidationError(f"{name} must be one line of up to {MAX_SETTING} characters",
                              field=name)
    if spec.choices and value not in spec.choices:
        raise ValidationError(f"{name} must be one of {', '.join(spec.choices)}", field=name)
    return value


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME.match(name.strip()):
        raise ValidationError("a line name is 1 to 40 letters, digits, '.', '_' or '-', "
                              "starting with a letter or digit", field="name")
    return name.strip()
