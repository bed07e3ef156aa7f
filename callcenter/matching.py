"""Caller-ID matching: a raw caller ID in, the client/contact candidates or a user out."""

from __future__ import annotations

from dataclasses import dataclass, field

from callcenter.config import PhonesConfig
from callcenter.models import User
from callcenter.phones import Number, NumberKind, digits_of, normalize, quick_key
from callcenter.store.base import CallerIndex, PhoneMatch


# Not frozen: it holds a dict, so it never was hashable, and a frozen dataclass's __init__
# costs a screen-pop ~0.4 µs more (benchmarks/lookup.py).
@dataclass(slots=True)
class CallerMatch:
    # On the fast path for an unknown caller, number.e164 stays None even for a valid number:
    # use CallerMatcher.normalize(raw) where the canonical form matters (the call log).
    number: Number
    candidates: tuple[PhoneMatch, ...] = ()
    user: User | None = None  # the caller is an internal extension of this user
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def withheld(self) -> bool:
        return self.number.withheld

    @property
    def contact(self) -> PhoneMatch | None:
        """The one matching contact, or None when there is none or a tie."""
        return self.candidates[0] if len(self.candidates) == 1 else None

    @property
    def client_id(self) -> int | None:
        """The client when every candidate belongs to the same one (two contacts of one
        company sharing the switchboard number is no tie about whose client it is)."""
        ids = {c.client_id for c in self.candidates}
        return ids.pop() if len(ids) == 1 else None

    @property
    def tie(self) -> bool:
        return len(self.candidates) > 1


class CallerMatcher:
    def __init__(self, index: CallerIndex, config: PhonesConfig) -> None:
        self._index = index
        self._config = config

    def normalize(self, raw: str | None) -> Number:
        return normalize(raw, self._config.default_region,
                         max_extension_digits=self._config.max_extension_digits)

    def match(self, raw: str | None, *, withheld: bool = False) -> CallerMatch:
        # Fast path: a plainly written number gets its lookup key without the phonenumbers
        # parser (~20 µs, ~40 µs for a number it cannot read): quick_key() answers only where
        # it provably agrees with normalize() (property tests in tests/test_phones.py). Stored
        # numbers were validated on the way in, so an exact hit proves the key is a valid
        # number; otherwise only the last-digits match is left, which the same read answered.
        keyed = None if withheld or not raw else quick_key(raw.strip(),
                                                            self._config.default_region)
        if keyed is not None:
            key, digits = keyed
            tail = digits[-self._config.match_digits:]
            found = self._index.lookup(key, tail)
            if key is not None and found and found[0].matched_by == "e164":
                return CallerMatch(Number(raw, NumberKind.EXTERNAL, key, digits), found)
            if key is None or _typed_tail(raw, self._config.match_digits) == tail:
                return CallerMatch(Number(raw, NumberKind.EXTERNAL, None, digits), found)
            # A key and no hit: normalize() matches the key's digits if the number is valid,
            # the digits as written if not, and their last digits differ ("1753047" in DE is
            # no number, and +49 1753047's tail is another): phonenumbers decides.
        number = self.normalize(raw)
        if withheld and number.kind is not NumberKind.WITHHELD:
            # The line says the caller asked for privacy: show nothing, look nothing up.
            return CallerMatch(Number(number.raw, NumberKind.WITHHELD))
        if number.kind is NumberKind.EXTENSION:
            return CallerMatch(number, user=self._index.user_by_extension(number.digits))
        if number.kind is not NumberKind.EXTERNAL:
            return CallerMatch(number)
        return CallerMatch(number, tuple(self._index.match(number, self._config.match_digits)))


def _typed_tail(raw: str, n: int) -> str:
    """The last ``n`` digits normalize() matches on when it finds no valid number in ``raw``
    (a plainly written one: its digits, a leading 00 dropped)."""
    digits = digits_of(raw)
    return (digits[2:] if digits.startswith("00") else digits)[-n:]
