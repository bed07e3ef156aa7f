"""Calls: live calls, the call log, call actions, click-to-call, presence, recordings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from callcenter.calls.visibility import can_see_event
from callcenter.errors import CallcenterError, PermissionDenied, ValidationError
from callcenter.models import Role, User
from callcenter.phones import display, normalize
from callcenter.services import Services
from callcenter.store.base import CallFilter
from ui.api.clients import managers_restricted
from ui.api.common import current_user, int_param, json_body, ok, services


def _calls(svc: Services) -> Any:
    service = svc.extra.get("calls")
    if service is None:
        raise CallcenterError("call handling is not running")
    return service


def _when(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValidationError(f"{name} must be a date or date-time like 2026-11-22",
                              field=name) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def call_json(row: dict[str, Any], region: str) -> dict[str, Any]:
    """A call-log row in the same shape as the live events' ``call``."""
    number = normalize(row["caller_raw"], region)
    answered = None
    if row["answered_by_ext"] or row["answered_by_user"]:
        answered = {"extension": row["answered_by_ext"], "user_id": row["answered_by_user"],
                    "user_name": row["answered_by_name"]}
    return {
        "id": row["id"], "line": row["line"], "direction": row["direction"],
        "caller": {"raw": row["caller_raw"], "e164": row["caller_e164"],
                   "name": row["caller_name"], "withheld": bool(row["withheld"]),
                   "display": "" if row["withheld"] else display(number, region)},
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
    out = [snap for snap in (registry.snapshot(c) for c in registry.live())
           if can_see_event(user, snap, see_all)]
    return ok(out)


async def list_calls(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    state = request.query_params.get("state") or None
    if state not in (None, "answered", "missed", "failed", "ringing"):
        raise ValidationError("state must be answered, missed or failed", field="state")
    f = CallFilter(
        since=_when(request, "since"), until=_when(request, "until"),
        number=(request.query_params.get("number") or "").strip()[:40] or None,
        client_id=int_param(request, "client_id", high=2**62),
        user_id=int_param(request, "user_id", high=2**62), state=state,
        visible_to=user.id if managers_restricted(svc, user) else None,
        limit=int_param(request, "limit", 100, low=1, high=1000) or 100,
        offset=int_param(request, "offset", 0, high=10**9) or 0,
    )
    if f.number:
        n = normalize(f.number, svc.config.phones.default_region)
        f.number = n.e164 or f.number
    rows = await svc.store.list_calls(f)
    region = svc.config.phones.default_region
    return ok([call_json(r, region) for r in rows])


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
    return ok(call_json(row, svc.config.phones.default_region))


async def transfer(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = await json_body(request)
    if not isinstance(data, dict):
        raise ValidationError("request body must be a JSON object")
    await _calls(services(request)).transfer(
        user, request.path_params["call_id"], str(data.get("to", "")),
        str(data.get("kind", "blind")))
    return ok({"ok": True, "result": "requested"})


async def hangup(request: Request) -> JSONResponse:
    user = await current_user(request)
    await _calls(services(request)).hangup(user, request.path_params["call_id"])
    return ok({"ok": True})


async def recording(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = await json_body(request)
    if not isinstance(data, dict) or not isinstance(data.get("on"), bool):
        raise ValidationError("send {\"on\": true} or {\"on\": false}", field="on")
    path = await _calls(services(request)).recording(user, request.path_params["call_id"],
                                                     data["on"])
    return ok({"ok": True, "file": path})


async def originate(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = await json_body(request)
    if not isinstance(data, dict) or not isinstance(data.get("number"), str):
        raise ValidationError("send {\"number\": \"...\"}", field="number")
    ref = await _calls(services(request)).originate(user, data["number"])
    return ok({"ok": True, "call_ref": ref})


async def presence(request: Request) -> JSONResponse:
    await current_user(request)
    return ok(_calls(services(request)).registry.presence())


async def lines(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    return ok(_calls(services(request)).statuses())


async def get_recording(request: Request) -> FileResponse | JSONResponse:
    user = await current_user(request)
    svc = services(request)
    rec = await svc.store.get_recording(int(request.path_params["id"]))
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
    return FileResponse(path, media_type="audio/wav", filename=path.name,
                        content_disposition_type="inline")
