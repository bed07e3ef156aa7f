"""A change and its audit entry are one transaction: when the entry cannot be written, the
change is not made either (through the API's client and task handlers)."""

from __future__ import annotations

import pytest

from tests.conftest import Api


@pytest.fixture
def failing_audit(api: Api, monkeypatch) -> Api:
    api.login("admin")
    audit = api.client.app.state.services.audit

    async def broken(*args, **kwargs):
        raise RuntimeError("the audit log cannot be written")

    monkeypatch.setattr(audit, "record_by", broken)
    monkeypatch.setattr(audit, "record", broken)
    return api


def test_client_and_task_changes_roll_back_without_their_entry(failing_audit: Api) -> None:
    api = failing_audit
    clients = api.get("/api/clients").json()
    first = clients[0]
    tasks = api.get("/api/tasks").json()
    for method, url, body in [
        ("PATCH", f"/api/clients/{first['id']}", {"name": "Renamed"}),
        ("POST", "/api/clients", {"name": "Brand New Ltd"}),
        ("DELETE", f"/api/clients/{first['id']}", None),
        ("POST", f"/api/clients/{first['id']}/notes", {"text": "a note"}),
        ("POST", "/api/tasks", {"title": "new task"}),
    ]:
        with pytest.raises(RuntimeError, match="audit log"):
            api.request(method, url, json=body)
    assert api.get("/api/clients").json() == clients
    assert api.get("/api/tasks").json() == tasks
    notes = [i for i in api.get(f"/api/clients/{first['id']}/interactions").json()
             if i["summary"] == "a note"]
    assert notes == []
