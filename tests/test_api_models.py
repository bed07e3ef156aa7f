"""Typed request models: every route is walked with malformed input generated from its model
(wrong types, missing and unknown fields, oversized strings, non-JSON), and the OpenAPI
document is checked to show exactly those models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from tests.conftest import Api
from ui.openapi import query_parameters, request_schema
from ui.routes import ROUTES, ApiRoute

WRONG_JSON_VALUES: list[Any] = [12345, "abc", [1], {"a": 1}, True]


def _types(prop: dict[str, Any], defs: dict[str, Any]) -> tuple[set[str], list[Any] | None]:
    """The JSON types a property accepts, and its enum if it has one."""
    if "$ref" in prop:
        return _types(defs[prop["$ref"].split("/")[-1]], defs)
    if "anyOf" in prop:
        types: set[str] = set()
        enum: list[Any] | None = None
        for option in prop["anyOf"]:
            t, e = _types(option, defs)
            types |= t
            enum = e or enum
        return types, enum
    kind = prop.get("type", "any")
    types = set(kind) if isinstance(kind, list) else {kind}
    if "integer" in types:
        types.add("number")
    return types, prop.get("enum")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def _wrong_body_value(prop: dict[str, Any], defs: dict[str, Any]) -> Any:
    types, enum = _types(prop, defs)
    if enum or prop.get("format") == "date-time" or "pattern" in prop:
        return "not a valid value!"  # a string, but not one of the accepted ones
    if "additionalProperties" in prop and isinstance(prop["additionalProperties"], dict):
        return {"key": [[1]]}  # an object with a value of the wrong kind
    return next(v for v in WRONG_JSON_VALUES if _json_type(v) not in types)


def _wrong_query_value(prop: dict[str, Any]) -> str | None:
    types, enum = _types(prop, {})
    if types & {"integer", "boolean"} or enum or prop.get("format") == "date-time":
        return "not a valid value!"
    return None  # a text parameter: any text is of the right type


# Valid ISO text whose UTC form is outside datetime's range (an OverflowError once, a 500),
# and a Unix time, which is not a date-time.
BAD_DATE_TIMES = ["0001-01-01T00:00:00+05:00", "9999-12-31T23:00:00-05:00", "5"]


def _is_date_time(prop: dict[str, Any]) -> bool:
    return any(o.get("format") == "date-time" for o in [prop, *prop.get("anyOf", [])])


def _example(model: type[BaseModel]) -> dict[str, Any]:
    extra = model.model_config.get("json_schema_extra") or {}
    examples = extra.get("examples") if isinstance(extra, dict) else None
    assert examples, f"{model.__name__} needs an example body (it is documented too)"
    return dict(examples[0])


def _path(route: ApiRoute) -> str:
    return route.path.replace("{id}", "1").replace("{call_id}", "office:1.1")


def body_cases(route: ApiRoute) -> list[tuple[str, Any, str | None]]:
    """(what, body, field the error must name) for one route's body model."""
    model = route.body
    assert model is not None
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    example = _example(model)
    cases: list[tuple[str, Any, str | None]] = [
        ("not JSON", b"{not json", None),
        ("not an object", [example], None),
        ("unknown field", {**example, "zz_unknown": 1}, "zz_unknown"),
    ]
    for name, prop in schema["properties"].items():
        cases.append((f"wrong type of {name}", {**example, name: _wrong_body_value(prop, defs)},
                      name))
        limit = prop.get("maxLength") or next(
            (o["maxLength"] for o in prop.get("anyOf", []) if "maxLength" in o), None)
        if limit:
            cases.append((f"oversized {name}", {**example, name: "x" * (limit + 1)}, name))
        if _is_date_time(prop):
            cases += [(f"{name} {bad}", {**example, name: bad}, name) for bad in BAD_DATE_TIMES]
    for name in schema.get("required", []):
        cases.append((f"missing {name}", {k: v for k, v in example.items() if k != name}, name))
    return cases


