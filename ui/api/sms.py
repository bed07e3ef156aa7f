"""SMS: send to a client's number, the part counter, the SMS list, a message with its parts,
the modem pool's status and the do-not-send list."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from callcenter.errors import CallcenterError
from callcenter.models import Role
from callcenter.services import Services
from callcenter.store.sqlite_sms import SmsFilter
from ui.api.clients import visible_client
from ui.api.common import body_of, current_user, ok, path_id, query_of, services
from ui.api.sms_models import OptOutIn, SmsCountIn, SmsQuery, SmsResendIn, SmsSendIn


def _sms(svc: Services) -> Any:
    service = svc.extra.get("sms")
    if service is None:
        raise CallcenterError("SMS handling is not running")
    return service


def _json(svc: Services, message: dict[str, Any]) -> dict[str, Any]:
    from callcenter.sms.service import iso_time, sms_json

    out = sms_json(message, svc.config.phones.default_region)
    if "inbound_parts" in message:
        out["inbound_parts"] = [
            p | {"smsc_time": iso_time(p["smsc_time"]), "received_at": iso_time(p["received_at"])}
            for p in message["inbound_parts"]]
    return out


def _counter(service: Any, text: str) -> dict[str, Any]:
    split = service.count(text)
    return {"encoding": split.encoding.value, "parts": len(split.parts), "units": split.units,
            "per_part": split.per_part, "remaining": split.remaining, "chars": len(text)}


async def send(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = await body_of(request, SmsSendIn)
    service = _sms(svc)
    if data.client_id is not None:
        await visible_client(svc, user, data.client_id)
    message_id = await service.enqueue(data.to, data.text, client_id=data.client_id,
                                       user_id=user.id, kind="manual",
                                       confirm_opted_out=data.confirm_opted_out)
    message = await service.get(user, message_id)
    return ok(_json(svc, message) | {"counter": _counter(service, data.text)}, 201)


async def resend(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    data = await body_of(request, SmsResendIn)
    service = _sms(svc)
    message_id = await service.resend(user, path_id(request), text=data.text,
                                      confirm_opted_out=data.confirm_opted_out,
                                      confirm_unknown=data.confirm_unknown)
    return ok(_json(svc, await service.get(user, message_id)), 201)


async def count(request: Request) -> JSONResponse:
    await current_user(request)
    svc = services(request)
    data = await body_of(request, SmsCountIn)
    return ok(_counter(_sms(svc), data.text))


async def list_sms(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    q = query_of(request, SmsQuery)
    f = SmsFilter(direction=q.direction, state=q.state, client_id=q.client_id,
                  number=q.number, modem=q.modem, limit=q.limit, offset=q.offset)
    rows = await _sms(svc).list(user, f)
    return ok([_json(svc, r) for r in rows])


async def client_sms(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    client = await visible_client(svc, user, path_id(request))
    rows = await _sms(svc).list(user, SmsFilter(client_id=client.id, limit=200))
    return ok([_json(svc, r) for r in rows])


async def get_sms(request: Request) -> JSONResponse:
    user = await current_user(request)
    svc = services(request)
    message = await _sms(svc).get(user, path_id(request))
    return ok(_json(svc, message))


async def pool_status(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN, Role.SECRETARY, Role.MANAGER)
    svc = services(request)
    pool = svc.extra.get("sms_pool")
    if pool is None:
        return ok({"modems": [], "waiting": 0})
    return ok({"modems": await pool.status(), "waiting": await pool.waiting_unassigned()})


async def templates(request: Request) -> JSONResponse:
    await current_user(request)
    svc = services(request)
    return ok([{"id": i, "text": text} for i, text in enumerate(svc.config.sms.templates)])


async def optout_list(request: Request) -> JSONResponse:
    from callcenter.sms.service import iso_time

    await current_user(request, Role.ADMIN)
    rows = await _sms(services(request)).opt_out_list()
    return ok([row | {"at": iso_time(row["at"])} for row in rows])


async def optout_change(request: Request) -> JSONResponse:
    user = await current_user(request, Role.ADMIN)
    data = await body_of(request, OptOutIn)
    service = _sms(services(request))
    if data.opted_out:
        changed = await service.opt_out(data.number, source=f"admin:{user.login}")
    else:
        changed = await service.opt_in(data.number)
    return ok({"number": service.number_key(data.number), "opted_out": data.opted_out,
               "changed": changed})
