"""The OpenAPI 3.1 document, generated from the route table: request bodies and query
parameters from the pydantic models the handlers validate with (ui/api/models.py), responses
from the core's dataclasses (callcenter/models.py), and the few hand-built shapes below."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from callcenter.models import Client, Contact, CustomField, Interaction, Phone, Task, User
from ui.routes import ApiRoute

REF = "#/components/schemas/{model}"
RESPONSES = (User, Phone, Contact, Client, CustomField, Interaction, Task)

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

# Shapes built by hand in the handlers (dicts, not dataclasses); everything else is generated.
SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "Session": _obj({"user": {"$ref": "#/components/schemas/User"}, "csrf_token": _t(_S)}),
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
        "recordings": _t("array", items=_obj({"id": _t("integer"), "state": _t(_S),
                                              "size": _NULL_INT, "url": _NULL_STR})),
    }),
    "LiveCall": _obj({"call": _t("object", description="see docs/events.md"),
                      "match": _t("object", description="see docs/events.md")}),
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


def _lift(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    for name, sub in schema.pop("$defs", {}).items():
        if components.setdefault(name, sub) != sub:
            raise ValueError(f"two different schemas are both called {name}")
    return schema


def request_schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """The schema of a body model (its nested models and enums go to ``components``)."""
    return _lift(model.model_json_schema(ref_template=REF), components)


def query_parameters(model: type[BaseModel], components: dict[str, Any]
                     ) -> list[dict[str, Any]]:
    schema = _lift(model.model_json_schema(ref_template=REF), components)
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k not in {"title", "description"}}
        param = {"name": name, "in": "query", "required": name in required, "schema": prop}
        description = model.model_fields[name].description
        if description:
            param["description"] = description
        out.append(param)
    return out


def response_schemas(components: dict[str, Any]) -> None:
    for cls in RESPONSES:
        schema = TypeAdapter(cls).json_schema(mode="serialization", ref_template=REF)
        components[cls.__name__] = _lift(schema, components)


def build_openapi(routes: list[ApiRoute], extra_schemas: dict[str, Any] | None = None,
                  version: str = "0") -> dict[str, Any]:
    components: dict[str, Any] = {}
    response_schemas(components)
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
        if route.query is not None:
            params += query_parameters(route.query, components)
        if params:
            op["parameters"] = params
        if route.body is not None:
            name = route.body.__name__
            schema = request_schema(route.body, components)
            if components.setdefault(name, schema) != schema:
                raise ValueError(f"two different schemas are both called {name}")
            op["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": _ref(name)}}}
        if not route.public:
            op["security"] = [{"session": []}]
        op.update(route.extra)
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "callcenter API", "version": version,
                 "description": "Session cookie auth: POST /api/session, then send the "
                                "X-CSRF-Token header on every state-changing request. "
                                "Bodies over 1 MiB are refused with 413; repeated failed "
                                "logins with 429 and Retry-After."},
        "paths": paths,
        "components": {
            "schemas": {**components, **SCHEMAS, **(extra_schemas or {})},
            "securitySchemes": {"session": {"type": "apiKey", "in": "cookie",
                                            "name": "cc_session"}},
        },
    }
