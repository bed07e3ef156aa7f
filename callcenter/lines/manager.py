"""The line manager: owns every line of every kind through one lifecycle (lifecycle.py).

Lines live in the database (``lines`` table); the TOML ``[[pbx]]`` tables seed it on the first
start only. Adding, editing, disabling or deleting a line applies at once: the old line is
stopped (its connection closed), the new one started, and ``listeners`` are told so the calls
of the old line are re-adopted or closed (callcenter/lines/calls.py).

The manager imports no adapter: the composition root registers a :class:`LineKind` per kind
with its settings schema, its checks and a factory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any, Protocol

from callcenter.errors import ValidationError
from callcenter.lines import audit
from callcenter.lines.audit import Actor
from callcenter.lines.lifecycle import CheckResult, Line, LineState, LineStatus
from callcenter.lines.records import LineKind, LineRecord, check_name
from callcenter.store.base import Conflict, NotFound

log = logging.getLogger(__name__)

# A check() that has not answered by then is a failed check (the adapter's own timeouts are
# shorter; this bounds a kind that forgot one).
CHECK_TIMEOUT = 30.0
STANDBY = "standby: another instance runs this line"


class LineCheckFailed(ValidationError):
    """A setting failed its live check and was not saved ("save disabled" saves it off)."""

    error_id = "line-check-failed"

    def __init__(self, result: CheckResult) -> None:
        text = result.error or result.summary
        super().__init__(f"the check failed, nothing was saved: {text}"
                         + (f" ({result.hint})" if result.hint else "")
                         + ". Fix the setting, or save it disabled.")
        self.result = result


class UnknownLine(ValidationError):
    error_id = "line-not-found"


class LineStore(Protocol):
    async def list_lines(self, *, with_secrets: bool = False) -> list[LineRecord]: ...

    async def get_line(self, name: str, *, with_secrets: bool = False) -> LineRecord: ...

    async def save_line(self, record: LineRecord, *, previous_name: str | None = None
                        ) -> None: ...

    async def delete_line(self, name: str) -> None: ...

    async def seed_lines(self, records: list[LineRecord], source: str) -> bool: ...


# (name, the line stopped or None, the line started or None)
Listener = Callable[[str, Line | None, Line | None], Awaitable[None] | None]


class LineView(Mapping[str, Any]):
    """The running lines that have ``attribute`` (``originate`` for call control), live: it
    follows every add, replace and removal."""

    def __init__(self, running: dict[str, Line], attribute: str) -> None:
        self._running = running
        self._attribute = attribute

    def __getitem__(self, name: str) -> Any:
        line = self._running[name]
        if not hasattr(line, self._attribute):
            raise KeyError(name)
        return line

    def __iter__(self) -> Iterator[str]:
        return (n for n, line in list(self._running.items()) if hasattr(line, self._attribute))

    def __len__(self) -> int:
        return sum(1 for _ in self)


class LineManager:
    def __init__(self, store: LineStore, *, check_timeout: float = CHECK_TIMEOUT,
                 audit_store: Any = None, run_lines: bool = True) -> None:
        self.store = store
        self.kinds: dict[str, LineKind] = {}
        self.records: dict[str, LineRecord] = {}
        self.running: dict[str, Line] = {}  # mutated in place: views and services follow it
        self.listeners: list[Listener] = []
        # Set on each add/replace/remove, and left set: a waiter clears it, then reads the
        # lines, so a change landing in between is not missed. ``version`` counts them.
        self.changed = asyncio.Event()
        self.version = 0
        self._check_timeout = check_timeout
        self._lock = asyncio.Lock()
        self._errors: dict[str, tuple[str, float]] = {}  # name -> (why not running, since)
        self._audit_store = audit_store if audit_store is not None else store
        # False for the command line: it stores and checks lines, the server runs them.
        self._run_lines = run_lines
        self._built_in: set[str] = set()  # run_only() lines: not stored, not editable
        # In a cluster (callcenter/cluster/): whether this instance holds the line's lease.
        # A line it does not hold stays stopped here ("standby") until claim().
        self.gate: Callable[[str], bool] | None = None

    # -- kinds -----------------------------------------------------------------------------

    def register(self, kind: LineKind) -> None:
        if kind.name in self.kinds:
            raise ValueError(f"line kind {kind.name!r} is registered twice")
        self.kinds[kind.name] = kind

    def kind(self, name: str) -> LineKind:
        kind = self.kinds.get(name)
        if kind is None:
            known = ", ".join(sorted(self.kinds)) or "none"
            raise ValidationError(f"unknown line kind {name!r} (known: {known})", field="kind")
        return kind

    def view(self, attribute: str) -> LineView:
        return LineView(self.running, attribute)

    # -- start and stop --------------------------------------------------------------------

    async def load(self, seed: list[LineRecord] | None = None, source: str = "config") -> None:
        """Seed the table on the first start, then start every enabled stored line (or only
        read them, without ``run_lines``)."""
        if seed is not None:
            cleaned = [self._cleaned(r) for r in seed]
            if await self.store.seed_lines(cleaned, source):
                log.info("lines: %d seeded from %s (the database wins from now on)",
                         len(cleaned), source)
        async with self._lock:
            for record in await self.store.list_lines(with_secrets=True):
                self.records[record.name] = record
                if record.enabled:
                    await self._start(record)

    async def reload(self) -> list[str]:
        """Apply what changed in the database meanwhile (the command line edits it): lines
        added, changed or removed there are started, replaced or stopped; returns their
        names."""
        changed = []
        async with self._lock:
            stored = {r.name: r for r in await self.store.list_lines(with_secrets=True)}
            # The built-in lines (the demo's PBX) are never stored: not "deleted" either.
            for name in [n for n in self.records
                         if n not in stored and n not in self._built_in]:
                self.records.pop(name, None)  # first: listeners see it gone, not failing
                await self._stop(name)
                changed.append(name)
            for name, record in stored.items():
                if self.records.get(name) == record:
                    continue
                stopped = await self._stop(name, notify=False)
                self.records[name] = record
                started = await self._start(record, notify=False) if record.enabled else None
                if stopped is not None or started is not None:
                    await self._notify(name, stopped, started)
                changed.append(name)
        return changed

    async def run_only(self, records: list[LineRecord]) -> None:
        """Run these lines without storing them (the demo's built-in PBX)."""
        async with self._lock:
            for record in records:
                self.records[record.name] = record
                self._built_in.add(record.name)
                await self._start(record)

    async def close(self) -> None:
        """Stop every line at shutdown. Listeners are not told: the calls still up stay open
        in the log, for the next start to re-adopt (or finish) them."""
        async with self._lock:
            for name in list(self.running):
                await self._stop(name, notify=False)

    async def claim(self, name: str) -> Line | None:
        """This instance won the line's lease (cluster): start it if it is enabled."""
        async with self._lock:
            record = self.records.get(name)
            if record is None or not record.enabled or name in self.running:
                return self.running.get(name)
            return await self._start(record, gated=False)

    async def release(self, name: str) -> None:
        """The lease went (cluster): stop the line without telling the listeners -- its calls
        stay open in the log for the instance that takes it over to re-adopt."""
        async with self._lock:
            await self._stop(name, notify=False)
            self._errors[name] = (STANDBY, time.time())

    def enabled_names(self) -> list[str]:
        """The enabled lines, the built-in ones aside (what a cluster instance leases)."""
        return [n for n, r in self.records.items() if r.enabled and n not in self._built_in]

    async def _start(self, record: LineRecord, *, notify: bool = True,
                     gated: bool = True) -> Line | None:
        if not self._run_lines:
            return None
        if (gated and self.gate is not None and record.name not in self._built_in
                and not self.gate(record.name)):
            self._errors[record.name] = (STANDBY, time.time())
            return None
        try:
            line = self.kind(record.kind).build(record)
            await line.start()
        except Exception as exc:  # a kind that cannot be built must not stop the others
            log.exception("line %s: could not start", record.name)
            self._errors[record.name] = (f"could not start: {exc}", time.time())
            return None
        self._errors.pop(record.name, None)
        self.running[record.name] = line
        if notify:
            await self._notify(record.name, None, line)
        return line

    async def _stop(self, name: str, *, notify: bool = True) -> Line | None:
        line = self.running.pop(name, None)
        if line is None:
            return None
        try:
            await line.stop()
        except Exception:
            log.exception("line %s: stop failed", name)
        if notify:
            await self._notify(name, line, None)
        return line

    async def _notify(self, name: str, old: Line | None, new: Line | None) -> None:
        for listener in self.listeners:
            try:
                result = listener(name, old, new)
                if result is not None:
                    await result
            except Exception:
                log.exception("line listener failed for %s", name)
        self.version += 1
        self.changed.set()  # stays set: its one waiter clears it before it reads the lines

    # -- reading ---------------------------------------------------------------------------

    def statuses(self) -> list[LineStatus]:
        out = []
        for name, record in self.records.items():
            line = self.running.get(name)
            if line is not None:
                out.append(line.status())
            elif not record.enabled:
                out.append(LineStatus(name, record.kind, LineState.DISABLED,
                                      "disabled by an admin"))
            else:
                error, since = self._errors.get(name, ("not running", time.time()))
                out.append(LineStatus(name, record.kind, LineState.DOWN, error, error, since))
        return out

    def status(self, name: str) -> LineStatus:
        for status in self.statuses():
            if status.name == name:
                return status
        raise UnknownLine(f"there is no line {name!r}", field="name")

    def start_error(self, name: str) -> str | None:
        """Why an enabled line is not running (its start failed), or None."""
        record = self.records.get(name)
        if record is None or not record.enabled or name in self.running:
            return None
        return self._errors.get(name, ("not running", 0.0))[0]

    def record(self, name: str) -> LineRecord:
        record = self.records.get(name)
        if record is None:
            raise UnknownLine(f"there is no line {name!r}", field="name")
        return record

    # -- checks ----------------------------------------------------------------------------

    def _cleaned(self, record: LineRecord) -> LineRecord:
        name = check_name(record.name)
        settings, secrets = self.kind(record.kind).clean(record.settings, record.secrets)
        return replace(record, name=name, settings=settings, secrets=secrets)

    async def check(self, record: LineRecord) -> CheckResult:
        """The kind's live check of ``record`` (saved or not) on a line built for it alone,
        never started: the running line is not disturbed."""
        record = self._cleaned(record)
        line = self.kind(record.kind).build(record)
        try:
            return await asyncio.wait_for(line.check(), self._check_timeout)
        except TimeoutError:
            return CheckResult(False, "no answer", error=f"the check did not finish within "
                               f"{self._check_timeout:g} s")
        finally:
            with contextlib.suppress(Exception):
                await line.stop()

    def _editable(self, name: str) -> LineRecord:
        record = self.record(name)
        if name in self._built_in:
            raise ValidationError(f"line {name} is built in (the demo's PBX) and cannot be "
                                  "changed", field="name")
        return record

    def merged(self, name: str, *, new_name: str | None = None, enabled: bool | None = None,
               settings: Mapping[str, Any] | None = None,
               secrets: Mapping[str, str] | None = None) -> LineRecord:
        """The stored line with these changes, cleaned: settings sent replace stored ones, a
        secret sent empty (or not sent) keeps the stored one -- unless a setting the secret
        is bound to (the host it is sent to: ``LineKind.secret_bound``) changed, then the
        secret must be sent again (a stored secret never goes to another host)."""
        old = self.record(name)
        sent = {k: v for k, v in (secrets or {}).items() if v}
        record = self._cleaned(LineRecord(
            new_name or old.name, old.kind, old.enabled if enabled is None else enabled,
            {**old.settings, **(settings or {})}, {**old.secrets, **sent}))
        kind = self.kind(old.kind)
        moved = [k for k in kind.secret_bound if record.settings.get(k) != old.settings.get(k)]
        kept = [k for k in kind.secret_fields if old.secrets.get(k) and k not in sent]
        if moved and kept:
            raise ValidationError(
                f"{kept[0]} must be entered again: {', '.join(moved)} changed, and a stored "
                f"{kept[0]} is only ever sent where it was saved for", field=kept[0])
        return record

    # -- changes ---------------------------------------------------------------------------

    async def add(self, record: LineRecord, actor: Actor, *, save_disabled: bool = False
                  ) -> tuple[LineRecord, CheckResult | None]:
        record = self._cleaned(record)
        self._free(record.name)
        # The check runs outside the lock (it may take its timeout): other edits and a
        # SIGHUP reload are not held up by it.
        record, result = await self._checked(record, save_disabled)
        async with self._lock:
            self._free(record.name)
            await self.store.save_line(record)
            self.records[record.name] = record
            if record.enabled:
                await self._start(record)
        await audit.record(self._audit_store, actor, "create", record.name, None,
                           audit.masked(record.public()))
        return record, result

    def _free(self, name: str) -> None:
        if name in self.records:
            raise ValidationError(f"a line named {name!r} exists already", field="name")

    async def edit(self, name: str, actor: Actor, *, new_name: str | None = None,
                   enabled: bool | None = None, settings: Mapping[str, Any] | None = None,
                   secrets: Mapping[str, str] | None = None, save_disabled: bool = False
                   ) -> tuple[LineRecord, CheckResult | None]:
        """Change line ``name``: the changes are merged onto the line as it is when the
        change applies (:meth:`merged`), so two edits at once never lose one another."""
        return await self._replace(
            name, lambda: self.merged(name, new_name=new_name, enabled=enabled,
                                      settings=settings, secrets=secrets),
            actor, save_disabled)

    async def update(self, name: str, record: LineRecord, actor: Actor, *,
                     save_disabled: bool = False) -> tuple[LineRecord, CheckResult | None]:
        """Replace line ``name`` with the whole of ``record`` (changes: :meth:`edit`)."""
        return await self._replace(name, lambda: self._cleaned(record), actor, save_disabled)

    async def _replace(self, name: str, build: Callable[[], LineRecord], actor: Actor,
                       save_disabled: bool) -> tuple[LineRecord, CheckResult | None]:
        async with self._lock:
            old = self._editable(name)
            record = build()
            if record.kind != old.kind:
                raise ValidationError("the kind of a line cannot change: add a new line",
                                      field="kind")
            if record.name != name:
                self._free(record.name)
        record, result = await self._checked(record, save_disabled)
        async with self._lock:
            if self.records.get(name) is not old:
                # Changed (or removed) by someone else while this one was being checked.
                raise Conflict(f"line {name} was changed by someone else meanwhile; nothing "
                               "was saved: reload it and make the change again")
            if record.name != name:
                self._free(record.name)
            await self.store.save_line(record, previous_name=name)
            stopped = await self._stop(name, notify=False)
            del self.records[name]
            self.records[record.name] = record
            self._errors.pop(name, None)
            started = await self._start(record, notify=False) if record.enabled else None
            if record.name != name:  # a rename: the old name's calls end with it
                if stopped is not None:
                    await self._notify(name, stopped, None)
                if started is not None:
                    await self._notify(record.name, None, started)
            elif stopped is not None or started is not None:
                await self._notify(name, stopped, started)
        changed = {k for k in record.secrets if record.secrets.get(k) != old.secrets.get(k)}
        action = "update"
        if replace(old, enabled=record.enabled) == record and old.enabled != record.enabled:
            action = "enable" if record.enabled else "disable"
        await audit.record(self._audit_store, actor, action, name,
                           audit.masked(old.public()), audit.masked(record.public(), changed))
        return record, result

    async def set_enabled(self, name: str, enabled: bool, actor: Actor, *,
                          save_disabled: bool = False) -> tuple[LineRecord, CheckResult | None]:
        return await self.edit(name, actor, enabled=enabled, save_disabled=save_disabled)

    async def delete(self, name: str, actor: Actor) -> None:
        async with self._lock:
            old = self._editable(name)
            with contextlib.suppress(NotFound):  # changed by another process meanwhile
                await self.store.delete_line(name)
            self.records.pop(name, None)  # first: listeners see it gone, not failing
            await self._stop(name)
            self._errors.pop(name, None)
        await audit.record(self._audit_store, actor, "delete", name,
                           audit.masked(old.public()), None)

    async def _checked(self, record: LineRecord, save_disabled: bool
                       ) -> tuple[LineRecord, CheckResult | None]:
        """An enabled line is saved only once its check passed; with ``save_disabled`` a
        failing one is saved switched off."""
        if not record.enabled:
            return record, None
        result = await self.check(record)
        if result.ok:
            return record, result
        if not save_disabled:
            raise LineCheckFailed(result)
        log.warning("line %s: check failed (%s); saved disabled", record.name, result.error)
        return replace(record, enabled=False), result
