"""The OpenAPI 3.1 document, generated from the route table and the schemas below."""

from __future__ import annotations

from typing import Any

from ui.routes import ApiRoute

_S = "string"
_ERROR = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": _S, "description": "stable machine-readable id, e.g. invalid-input"},
    "message": {"type": _S}, "field": {"type": _S, "description": "the offending field"}}}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, **({"required": list(required)} if required
                                                       else {})}


def _t(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, **extra}


def _item(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_NULL_INT = {"type": ["integer", "null"]}
_NULL_STR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}

SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "Login": _obj({"login": _t(_S), "password": _t(_S, format="password")},
                  ("login", "password")),
    "Session": _obj({"user": {"$ref": "#/components/schemas/User"}, "csrf_token": _t(_S)}),
    "User": _obj({"id": _t("integer"), "login": _t(_S), "name": _t(_S),
                  "role": _t(_S, enum=["secretary", "manager", "admin"]),
                  "extension": _NULL_STR, "language": _t(_S, enum=["en", "ru"]),
                  "active": _t("boolean")}),
    "UserInput": _obj({"login": _t(_S), "name": _t(_S), "role": _t(_S),
                       "extension": _NULL_STR, "password": _t(_S, minLength=8),
                       "language": _t(_S), "active": _t("boolean")}),
    "Phone": _obj({"id": _t("integer"), "contact_id": _t("integer"), "raw": _t(_S),
                   "e164": _NULL_STR, "digits": _t(_S), "kind": _t(_S)}),
    "PhoneInput": _obj({"number": _t(_S, description="as typed; normalized to E.164"),
                        "kind": _t(_S)}, ("number",)),
    "Contact": _obj({"id": _t("integer"), "client_id": _t("integer"), "name": _t(_S),
                     "position": _t(_S), "email": _t(_S),
                     "phones": _t("array", items={"$ref": "#/components/schemas/Phone"})}),
    "ContactInput": _obj({"name": _t(_S), "position": _t(_S), "email": _t(_S),
                          "phones": _t("array", items=_item("PhoneInput"))}),
    "Client": _obj({"id": _t("integer"), "name": _t(_S),
                    "kind": _t(_S, enum=["company", "person"]),
                    "manager_id": _NULL_INT, "notes": _t(_S),
                    "custom": _t("object", description="custom field name -> value"),
                    "contacts": _t("array", items={"$ref": "#/components/schemas/Contact"}),
                    "created_at": _TIME}),
    "ClientInput": _obj({"name": _t(_S), "kind": _t(_S, enum=["company", "person"]),
                         "manager_id": _NULL_INT, "notes": _t(_S), "custom": _t("object"),
                         "contacts": _t("array",
                                        items={"$ref": "#/components/schemas/ContactInput"})},
                        ("name",)),
    "CustomField": _obj({"id": _t("integer"), "name": _t(_S), "label": _t(_S),
                         "type": _t(_S, enum=["text", "number", "date", "bool"])}),
    "CustomFieldInput": _obj({"name": _t(_S, pattern="^[a-z][a-z0-9_]{0,39}$"),
                              "label": _t(_S), "type": _t(_S)}, ("name",)),
    "Interaction": _obj({"id": _t("integer"), "client_id": _NULL_INT,
                         "kind": _t(_S, enum=["call", "sms", "fax", "note"]),
                         "at": _t(_S, format="date-time"), "summary": _t(_S),
                         "user_id": _NULL_INT, "contact_id": _NULL_INT, "ref": _NULL_STR,
                         "data": _t("object")}),
    "NoteInput": _obj({"text": _t(_S)}, ("text",)),
    "Task": _obj({"id": _t("integer"), "kind": _t(_S, enum=["callback", "reminder"]),
                  "title": _t(_S), "due_at": _TIME, "assignee_id": _NULL_INT,
                  "assignee_role": _NULL_STR, "client_id": _NULL_INT, "phone": _NULL_STR,
                  "done": _t("boolean"), "created_at": _TIME, "done_at": _TIME,
                  "ref": _NULL_STR, "voicemail": _t("boolean")}),
    "TaskInput": _obj({"title": _t(_S), "kind": _t(_S), "due_at": _TIME,
                       "assignee_id": _NULL_INT, "client_id": _NULL_INT, "phone": _NULL_STR,
                       "done": _t("boolean")}),
    "CallParty": _obj({"raw": _t(_S), "e164": _NULL_STR, "name": _t(_S),
                       "withheld": _t("boolean"), "display": _t(_S)}),
    "Call": _obj({
        "id": _t(_S), "line": _t(_S),
        "direction": _t(_S, enum=["inbound", "outbound", "internal"]),
        "caller": _item("CallParty"), "called": _t(_S), "client_id": _NULL_INT,
        "client_name": _NULL_STR,
        "contact_id": _NULL_INT, "candidates": _t("array", items=_t("object")),
        "state": _t(_S, enum=["ringing", "answered", "missed", "failed"]),
        "reason": _NULL_STR, "cause": _t(_S),
        "answered_by": {"type": ["object", "null"], "properties": {
            "extension": _NULL_STR, "user_id": _NULL_INT, "user_name": _NULL_STR}},
        "rang": _t("array", items=_t(_S)), "user_id": _NULL_INT,
        "started_at": _TIME, "answered_at": _TIME, "ended_at": _TIME,
        "ring_seconds": {"type": ["number", "null"]}, "talk_seconds": {"type": ["number", "null"]},
        "transfers": _t("array", items=_obj({"kind": _t(_S), "from": _NULL_STR, "to": _t(_S),
                                             "at": _TIME, "result": _t(_S)})),
        "handled_by_pbx": _t("boolean", description="answered by the PBX alone (IVR), no person"),
        "ivr_seconds": {"type": ["number", "null"]},
        "voicemail": _t("boolean", description="the caller left a voicemail"),
        "recordings": _t("array", items=_obj({"id": _t("integer"), "state": _t(_S),
                                              "size": _NULL_INT, "url": _NULL_STR,
                                              "kind": _t(_S, enum=["call", "voicemail"])})),
    }),
    "LiveCall": _obj({"call": _t("object", description="see docs/events.md"),
                      "match": _t("object", description="see docs/events.md")}),
    "TransferInput": _obj({"to": _t(_S, description="extension"),
                           "kind": _t(_S, enum=["blind", "attended", "redirect"])}, ("to",)),
    "RecordingInput": _obj({"on": _t("boolean")}, ("on",)),
    "OriginateInput": _obj({"number": _t(_S)}, ("number",)),
    "ActionResult": _obj({"ok": _t("boolean"), "result": _t(_S), "call_ref": _t(_S),
                          "file": _NULL_STR}),
    "Lookup": _obj({"number": _t("object"), "withheld": _t("boolean"),
                    "user": {"oneOf": [{"$ref": "#/components/schemas/User"}, {"type": "null"}]},
                    "candidates": _t("array", items=_t("object")), "tie": _t("boolean")}),
}


