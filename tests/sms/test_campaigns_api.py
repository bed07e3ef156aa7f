"""The campaigns API with the demo base (no modems: messages stay queued) and its roles."""

from __future__ import annotations

import csv
import io

from tests.conftest import Api

DRAFT = {"name": "Winter", "template": "Hi {contact.first_name|there} from {client.name}!",
         "window_start": "00:00", "window_end": "23:59", "per_minute": 0}


def test_secretary_may_not_run_campaigns(api: Api) -> None:
    api.login("secretary")
    assert api.get("/api/campaigns").status_code == 403
    assert api.get("/api/campaigns/fields").status_code == 403
    r = api.post("/api/campaigns", json=DRAFT)
    assert r.status_code == 403
    assert r.json()["message"] == "campaigns need the role admin or manager"


def test_manager_campaign_goes_to_own_clients_and_stays_theirs(api: Api) -> None:
    maria = api.login("maria")
    r = api.post("/api/campaigns", json=DRAFT)
    assert r.status_code == 201, r.text
    campaign = r.json()
    assert campaign["state"] == "draft" and campaign["audience"]["manager_id"] == maria["id"]
    preview = api.get(f"/api/campaigns/{campaign['id']}/preview").json()
    # Maria's four demo clients, each with a mobile number
    assert preview["count"] == 4
    texts = {s["text"] for s in preview["samples"]}
    assert "Hi Ivan from ООО «Ромашка»!" in texts
    assert {s["encoding"] for s in preview["samples"]} == {"ucs2", "gsm7"}
    assert all(s["parts"] == 1 for s in preview["samples"])
    other = api.post("/api/campaigns", json={**DRAFT, "audience": {"manager_id": maria["id"] + 1}})
    assert other.status_code == 403
    api.login("dmitry")
    assert api.get(f"/api/campaigns/{campaign['id']}").status_code == 403
    assert api.post(f"/api/campaigns/{campaign['id']}/start").status_code == 403
    assert api.get("/api/campaigns").json() == []
    api.login("admin")
    assert [c["id"] for c in api.get("/api/campaigns").json()] == [campaign["id"]]


def test_bad_template_is_a_clear_400(api: Api) -> None:
    api.login("admin")
    r = api.post("/api/campaigns", json={**DRAFT, "template": "Hi {contact.__class__}"})
    assert r.status_code == 400
    assert r.json()["field"] == "template"
    assert r.json()["message"].startswith("unknown field {contact.__class__} at position 4")
    r = api.post("/api/campaigns", json={**DRAFT, "window_start": "22:00",
                                         "window_end": "06:00"})
    assert r.status_code == 400 and "no messages at night" in r.json()["message"]
    fields = {f["name"] for f in api.get("/api/campaigns/fields").json()["fields"]}
    assert {"contact.first_name", "client.name", "custom.segment", "custom.inn"} <= fields


def test_preview_unsaved_start_progress_pause_cancel_and_csv(api: Api) -> None:
    api.login("admin")
    p = api.post("/api/campaigns/preview", json={**DRAFT, "audience": {"search": "ромашка"}})
    assert p.status_code == 200, p.text
    assert p.json()["count"] == 1
    campaign = api.post("/api/campaigns", json=DRAFT).json()
    cid = campaign["id"]
    started = api.post(f"/api/campaigns/{cid}/start")
    assert started.status_code == 200, started.text
    assert started.json()["state"] == "running"
    assert sum(started.json()["counts"].values()) == 7  # every demo client has a mobile
    assert api.patch(f"/api/campaigns/{cid}", json={"name": "x"}).status_code == 400
    progress = api.get(f"/api/campaigns/{cid}/progress", params={"limit": 3}).json()
    assert progress["report"]["recipients"] == 7 and len(progress["recipients"]) == 3
    assert api.post(f"/api/campaigns/{cid}/pause").json()["state"] == "paused"
    assert api.post(f"/api/campaigns/{cid}/resume").json()["state"] == "running"
    assert api.post(f"/api/campaigns/{cid}/cancel").json()["state"] == "cancelled"
    r = api.get(f"/api/campaigns/{cid}/report.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == f'attachment; filename="campaign-{cid}.csv"'
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["campaign", "Winter"]
    assert ["cancelled", "7"] in rows
    assert api.delete(f"/api/campaigns/{cid}").status_code == 400  # not a draft


def test_draft_edit_and_delete(api: Api) -> None:
    api.login("maria")
    cid = api.post("/api/campaigns", json=DRAFT).json()["id"]
    r = api.patch(f"/api/campaigns/{cid}", json={"template": "Hello {client.name}"})
    assert r.status_code == 200 and r.json()["template"] == "Hello {client.name}"
    assert api.delete(f"/api/campaigns/{cid}").status_code == 200
    assert api.get(f"/api/campaigns/{cid}").status_code == 404
