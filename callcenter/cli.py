"""The ``callcenter`` command: serve, import clients, manage users, migrate."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from callcenter.config import Config, ConfigError, load_config

log = logging.getLogger("callcenter")


def _config(args: argparse.Namespace) -> Config:
    path = args.config or os.environ.get("CALLCENTER_CONFIG")
    return load_config(path)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from callcenter.app import WS_PROTOCOL, create_app, ws_max_size

    config = _config(args)
    if args.host:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    demo = args.demo or config.demo.enabled
    app = create_app(config, demo=demo)
    print(f"callcenter {'(demo) ' if demo else ''}on http://{config.server.host}:"
          f"{config.server.port}/  database: {config.database_path}", flush=True)
    if demo:
        from callcenter.demo import DEMO_PASSWORD

        print(f"demo: log in as secretary, maria, dmitry or admin with password "
              f"{DEMO_PASSWORD!r}; demo calls start within a minute", flush=True)
    # websockets-sansio without per-message deflate: the fastest fan-out measured
    # (shared/LIBRARIES.md; deflate tripled the p99 of benchmarks/ws_fanout.py), with the hub
    # writing each event's frame itself (ui/ws_frames.py).
    uvicorn.run(app, host=config.server.host, port=config.server.port, log_level="info",
                ws=WS_PROTOCOL, ws_per_message_deflate=False, lifespan="on",
                ws_max_size=ws_max_size())
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return value


def cmd_import(args: argparse.Namespace) -> int:
    from callcenter.import_run import run_import

    config = _config(args)
    return asyncio.run(run_import(config, args))


def cmd_user(args: argparse.Namespace) -> int:
    from callcenter.users.cli import run

    return run(_config(args), args)


def cmd_migrate(args: argparse.Namespace) -> int:
    from callcenter.store.migrate import known_migrations
    from callcenter.store.open import open_store

    config = _config(args)

    async def run() -> int:
        store = await open_store(config)
        await store.close()
        where = getattr(store, "url", None) or config.database_path
        print(f"{where}: schema at version {known_migrations()[-1].version}")
        return 0

    return asyncio.run(run())


def cmd_migrate_store(args: argparse.Namespace) -> int:
    from callcenter.store.copy import CopyError, copy_store
    from callcenter.store.open import sqlite_path
    from callcenter.store.postgres import is_postgres_url, redacted, with_password

    config = _config(args)
    source = sqlite_path(args.source) if args.source else config.database_path
    target = args.target or config.store.url
    if not is_postgres_url(target):
        print("error: --to must be a postgresql:// URL (or set [store] url)", file=sys.stderr)
        return 2
    target = with_password(target, config.store.password)

    try:
        result = asyncio.run(copy_store(source, target, replace=args.replace,
                                        progress=print))
    except CopyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"copied {len(result.counts)} tables, {sum(result.counts.values())} rows from "
          f"{source} to {redacted(target)}; every table's count matches")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    print(f"{config.source}: OK ({len(config.pbx)} PBX line(s), database {config.database_path})")
    return 0


def cmd_line(args: argparse.Namespace) -> int:
    from callcenter.lines.cli import run_line_command

    return asyncio.run(run_line_command(_config(args), args))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callcenter",
        description="Telephony CRM: PBX screen-pops, call log, client base.",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", "-c", type=Path,
                       help="TOML configuration file (default: built-in defaults, or "
                            "$CALLCENTER_CONFIG)")
        return p

    serve = with_config(sub.add_parser("serve", help="run the web console, API and PBX lines"))
    serve.add_argument("--demo", action="store_true",
                       help="built-in PBX emulator places demo calls into a demo client base")
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")
    serve.set_defaults(func=cmd_serve)

    imp = sub.add_parser("import", help="import data")
    imp_sub = imp.add_subparsers(dest="what", metavar="WHAT", required=True)
    clients = with_config(imp_sub.add_parser(
        "clients", help="import clients from a CSV (any common encoding) or XLSX file"))
    clients.add_argument("file", type=Path)
    clients.add_argument("--map", action="append", default=[], metavar="COLUMN=FIELD",
                         help="map a column to a field: name, kind, contact, position, email, "
                              "phone, manager, notes or custom:<field>; repeat as needed")
    clients.add_argument("--delimiter", help="CSV delimiter (default: detected)")
    clients.add_argument("--encoding", help="CSV encoding (default: detected and reported)")
    clients.add_argument("--sheet", help="XLSX sheet name (default: the first)")
    clients.add_argument("--dry-run", action="store_true",
                         help="check and report, write nothing")
    clients.add_argument("--report", type=Path, help="write rejected rows to this CSV file")
    clients.add_argument("--batch-size", type=_positive, default=1000, metavar="N",
                         help="clients per transaction (default: 1000); each batch lands "
                              "whole or not at all, and a re-run skips the ones that landed")
    clients.set_defaults(func=cmd_import)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="what", metavar="ACTION", required=True)
    from callcenter.users.cli import add_parsers

    add_parsers(user_sub, with_config, cmd_user)

    from callcenter.lines.cli import add_parser as add_line_parser

    add_line_parser(sub, with_config, cmd_line)

    with_config(sub.add_parser("migrate", help="create or upgrade the database schema")
                ).set_defaults(func=cmd_migrate)
    copy = with_config(sub.add_parser(
        "migrate-store", help="copy the whole store from SQLite into PostgreSQL"))
    copy.add_argument("--from", dest="source", metavar="sqlite:PATH",
                      help="the SQLite database (default: the configured one)")
    copy.add_argument("--to", dest="target", metavar="postgresql://USER@HOST/DB",
                      help="the PostgreSQL database (default: [store] url); the password "
                           "comes from CALLCENTER_STORE_PASSWORD")
    copy.add_argument("--replace", action="store_true",
                      help="overwrite a target that holds data an earlier copy did not write")
    copy.set_defaults(func=cmd_migrate_store)
    with_config(sub.add_parser("check-config", help="validate the configuration file")
                ).set_defaults(func=cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # aiosqlite's debug lines hold every statement with its parameters: password hashes,
    # secrets, callers' numbers. --verbose is for our own debug lines.
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from callcenter.store.migrate import SchemaTooNewError

        if isinstance(exc, SchemaTooNewError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
