"""``callcenter line list|add|edit|disable|enable|delete|check``: the lines page's twins for
scripted installs, with the same validation, the same check before saving (``--save-disabled``
to store a failing line switched off) and the same audit entries.

Secrets never go on the command line (argv is visible to every user of the machine and ends
up in shell histories): each secret field of the kind is read from ``$CALLCENTER_LINE_<FIELD>``
(``CALLCENTER_LINE_SECRET`` for an Asterisk line) or, on a terminal, from a prompt.

The command edits the database. A running ``callcenter serve`` applies the change when it gets
SIGHUP (``systemctl reload callcenter``), or at its next start.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from callcenter.config import Config
from callcenter.errors import ValidationError
from callcenter.lines.audit import Actor
from callcenter.lines.manager import LineCheckFailed, LineManager
from callcenter.lines.records import LineKind, LineRecord
from callcenter.store.base import Conflict


def _actor() -> Actor:
    try:
        who = getpass.getuser()
    except Exception:  # no user name in this environment (a container without /etc/passwd)
        who = str(os.getuid())
    return Actor(None, f"cli:{who}", "local")


def _value(spec_type: str, text: str, key: str) -> Any:
    if spec_type == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValidationError(f"{key} must be true or false", field=key)
    if spec_type in ("int", "float"):
        try:
            return int(text) if spec_type == "int" else float(text)
        except ValueError:
            raise ValidationError(f"{key} must be a number", field=key) from None
    if spec_type == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    return text


def parse_settings(kind: LineKind, pairs: list[str]) -> dict[str, Any]:
    specs = {f.name: f for f in kind.fields}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep:
            raise ValidationError(f"--set takes KEY=VALUE, not {pair!r}")
        spec = specs.get(key)
        if spec is None:
            raise ValidationError(f"a {kind.name} line has no setting {key!r} (settings: "
                                  f"{', '.join(specs)})", field=key)
        if spec.secret:
            raise ValidationError(f"{key} is a secret: give it in $CALLCENTER_LINE_"
                                  f"{key.upper()} or at the prompt, never on the command line",
                                  field=key)
        out[key] = _value(spec.type, text, key)
    return out


def read_secrets(kind: LineKind, name: str, env: dict[str, str] | None = None,
                 ask: Callable[[str], str] = getpass.getpass) -> dict[str, str]:
    env = dict(os.environ) if env is None else env
    out = {}
    for field in kind.secret_fields:
        var = f"CALLCENTER_LINE_{field.upper()}"
        if var in env:
            out[field] = env[var]
        elif sys.stdin.isatty():
            out[field] = ask(f"{field} of line {name}: ")
        else:
            raise ValidationError(f"{field} of line {name}: set ${var} (no terminal to ask on)",
                                  field=field)
    return out


async def _manager(config: Config) -> tuple[LineManager, Any]:
    from callcenter.app import line_kinds
    from callcenter.store.open import open_store

    store = await open_store(config)
    manager = LineManager(store, run_lines=False)
    for kind in line_kinds(config):
        manager.register(kind)
    await manager.load()
    return manager, store


def _print_line(line: dict[str, Any]) -> None:
    state = "enabled" if line["enabled"] else "disabled"
    print(f"{line['name']}\t{line['kind']}\t{state}")
    for key, value in sorted(line["settings"].items()):
        shown = ",".join(value) if isinstance(value, list) else value
        print(f"  {key} = {shown}")
    for key in line["secrets_set"]:
        print(f"  {key} = (set, write-only)")


def _report(record: LineRecord, result: Any) -> None:
    if result is not None:
        print(("check: " + result.summary) if result.ok else
              f"check FAILED: {result.error}" + (f" ({result.hint})" if result.hint else ""))
    print(f"line {record.name} saved ({'enabled' if record.enabled else 'DISABLED'}); a "
          "running server applies it on SIGHUP or at its next start")


async def run_line_command(config: Config, args: argparse.Namespace) -> int:
    manager, store = await _manager(config)
    try:
        return await _dispatch(manager, args)
    except LineCheckFailed as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except Conflict as exc:  # the server (or another command) changed it meanwhile
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await manager.close()
        await store.close()


async def _dispatch(manager: LineManager, args: argparse.Namespace) -> int:
    action = args.action
    if action == "list":
        lines = [r.public() for r in manager.records.values()]
        if args.json:
            print(json.dumps(lines, ensure_ascii=False, indent=2))
        else:
            for line in lines:
                _print_line(line)
        return 0
    if action == "add":
        kind = manager.kind(args.kind)
        record = LineRecord(args.name, kind.name, not args.disabled,
                            parse_settings(kind, args.set), read_secrets(kind, args.name))
        saved, result = await manager.add(record, _actor(), save_disabled=args.save_disabled)
        _report(saved, result)
        return 0
    old = manager.record(args.name)
    kind = manager.kind(old.kind)
    if action == "edit":
        secrets = read_secrets(kind, args.name) if args.change_secrets else {}
        try:
            saved, result = await manager.edit(
                args.name, _actor(), new_name=args.rename,
                settings=parse_settings(kind, args.set), secrets=secrets,
                save_disabled=args.save_disabled)
        except ValidationError as exc:
            if exc.field in kind.secret_fields and not args.change_secrets:
                raise ValidationError(f"{exc.message} (add --change-secrets)",
                                      field=exc.field) from exc
            raise
        _report(saved, result)
        return 0
    if action in ("enable", "disable"):
        saved, result = await manager.set_enabled(
            args.name, action == "enable", _actor(),
            save_disabled=getattr(args, "save_disabled", False))
        _report(saved, result)
        return 0
    if action == "delete":
        await manager.delete(args.name, _actor())
        print(f"line {args.name} deleted")
        return 0
    if action == "check":
        result = await manager.check(old)
        if result.ok:
            print(f"{args.name}: OK, {result.summary}")
            return 0
        print(f"{args.name}: FAILED, {result.error}" + (f" ({result.hint})" if result.hint
                                                        else ""))
        return 1
    raise ValidationError(f"unknown action {action}")


def add_parser(sub: Any, with_config: Callable[[argparse.ArgumentParser],
                                               argparse.ArgumentParser],
               func: Callable[[argparse.Namespace], int]) -> None:
    line = sub.add_parser("line", help="manage lines (PBXs, and other kinds as they come)")
    actions = line.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = with_config(actions.add_parser("list", help="the stored lines (no secrets)"))
    listing.add_argument("--json", action="store_true")
    sets = {"action": "append", "default": [], "metavar": "KEY=VALUE",
            "help": "a setting (repeat): host=pbx.example port=5038 trunk_endpoints=a,b"}
    add = with_config(actions.add_parser(
        "add", help="add a line; checked first (secrets from $CALLCENTER_LINE_<FIELD> or a "
                    "prompt)"))
    add.add_argument("name")
    add.add_argument("--kind", default="asterisk")
    add.add_argument("--set", **sets)
    add.add_argument("--disabled", action="store_true", help="store it switched off")
    add.add_argument("--save-disabled", action="store_true",
                     help="if the check fails, store it switched off instead of refusing")
    edit = with_config(actions.add_parser("edit", help="change a line; checked first"))
    edit.add_argument("name")
    edit.add_argument("--set", **sets)
    edit.add_argument("--rename", metavar="NEW_NAME")
    edit.add_argument("--change-secrets", action="store_true",
                      help="read new secrets ($CALLCENTER_LINE_<FIELD> or a prompt)")
    edit.add_argument("--save-disabled", action="store_true")
    enable = with_config(actions.add_parser("enable", help="switch a line on (checked first)"))
    enable.add_argument("name")
    enable.add_argument("--save-disabled", action="store_true")
    for name, text in (("disable", "switch a line off"), ("delete", "delete a line"),
                       ("check", "test a stored line's connection")):
        p = with_config(actions.add_parser(name, help=text))
        p.add_argument("name")
    for p in actions.choices.values():
        p.set_defaults(func=func)
