"""`callcenter import clients`: read, validate, report, and write in one transaction."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TextIO

from callcenter.config import Config
from callcenter.importing import (
    ClientDraft,
    ImportingError,
    ImportPlan,
    Rejection,
    build_drafts,
    parse_mapping,
    read_table,
)
from callcenter.models import Role
from callcenter.phones import Number, NumberKind
from callcenter.store.base import ClientInput, ContactInput, PhoneInput, Store
from callcenter.store.sqlite import SqliteStore


def to_input(draft: ClientDraft) -> ClientInput:
    return ClientInput(
        draft.name, draft.kind, draft.manager_id, draft.notes, dict(draft.custom),
        [
            ContactInput(c.name, c.position, c.email, [
                PhoneInput(p.raw, Number(p.raw, NumberKind.EXTERNAL, p.e164, p.digits))
                for p in c.phones
            ])
            for c in draft.contacts
        ],
    )


async def plan_import(store: Store, path: Path, *, region: str, specs: list[str],
                      delimiter: str | None = None, encoding: str | None = None,
                      sheet: str | None = None) -> ImportPlan:
    """Validate the file against the database: nothing is written here."""
    table = read_table(path, delimiter=delimiter, encoding=encoding, sheet=sheet)
    managers: dict[str, int] = {}
    for user in await store.list_users():
        if user.role in (Role.MANAGER, Role.ADMIN) and user.active:
            managers[user.login.casefold()] = user.id
            managers.setdefault(user.name.casefold(), user.id)
    fields = {f.name for f in await store.list_custom_fields()}
    plan = build_drafts(table, parse_mapping(specs), region=region, known_managers=managers,
                        known_custom_fields=fields)
    # A client that already exists is not imported twice: re-running an import is safe.
    existing = {name.strip().casefold(): cid for cid, name in await store.client_names()}
    kept = []
    for draft in plan.drafts:
        found = existing.get(draft.name.strip().casefold())
        if found is not None:
            for row in draft.source_rows:
                plan.rejected.append(Rejection(
                    row, f"client {draft.name!r} already exists (id {found})", {}))
        else:
            kept.append(draft)
    plan.drafts = kept
    plan.rejected.sort(key=lambda r: r.row)
    return plan


def write_report(plan: ImportPlan, out: TextIO, *, dry_run: bool) -> None:
    contacts = sum(len(d.contacts) for d in plan.drafts)
    phones = sum(len(c.phones) for d in plan.drafts for c in d.contacts)
    verb = "would import" if dry_run else "imported"
    print(f"{verb} {len(plan.drafts)} clients, {contacts} contacts, {phones} phones; "
          f"rejected {len(plan.rejected)} rows", file=out)
    if plan.ignored_columns:
        print(f"ignored columns: {', '.join(plan.ignored_columns)}", file=out)
    for rejection in plan.rejected:
        print(f"  row {rejection.row}: {rejection.reason}", file=out)


def write_rejections_csv(plan: ImportPlan, path: Path) -> None:
    columns = sorted({k for r in plan.rejected for k in r.values})
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "reason", *columns])
        for r in plan.rejected:
            writer.writerow([r.row, r.reason, *(r.values.get(c, "") for c in columns)])


async def run_import(config: Config, args: argparse.Namespace, out: TextIO | None = None
                     ) -> int:
    out = out or sys.stdout
    store = await SqliteStore.open(config.database_path)
    try:
        try:
            plan = await plan_import(
                store, args.file, region=config.phones.default_region, specs=args.map,
                delimiter=args.delimiter, encoding=args.encoding, sheet=args.sheet,
            )
        except ImportingError as exc:
            print(f"import failed: {exc}", file=sys.stderr)
            return 2
        if not args.dry_run and plan.drafts:
            await store.import_clients([to_input(d) for d in plan.drafts])
        write_report(plan, out, dry_run=args.dry_run)
        if args.report:
            write_rejections_csv(plan, args.report)
    finally:
        await store.close()
    return 1 if plan.rejected else 0
