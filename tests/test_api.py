"""REST API over real HTTP semantics (Starlette TestClient): auth, CRUD, 4xx, roles."""

from __future__ import annotations

import logging

from tests.conftest import Api


def test_login_required_and_bad_credentials(api: Api, caplog) -> None:
    assert api.get("/api/clients").status_code == 401
    caplog.set_level(logging.DEBUG)
    r = api.client.post("/api/session", json={"login": "admin", "password": "wrong-pass-123"})
    assert r.status_code == 401 and r.json()["error"] == "bad-credentials"
    r = api.client.post("/api/session", json={"login": "ghost", "password": "wrong-pass-123"})
    assert r.status_code == 401
    assert "wrong-pass-123" not in caplog.text  # secrets are never logged
    r = api.client.post("/api/session", content=b"{not json",
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    # a cross-site form can only post text/plain: refused, so no login CSRF
    r = api.client.post("/api/session", content=b'{"login":"admin","password":"demo-password"}',
                        headers={"Content-Type": "text/plain", "Origin": "https://evil.example"})
    assert r.status_code == 400 and "cc_session" not in r.cookies


def test_logout_ends_every_copy_of_the_session(api: Api) -> None:
    api.login("maria")
    stolen = dict(api.client.cookies)
    assert api.get("/api/session").status_code == 200
    assert api.client.delete("/api/session").status_code == 200  # no CSRF token needed
    api.client.cookies.clear()
    for name, value in stolen.items():
        api.client.cookies.set(name, value)
    r = api.get("/api/session")
    assert r.status_code == 401 and "ended" in r.json()["message"]
    api.login("maria")  # a new login works again
    assert api.get("/api/session").status_code == 200


def test_csrf_token_is_required_for_changes(api: Api) -> None:
    api.login("admin")
    r = api.client.post("/api/clients", json={"name": "X"})  # no header
    assert r.status_code == 403 and r.json()["error"] == "csrf-failed"
    r = api.client.post("/api/clients", json={"name": "X"}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert api.post("/api/clients", json={"name": "X"}).status_code == 201


def test_client_crud_with_contacts_phones_and_custom_fields(api: Api) -> None:
    api.login("admin")
    r = api.post("/api/custom-fields", json={"name": "inn", "label": "INN"})
    assert r.status_code == 409  # the demo base has it already
    r = api.post("/api/custom-fields", json={"name": "employees", "label": "Staff",
                                             "type": "number"})
    assert r.status_code == 201, r.text
    r = api.post("/api/clients", json={
        "name": "Acme <script>", "kind": "company", "custom": {"employees": 12, "inn": "7701"},
        "contacts": [{"name": "Ivan", "email": "i@acme.test",
                      "phones": ["+7 916 000-11-22", {"number": "8 903 000-11-22",
                                                      "kind": "mobile"}]}],
    })
    assert r.status_code == 201, r.text
    client = r.json()
    assert client["name"] == "Acme <script>"  # stored as given; escaping is the UI's job
    assert client["custom"] == {"employees": 12, "inn": "7701"}
    phones = client["contacts"][0]["phones"]
    assert [p["e164"] for p in phones] == ["+79160001122", "+79030001122"]
    assert phones[0]["raw"] == "+7 916 000-11-22"

    cid = client["id"]
    contact_id = client["contacts"][0]["id"]
    r = api.patch(f"/api/clients/{cid}", json={"notes": "VIP", "custom": {"employees": "13"}})
    assert r.status_code == 200 and r.json()["notes"] == "VIP"
    assert r.json()["custom"]["employees"] == 13
    r = api.post(f"/api/contacts/{contact_id}/phones", json={"number": "89260001122"})
    assert r.status_code == 201
    phone_id = r.json()["id"]
    lookup = api.get("/api/lookup", params={"number": "9260001122"}).json()
    assert [c["client_id"] for c in lookup["candidates"]] == [cid]
    assert api.delete(f"/api/phones/{phone_id}").status_code == 200
    assert api.get("/api/lookup", params={"number": "9260001122"}).json()["candidates"] == []
    r = api.post(f"/api/clients/{cid}/notes", json={"text": "called about invoice"})
    assert r.status_code == 201
    history = api.get(f"/api/clients/{cid}/interactions").json()
    assert [h["summary"] for h in history] == ["called about invoice"]
    assert api.get("/api/clients", params={"search": "acme"}).json()[0]["id"] == cid
    assert api.delete(f"/api/clients/{cid}").status_code == 200
    assert api.get(f"/api/clients/{cid}").status_code == 404


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(api: Api) -> None:
    api.login("admin")
    before = len(api.get("/api/clients", params={"limit": 500}).json())
    cases = [
        ({}, "name is required", "name"),
        ({"name": "   "}, "name must not be empty", "name"),
        ({"name": 5}, "name must be text", "name"),
        ({"name": "A", "kind": "alien"}, "kind must be 'company' or 'person'", "kind"),
        ({"name": "A", "colour": "red"}, "unknown field colour; allowed: name, kind,", "colour"),
        ({"name": "A", "manager_id": 9999}, "no such user", "manager_id"),
        ({"name": "A", "manager_id": 2}, "is a secretary", "manager_id"),
        ({"name": "A", "custom": {"nope": 1}}, "no such custom field", "custom.nope"),
        ({"name": "A", "contacts": [{"phones": ["+12"]}]}, "too short",
         "contacts[0].phones[0].number"),
        ({"name": "A", "contacts": [{"phones": ["101"]}]}, "internal extension",
         "contacts[0].phones[0].number"),
        ({"name": "A", "contacts": [{"phones": ["anonymous"]}]}, "not a phone number",
         "contacts[0].phones[0].number"),
        ({"name": "A", "contacts": [{"email": "nope"}]}, "not an e-mail",
         "contacts[0].email"),
        ({"name": "A", "contacts": "x"}, "contacts must be a list", "contacts"),
        ([1, 2], "must be a JSON object", None),
    ]
    for body, message, field in cases:
        r = api.post("/api/clients", json=body)
        assert r.status_code == 400, (body, r.text)
        payload = r.json()
        assert payload["error"] == "invalid-input"
        assert message in payload["message"], (body, payload)
        assert payload.get("field") == field, (body, payload)
    assert len(api.get("/api/clients", params={"limit": 500}).json()) == before
    r = api.get("/api/clients", params={"limit": "lots"})
    assert r.status_code == 400 and "limit" in r.json()["message"]
    r = api.get("/api/clients", params={"offset": "9" * 5000})
    assert r.status_code == 400 and r.json()["message"] == (
        "query parameter offset is far too large a number")
    r = api.post("/api/clients", content=b'{"name": "A", "manager_id": ' + b"9" * 5000 + b"}",
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    r = api.post("/api/clients", content=b"[" * 100_000, headers={"Content-Type":
                                                                "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    assert api.get("/api/clients/999999").status_code == 404
    r = api.post("/api/custom-fields", json={"name": "Bad Name"})
    assert r.status_code == 400 and r.json()["field"] == "name"


def test_manager_sees_only_own_clients(api_factory) -> None:
    admin, maria = api_factory(), api_factory()
    admin.login("admin")
    me = maria.login("maria")
    clients = admin.get("/api/clients", params={"limit": 500}).json()
    own = [c for c in clients if c["manager_id"] == me["id"]]
    other = [c for c in clients if c["manager_id"] not in (me["id"], None)]
    assert own and other
    visible = maria.get("/api/clients", params={"limit": 500}).json()
    assert {c["id"] for c in visible} == {c["id"] for c in own}
    r = maria.get(f"/api/clients/{other[0]['id']}")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert maria.patch(f"/api/clients/{other[0]['id']}", json={"notes": "x"}).status_code == 403
    assert maria.get(f"/api/clients/{own[0]['id']}").status_code == 200
    # and cannot give a client away or delete one
    r = maria.patch(f"/api/clients/{own[0]['id']}", json={"manager_id": other[0]["manager_id"]})
    assert r.status_code == 403
    assert maria.delete(f"/api/clients/{own[0]['id']}").status_code == 403
    # lookup does not leak another manager's client either
    number = other[0]["contacts"][0]["phones"][0]["raw"]
    assert maria.get("/api/lookup", params={"number": number}).json()["candidates"] == []


def test_users_admin_only_changes_and_own_settings(api_factory) -> None:
    admin, sec = api_factory(), api_factory()
    admin.login("admin")
    me = sec.login("secretary")
    r = sec.post("/api/users", json={"login": "x", "name": "X", "role": "admin",
                                     "password": "12345678"})
    assert r.status_code == 403
    r = admin.post("/api/users", json={"login": "new", "name": "New", "role": "manager",
                                       "extension": "104", "password": "short"})
    assert r.status_code == 400 and "8 characters" in r.json()["message"]
    r = admin.post("/api/users", json={"login": "new one", "name": "New", "role": "manager",
                                       "extension": "104", "password": "long-enough"})
    assert r.status_code == 400 and r.json()["field"] == "login"
    assert "without spaces" in r.json()["message"]
    r = admin.post("/api/users", json={"login": "new", "name": "New", "role": "manager",
                                       "extension": "104", "password": "long-enough"})
    assert r.status_code == 201 and "password" not in r.text
    r = admin.post("/api/users", json={"login": "new2", "name": "N", "role": "manager",
                                       "extension": "104", "password": "long-enough"})
    assert r.status_code == 409 and "extension" in r.json()["message"]
    assert sec.patch(f"/api/users/{me['id']}", json={"language": "en"}).status_code == 200
    assert sec.patch(f"/api/users/{me['id']}", json={"role": "admin"}).status_code == 403
    assert sec.patch(f"/api/users/{me['id']}", json={"language": "fr"}).status_code == 400


def test_tasks_create_done_undo(api: Api) -> None:
    me = api.login("maria")
    r = api.post("/api/tasks", json={"title": "Send offer", "due_at": "2026-12-01T10:00:00+03:00"})
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["assignee_id"] == me["id"] and task["due_at"].startswith("2026-12-01T07:00")
    r = api.patch(f"/api/tasks/{task['id']}", json={"done": True})
    assert r.json()["done"] is True and r.json()["done_at"]
    r = api.patch(f"/api/tasks/{task['id']}", json={"done": False})
    assert r.json()["done"] is False and r.json()["done_at"] is None
    assert api.post("/api/tasks", json={"title": "x", "due_at": "tomorrow"}).status_code == 400
    assert api.post("/api/tasks", json={"title": "x", "due_at": 1764582000}).status_code == 400
    r = api.post("/api/tasks", json={"title": "day only", "due_at": "2026-12-02"})
    assert r.status_code == 201 and r.json()["due_at"].startswith("2026-12-02T00:00")
    api.patch(f"/api/tasks/{r.json()['id']}", json={"done": True})
    assert [t["id"] for t in api.get("/api/tasks", params={"done": "false"}).json()] == [task["id"]]


def test_openapi_document(api: Api) -> None:
    doc = api.client.get("/api/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/clients", "/api/clients/{id}", "/api/contacts/{id}/phones",
                 "/api/custom-fields", "/api/users", "/api/tasks", "/api/session"):
        assert path in doc["paths"], path
    post = doc["paths"]["/api/clients"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ClientCreate")
    for ref in _refs(doc):
        assert ref.split("/")[-1] in doc["components"]["schemas"], ref


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if "$ref" in node else []
        for v in node.values():
            out += _refs(v)
        return out
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_only_admins_see_the_number_a_caller_withheld(api_factory) -> None:
    admin, secretary, manager = api_factory(), api_factory(), api_factory()
    admin.login("admin")
    secretary.login("secretary")
    manager.login("maria")
    store = admin.client.app.state.services.store
    row = {"id": "office:w.1", "line": "office", "direction": "in", "caller_raw": "",
           "withheld": 1, "withheld_raw": "+79161234567", "called": "100", "state": "missed",
           "ringing_at": "2026-11-30T10:00:00.000+00:00",
           "ended_at": "2026-11-30T10:00:10.000+00:00", "users": []}
    admin.client.portal.call(store.upsert_call, row)
    [seen] = [c for c in admin.get("/api/calls").json() if c["id"] == "office:w.1"]
    assert seen["caller"]["withheld_raw"] == "+79161234567" and seen["caller"]["raw"] == ""
    assert admin.get("/api/calls/office:w.1").json()["caller"]["withheld_raw"] == "+79161234567"
    for other in (secretary, manager):
        for r in (other.get("/api/calls"), other.get("/api/calls/office:w.1")):
            assert "+79161234567" not in r.text and "withheld_raw" not in r.text, r.text
    doc = admin.get("/api/openapi.json").json()
    assert "withheld_raw" in doc["components"]["schemas"]["CallParty"]["properties"]
