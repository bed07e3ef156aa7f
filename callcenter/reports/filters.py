"""A report's filter from query parameters, with a clear sentence for each bad value."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from callcenter.errors import ValidationError
from callcenter.line_events import Direction
from callcenter.reports.model import Grouping, ReportFilter, Segment

MAX_DAYS = 400  # a year and a bit: longer periods are a benchmark, not a page
MAX_IDS = 200
MAX_TEXT = 64

PARAMS = ("from", "to", "user", "group", "line", "did", "direction", "segment", "group_by",
          "client")


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{name} must be a date such as 2026-03-01, not {text[:20]!r}",
                              field=name) from None


def _list(values: Sequence[str]) -> list[str]:
    out = [v.strip() for raw in values for v in raw.split(",") if v.strip()]
    if len(out) > MAX_IDS:
        raise ValidationError(f"at most {MAX_IDS} values per filter")
    return out


def _ids(values: Sequence[str], name: str) -> tuple[int, ...]:
    out = []
    for v in _list(values):
        if not v.isdigit() or len(v) > 12:
            raise ValidationError(f"{name} must be numeric ids separated by commas, not "
                                  f"{v[:20]!r}", field=name)
        out.append(int(v))
    return tuple(dict.fromkeys(out))


def _texts(values: Sequence[str], name: str) -> tuple[str, ...]:
    out = _list(values)
    for v in out:
        if len(v) > MAX_TEXT:
            raise ValidationError(f"{name} values are at most {MAX_TEXT} characters",
                                  field=name)
    return tuple(dict.fromkeys(out))


def parse_filter(query: Mapping[str, Sequence[str]], *, timezone: str, default: Grouping,
                 allowed: Sequence[Grouping], today: date | None = None) -> ReportFilter:
    """``query``: parameter name -> the values given (a repeated parameter adds values).
    Unknown parameters are refused, so a typo never silently shows everything."""
    unknown = sorted(set(query) - set(PARAMS))
    if unknown:
        raise ValidationError(f"unknown report parameter {unknown[0][:30]!r}; known: "
                              f"{', '.join(PARAMS)}", field=unknown[0][:30])

    def one(name: str) -> str | None:
        values = [v for v in query.get(name, ()) if v.strip()]
        if len(values) > 1:
            raise ValidationError(f"{name} may be given once", field=name)
        return values[0].strip() if values else None

    if today is None:
        today = datetime.now(ZoneInfo(timezone)).date()
    to_text, from_text = one("to"), one("from")
    end = _date(to_text, "to") if to_text else today
    start = _date(from_text, "from") if from_text else end.replace(day=1)
    if start > end:
        raise ValidationError("from must not be after to", field="from")
    if (end - start).days + 1 > MAX_DAYS:
        raise ValidationError(f"a report covers at most {MAX_DAYS} days", field="from")
    direction = one("direction")
    if direction is not None and direction not in {d.value for d in Direction}:
        raise ValidationError("direction must be inbound, outbound or internal",
                              field="direction")
    segment = None
    seg = one("segment")
    if seg is not None:
        name, sep, value = seg.partition(":")
        if not sep or not name.strip() or len(seg) > 2 * MAX_TEXT:
            raise ValidationError("segment must be field:value, e.g. segment:vip",
                                  field="segment")
        segment = Segment(name.strip(), value.strip())
    grouping = default
    group_by = one("group_by")
    if group_by is not None:
        try:
            grouping = Grouping(group_by)
        except ValueError:
            grouping = None  # type: ignore[assignment]
        if grouping not in allowed:
            raise ValidationError(
                f"group_by must be one of {', '.join(g.value for g in allowed)} for this "
                "report", field="group_by")
    client = one("client")
    client_id = None
    if client is not None:
        ids = _ids([client], "client")
        client_id = ids[0] if ids else None
    return ReportFilter(
        start=start, end=end, timezone=timezone,
        user_ids=_ids(query.get("user", ()), "user"),
        group_ids=_ids(query.get("group", ()), "group"),
        lines=_texts(query.get("line", ()), "line"),
        dids=_texts(query.get("did", ()), "did"),
        direction=direction, segment=segment, client_id=client_id, group_by=grouping)
