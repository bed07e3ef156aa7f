"""The "sip" line kind: its settings (shown on the lines page, password write-only), their
checks, and the factory the line manager builds :class:`sip.sip_line.SipLine` with.

"Extensions to watch" and "ring extensions" are lists: the lines page takes them
comma-separated, so a column pasted from a CSV export of the PBX's extensions (one per line,
or ``101;Anna``) is accepted too -- see :func:`extensions_from_text`."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from callcenter.errors import ValidationError
from callcenter.lines.lifecycle import Line
from callcenter.lines.records import FieldSpec, LineKind, LineRecord
from sip.sip_line import SipLineConfig

KIND = "sip"
TRANSPORTS = ("udp", "tcp")  # TLS: the endpoint has it; the line needs certificate settings first
_EXTENSION = re.compile(r"^[0-9A-Za-z*#+._-]{1,32}$")
_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]:]{1,253}$")

FIELDS = (
    FieldSpec("registrar", "str", "", "Registrar",
              "PBX host[:port] to register the observer at; empty: the PBX sends calls to "
              "this address (static extension or trunk)"),
    FieldSpec("username", "str", "crm", "Observer extension",
              "the extension the PBX rings with the ring group (auth user)"),
    FieldSpec("secret", "str", "", "Password", "write-only: never shown again", secret=True),
    FieldSpec("domain", "str", "", "SIP domain", "empty: the registrar's host"),
    FieldSpec("transport", "str", "udp", "Transport", "", TRANSPORTS),
    FieldSpec("listen_host", "str", "0.0.0.0", "Listen address"),
    FieldSpec("listen_port", "int", 5070, "Listen port", "UDP or TCP port the PBX reaches us on",
              minimum=1, maximum=65535),
    FieldSpec("advertise_host", "str", "", "Address the PBX sees",
              "empty: the listen address (set it behind NAT)"),
    FieldSpec("ring_extensions", "list", [], "Ring group phones",
              "extensions that ring with the observer, comma-separated (or pasted from a CSV)",
              multiline=True),
    FieldSpec("watch_extensions", "list", [], "Extensions to watch (BLF)",
              "dialog subscriptions for presence and per-user screen-pops; one per line or "
              "comma-separated, a CSV's first column (101;Anna) works", multiline=True),
    FieldSpec("register_expires", "int", 300, "Registration expiry (s)", minimum=60,
              maximum=3600),
)
_NAMES = {f.name for f in FIELDS}


def extensions_from_text(text: str) -> list[str]:
    """Extensions from a pasted list or CSV: one per line or comma-separated, the first
    column of ``101;Anna`` / ``101,Anna`` rows; a header row (``extension``) skipped."""
    out: list[str] = []
    for row in re.split(r"[\r\n]+", text):
        for cell in (row.split(";")[0].split("\t")[0] if ";" in row or "\t" in row
                     else row).split(","):
            cell = cell.strip().strip('"')
            if cell and cell.lower() not in ("extension", "ext", "number") and cell not in out:
                out.append(cell)
            if ";" in row or "\t" in row:
                break
    return out


def line_config(record: LineRecord) -> SipLineConfig:
    s = {k: v for k, v in record.settings.items() if k in _NAMES}
    for key in ("ring_extensions", "watch_extensions"):
        s[key] = tuple(s.get(key) or ())
    return SipLineConfig(name=record.name, enabled=record.enabled,
                         secret=record.secrets.get("secret", ""), **s)


def _validate(settings: dict[str, Any], secrets: dict[str, str]) -> None:
    registrar = settings.get("registrar", "")
    if registrar and not _HOST.match(registrar):
        raise ValidationError("registrar must be a host name or address, with :port if not "
                              "5060", field="registrar")
    if not _EXTENSION.match(settings.get("username", "")):
        raise ValidationError("the observer extension must be 1 to 32 letters or digits",
                              field="username")
    for key in ("ring_extensions", "watch_extensions"):
        values = [v for item in settings.get(key, []) for v in extensions_from_text(item)]
        bad = [v for v in values if not _EXTENSION.match(v)]
        if bad:
            raise ValidationError(f"{bad[0][:40]!r} is not an extension", field=key)
        settings[key] = values
    if settings.get("watch_extensions") and not registrar:
        raise ValidationError("watching extensions needs a registrar to subscribe at",
                              field="watch_extensions")


def sip_kind(build: Callable[[SipLineConfig], Line]) -> LineKind:
    return LineKind(KIND, "SIP PBX (observer extension, BLF, click-to-call)", FIELDS,
                    lambda record: build(line_config(record)), _validate,
                    secret_bound=("registrar", "username", "domain"))
