"""Who a campaign goes to: a filter on the client base, one mobile number per contact.

The store returns every (client, contact, phone) row the filter matches; the choice is made here,
in pure code: a contact's first phone that can take an SMS (a mobile number by ``phonenumbers``,
or a phone marked "mobile"), a number reached once however many contacts share it (the first
contact in the order wins), landlines, extensions and unparseable numbers left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import phonenumbers

from callcenter.errors import ValidationError
from callcenter.sms.campaign_template import split_name

MAX_SEARCH = 200
MAX_CUSTOM_FILTERS = 10


@dataclass(frozen=True)
class AudienceFilter:
    manager_id: int | None = None
    search: str = ""
    # custom field name → the value it must have (compared as text, case-insensitively)
    custom: Mapping[str, str] = field(default_factory=dict)
    client_ids: tuple[int, ...] = ()  # an explicit list (empty: no restriction)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> AudienceFilter:
        data = data or {}
        unknown = set(data) - {"manager_id", "search", "custom", "client_ids"}
        if unknown:
            raise ValidationError(f"unknown audience field {sorted(unknown)[0][:40]}",
                                  field="audience")
        manager_id = data.get("manager_id")
        if manager_id is not None and (not isinstance(manager_id, int)
                                       or isinstance(manager_id, bool)):
            raise ValidationError("audience.manager_id must be a user id",
                                  field="audience.manager_id")
        search = data.get("search") or ""
        if not isinstance(search, str) or len(search) > MAX_SEARCH:
            raise ValidationError(f"audience.search must be text of at most {MAX_SEARCH}"
                                  " characters", field="audience.search")
        custom = data.get("custom") or {}
        if not isinstance(custom, Mapping) or len(custom) > MAX_CUSTOM_FILTERS or not all(
                isinstance(k, str) and isinstance(v, str | int | float) and len(str(v)) <= 200
                for k, v in custom.items()):
            raise ValidationError("audience.custom must map up to 10 custom fields to values",
                                  field="audience.custom")
        ids = data.get("client_ids") or []
        if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids) or len(ids) > 10000:
            raise ValidationError("audience.client_ids must be a list of client ids",
                                  field="audience.client_ids")
        return cls(manager_id, search.strip(), {k: str(v) for k, v in custom.items()},
                   tuple(ids))

    def to_json(self) -> dict[str, Any]:
        return {"manager_id": self.manager_id, "search": self.search,
                "custom": dict(self.custom), "client_ids": list(self.client_ids)}


@dataclass(frozen=True, slots=True)
class AudienceRow:
    """One phone of one contact the filter matched, as the store read it."""

    client_id: int
    client_name: str
    manager_name: str
    contact_id: int
    contact_name: str
    contact_position: str
    phone_id: int
    phone_raw: str
    e164: str | None
    phone_kind: str
    custom: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Recipient:
    client_id: int
    contact_id: int
    number: str  # E.164
    values: Mapping[str, str]  # the template's field values for this recipient


@lru_cache(maxsize=65536)
def is_mobile(e164: str | None, kind: str = "") -> bool:
    if not e164:
        return False
    if kind.lower() == "mobile":
        return True
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.number_type(parsed) in (
        phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def values_of(row: AudienceRow) -> dict[str, str]:
    first, last = split_name(row.contact_name)
    values = {"contact.name": row.contact_name, "contact.first_name": first,
              "contact.last_name": last, "contact.position": row.contact_position,
              "client.name": row.client_name, "manager.name": row.manager_name}
    values.update({f"custom.{k}": v for k, v in row.custom.items()})
    return values


def choose(rows: Iterable[AudienceRow]) -> list[Recipient]:
    """One number per contact, each number once; the rows' order decides who wins."""
    taken_contacts: set[int] = set()
    taken_numbers: set[str] = set()
    out = []
    for row in rows:
        if row.contact_id in taken_contacts or not is_mobile(row.e164, row.phone_kind):
            continue
        assert row.e164 is not None
        taken_contacts.add(row.contact_id)
        if row.e164 in taken_numbers:
            continue
        taken_numbers.add(row.e164)
        out.append(Recipient(row.client_id, row.contact_id, row.e164, values_of(row)))
    return out
