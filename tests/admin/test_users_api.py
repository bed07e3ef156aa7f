"""Users through the API: the last-admin rule, password resets, hand-over, and the audit
entries each change leaves."""

from __future__ import annotations

import logging

from tests.conftest import Api

NEW_PASSWORD = "Fresh-Pa55word-xyz"
RESET_PASSWORD = "Reset-Pa55word-abc"


def _users(api: Api) -> dict[str, dict]:
    return {u["login"]: u for u in api.get("/api/users").json()}


def test_the_last_enabled_admin_stays(api: Api) -> None:
    api.login("admin")
    admin = _users(api)["admin"]
    for change in ({"role": "manager"}, {"active": False}):
        r = api.patch(f"/api/users/{admin['id']}", json=change)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "last-admin" and "last enabled admin" in r.json()["message"]
    assert _users(api)["admin"]["role"] == "admin" and _users(api)["admin"]["active"]
    # a second admin who is disabled does not count
    r = api.post("/api/users", json={"login": "root2", "name": "Root 2", "role": "admin",
                                     "password": NEW_PASSWORD})
    assert r.status_code == 201, r.text
    second = r.json()["id"]
    assert api.patch(f"/api/users/{second}", json={"active": False}).status_code == 200
    assert api.patch(f"/api/users/{admin['id']}", json={"role": "manager"}).status_code == 400
    # once it is enabled again, the first admin may step down
    assert api.patch(f"/api/users/{second}", json={"active": True}).status_code == 200
    r = api.patch(f"/api/users/{admin['id']}", json={"role": "manager"})
    assert r.status_code == 200 and r.json()["role"] == "manager"


def test_every_user_change_is_audited_with_the_actor(api: Api) -> None:
    me = api.login("admin")
    r = api.post("/api/users", json={"login": "olga", "name": "Olga", "role": "secretary",
                                     "extension": "150", "password": NEW_PASSWORD})
    olga = r.json()["id"]
    api.patch(f"/api/users/{olga}", json={"role": "manager", "extension": "151"})
    api.patch(f"/api/users/{olga}", json={"active": False})
    api.post(f"/api/users/{olga}/password", json={"password": RESET_PASSWORD})
    entries = api.get("/api/audit", params={"target_kind": "user", "target_id": olga}).json()
    assert [e["action"] for e in entries] == ["reset-password", "disable", "update", "create"]
    for e in entries:
        assert e["actor_id"] == me["id"] and e["actor_label"] == "admin"
        assert e["address"] and e["at"]
    update = entries[2]
    assert update["before"] == {"login": "olga", "role": "secretary", "extension": "150"}
    assert update["after"] == {"role": "manager", "extension": "151"}
    assert entries[0]["before"]["password"] == "••••"
    assert entries[0]["after"]["password"] == "(changed)"
    # filters: by actor and period
    assert api.get("/api/audit", params={"actor_id": me["id"], "action": "disable"}
                   ).json()[0]["target_id"] == str(olga)
    assert api.get("/api/audit", params={"until": "2000-01-01"}).json() == []


def test_client_contact_phone_task_and_field_changes_are_audited(api: Api) -> None:
    api.login("maria")
    r = api.post("/api/clients", json={"name": "Audited Ltd", "contacts": [
        {"name": "Ann", "phones": ["+7 916 555-00-11"]}]})
    client = r.json()
    api.patch(f"/api/clients/{client['id']}", json={"notes": "VIP"})
    contact = client["contacts"][0]
    api.patch(f"/api/contacts/{contact['id']}", json={"position": "CEO"})
    phone = api.post(f"/api/contacts/{contact['id']}/phones", json={"number": "89035550022"}
                     ).json()
    api.delete(f"/api/phones/{phone['id']}")
    task = api.post("/api/tasks", json={"title": "Call Ann", "client_id": client["id"]}).json()
    api.patch(f"/api/tasks/{task['id']}", json={"done": True})
    maria = api.get("/api/session").json()["user"]
    api.login("admin")
    api.post("/api/custom-fields", json={"name": "audited_field", "label": "A"})
    api.delete(f"/api/clients/{client['id']}")
    log = api.get("/api/audit", params={"limit": 50}).json()
    seen = [(e["actor_label"], e["action"], e["target_kind"]) for e in reversed(log)]
    assert seen[-9:] == [
        ("maria", "create", "client"), ("maria", "update", "client"),
        ("maria", "update", "contact"), ("maria", "create", "phone"),
        ("maria", "delete", "phone"), ("maria", "create", "task"), ("maria", "update", "task"),
        ("admin", "create", "custom_field"), ("admin", "delete", "client")]
    by_kind = {(e["action"], e["target_kind"]): e for e in log}
    assert by_kind[("update", "client")]["before"] == {"notes": ""}
    assert by_kind[("update", "client")]["after"] == {"notes": "VIP"}
    assert by_kind[("update", "client")]["actor_id"] == maria["id"]
    assert by_kind[("update", "task")]["after"] == {"done": True}
    assert by_kind[("delete", "client")]["before"]["name"] == "Audited Ltd"