def _ref(name: str) -> dict[str, Any]:
    if name.startswith("["):
        return {"type": "array", "items": {"$ref": f"#/components/schemas/{name[1:-1]}"}}
    return {"$ref": f"#/components/schemas/{name}"}


def build_openapi(routes: list[ApiRoute], extra_schemas: dict[str, Any] | None = None,
                  version: str = "0") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in routes:
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.method.lower()}_{route.endpoint.__name__}",
            "responses": {
                str(route.status): {
                    "description": "OK",
                    **({"content": {"application/json": {"schema": _ref(route.response)}}}
                       if route.response else {}),
                },
                "default": {"description": "error", "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        }
        params = [{"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                  ] if "{id}" in route.path else []
        if "{call_id}" in route.path:
            params.append({"name": "call_id", "in": "path", "required": True,
                           "schema": {"type": "string"}})
        params += [{"name": n, "in": "query", "required": False, "schema": {"type": t},
                    "description": d} for n, t, d in route.query]
        if params:
            op["parameters"] = params
        if route.body:
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _ref(route.body)}}}
        if not route.public:
            op["security"] = [{"session": []}]
        op.update(route.extra)
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "callcenter API", "version": version,
                 "description": "Session cookie auth: POST /api/session, then send the "
                                "X-CSRF-Token header on every state-changing request."},
        "paths": paths,
        "components": {
            "schemas": {**SCHEMAS, **(extra_schemas or {})},
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie",
                                            "name": "cc_session"}},
        },
    }
