"""A compact in-process copy of caller_numbers for the screen-pop's range read.

The SQLite statement alone costs more than the whole lookup may (benchmarks/lookup.py prints
it: decoding a 7-column row through sqlite3), so the index keeps the table in two arrays and a
file: the rows' keys (the reversed digits packed into one integer, in the table's order) and
offsets in the heap, 12 bytes a number, and each row marshalled into an unlinked temporary
file next to the database, read with one ``pread`` (the page cache holds it, not the heap:
1,000,000 numbers keep ~12 MB here instead of ~70 MB).

A snapshot never answers for a range in which a number changed since it was taken: those
revs are *dirty* and the caller reads SQLite instead, so the snapshot only has to be right
about what has not changed (tests/test_caller_snapshot.py checks it against the table).
Not thread-safe: built on a worker thread, then used and marked from the event loop only.
"""

from __future__ import annotations

import bisect
import marshal
import os
import tempfile
from array import array
from collections.abc import Iterable
from pathlib import Path
from typing import Any

WIDTH = 18  # digits a key holds: 11**18 < 2**64; longer revs share the key of their first 18
_SPAN = [11 ** (WIDTH - n) for n in range(WIDTH + 1)]
_DIGITS = str.maketrans("0123456789", "123456789a")  # base 11, 0 left for "ended"
LIMIT = 50  # rows a range read returns, as SqliteCallerIndex._RANGE
STEP = 64

Row = tuple[Any, ...]  # client_id, client_name, contact_id, contact_name, manager_id, raw, e164


def pack(digits: str) -> int:
    """An integer in the order of the digit strings (a prefix sorts first, as in SQLite's
    text order); a string of 1 to WIDTH ASCII digits."""
    return int(digits.translate(_DIGITS), 11) * _SPAN[len(digits)]


def _plain(rev: str) -> bool:
    return rev.isascii() and rev.isdigit()


class CallerSnapshot:
    def __init__(self, keys: array[int], offsets: array[int], file: Any,
                 dirty: Iterable[str] = ()) -> None:
        self._keys = keys
        # Every STEP-th key as a list: bisect on an array makes an int object per probe, on
        # a list it compares the ones there (the two-level search costs half as much).
        self._top = list(keys[::STEP])
        self._offsets = offsets  # len(keys) + 1: record i is [offsets[i], offsets[i + 1])
        self._file = file
        self._fd = file.fileno()
        self._dirty = sorted(set(dirty))
        self._dirty_set = set(self._dirty)

    @classmethod
    def build(cls, rows: Iterable[tuple[Any, ...]], folder: Path) -> CallerSnapshot:
        """From ``(rev, *Row)`` tuples in caller_numbers' key order. A rev that is not plain
        digits (none are, unless written by hand) stays dirty: SQLite answers for it."""
        # offsets of 4 bytes: a file past 4 GiB raises OverflowError (the keeper logs it and
        # SQLite answers); at ~70 bytes a row that is ~60 million numbers
        keys, offsets, odd = array("Q"), array("I", [0]), []
        # the snapshot owns the file and closes it (close())
        file = tempfile.TemporaryFile(dir=folder, prefix=".caller-snapshot-")  # noqa: SIM115
        try:
            at = 0
            write, dumps = file.write, marshal.dumps
            for rev, *row in rows:
                if type(rev) is not str:
                    continue  # a BLOB put in by hand: SQLite's text range never holds one
                if not _plain(rev):
                    odd.append(rev)
                    continue
                record = dumps(tuple(row))
                write(record)
                at += len(record)
                keys.append(pack(rev[:WIDTH]))
                offsets.append(at)
            file.flush()
        except BaseException:
            file.close()
            raise
        return cls(keys, offsets, file, odd)

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def mark(self, rev: str) -> None:
        """``rev``'s rows changed after the snapshot: its ranges are read from SQLite."""
        if type(rev) is not str:
            return  # a BLOB (see build()): in no range, and unsortable among the texts
        if rev not in self._dirty_set:
            self._dirty_set.add(rev)
            bisect.insort(self._dirty, rev)

    def rows(self, prefix: str) -> list[Row] | None:
        """The first LIMIT rows whose rev starts with ``prefix``, in the table's order, or
        None when the snapshot cannot say (a dirty rev in the range, an odd prefix)."""
        # The screen-pop's path: written out flat (each call or temporary here costs a few
        # percent of the lookup, benchmarks/lookup.py).
        n = len(prefix)
        if not (0 < n <= WIDTH and prefix.isascii() and prefix.isdigit()):
            return None
        dirty = self._dirty
        if dirty:
            k = bisect.bisect_left(dirty, prefix)
            if k < len(dirty) and dirty[k].startswith(prefix):
                return None
        keys = self._keys
        low = int(prefix.translate(_DIGITS), 11) * _SPAN[n]
        block = bisect.bisect_left(self._top, low)
        block = (block - 1) * STEP if block else 0
        i = block + bisect.bisect_left(keys[block:block + STEP + 1], low)
        # the range's end: rarely more than a key or two on, and never read past LIMIT
        high = low + _SPAN[n]
        end = i + LIMIT
        if end > len(keys):
            end = len(keys)
        j = i
        while j < end and keys[j] < high:
            j += 1
        if i == j:
            return []
        offsets = self._offsets
        start = offsets[i]
        data = os.pread(self._fd, offsets[j] - start, start)
        if j == i + 1:
            return [marshal.loads(data)]
        return [marshal.loads(data[offsets[k] - start:offsets[k + 1] - start])
                for k in range(i, j)]

    def close(self) -> None:
        self._file.close()
