"""The OpenAPI 3.1 document, generated from the route table: request bodies and query
parameters from the pydantic models the handlers validate with (ui/api/models.py), responses
from the core's dataclasses (callcenter/models.py) and the TypedDicts of the dict-built answers
(ui/api/responses.py), and the two hand-written shapes below."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from callcenter.models import Client, Contact, CustomField, Interaction, Phone, Task, User
from ui.api.responses import RESPONSE_TYPES
from ui.routes import ApiRoute

REF = "#/components/schemas/{model}"
RESPONSES = (User, Phone, Contact, Client, CustomField, Interaction, Task, *RESPONSE_TYPES)

_S = "string"
_ERROR = {"type": "object", "required": ["error", "message"], "properties": {
    "error": {"type": _S, "description": "stable machine-readable id, e.g. invalid-input"},
    "message": {"type": _S}, "field": {"type": _S, "description": "the offending field"}}}


def _obj(props: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, **({"required": list(required)} if required
                                                       else {})}


# The error shape and the live-call payload (documented in docs/events.md); everything else
# is generated.
SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "LiveCall": _obj({"call": {"type": "object", "description": "see docs/events.md"},
                      "match": {"type": "object", "description": "see docs/events.md"}}),
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
        for text in ("name", "trunk"):
            if "{" + text + "}" in route.path:
                params.append({"name": text, "in": "path", "required": True,
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
