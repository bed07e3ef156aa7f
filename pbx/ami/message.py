"""One decoded AMI message: ordered headers, some of which may repeat (Output:, FileName:)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, overload

# A line that starts with whitespace, or whitespace before a colon: the key would be stripped,
# so finding "\r\nKey:" in the text could miss it or see a later line. Such messages (never
# sent by Asterisk) are parsed in full. Deliberately loose: a value such as "a :b" also
# counts, which costs only a full parse. \s and str.strip() agree on what whitespace is.
_IRREGULAR = re.compile(r"\s:|\n\s")
_MISSING: Any = object()
_PLAIN_KEYS: set[str] = set()  # keys get() may look up in the text directly


def _parse_pairs(text: str) -> list[tuple[str, str]]:
    """Every line as (key, value): the key stripped, one space after the colon dropped; lines
    without a colon under the empty key (old ``Response: Follows`` bodies)."""
    pairs: list[tuple[str, str]] = []
    for line in text.split("\r\n"):
        if not line:
            continue
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key.strip(), value[1:] if value.startswith(" ") else value))
        else:
            pairs.append(("", line))
    return pairs


def _collect(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    headers: dict[str, str] = {}
    repeated: dict[str, list[str]] = {}
    for key, value in pairs:
        if key in headers:
            repeated.setdefault(key, [headers[key]]).append(value)
        else:
            headers[key] = value
    return headers, repeated


class Headers(Mapping[str, str]):
    """The headers of one received message, read from its text on demand.

    The correlator reads three or four headers of a typical event (``Event``, ``Uniqueid``,
    ``Variable``...) out of twenty; splitting every line into a dict was two thirds of the
    ingest time (benchmarks/ami_ingest.py). ``get`` finds ``\\r\\nKey:`` in the text instead;
    iterating, ``len`` or an unusual key parses the whole message once. Same answers as the
    dict of first values (tests/pbx/test_ami_message.py compares the two on random blocks).
    """

    __slots__ = ("_dict", "_regular", "_repeated", "_text")

    def __init__(self, text: str) -> None:
        self._text = text
        self._dict: dict[str, str] | None = None
        self._repeated: dict[str, list[str]] | None = None
        self._regular: bool | None = None  # no stripped key differs from its text

    @property
    def text(self) -> str:
        """The message as received (decoded, without its terminating blank line)."""
        return self._text

    def _parse(self) -> dict[str, str]:
        if self._dict is None:
            self._dict, self._repeated = _collect(_parse_pairs(self._text))
        return self._dict

    @property
    def repeated(self) -> dict[str, list[str]]:
        self._parse()
        assert self._repeated is not None
        return self._repeated

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | Any) -> str | Any: ...

    def get(self, key: str, default: Any = None) -> Any:
        found = self._dict
        if found is not None:
            return found.get(key, default)
        if key not in _PLAIN_KEYS:
            if not key or key != key.strip() or ":" in key or "\n" in key:
                return self._parse().get(key, default)
            if len(_PLAIN_KEYS) < 1024:  # the keys code asks for: a few dozen
                _PLAIN_KEYS.add(key)
        text = self._text
        first = text.find(key)
        if first < 0:
            return default  # no line can have this key, stripped or not
        size = len(key)
        if (first == 0 or text.startswith("\r\n", first - 2)) and text.startswith(
                ":", first + size):
            start = first + size + 1  # its first occurrence begins a line: the header
        else:
            # The key's letters occur earlier inside another line ("Uniqueid" after
            # "DestUniqueid"): a stripped key could hide there unless the message is regular.
            if not self._is_regular():
                return self._parse().get(key, default)
            at = text.find("\r\n" + key + ":", first)
            if at < 0:
                return default
            start = at + size + 3
        end = text.find("\r\n", start)
        value = text[start:end] if end >= 0 else text[start:]
        return value[1:] if value[:1] == " " else value

    def _is_regular(self) -> bool:
        regular = self._regular
        if regular is None:
            text = self._text
            regular = self._regular = not (text[:1].isspace() or _IRREGULAR.search(text))
        return regular

    def __getitem__(self, key: str) -> str:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, _MISSING) is not _MISSING

    def __iter__(self) -> Iterator[str]:
        return iter(self._parse())

    def __len__(self) -> int:
        return len(self._parse())

    def __repr__(self) -> str:
        return f"Headers({self._parse()!r})"


class Message:
    """An AMI message as received.

    ``headers`` keeps the first value of every key, with the key spelled as sent (AMI is not
    consistent: ``Uniqueid`` in channel events, ``UniqueID`` in CEL). Keys that occur more than
    once (``Output:`` lines of a Command, ``FileName:`` of a fax) keep all values in ``repeated``.
    A message framed from the wire (``from_text``) keeps its text and reads headers lazily;
    ``text`` gives the whole message back for logs and recordings.
    """

    __slots__ = ("_repeated", "headers")

    def __init__(self, headers: Mapping[str, str],
                 repeated: dict[str, list[str]] | None = None) -> None:
        self.headers = headers
        self._repeated = repeated

    @classmethod
    def from_text(cls, text: str) -> Message:
        return cls(Headers(text))

    @property
    def repeated(self) -> dict[str, list[str]]:
        if self._repeated is None:
            headers = self.headers
            self._repeated = headers.repeated if isinstance(headers, Headers) else {}
        return self._repeated

    @property
    def text(self) -> str:
        """The message as received, or rebuilt from its headers when it was not framed from
        bytes (tests, the emulator)."""
        if isinstance(self.headers, Headers):
            return self.headers.text
        lines = [f"{k}: {v}" for k, v in self.headers.items()]
        lines += [f"{k}: {v}" for k, vs in self.repeated.items() for v in vs[1:]]
        return "\r\n".join(lines)

    @property
    def event(self) -> str | None:
        return self.headers.get("Event")

    @property
    def response(self) -> str | None:
        return self.headers.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.headers.get("ActionID")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]

    def __contains__(self, key: object) -> bool:
        return key in self.headers

    def get_all(self, key: str) -> list[str]:
        if key in self.repeated:
            return list(self.repeated[key])
        value = self.headers.get(key)
        return [] if value is None else [value]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return dict(self.headers) == dict(other.headers) and self.repeated == other.repeated

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return f"Message(headers={dict(self.headers)!r}, repeated={self.repeated!r})"

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Message:
        headers, repeated = _collect(pairs)
        return cls(headers, repeated)
