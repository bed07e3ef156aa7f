"""The pure half of ``callcenter import clients FILE``: read a table, map columns, build drafts.

Nothing here touches the database. The CLI reads the file with :func:`read_table`, turns its
``--map`` options into a mapping with :func:`parse_mapping`, asks the store for the known
managers and custom fields, calls :func:`build_drafts` and only then writes the drafts.

Decisions worth knowing when reading an :class:`ImportPlan`:

* Rows whose client names are equal after casefolding and collapsing whitespace become one
  client; each row adds a contact, and rows naming the same contact (same name, no conflicting
  email or position) add phones to that one contact.
* Client-level values (kind, manager, custom fields) may be left blank on later rows of the
  same client; a later row that contradicts an earlier one is rejected, naming the earlier row.
  Notes from several rows are kept, one per line.
* A phone already used by another client earlier in the file rejects the later row, naming the
  earlier row; the same phone repeated inside one client is simply kept once per contact.
* Every problem of a row is reported together (joined with "; "), and the rejected row leaves
  no trace in the drafts, so fixing the file and re-running gives a predictable result.
* Reading the file (encodings, delimiters, Excel cells) lives in
  :mod:`callcenter.import_table`; its names are re-exported here.
* Problems with the file or the mapping itself (unreadable file, a ``--map`` naming a column
  that does not exist, two columns competing for the client name) raise instead, because they
  would otherwise reject every row for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import phonenumbers

from callcenter.import_table import (
    CSV_SUFFIXES,
    XLSX_SUFFIXES,
    ImportFileError,
    ImportingError,
    Table,
    read_table,
)
from callcenter.models import ClientKind
from callcenter.phones import MIN_MATCH_DIGITS, NumberKind, normalize

__all__ = [
    "CLIENT_TARGETS",
    "CSV_SUFFIXES",
    "IGNORE",
    "XLSX_SUFFIXES",
    "ClientDraft",
    "ContactDraft",
    "ImportFileError",
    "ImportPlan",
    "ImportingError",
    "MappingError",
    "PhoneDraft",
    "Rejection",
    "Table",
    "build_drafts",
    "default_target",
    "parse_mapping",
    "read_table",
    "resolve_mapping",
]

IGNORE = "-"
CLIENT_TARGETS = ("name", "kind", "contact", "position", "email", "phone", "manager", "notes")
CUSTOM_PREFIX = "custom:"
_MULTI_COLUMN_TARGETS = frozenset({"phone", "notes"})
_IGNORE_SPELLINGS = frozenset({IGNORE, "ignore", "skip", "none", ""})


class MappingError(ImportingError, ValueError):
    """A ``--map`` option, or the resulting column mapping, makes no sense for this file."""


# --------------------------------------------------------------------------- column mapping

_HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "name": ("name", "company", "company name", "client", "client name", "customer",
             "organization", "organisation", "компания", "клиент", "название",
             "название компании", "наименование", "организация", "контрагент"),
    "kind": ("kind", "type", "client type", "тип", "тип клиента", "вид"),
    "contact": ("contact", "contact name", "contact person", "full name", "контакт",
                "фио", "контактное лицо", "имя контакта"),
    "position": ("position", "title", "job title", "role", "должность"),
    "email": ("email", "e mail", "mail", "email address", "почта", "эл почта",
              "электронная почта", "емейл", "имейл"),
    "phone": ("phone", "phones", "telephone", "tel", "phone number", "mobile", "mobile phone",
              "cell", "work phone", "телефон", "телефоны", "тел", "мобильный",
              "мобильный телефон", "рабочий телефон", "номер телефона"),
    "manager": ("manager", "owner", "responsible", "account manager", "менеджер",
                "ответственный", "ответственный менеджер"),
    "notes": ("notes", "note", "comment", "comments", "примечание", "примечания",
              "комментарий", "комментарии", "заметки"),
}
_DEFAULT_TARGETS = {synonym: target for target, synonyms in _HEADER_SYNONYMS.items()
                    for synonym in synonyms}
_TARGET_ALIASES = {"phones": "phone", "note": "notes", "type": "kind", "company": "name",
                   "e-mail": "email", "contact_name": "contact"}
_COPY_SUFFIX = re.compile(r"(?:\s*\(\d+\)|\s+\d{1,2}|(?<=[^\W\d_])\d{1,2})$")
_HEADER_PUNCT = re.compile(r"[\s_\-.:*#№]+")


def _header_key(header: str) -> str:
    text = header.casefold().replace("ё", "е")
    return " ".join(_HEADER_PUNCT.sub(" ", text).split())


def default_target(header: str) -> str | None:
    """What a header means without a ``--map``: "Телефон 2" -> "phone", "ИНН" -> None."""
    stripped = header.strip()
    if stripped.casefold().startswith(CUSTOM_PREFIX):
        key = stripped[len(CUSTOM_PREFIX):].strip()
        return CUSTOM_PREFIX + key if key else None
    key = _header_key(stripped)
    if key in _DEFAULT_TARGETS:
        return _DEFAULT_TARGETS[key]
    # "Phone 2", "Телефон (3)" and "phone2" are extra copies of a known column.
    base = _header_key(_COPY_SUFFIX.sub("", header.strip()))
    return _DEFAULT_TARGETS.get(base)


def _parse_target(target: str, spec: str) -> str:
    text = target.strip()
    if text.casefold().startswith(CUSTOM_PREFIX):
        key = text[len(CUSTOM_PREFIX):].strip()
        if not key:
            raise MappingError(f"--map {spec!r}: custom field name is missing after 'custom:'")
        return CUSTOM_PREFIX + key
    lowered = text.casefold()
    if lowered in _IGNORE_SPELLINGS:
        return IGNORE
    lowered = _TARGET_ALIASES.get(lowered, lowered)
    if lowered in CLIENT_TARGETS:
        return lowered
    expected = ", ".join((*CLIENT_TARGETS, "custom:<field>", IGNORE))
    raise MappingError(f"--map {spec!r}: unknown target {text!r}; expected one of {expected}")


def parse_mapping(specs: Iterable[str]) -> dict[str, str]:
    """Turn ``--map "Header=target"`` options into {header: target}.

    Targets are the names in CLIENT_TARGETS, ``custom:<field>``, or ``-`` to ignore a column
    the default mapping would otherwise pick up. The last ``=`` splits, since headers may
    contain one but targets never do.
    """
    mapping: dict[str, str] = {}
    for spec in specs:
        header, sep, target = spec.rpartition("=")
        header = " ".join(header.split())
        if not sep or not header:
            raise MappingError(f"--map {spec!r}: expected COLUMN=TARGET, e.g. 'Company=name'")
        parsed = _parse_target(target, spec)
        previous = mapping.get(header)
        if previous is not None and previous != parsed:
            raise MappingError(f"column {header!r} is mapped twice: to {previous} and {parsed}")
        mapping[header] = parsed
    return mapping


def resolve_mapping(columns: Sequence[str], mapping: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
    """Map every column of the file to a target (or IGNORE): explicit entries, then defaults.

    Explicit keys match a column exactly, or else ignoring case and spacing. Raises
    MappingError for an explicit column missing from the file, for no column holding the
    client name, and for two columns competing for a target that holds a single value.
    """
    resolved: dict[str, str] = {}
    for header, target in (mapping or {}).items():
        column = _find_column(columns, header)
        parsed = target if target == IGNORE else _parse_target(target, f"{header}={target}")
        if column in resolved and resolved[column] != parsed:
            raise MappingError(f"column {column!r} is mapped twice: "
                               f"to {resolved[column]} and {parsed}")
        resolved[column] = parsed
    for column in columns:
        if column not in resolved:
            resolved[column] = default_target(column) or IGNORE

    by_target: dict[str, list[str]] = {}
    for column in columns:
        target = resolved[column]
        if target != IGNORE:
            by_target.setdefault(target, []).append(column)
    for target, competing in by_target.items():
        if len(competing) > 1 and target not in _MULTI_COLUMN_TARGETS:
            names = " and ".join(repr(c) for c in competing)
            raise MappingError(f"columns {names} all map to {target}; keep one, e.g. "
                               f"--map \"{competing[-1]}={IGNORE}\"")
    if "name" not in by_target:
        raise MappingError("no column holds the client name; add e.g. "
                           f"--map \"{columns[0]}=name\" (columns: "
                           f"{', '.join(map(repr, columns))})")
    return {column: resolved[column] for column in columns}


def _find_column(columns: Sequence[str], header: str) -> str:
    if header in columns:
        return header
    key = _header_key(header)
    matches = [column for column in columns if _header_key(column) == key]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise MappingError(f"--map column {header!r} is ambiguous: it matches "
                           f"{', '.join(map(repr, matches))}; spell it exactly")
    raise MappingError(f"--map names column {header!r}, which is not in the file; "
                       f"columns are: {', '.join(map(repr, columns))}")


# --------------------------------------------------------------------------- drafts


@dataclass(slots=True)
class PhoneDraft:
    raw: str
    e164: str | None
    digits: str

    @property
    def key(self) -> str:
        """What makes two spellings the same number: E.164 when known, else the digits."""
        return self.e164 or self.digits


@dataclass(slots=True)
class ContactDraft:
    name: str
    position: str = ""
    email: str = ""
    phones: list[PhoneDraft] = field(default_factory=list)
    source_row: int = 0


@dataclass(slots=True)
class ClientDraft:
    name: str
    kind: ClientKind = ClientKind.COMPANY
    manager_id: int | None = None
    notes: str = ""
    custom: dict[str, str] = field(default_factory=dict)
    contacts: list[ContactDraft] = field(default_factory=list)
    source_rows: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Rejection:
    row: int
    reason: str
    values: dict[str, str]


@dataclass(slots=True)
class ImportPlan:
    drafts: list[ClientDraft] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    skipped: list[Rejection] = field(default_factory=list)  # already imported (a re-run)
    ignored_columns: list[str] = field(default_factory=list)
    mapping: dict[str, str] = field(default_factory=dict)  # every used column -> its target
    encoding: str = ""  # how a CSV file was read, and whether that was detected or given


_KIND_WORDS: dict[str, ClientKind] = {
    word: ClientKind.COMPANY for word in (
        "company", "business", "organization", "organisation", "org", "legal entity", "b2b",
        "компания", "организация", "юрлицо", "юр лицо", "юридическое лицо", "юл", "фирма",
        # A sole trader is a person in law but is served as a business customer.
        "ип", "ооо", "ао", "пао", "зао")
} | {
    word: ClientKind.PERSON for word in (
        "person", "individual", "private", "private person", "b2c", "физлицо", "физ лицо",
        "физическое лицо", "фл", "частное лицо", "человек", "персона")
}
_PHONE_SEPARATORS = re.compile(r"[,;\n]+")
# Two numbers in one cell ("+7 916 123-45-67 / 8 495 123-45-67") are two phones, not one
# 22-digit number; a slash splits only between digits, so "n/a" stays one (bad) value.
_PHONE_SLASH = re.compile(r"(?<=\d)\s*/\s*(?=[+\d(])")
# Extensions dialled after the number would otherwise be glued onto its digits.
_PHONE_EXTENSION = re.compile(r"\s*(?:ext\.?|x|доб\.?|добавочный|вн\.?|#)\s*\d{1,6}\s*$",
                              re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


@dataclass(slots=True)
class _RowData:
    name: str = ""
    kind: ClientKind | None = None
    contact: str = ""
    position: str = ""
    email: str = ""
    phones: list[PhoneDraft] = field(default_factory=list)
    manager_id: int | None = None
    manager_text: str = ""
    notes: list[str] = field(default_factory=list)
    custom: dict[str, str] = field(default_factory=dict)

    @property
    def has_contact(self) -> bool:
        return bool(self.contact or self.position or self.email or self.phones)


@dataclass(slots=True)
class _ClientState:
    draft: ClientDraft
    kind_row: int | None = None  # the row that fixed kind, so conflicts can name it
    manager_row: int | None = None
    manager_text: str = ""
    custom_rows: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def build_drafts(table: Table, mapping: Mapping[str, str], *, region: str,
                 known_managers: Mapping[str, int],
                 known_custom_fields: AbstractSet[str]) -> ImportPlan:
    """Validate and group the rows of ``table`` into client drafts.

    ``mapping`` is what parse_mapping returned; columns it does not mention get the default
    mapping (so a complete mapping from resolve_mapping works as well). ``known_managers``
    maps casefolded logins and names to user ids. Raises MappingError for a mapping that does
    not fit the file; problems of single rows end up in ``ImportPlan.rejected``.
    """
    resolved = resolve_mapping(table.columns, mapping)
    managers = {_name_key(k): v for k, v in known_managers.items()}
    custom_names = {name.casefold(): name for name in known_custom_fields}
    plan = ImportPlan(
        ignored_columns=[c for c, t in resolved.items() if t == IGNORE],
        mapping={c: t for c, t in resolved.items() if t != IGNORE},
    )
    clients: dict[str, _ClientState] = {}
    phone_owner: dict[str, tuple[str, int]] = {}  # phone key -> (client key, first row)

    for row_number, values in table.rows:
        if not any(values.values()):
            continue
        data, problems = _parse_row(values, plan.mapping, region, managers, custom_names)
        key = _name_key(data.name)
        state = clients.get(key) if data.name else None
        if state is not None:
            problems.extend(_conflicts(state, data))
        for phone in data.phones:
            owner = phone_owner.get(phone.key)
            if owner is not None and owner[0] != key:
                other = clients[owner[0]].draft.name
                problems.append(f"phone {phone.raw!r} already belongs to client {other!r} "
                                f"(row {owner[1]})")
        if problems:
            plan.rejected.append(Rejection(row_number, "; ".join(problems), dict(values)))
            continue
        if state is None:
            state = clients[key] = _ClientState(ClientDraft(name=data.name))
            plan.drafts.append(state.draft)
        _apply(state, data, row_number)
        for phone in data.phones:
            phone_owner.setdefault(phone.key, (key, row_number))

    for state in clients.values():
        draft = state.draft
        if draft.kind is ClientKind.PERSON:
            # A private client's own number is usually on the client row with no contact name.
            for contact in draft.contacts:
                if not contact.name:
                    contact.name = draft.name
    return plan


def _parse_row(values: Mapping[str, str], mapping: Mapping[str, str], region: str,
               managers: Mapping[str, int], custom_names: Mapping[str, str]
               ) -> tuple[_RowData, list[str]]:
    data = _RowData()
    problems: list[str] = []
    seen_phones: set[str] = set()
    for column, target in mapping.items():
        text = values.get(column, "")
        if not text:
            continue
        if target == "name":
            data.name = " ".join(text.split())
        elif target == "kind":
            kind = _KIND_WORDS.get(_header_key(text))
            if kind is None:
                problems.append(f"kind {text!r} is neither company nor person")
            data.kind = kind
        elif target == "contact":
            data.contact = " ".join(text.split())
        elif target == "position":
            data.position = " ".join(text.split())
        elif target == "email":
            if _EMAIL.match(text):
                data.email = text
            elif "@" not in text:
                problems.append(f"email {text!r} has no @")
            else:
                problems.append(f"email {text!r} is not a single valid address")
        elif target == "phone":
            for phone, problem in _parse_phones(text, region):
                if problem is not None:
                    problems.append(problem)
                elif phone is not None and phone.key not in seen_phones:
                    seen_phones.add(phone.key)
                    data.phones.append(phone)
        elif target == "manager":
            manager_id = managers.get(_name_key(text))
            if manager_id is None:
                problems.append(f"unknown manager {text!r} (not a user login or name)")
            data.manager_id, data.manager_text = manager_id, text
        elif target == "notes":
            data.notes.append(text)
        elif target.startswith(CUSTOM_PREFIX):
            wanted = target[len(CUSTOM_PREFIX):]
            name = custom_names.get(wanted.casefold())
            if name is None:
                problems.append(f"unknown custom field {wanted!r} (column {column!r}); "
                                "create the field first or fix --map")
            else:
                data.custom[name] = text
    if not data.name:
        name_columns = [c for c, t in mapping.items() if t == "name"]
        problems.insert(0, f"missing client name (column {name_columns[0]!r} is empty)")
    return data, problems


# The most digits an E.164 number has: more in one run are two numbers glued together.
_MAX_PHONE_DIGITS = 15


def _parse_phones(text: str, region: str) -> list[tuple[PhoneDraft | None, str | None]]:
    """The phones of one cell. phonenumbers' matcher finds the valid numbers wherever they
    are ("… или …", "… or …", "… \\ …", labels such as "(моб.)", "доб. 123" after a
    comma); what it leaves is split at separators and read as before."""
    parsed: list[tuple[PhoneDraft | None, str | None]] = []
    segments: list[tuple[bool, str]] = []  # (a number the matcher found, its text)
    at = 0
    for match in phonenumbers.PhoneNumberMatcher(text, region or "ZZ",
                                                 leniency=phonenumbers.Leniency.VALID):
        # The extension, when there is one, stays in the raw text, not in the number.
        segments += [(False, text[at:match.start]), (True, match.raw_string)]
        at = match.end
    segments.append((False, text[at:]))
    found = len(segments) > 1
    for is_number, segment in segments:
        if is_number:
            parsed.extend(_parse_pieces([segment], region, quiet=False))
            continue
        pieces = [p for part in _PHONE_SEPARATORS.split(segment)
                  for p in _PHONE_SLASH.split(part)]
        parsed.extend(_parse_pieces(pieces, region, quiet=found))
    return parsed


def _parse_pieces(pieces: list[str], region: str, *,
                  quiet: bool) -> list[tuple[PhoneDraft | None, str | None]]:
    """``quiet``: the cell had numbers, so text without digits beside them (a label, "или")
    and a lone extension are not phones of their own."""
    parsed: list[tuple[PhoneDraft | None, str | None]] = []
    for piece in pieces:
        raw = piece.strip()
        if not raw:
            continue
        bare = _PHONE_EXTENSION.sub("", raw)
        if quiet and (not any(c.isdigit() for c in raw) or not bare.strip()):
            continue
        longest = max((len(run) for run in re.findall(r"\d+", re.sub(r"[\s().-]", "", bare))),
                      default=0)
        if longest > _MAX_PHONE_DIGITS:
            parsed.append((None, f"phone {raw!r} has {longest} digits in a row, more than a "
                                 f"phone number can have ({_MAX_PHONE_DIGITS}): two numbers "
                                 "in one cell? separate them with ';'"))
            continue
        number = normalize(bare, region)
        if number.kind is NumberKind.EXTERNAL:
            parsed.append((PhoneDraft(raw, number.e164, number.digits), None))
        elif number.kind is NumberKind.EXTENSION:
            parsed.append((None, f"phone {raw!r} is too short to match a caller: numbers of "
                                 f"fewer than {MIN_MATCH_DIGITS} digits are internal "
                                 "extensions"))
        elif number.kind is NumberKind.WITHHELD:
            parsed.append((None, f"phone {raw!r} is not a number"))
        elif not number.digits:
            parsed.append((None, f"phone {raw!r} has no digits"))
        else:
            parsed.append((None, f"phone {raw!r} is too short to match a caller "
                                 f"(needs at least {MIN_MATCH_DIGITS} digits)"))
    return parsed


def _conflicts(state: _ClientState, data: _RowData) -> list[str]:
    draft, problems = state.draft, []
    if data.kind is not None and state.kind_row is not None and data.kind != draft.kind:
        problems.append(f"kind {data.kind.value} conflicts with {draft.kind.value} given for "
                        f"{draft.name!r} on row {state.kind_row}")
    if (data.manager_id is not None and state.manager_row is not None
            and data.manager_id != draft.manager_id):
        problems.append(f"manager {data.manager_text!r} conflicts with {state.manager_text!r} "
                        f"given for {draft.name!r} on row {state.manager_row}")
    for name, value in data.custom.items():
        if name in draft.custom and draft.custom[name] != value:
            problems.append(f"{name} {value!r} conflicts with {draft.custom[name]!r} given for "
                            f"{draft.name!r} on row {state.custom_rows[name]}")
    return problems


def _apply(state: _ClientState, data: _RowData, row_number: int) -> None:
    draft = state.draft
    draft.source_rows.append(row_number)
    if data.kind is not None and state.kind_row is None:
        draft.kind, state.kind_row = data.kind, row_number
    if data.manager_id is not None and state.manager_row is None:
        draft.manager_id, state.manager_row = data.manager_id, row_number
        state.manager_text = data.manager_text
    for name, value in data.custom.items():
        if name not in draft.custom:
            draft.custom[name] = value
            state.custom_rows[name] = row_number
    # Exports repeat the client's note on every contact row; keep each distinct note once.
    state.notes.extend(note for note in data.notes if note not in state.notes)
    draft.notes = "\n".join(state.notes)
    if data.has_contact:
        _add_contact(draft, data, row_number)


def _add_contact(draft: ClientDraft, data: _RowData, row_number: int) -> None:
    for contact in draft.contacts:
        if (_name_key(contact.name) == _name_key(data.contact)
                and _compatible(contact.email.casefold(), data.email.casefold())
                and _compatible(contact.position, data.position)):
            contact.email = contact.email or data.email
            contact.position = contact.position or data.position
            break
    else:
        contact = ContactDraft(name=data.contact, position=data.position, email=data.email,
                               source_row=row_number)
        draft.contacts.append(contact)
    known = {phone.key for phone in contact.phones}
    contact.phones.extend(phone for phone in data.phones if phone.key not in known)


def _compatible(old: str, new: str) -> bool:
    return not old or not new or old == new