def test_passwords_never_in_a_response_or_a_log_line(api: Api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    api.login("admin")
    texts = []
    r = api.post("/api/users", json={"login": "pw", "name": "Pw", "role": "manager",
                                     "password": NEW_PASSWORD})
    texts.append(r.text)
    uid = r.json()["id"]
    texts.append(api.post(f"/api/users/{uid}/password", json={"password": RESET_PASSWORD}).text)
    texts.append(api.patch(f"/api/users/{uid}", json={"password": NEW_PASSWORD + "2"}).text)
    texts += [api.get("/api/users").text, api.get(f"/api/users/{uid}").text,
              api.get("/api/audit").text, api.get("/api/audit.csv").text]
    for text in texts:
        for secret in (NEW_PASSWORD, RESET_PASSWORD, "argon2"):
            assert secret not in text
    for secret in (NEW_PASSWORD, RESET_PASSWORD):
        assert secret not in caplog.text


def test_reset_password_ends_the_users_sessions(api_factory) -> None:
    admin, user = api_factory(), api_factory()
    admin.login("admin")
    dmitry = user.login("dmitry")
    assert user.get("/api/session").status_code == 200
    r = admin.post(f"/api/users/{dmitry['id']}/password", json={"password": RESET_PASSWORD})
    assert r.status_code == 200 and "sessions have ended" in r.json()["message"]
    assert user.get("/api/session").status_code == 401
    user.login("dmitry", RESET_PASSWORD)
    assert user.post(f"/api/users/{dmitry['id']}/password",
                     json={"password": "x" * 12}).status_code == 403


def test_handover_moves_open_tasks_and_clients(api: Api) -> None:
    api.login("admin")
    users = _users(api)
    maria, dmitry = users["maria"]["id"], users["dmitry"]["id"]
    clients_before = [c["id"] for c in api.get("/api/clients", params={
        "manager_id": maria, "limit": 200}).json()]
    assert clients_before
    open_task = api.post("/api/tasks", json={"title": "Open", "assignee_id": maria}).json()
    done_task = api.post("/api/tasks", json={"title": "Done", "assignee_id": maria}).json()
    api.patch(f"/api/tasks/{done_task['id']}", json={"done": True})
    r = api.post(f"/api/users/{maria}/handover", json={"to_user": dmitry})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert open_task["id"] in moved["tasks"] and done_task["id"] not in moved["tasks"]
    assert sorted(moved["clients"]) == sorted(clients_before)
    assert api.get("/api/clients", params={"manager_id": maria}).json() == []
    assert api.get(f"/api/tasks?assignee_id={maria}&done=false").json() == []
    tasks = {t["id"]: t for t in api.get("/api/tasks", params={"limit": 1000}).json()}
    assert tasks[open_task["id"]]["assignee_id"] == dmitry
    assert tasks[done_task["id"]]["assignee_id"] == maria  # history stays as it was
    entry = api.get("/api/audit", params={"action": "handover"}).json()[0]
    assert entry["target_id"] == str(maria) and entry["after"]["to_user"] == dmitry
    assert entry["after"]["clients"] == moved["clients"]
    assert api.post(f"/api/users/{maria}/handover", json={"to_user": maria}).status_code == 400
    assert api.post(f"/api/users/{maria}/handover", json={"to_user": 999}).status_code == 404


def test_a_one_time_password_opens_only_the_password_change(api_factory) -> None:
    admin, user = api_factory(), api_factory()
    admin.login("admin")
    dmitry = next(u for u in admin.get("/api/users").json() if u["login"] == "dmitry")
    r = admin.post(f"/api/users/{dmitry['id']}/password",
                   json={"password": RESET_PASSWORD, "one_time": True})
    assert r.status_code == 200, r.text
    me = user.login("dmitry", RESET_PASSWORD)
    assert me["one_time_login"] is True
    # other non-admins do not learn who logged in with a one-time password
    other = api_factory()
    other.login("maria")
    shown = {u["login"]: u for u in other.get("/api/users").json()}
    assert "one_time_login" not in shown["dmitry"] and "one_time_login" in shown["maria"]
    assert "one_time_login" not in other.get(f"/api/users/{dmitry['id']}").json()
    assert "one_time_login" in admin.get(f"/api/users/{dmitry['id']}").json()
    assert user.get("/api/session").json()["user"]["one_time_login"] is True
    r = user.get("/api/clients")
    assert r.status_code == 403 and r.json()["error"] == "password-change-required"
    # nothing but the password: not the name, nor with the password the role
    for body in ({"name": "Dima"}, {"language": "en"},
                 {"password": NEW_PASSWORD, "current_password": RESET_PASSWORD,
                  "name": "Dima"}):
        r = user.patch(f"/api/users/{dmitry['id']}", json=body)
        assert r.status_code == 403 and r.json()["error"] == "password-change-required", body
    assert next(u for u in admin.get("/api/users").json()
                if u["login"] == "dmitry")["name"] == dmitry["name"]
    r = user.patch(f"/api/users/{dmitry['id']}", json={"password": NEW_PASSWORD,
                                                      "current_password": RESET_PASSWORD})
    assert r.status_code == 200, r.text
    assert r.json()["one_time_login"] is False
    assert user.get("/api/clients").status_code == 200  # this session goes on, now free
    entries = admin.get("/api/audit", params={"target_id": dmitry["id"]}).json()
    assert [(e["action"], e["after"].get("one_time")) for e in entries[:2]] == [
        ("change-password", None), ("reset-password", True)]
