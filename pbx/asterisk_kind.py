"""The "asterisk" line kind: its settings schema (PbxLineConfig's fields), its checks (the
same as the configuration file's) and the factory the line manager builds lines with."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from callcenter.config import (
    CALLBACK_POLICIES,
    DIAL_FORMATS,
    PbxLineConfig,
    pbx_line_problems,
)
from callcenter.errors import ValidationError
from callcenter.lines.lifecycle import Line
from callcenter.lines.records import FieldSpec, LineKind, LineRecord

KIND = "asterisk"

# Labels and help are English: the lines page translates known field names itself.
FIELDS = (
    FieldSpec("host", "str", "127.0.0.1", "PBX host", "name or address of the Asterisk server"),
    FieldSpec("port", "int", 5038, "AMI port", "5038; 5039 with TLS", minimum=1,
              maximum=65535),
    FieldSpec("username", "str", "crm", "AMI user", "the [section] of manager.conf"),
    FieldSpec("secret", "str", "", "AMI secret", "write-only: never shown again",
              secret=True),
    FieldSpec("tls", "bool", False, "TLS", "AMI over TLS (manager.conf tlsenable)"),
    FieldSpec("tls_verify", "bool", True, "Verify the certificate",
              "off only for a self-signed certificate"),
    FieldSpec("trunk_endpoints", "list", ["trunk"], "Trunk endpoints",
              "PJSIP endpoints of the outside lines, comma-separated"),
    FieldSpec("trunk_contexts", "list", ["from-trunk"], "Trunk contexts",
              "dialplan contexts inbound calls arrive in"),
    FieldSpec("originate_context", "str", "from-internal", "Originate context",
              "where click-to-call dials the outside number"),
    FieldSpec("extension_technology", "str", "PJSIP", "Phone technology", "PJSIP/101"),
    FieldSpec("originate_channel", "str", "", "Ring-first channel",
              "empty: PJSIP/{ext}; FreePBX: Local/{ext}@from-internal"),
    FieldSpec("dial_format", "str", "as_entered", "Dial format", "", DIAL_FORMATS),
    FieldSpec("dial_prefix", "str", "", "Dial prefix", "such as 9 for an outside line"),
    FieldSpec("international_prefix", "str", "00", "International prefix"),
    FieldSpec("record_calls", "bool", False, "Record calls",
              "MixMonitor every answered call"),
    FieldSpec("callback_on", "str", "waited_or_voicemail", "Callback tasks for",
              "which calls no person answered get a callback task (PBX-answered and "
              "voicemail policy)", CALLBACK_POLICIES),
    FieldSpec("withheld_getvar", "bool", True, "Ask for withheld numbers",
              "Getvar CALLERID(pres) of each inbound call"),
    FieldSpec("withheld_timeout", "float", 0.3, "Withheld answer wait (s)", minimum=0.01,
              maximum=5),
    FieldSpec("ping_interval", "float", 20.0, "Ping interval (s)", minimum=1, maximum=600),
    FieldSpec("action_timeout", "float", 10.0, "Action timeout (s)", minimum=1, maximum=120),
)
_NAMES = {f.name for f in FIELDS}


def line_config(record: LineRecord) -> PbxLineConfig:
    values = {k: v for k, v in record.settings.items() if k in _NAMES}
    values["secret"] = record.secrets.get("secret", "")
    return PbxLineConfig(name=record.name, kind=KIND, enabled=record.enabled, **values)


def record_of(config: PbxLineConfig) -> LineRecord:
    """A ``[[pbx]]`` table of the configuration file as a line to store (the seed)."""
    values = dataclasses.asdict(config)
    settings = {k: v for k, v in values.items() if k in _NAMES and k != "secret"}
    return LineRecord(config.name, KIND, config.enabled, settings,
                      {"secret": config.secret} if config.secret else {})


def _validate(settings: dict[str, Any], secrets: dict[str, str]) -> None:
    config = PbxLineConfig(name="x", **settings, secret=secrets.get("secret", ""))
    problems = pbx_line_problems(config)
    if problems:
        key, text = problems[0]
        raise ValidationError(f"{key} {text}", field=key)


def asterisk_kind(build: Callable[[PbxLineConfig], Line]) -> LineKind:
    """The kind, with ``build`` making the adapter (the composition root gives it the call
    registry's sink, the recordings folder and the region)."""
    return LineKind(KIND, "Asterisk PBX (AMI)", FIELDS,
                    lambda record: build(line_config(record)), _validate,
                    secret_bound=("host", "port", "username", "tls", "tls_verify"),
                    capabilities=("trunks",))
