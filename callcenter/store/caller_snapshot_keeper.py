"""Keeps the SQLite caller index's snapshot (caller_snapshot.py) current.

Built on a worker thread inside one read transaction, with the caller_changes position it
holds; installed on the event loop at the next lookup. From then on the change log
(migration 0020) is read when this process wrote (``writes()`` moved: the store's own writes
are seen by the very next lookup) and at least every POLL_SECONDS (another process's: an
import from the command line), and each changed rev is marked dirty, which sends its ranges
to SQLite. Anything it cannot account for - a gap in the log, more changes than MAX_DIRTY, a
log that went backwards - drops the snapshot (SQLite answers everything) and builds a new
one; so does a snapshot with REBUILD_AT dirty revs, while it goes on answering for the rest.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from time import monotonic

from callcenter.store.caller_snapshot import CallerSnapshot

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
REBUILD_AT = 5_000  # dirty revs before a new snapshot is built
MAX_DIRTY = 50_000  # more changes than this in one read: the snapshot is dropped
REBUILD_SECONDS = 10.0  # at most one build started this often

# One statement, so the log's top and its rows come from the same committed state.
_CHANGES = ("SELECT s.seq, c.seq, c.rev FROM sqlite_sequence s"
            " LEFT JOIN caller_changes c ON c.seq > ? WHERE s.name = 'caller_changes'"
            " ORDER BY c.seq LIMIT ?")
_TOP = "SELECT seq FROM sqlite_sequence WHERE name = 'caller_changes'"
_ROWS = ("SELECT rev, client_id, client_name, contact_id, contact_name, manager_id, raw, e164"
         " FROM caller_numbers ORDER BY rev, contact_id, raw, phone_id")


class SnapshotKeeper:
    def __init__(self, path: Path, db: sqlite3.Connection, writes: Callable[[], int]) -> None:
        self._path = path
        self._db = db  # the index's read connection (event-loop thread only)
        self._writes = writes
        self._seen_writes = -1
        self._poll_at = 0.0
        self._snapshot: CallerSnapshot | None = None
        self._seq = 0  # the last change the snapshot accounts for
        self._built: tuple[CallerSnapshot, int] | None = None  # from the worker thread
        self._builder: threading.Thread | None = None
        self._build_at: float | None = None  # a build is wanted from then on
        self._next_allowed = 0.0
        self._closed = False
        # The build's connection, for close() to interrupt; the lock keeps interrupt() off a
        # connection the worker is closing (sqlite3_interrupt on a closing one is undefined).
        self._build_conn: sqlite3.Connection | None = None
        self._build_lock = threading.Lock()
        self._trim_frozen = 0
        self._failures = 0  # builds failed in a row: each waits twice as long (up to 64x)
        self.builds = 0

    @property
    def trim_point(self) -> int:
        """The change log up to here is needed no more: the snapshot holds it or marked it
        dirty. While a build runs, where the log was when it started (the build installs
        from a later position and reads on from there; trimming past it would leave a gap)."""
        return self._trim_frozen if self._builder is not None else self._seq

    @property
    def installed(self) -> CallerSnapshot | None:
        """The snapshot in use, as it is (no poll)."""
        return self._snapshot

    def start(self) -> None:
        """Build the first snapshot now (the server does; the command line never reads it)."""
        if self._build_at is None and self._snapshot is None and self._builder is None:
            self._build_at = 0.0
            self.current()

    def poll(self) -> None:
        """Read the change log now (as every POLL_SECONDS): another process's writes."""
        self._poll_at = 0.0
        self.current()

    def rebuild(self) -> None:
        """Drop the snapshot and build a new one now (:meth:`wait` for it)."""
        self._drop("a new one was asked for")
        if self._builder is None:
            self._build_at = 0.0
        self.current()

    def wait(self, timeout: float = 60.0) -> bool:
        """Until a build due or under way has been installed (tests, benchmarks); whether a
        snapshot is in use."""
        self.current()
        builder = self._builder
        if builder is not None:
            builder.join(timeout)
            self.current()
        return self._snapshot is not None

    def current(self) -> CallerSnapshot | None:
        """The snapshot to answer from, brought up to date; None: read SQLite."""
        snapshot = self._snapshot
        if (snapshot is not None and self._builder is None and self._build_at is None
                and self._writes() == self._seen_writes and monotonic() < self._poll_at):
            return snapshot  # every screen-pop between two polls: nothing to do
        return self._refresh()

    def _refresh(self) -> CallerSnapshot | None:
        builder = self._builder
        # Looked at once the thread has ended, never before: it publishes _built just before
        # it ends, so reading _built first could miss a build that ends in between, take it
        # for failed and start another (which the install would then lose track of).
        if builder is not None and not builder.is_alive():
            if self._built is not None:
                self._install()
            else:
                self._builder = None  # the build failed (logged): try again later
                self._failures += 1
                self._next_allowed = time.monotonic() + REBUILD_SECONDS * 2 ** min(
                    self._failures, 6)
                self._want_build()
        now = time.monotonic()
        if self._build_at is not None and now >= self._build_at and self._builder is None:
            self._start_build(now)
        snapshot = self._snapshot
        if snapshot is not None:
            writes = self._writes()
            if writes != self._seen_writes or now >= self._poll_at:
                self._seen_writes, self._poll_at = writes, now + POLL_SECONDS
                self._poll(snapshot)
                snapshot = self._snapshot
        return snapshot

    def _poll(self, snapshot: CallerSnapshot) -> None:
        rows = self._db.execute(_CHANGES, (self._seq, MAX_DIRTY + 1)).fetchall()
        top = rows[0][0] if rows else 0
        if top == self._seq:
            return
        changed = [rev for _top, seq, rev in rows if seq is not None and seq <= top]
        if top < self._seq or len(changed) != top - self._seq:
            # the log went back (another database?), lost rows (trimmed by another server on
            # this file) or holds too many: nothing here can be trusted any more
            self._drop(f"change log at {top}, snapshot at {self._seq}, {len(changed)} read")
            return
        for rev in changed:
            snapshot.mark(rev)
        self._seq = top
        if snapshot.dirty >= REBUILD_AT:
            self._want_build()

    def _drop(self, why: str) -> None:
        log.info("caller index snapshot dropped (%s); SQLite answers until the next", why)
        if self._snapshot is not None:
            self._snapshot.close()
        self._snapshot = None
        self._want_build()

    def _want_build(self) -> None:
        if self._build_at is None and self._builder is None:
            self._build_at = self._next_allowed

    def _start_build(self, now: float) -> None:
        self._build_at = None
        self._next_allowed = now + REBUILD_SECONDS
        self._trim_frozen = self._seq
        self._builder = threading.Thread(target=self._build, name="caller-snapshot",
                                         daemon=True)
        self._builder.start()

    def _build(self) -> None:
        started = time.monotonic()
        try:
            conn = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, isolation_level=None)
            try:
                with self._build_lock:
                    self._build_conn = conn
                if self._closed:
                    return
                conn.execute("BEGIN")  # the rows and the log position of one committed state
                top = (conn.execute(_TOP).fetchone() or (0,))[0]
                snapshot = CallerSnapshot.build(conn.execute(_ROWS), self._path.parent)
                conn.execute("COMMIT")
            finally:
                with self._build_lock:
                    self._build_conn = None
                    conn.close()
        except (sqlite3.Error, OSError, OverflowError) as exc:
            if not self._closed:
                log.warning("caller index snapshot not built (%s); SQLite answers", exc)
            return
        log.info("caller index snapshot: %d numbers in %.1f s", len(snapshot),
                 time.monotonic() - started)
        self._built = (snapshot, top)

    def _install(self) -> None:
        built, self._built = self._built, None
        self._builder = None
        assert built is not None
        snapshot, top = built
        if self._closed:
            snapshot.close()
            return
        if self._snapshot is not None:
            self._snapshot.close()
        self._snapshot, self._seq = snapshot, top
        self._failures = 0
        self.builds += 1
        self._poll_at = 0.0  # what changed during the build, at once

    def close(self) -> None:
        self._closed = True
        # A build reads the whole table (seconds on 1,000,000 numbers): stopped, not waited
        # for, so that closing the store does not stall the event loop.
        with self._build_lock:
            if self._build_conn is not None:
                self._build_conn.interrupt()
        builder = self._builder
        if builder is not None:
            builder.join()
        if self._built is not None:
            self._built[0].close()
            self._built = None
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None