def query_cases(route: ApiRoute) -> list[tuple[str, dict[str, str], str]]:
    model = route.query
    assert model is not None
    schema = model.model_json_schema()
    cases = [("unknown parameter", {"zz_unknown": "1"}, "zz_unknown")]
    for name, prop in schema["properties"].items():
        wrong = _wrong_query_value(prop)
        if wrong is not None:
            cases.append((f"wrong type of {name}", {name: wrong}, name))
        limit = next((o["maxLength"] for o in [prop, *prop.get("anyOf", [])]
                      if "maxLength" in o), None)
        if limit:
            cases.append((f"oversized {name}", {name: "1" * (limit + 1)}, name))
        if _is_date_time(prop):
            cases += [(f"{name} {bad}", {name: bad}, name) for bad in BAD_DATE_TIMES]
    return cases


BODY_ROUTES = [r for r in ROUTES if r.body is not None]
QUERY_ROUTES = [r for r in ROUTES if r.query is not None]


# Refused by the request models before any store call: the database cannot change the answer.
_MODELS_ONLY = pytest.mark.sqlite_only("the request model refuses it before the store is asked")


@_MODELS_ONLY
@pytest.mark.parametrize("route", BODY_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_malformed_bodies_get_a_400_naming_the_field(api: Api, route: ApiRoute) -> None:
    api.login("admin")
    cases = body_cases(route)
    assert len(cases) > 4
    for what, body, field in cases:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = api.request(route.method, _path(route), content=content,
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (what, body, r.text)
        payload = r.json()
        assert payload["error"] == "invalid-input", (what, payload)
        named = payload.get("field")
        # a nested value is named by its path: custom.key, contacts[0].name
        assert named == field or (field and named.startswith((f"{field}.", f"{field}["))), (
            what, body, payload)
        assert payload["message"], (what, payload)
    r = api.request(route.method, _path(route), content=json.dumps(_example(route.body)),
                    headers={"Content-Type": "text/plain"})
    assert r.status_code == 400 and r.json()["error"] == "invalid-input"


@_MODELS_ONLY
@pytest.mark.parametrize("route", QUERY_ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_malformed_query_strings_get_a_400_naming_the_parameter(api: Api,
                                                               route: ApiRoute) -> None:
    api.login("admin")
    for what, params, field in query_cases(route):
        r = api.request(route.method, _path(route), params=params)
        assert r.status_code == 400, (what, params, r.text)
        payload = r.json()
        assert payload["error"] == "invalid-input" and payload.get("field") == field, (
            what, payload)
        assert field in payload["message"], (what, payload)


@_MODELS_ONLY
@pytest.mark.parametrize("route", [r for r in ROUTES if r.query is None],
                         ids=lambda r: f"{r.method} {r.path}")
def test_routes_without_a_query_model_refuse_query_parameters(api: Api,
                                                              route: ApiRoute) -> None:
    api.login("admin")
    body = json.dumps(_example(route.body)) if route.body else None
    r = api.request(route.method, _path(route), params={"zz_unknown": "1"}, content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "zz_unknown" and "unknown query parameter" in r.json()["message"]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_no_route_answers_500_to_garbage(api: Api, route: ApiRoute) -> None:
    """Ids beyond SQLite's range and bodies nobody asked for are a 4xx, never a crash (the
    test client re-raises any server exception)."""
    api.login("admin")
    huge = route.path.replace("{id}", str(2**70)).replace("{call_id}", "x" * 300)
    body = json.dumps(_example(route.body)) if route.body else b"\xff\xfe garbage"
    r = api.request(route.method, huge, content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code < 500 or r.json()["error"] == "line-unavailable", r.text
    if "{id}" in route.path:
        assert r.status_code in (400, 404), r.text


def test_the_two_bugs_from_the_review_are_400s(api: Api) -> None:
    me = api.login("secretary")
    task = api.post("/api/tasks", json={"title": "Call back"}).json()
    r = api.patch(f"/api/tasks/{task['id']}", json={"assignee_id": "abc"})
    assert r.status_code == 400 and r.json()["field"] == "assignee_id", r.text
    r = api.get("/api/calls", params={"number": "abc"})
    assert r.status_code == 400 and r.json()["field"] == "number", r.text
    assert "digits" in r.json()["message"]
    assert api.patch(f"/api/tasks/{task['id']}", json={"assignee_id": me["id"]}).status_code == 200


def test_a_too_long_custom_field_name_is_named_once(api: Api) -> None:
    api.login("admin")
    key = "x" * 41
    r = api.post("/api/clients", json={"name": "Acme", "custom": {key: 1}})
    assert r.status_code == 400 and r.json()["field"] == f"custom.{key}", r.text


@pytest.mark.parametrize("method,path,body,field", [
    ("POST", "/api/session", {"login": "a\x00b", "password": "x"}, "login"),
    ("POST", "/api/clients", {"name": "Acme", "contacts": [{"phones": ["+7 916 000 11 22\x00"]}]},
     "contacts[0].phones[0]"),
    ("POST", "/api/clients", {"name": "Acme", "custom": {"no\x00te": "x"}}, "custom"),
    ("GET", "/api/clients?search=%00", None, "search"),
    ("GET", "/api/calls?number=1%00", None, "number"),
])
def test_nul_characters_are_refused_naming_the_field(api: Api, method: str, path: str,
                                                     body: Any, field: str) -> None:
    api.login("admin")
    r = api.request(method, path, json=body) if body is not None else api.request(method, path)
    assert r.status_code == 400 and r.json()["field"] == field, r.text
    assert "NUL" in r.json()["message"]


def test_openapi_request_schemas_are_the_models(api: Api) -> None:
    doc = api.client.get("/api/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        if route.body is None:
            assert "requestBody" not in op, route.path
        else:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{route.body.__name__}"
            nested: dict[str, Any] = {}
            assert schemas[route.body.__name__] == request_schema(route.body, nested)
            assert all(schemas[name] == sub for name, sub in nested.items())
            # the documented example is a body the route accepts
            route.body.model_validate_json(json.dumps(_example(route.body)))
            assert set(schemas[route.body.__name__]["properties"]) == set(
                route.body.model_fields)
        documented = [p for p in op.get("parameters", []) if p["in"] == "query"]
        expected = query_parameters(route.query, {}) if route.query else []
        assert documented == expected, route.path


def assert_documented(doc: dict[str, Any], name: str, value: dict[str, Any]) -> None:
    """``value`` is what the document's schema ``name`` says: no undocumented key, every
    required key, and values of the documented types (validated by the type the schema was
    generated from)."""
    from pydantic import TypeAdapter

    from ui.openapi import RESPONSES

    schema = doc["components"]["schemas"][name]
    assert set(value) <= set(schema["properties"]), (name, value)
    assert set(schema.get("required", ())) <= set(value), (name, value)
    [cls] = [c for c in RESPONSES if c.__name__ == name]
    TypeAdapter(cls).validate_python(value)


def test_documented_responses_are_what_the_routes_send(api: Api) -> None:
    """The response schemas (generated from the core dataclasses and the TypedDicts of
    ui/api/responses.py) match real answers."""
    from ui.openapi import RESPONSES

    session = api.login("admin")
    doc = api.client.get("/api/openapi.json").json()
    generated = {cls.__name__ for cls in RESPONSES}
    client = api.get("/api/clients", params={"limit": 1}).json()[0]
    api.post(f"/api/clients/{client['id']}/notes", json={"text": "hello"})
    api.post("/api/tasks", json={"title": "Call back", "client_id": client["id"]})
    checked = set()
    for route in ROUTES:
        name = (route.response or "").strip("[]")
        if route.method != "GET" or name not in generated or "{call_id}" in route.path:
            continue
        r = api.get(route.path.replace("{id}", str(client["id"] if "clients" in route.path
                                                   else session["id"])),
                    params={"number": "+7 916 000-00-00"} if route.query is not None and (
                        "number" in route.query.model_fields) else None)
        assert r.status_code == 200, (route.path, r.text)
        items = r.json() if route.response.startswith("[") else [r.json()]
        if name == "Call":
            continue  # no call log here: tests/calls/test_calls_api.py checks a real one
        assert items, route.path
        for item in items:
            assert_documented(doc, name, item)
        checked.add(name)
    assert checked == {"User", "Client", "CustomField", "Interaction", "Task", "Session",
                       "Lookup"}
    phone = client["contacts"][0]["phones"][0]["id"]
    assert_documented(doc, "Deleted", api.delete(f"/api/phones/{phone}").json())
    assert_documented(doc, "ActionResult", api.delete("/api/session").json())
