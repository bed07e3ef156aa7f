"""Throttling of password guesses, per login and per client address (sans-I/O: a clock in,
decisions out; kept in memory and bounded in size)."""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0  # when the count last decayed by one


class _Counter:
    """Failures of one kind of key. From the ``free``-th failure on, each one locks the key
    for ``base * 2**(failures - free)`` seconds, at most ``max_delay``. The count decays by
    one every ``decay`` seconds, so the lock a failure brings shrinks with the quiet before
    it: a guess now and then cannot keep a login locked at the longest delay for ever.
    Beyond ``max_keys`` the least recent unlocked keys are dropped first, so a flood of new
    keys cannot push out a lock."""

    def __init__(self, free: int, base: float, max_delay: float, decay: float,
                 max_keys: int) -> None:
        self.free, self.base, self.max_delay = free, base, max_delay
        self.decay, self.max_keys = decay, max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def _entry(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        # Whole failures only, so that the n-th failure is the n-th however fast it came.
        steps = int(max(0.0, now - entry.last) // self.decay)
        if steps:
            entry.failures = max(0, entry.failures - steps)
            entry.last += steps * self.decay
        if entry.failures == 0 and now >= entry.locked_until:
            del self._entries[key]
            return None
        return entry

    def wait(self, key: str, now: float) -> float:
        entry = self._entry(key, now)
        return max(0.0, entry.locked_until - now) if entry else 0.0

    def fail(self, key: str, now: float) -> None:
        entry = self._entry(key, now) or _Entry(last=now)
        if entry.failures == 0:
            entry.last = now  # the decay starts with the first failure
        entry.failures += 1
        if entry.failures >= self.free:
            delay = self.base * 2.0 ** min(entry.failures - self.free, 30)
            entry.locked_until = now + min(delay, self.max_delay)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        self._evict(now)

    def _evict(self, now: float) -> None:
        # Oldest first, skipping (and refreshing) locked keys; if every key is locked the
        # oldest goes all the same: memory stays bounded.
        for _ in range(len(self._entries)):
            if len(self._entries) <= self.max_keys:
                return
            key, entry = next(iter(self._entries.items()))
            if now < entry.locked_until:
                self._entries.move_to_end(key)
            else:
                del self._entries[key]
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

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def address_key(address: str) -> str:
    """IPv6 clients by their /64: one host usually holds the whole prefix, so counting
    single addresses would give it 2**64 fresh ones."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginThrottle:
    """Every attempt counts as a failure from the moment it starts, so a burst of parallel
    guesses cannot all get past the check before the first verdict; a success takes it back.
    A success clears the login's count but only its own attempt from the address's: one
    account of your own must not reset the count of guesses at everybody else's.

    An address that logged in to an account within ``trust_for`` seconds is not held back
    by that login's lock (its own address count still applies): someone guessing at a
    user's password from elsewhere does not lock the user out of their own desk."""

    def __init__(self, *, per_login: int = 5, per_address: int = 20, base: float = 1.0,
                 max_delay: float = 900.0, decay: float = 300.0,
                 trust_for: float = 30 * 86400.0, max_keys: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.trust_for = trust_for
        self.max_keys = max_keys
        self.logins = _Counter(per_login, base, max_delay, decay, max_keys)
        self.addresses = _Counter(per_address, base, max_delay, decay, max_keys)
        self._trusted: OrderedDict[tuple[str, str], float] = OrderedDict()
        # Several instances (a cluster): each attempt is told to the others, which apply()
        # it, so a guesser gains nothing by spreading guesses over the instances.
        self.on_change: Callable[[dict[str, object]], None] | None = None

    @staticmethod
    def _login_key(login: str) -> str:
        return login.strip().casefold()[:200]

    def _is_trusted(self, login: str, address: str, now: float) -> bool:
        since = self._trusted.get((login, address))
        return since is not None and now - since < self.trust_for

    def retry_after(self, login: str, address: str) -> int:
        """Whole seconds to wait before this attempt may be tried; 0 means go ahead."""
        now = self.clock()
        login, address = self._login_key(login), address_key(address)
        wait = self.addresses.wait(address, now)
        if not self._is_trusted(login, address, now):
            wait = max(wait, self.logins.wait(login, now))
        return math.ceil(wait)

    def begin(self, login: str, address: str) -> bool:
        """Counts the attempt; True if the login was locked (a trusted address got past)."""
        now = self.clock()
        key = self._login_key(login)
        held = self.logins.wait(key, now) > 0
        self.logins.fail(key, now)
        self.addresses.fail(address_key(address), now)
        if self.on_change is not None:
            self.on_change({"op": "begin", "login": key, "address": address_key(address)})
        return held

    def succeeded(self, login: str, address: str, *, held: bool = False) -> None:
        login, address = self._login_key(login), address_key(address)
        if self.on_change is not None:
            self.on_change({"op": "ok", "login": login, "address": address, "held": held})
        self._succeeded(login, address, held)

    def apply(self, body: dict[str, object]) -> None:
        """An attempt another instance counted (see ``on_change``)."""
        login, address = str(body.get("login", ""))[:200], str(body.get("address", ""))[:64]
        if body.get("op") == "begin":
            now = self.clock()
            self.logins.fail(login, now)
            self.addresses.fail(address, now)
        elif body.get("op") == "ok":
            self._succeeded(login, address, bool(body.get("held")))

    def _succeeded(self, login: str, address: str, held: bool) -> None:
        if held:  # the lock is someone else's guessing: it stays, less this attempt
            self.logins.undo(login)
        else:
            self.logins.clear(login)
        self.addresses.undo(address)
        self._trusted[(login, address)] = self.clock()
        self._trusted.move_to_end((login, address))
        while len(self._trusted) > self.max_keys:
            self._trusted.popitem(last=False)
