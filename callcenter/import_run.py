"""`callcenter import clients`: read, validate, report, and write in batches.

Each batch (1,000 clients by default) is one transaction: whole or absent. Between batches
the database is free, so the call log of a running callcenter waits at most one batch. A run
that stops half-way (a full disk, Ctrl-C) says which batches landed; running the same command
again skips the clients that did (they already exist) and imports the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from callcenter.audit import AuditService
from callcenter.audit.model import cli_actor
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
from callcenter.routing.service import effective_region
from callcenter.store.base import ClientInput, ContactInput, PhoneInput, Store, StoreError
from callcenter.store.open import open_store


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
                plan.skipped.append(Rejection(
                    row, f"client {draft.name!r} already exists (id {found})", {}))
        else:
            kept.append(draft)
    plan.drafts = kept
    plan.skipped.sort(key=lambda r: r.row)
    plan.encoding = table.encoding
    return plan


DEFAULT_BATCH_SIZE = 1000
# SQLite's lock is not fair: a writer waiting in another connection polls it (every 100 ms at
# most, with a long busy timeout), and an import starting its next batch at once wins every
# time, so a running call log would wait for the whole import. A pause longer than that
# poll between batches lets every waiting writer in.
BATCH_PAUSE_SECONDS = 0.15


@dataclass(slots=True)
class Batch:
    number: int  # 1-based
    drafts: Sequence[ClientDraft]

    @property
    def rows(self) -> list[int]:
        return sorted(r for d in self.drafts for r in d.source_rows)

    def describe(self) -> str:
        rows = self.rows
        span = f"rows {rows[0]}-{rows[-1]}" if rows else "no rows"
        return f"batch {self.number} ({len(self.drafts)} clients, {span})"


@dataclass(slots=True)
class WriteResult:
    batches: int
    landed: list[Batch] = field(default_factory=list)
    failed: Batch | None = None
    error: str = ""
    interrupted: bool = False  # Ctrl-C: the batch under way was rolled back

    @property
    def clients(self) -> int:
        return sum(len(b.drafts) for b in self.landed)


def batches_of(drafts: Sequence[ClientDraft], size: int) -> list[Batch]:
    return [Batch(i // size + 1, drafts[i:i + size]) for i in range(0, len(drafts), size)]


async def write_batches(store: Store, drafts: Sequence[ClientDraft], batch_size: int,
                        on_batch: Callable[[Batch], Awaitable[None]] | None = None,
                        result: WriteResult | None = None,
                        pause: float = BATCH_PAUSE_SECONDS) -> WriteResult:
    """One transaction per batch; stops at the first batch that fails (nothing of it stays).
    ``result``, when given, is filled in as batches land: an interrupted caller still knows
    which did."""
    batches = batches_of(drafts, batch_size)
    if result is None:
        result = WriteResult(len(batches))
    result.batches = len(batches)
    for batch in batches:
        try:
            await store.import_clients([to_input(d) for d in batch.drafts])
        except (StoreError, sqlite3.Error, OSError) as exc:
            result.failed, result.error = batch, str(exc)
            break
        result.landed.append(batch)
        if on_batch is not None:
            await on_batch(batch)
        if batch is not batches[-1]:
            await asyncio.sleep(pause)  # not synchronisation: room for other writers
    return result


class Progress:
    """A progress bar with rows/s and the time left on a terminal, a line per batch otherwise."""

    def __init__(self, out: TextIO, err: TextIO, total_rows: int, batches: int) -> None:
        self._out, self._batches = out, batches
        self._started = time.monotonic()
        self._bar = None
        if _isatty(err):
            from tqdm import tqdm  # deferred: only an interactive import draws a bar

            self._bar = tqdm(total=total_rows, unit="rows", file=err, dynamic_ncols=True,
                             desc="importing")

    async def batch_landed(self, batch: Batch) -> None:
        if self._bar is not None:
            self._bar.update(len(batch.rows))
            self._bar.set_postfix_str(f"batch {batch.number}/{self._batches}")
        else:
            print(f"{batch.describe()} of {self._batches} landed", file=self._out, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def write_report(plan: ImportPlan, out: TextIO, *, dry_run: bool) -> None:
    contacts = sum(len(d.contacts) for d in plan.drafts)
    phones = sum(len(c.phones) for d in plan.drafts for c in d.contacts)
    verb = "would import" if dry_run else "imported"
    skipped = f"; skipped {len(plan.skipped)} rows (already imported)" if plan.skipped else ""
    print(f"{verb} {len(plan.drafts)} clients, {contacts} contacts, {phones} phones; "
          f"rejected {len(plan.rejected)} rows{skipped}", file=out)
    if plan.encoding:
        print(f"read as {plan.encoding}", file=out)
    if plan.ignored_columns:
        print(f"ignored columns: {', '.join(plan.ignored_columns)}", file=out)
    for rejection in plan.rejected:
        print(f"  row {rejection.row}: {rejection.reason}", file=out)
    for skip in plan.skipped:
        print(f"  row {skip.row}: skipped, {skip.reason}", file=out)


def write_rejections_csv(plan: ImportPlan, path: Path) -> None:
    columns = sorted({k for r in plan.rejected for k in r.values})
    with path.open("w", newline="", encoding="utf-8-sig") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "reason", *columns])
        for r in plan.rejected:
            writer.writerow([r.row, r.reason, *(r.values.get(c, "") for c in columns)])


async def run_import(config: Config, args: argparse.Namespace, out: TextIO | None = None,
                     err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    batch_size = getattr(args, "batch_size", None) or DEFAULT_BATCH_SIZE
    store = await open_store(config)
    try:
        try:
            plan = await plan_import(
                store, args.file, region=await effective_region(store, config.phones),
                specs=args.map,
                delimiter=args.delimiter, encoding=args.encoding, sheet=args.sheet,
            )
        except ImportingError as exc:
            print(f"import failed: {exc}", file=err)
            return 2
        result = None
        unexpected: BaseException | None = None
        if not args.dry_run and plan.drafts:
            batches = batches_of(plan.drafts, batch_size)
            result = WriteResult(len(batches))
            progress = Progress(out, err, sum(len(b.rows) for b in batches), len(batches))
            try:
                await write_batches(store, plan.drafts, batch_size, progress.batch_landed,
                                    result)
            except (KeyboardInterrupt, asyncio.CancelledError):
                # Ctrl-C (asyncio.run turns it into a cancellation): say what landed.
                result.interrupted = True
            except Exception as exc:
                unexpected = exc  # the report first, then the traceback
                result.error = f"{type(exc).__name__}: {exc}"
            finally:
                progress.close()
            if result.failed is not None or result.interrupted or unexpected is not None:
                plan.drafts = [d for b in result.landed for d in b.drafts]
            landed = sum(len(b.drafts) for b in result.landed)
            if landed:
                await AuditService(store).record_by(
                    cli_actor(), "import", "client", None, None,
                    {"file": Path(args.file).name, "clients": landed,
                     "batches": len(result.landed)})
        write_report(plan, out, dry_run=args.dry_run)
        if result is not None:
            write_batch_report(result, out)
        if args.report:
            write_rejections_csv(plan, args.report)
    finally:
        await store.close()
    if unexpected is not None:
        raise unexpected
    if result is not None and result.interrupted:
        return 130
    if result is not None and result.failed is not None:
        return 2
    return 1 if plan.rejected else 0


def write_batch_report(result: WriteResult, out: TextIO) -> None:
    landed = [b.number for b in result.landed]
    if landed:
        print(f"batches landed: {_ranges(landed)} of {result.batches}", file=out)
    if result.interrupted or (result.failed is None and result.error):
        why = "interrupted" if result.interrupted else f"stopped by an error ({result.error})"
        print(f"{why}: the batch under way left nothing behind", file=out)
        print("run the same command again: the clients that landed are skipped", file=out)
    if result.failed is not None:
        print(f"{result.failed.describe()} failed and left nothing behind: {result.error}",
              file=out)
        print("fix the problem and run the same command again: the clients that landed "
              "are skipped", file=out)


def _ranges(numbers: list[int]) -> str:
    spans: list[list[int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
