"""Throttling of password guesses, per login and per client address (sans-I/O: a clock in,
decisions out; kept in memory and bounded in size)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class _Counter:
    """Failures of one kind of key. From the ``free``-th failure on, each one locks the key
    for ``base * 2**(failures - free)`` seconds, at most ``max_delay``; a quiet
    ``forget_after`` clears the count. The oldest keys are dropped beyond ``max_keys``."""

    def __init__(self, free: int, base: float, max_delay: float, forget_after: float,
                 max_keys: int) -> None:
        self.free, self.base, self.max_delay = free, base, max_delay
        self.forget_after, self.max_keys = forget_after, max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now >= entry.locked_until and (
            now - entry.last >= self.forget_after
        ):
            del self._entries[key]
            return None
        return entry

    def wait(self, key: str, now: float) -> float:
        entry = self._entry(key, now)
        return max(0.0, entry.locked_until - now) if entry else 0.0

    def fail(self, key: str, now: float) -> None:
        entry = self._entry(key, now) or _Entry()
        entry.failures += 1
        entry.last = now
        if entry.failures >= self.free:
            delay = self.base * 2.0 ** min(entry.failures - self.free, 30)
            entry.locked_until = now + min(delay, self.max_delay)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_keys:
            self._entries.popitem(last=False)

    def undo(self, key: str) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        entry.failures = max(0, entry.failures - 1)
        if entry.failures < self.free:
            entry.locked_until = 0.0

    def clear(self, key: str) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class LoginThrottle:
    """Every attempt counts as a failure from the moment it starts, so a burst of parallel
    guesses cannot all get past the check before the first verdict; a success takes it back.
    A success clears the login's count but only its own attempt from the address's: one
    account of your own must not reset the count of guesses at everybody else's."""

    def __init__(self, *, per_login: int = 5, per_address: int = 20, base: float = 1.0,
                 max_delay: float = 900.0, forget_after: float = 3600.0,
                 max_keys: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.logins = _Counter(per_login, base, max_delay, forget_after, max_keys)
        self.addresses = _Counter(per_address, base, max_delay, forget_after, max_keys)

    @staticmethod
    def _login_key(login: str) -> str:
        return login.strip().casefold()[:200]

    def retry_after(self, login: str, address: str) -> int:
        """Whole seconds to wait before this attempt may be tried; 0 means go ahead."""
        now = self.clock()
        wait = max(self.logins.wait(self._login_key(login), now),
                   self.addresses.wait(address, now))
        return math.ceil(wait)

    def begin(self, login: str, address: str) -> None:
        now = self.clock()
        self.logins.fail(self._login_key(login), now)
        self.addresses.fail(address, now)

    def succeeded(self, login: str, address: str) -> None:
        self.logins.clear(self._login_key(login))
        self.addresses.undo(address)
