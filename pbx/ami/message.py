"""One decoded AMI message: ordered headers, some of which may repeat (Output:, FileName:)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class Message:
    """An AMI message as received.

    ``headers`` keeps the first value of every key, with the key spelled as sent (AMI is not
    consistent: ``Uniqueid`` in channel events, ``UniqueID`` in CEL). Keys that occur more than
    once (``Output:`` lines of a Command, ``FileName:`` of a fax) keep all values in ``repeated``.
    """

    headers: dict[str, str]
    repeated: dict[str, list[str]] = field(default_factory=dict)

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

    @classmethod
    def from_pairs(cls, pairs: list[tuple[str, str]]) -> Message:
        headers: dict[str, str] = {}
        repeated: dict[str, list[str]] = {}
        for key, value in pairs:
            if key in headers:
                repeated.setdefault(key, [headers[key]]).append(value)
            else:
                headers[key] = value
        return cls(headers, repeated)
