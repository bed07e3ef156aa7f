"""The audit log (admin): who changed what, filtered, and as CSV; and the actor of a request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response

from callcenter.audit import Actor, AuditFilter, changed_only
from callcenter.audit.export import to_csv
from callcenter.models import User
from ui.api.admin_models import AuditQuery
from ui.api.common import ok, query_of, services
from ui.api.session import client_address

CSV_LIMIT = 50_000  # one export; a longer period is exported in parts


def actor(conn: HTTPConnection, user: User) -> Actor:
    """The logged-in user making a change, and the address the request came from."""
    return Actor(user.id, user.login, client_address(conn))


def _filter(q: AuditQuery, limit: int) -> AuditFilter:
    return AuditFilter(actor_id=q.actor_id, actor_label=q.actor or None,
                       target_kind=q.target_kind or None, target_id=q.target_id or None,
                       action=q.action or None, since=q.since, until=q.until, limit=limit,
                       offset=q.offset)


async def list_audit(request: Request) -> JSONResponse:
    q = query_of(request, AuditQuery)
    return ok(await services(request).audit.list(_filter(q, q.limit)))


async def export_audit(request: Request) -> Response:
    q = query_of(request, AuditQuery)
    entries = await services(request).audit.list(_filter(q, CSV_LIMIT))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Response(
        # a BOM, so spreadsheet programs read the UTF-8 (Cyrillic names) as UTF-8
        "\ufeff" + to_csv(entries), media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="audit-{stamp}.csv"',
                 "cache-control": "no-store"})


async def record(request: HTTPConnection, user: User, action: str, kind: str, target_id: object,
                 before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    """One audit entry for a change the request made; an update keeps the changed fields
    only."""
    if before is not None and after is not None:
        before, after = changed_only(before, after)
        if not after and not before:
            return  # nothing changed
    await services(request).audit.record_by(actor(request, user), action, kind, target_id,
                                            before, after)
