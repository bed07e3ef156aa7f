"""Calls: live calls, the call log, call actions, click-to-call, presence, recordings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from callcenter.calls.visibility import (
    call_for_user,
    event_for_user,
)
from callcenter.errors import CallcenterError, PermissionDenied, ValidationError
from callcenter.lines.presence import merged_presence
from callcenter.models import Role, User
from callcenter.phones import display, normalize
from callcenter.services import Services
from callcenter.store.base import CallFilter
from ui.api.clients import managers_restricted
from ui.api.common import body_of, current_user, ok, path_id, query_of, services
from ui.api.models import CallsQuery, OriginateIn, RecordingIn, TransferIn
from ui.api.responses import ActionResult, Call, CallParty


def _calls(svc: Services) -> Any:
    service = svc.extra.get("calls")
    if service is None:
        raise CallcenterError("call handling is not running")
    return service


def call_json(row: dict[str, Any], region: str, *, admin: bool = False) -> Call:
    """A call-log row in the same shape as the live events' ``call``; for an admin, a
    withheld caller's number as the PBX delivered it (``caller.withheld_raw``)."""
    number = normalize(row["caller_raw"], region)
    answered = None
    if row["answered_by_ext"] or row["answered_by_user"]:
        answered = {"extension": row["answered_by_ext"], "user_id": row["answered_by_user"],
                    "user_name": row["answered_by_name"]}
    caller: CallParty = {"raw": row["caller_raw"], "e164": row["caller_e164"],
                         "name": row["caller_name"], "withheld": bool(row["withheld"]),
                         "display": "" if row["withheld"] else display(number, region)}
    if admin and row["withheld"]:
        caller["withheld_raw"] = row.get("withheld_raw") or ""
    return {
        "id": row["id"], "line": row["line"], "direction": row["direction"],
        "caller": caller,
        "called": row["called"], "client_id": row["client_id"],
        "client_name": row["client_name"],
        "contact_id": row["contact_id"], "candidates": row["candidates"],
        "state": row["state"], "reason": row["reason"], "cause": row["cause"],
        "answered_by": answered, "rang": row["rang"], "user_id": row["user_id"],
        "started_at": row["ringing_at"], "answered_at": row["answered_at"],
        "ended_at": row["ended_at"], "ring_seconds": row["ring_seconds"],
        "talk_seconds": row["talk_seconds"], "transfers": row["transfers"],
        "handled_by_pbx": bool(row.get("handled_by_pbx")), "ivr_seconds": row.get("ivr_seconds"),
        "voicemail": any(r.get("kind") == "voicemail" for r in row.get("recordings", [])),
        "recordings": [
            {"id": r["id"], "state": r["state"], "size": r["size"], "kind": r.get("kind", "call"),
             "url": f"/api/recordings/{r['id']}" if r["state"] == "fetched" else None}
            for r in row.get("recordings", [])
        ],
    }


async def live_calls(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    registry = _calls(svc).registry
    see_all = svc.config.console.managers_see_all_clients
    snaps = [registry.snapshot(c) for c in registry.live()]
    remote = svc.extra.get("remote_calls")
    if remote is not None:  # a cluster: the calls on the other instances' lines too
        snaps += remote.snapshots({c.id for c in registry.live()})
    out = [event_for_user(user, snap, see_all) for snap in snaps
           if svc.routing.can_see_event(user, snap, see_all)]
    return ok(out)


async def list_calls(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    q = query_of(request, CallsQuery)
    f = CallFilter(
        since=q.since, until=q.until, number=q.number or None,
        client_id=q.client_id, user_id=q.user_id, state=q.state,
        visible_to=user.id if managers_restricted(svc, user) else None,
        limit=q.limit, offset=q.offset,
    )
    if f.number:
        n = normalize(f.number, svc.config.phones.default_region)
        f.number = n.e164 or f.number
    rows = await svc.store.list_calls(f)
    region = svc.config.phones.default_region
    see_all = svc.config.console.managers_see_all_clients
    admin = user.role is Role.ADMIN
    return ok([call_for_user(user, call_json(r, region, admin=admin), see_all) for r in rows])


async def _visible_row(svc: Services, user: User, call_id: str) -> dict[str, Any]:
    row = await svc.store.get_call(call_id)
    if managers_restricted(svc, user) and not (
        _row_involves(svc, user, row) or await _own_client(svc, user, row)
    ):
        raise PermissionDenied("this call does not involve you")
    return row


def _row_involves(svc: Services, user: User, row: dict[str, Any]) -> bool:
    return user.id in (row["answered_by_user"], row["user_id"]) or user.id in row["users"]


async def _own_client(svc: Services, user: User, row: dict[str, Any]) -> bool:
    if row["client_id"] is None:
        return False
    client = await svc.store.get_client(row["client_id"])
    return client.manager_id == user.id


async def get_call(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    row = await _visible_row(svc, user, request.path_params["call_id"])
    return ok(call_for_user(user, call_json(row, svc.config.phones.default_region,
                                            admin=user.role is Role.ADMIN),
                            svc.config.console.managers_see_all_clients))


async def transfer(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = await body_of(request, TransferIn)
    await _calls(services(request)).transfer(
        user, request.path_params["call_id"], data.to, data.kind)
    return ok(ActionResult(ok=True, result="requested"))


async def hangup(request: Request) -> JSONResponse:
    user = await current_user(request)
    await _calls(services(request)).hangup(user, request.path_params["call_id"])
    return ok(ActionResult(ok=True))


async def recording(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = await body_of(request, RecordingIn)
    path = await _calls(services(request)).recording(user, request.path_params["call_id"],
                                                     data.on)
    return ok(ActionResult(ok=True, file=path))


async def originate(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = await body_of(request, OriginateIn)
    ref = await _calls(services(request)).originate(user, data.number)
    return ok(ActionResult(ok=True, call_ref=ref))


async def presence(request: Request) -> JSONResponse:
    await current_user(request)
    svc = services(request)
    lines = svc.extra.get("lines")
    running = list(lines.running.values()) if lines is not None else []
    return ok(merged_presence(_calls(svc).registry.presence(), running))


async def lines(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    manager = services(request).extra.get("lines")
    if manager is None:
        return ok(_calls(services(request)).statuses())
    # From the line manager: every line of every kind, disabled ones too.
    return ok([{"name": s.name, "kind": s.kind, "connected": s.connected, "detail": s.detail,
                "state": s.state.value, "last_error": s.last_error, "since": s.since}
               for s in manager.statuses()])


async def get_recording(request: Request) -> FileResponse | JSONResponse:
    user = await current_user(request)
    svc = services(request)
    rec = await svc.store.get_recording(path_id(request))
    row = await svc.store.get_call(rec["call_id"])
    if managers_restricted(svc, user) and not (
        _row_involves(svc, user, row) or await _own_client(svc, user, row)
    ):
        raise PermissionDenied("this recording belongs to a call that does not involve you")
    if rec["state"] != "fetched" or not rec["local_path"]:
        raise ValidationError(
            f"the recording is not available yet (state {rec['state']}"
            + (f": {rec['last_error']}" if rec["last_error"] else "") + ")")
    path = Path(rec["local_path"])
    base = (svc.config.data_dir / "recordings").resolve()
    if not path.resolve().is_relative_to(base) or not path.is_file():
        raise ValidationError("the recording file is missing from storage")
    # FileResponse answers Range requests (206), so a player can seek.
    # Named after the call, not the PBX file: its name often holds the caller's number.
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"call-{row['id']}-{rec['id']}")
    return FileResponse(path, media_type="audio/wav", filename=name + path.suffix,
                        content_disposition_type="inline")
