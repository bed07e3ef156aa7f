"""The SMS API and live events, with the demo base (no modems: messages stay queued)."""

from __future__ import annotations

from typing import Any

from callcenter.sms.events import Address, AddressKind, SmsEncoding, SmsPartReceived
from tests.conftest import Api
from tests.test_hub import connect, session, start

IVAN = "+7 916 123-45-67"  # Maria's client
OLGA = "+79035556677"  # Dmitry's client


def inbound(api: Api, sender: str, text: str) -> None:
    service = api.client.app.state.services.extra["sms"]
    part = SmsPartReceived("gsm1", Address(AddressKind.INTERNATIONAL, sender), text,
                           SmsEncoding.UCS2, 1_780_000_000.0, None, f"00{abs(hash(text)):x}")
    api.client.portal.call(service.handle, part)


def clients(api: Api) -> dict[str, int]:
    return {c["name"]: c["id"] for c in api.get("/api/clients", params={"limit": 50}).json()}


def test_send_list_and_detail_with_parts(api: Api) -> None:
    api.login("maria")
    ivan = clients(api)["ООО «Ромашка»"]
    r = api.post("/api/sms", json={"to": IVAN, "text": "Добрый день! " * 10,
                                   "client_id": ivan})
    assert r.status_code == 201, r.text
    sms = r.json()
    assert sms["state"] == "queued" and sms["encoding"] == "ucs2"
    assert sms["counter"] == {"encoding": "ucs2", "parts": 2, "units": 130, "per_part": 67,
                              "remaining": 4, "chars": 130}
    assert [p["state"] for p in sms["parts"]] == ["queued", "queued"]
    assert sms["number"] == "+79161234567" and sms["client_id"] == ivan
    assert sms["client_name"] == "ООО «Ромашка»"
    listed = api.get("/api/sms").json()
    assert [m["id"] for m in listed] == [sms["id"]]
    assert api.get(f"/api/clients/{ivan}/sms").json()[0]["id"] == sms["id"]
    detail = api.get(f"/api/sms/{sms['id']}").json()
    assert detail["parts"][1]["seq"] == 2 and detail["parts"][1]["total"] == 2
    assert api.get("/api/sms/999999").status_code == 404

    api.login("dmitry")  # another manager: not his client
    assert api.get("/api/sms").json() == []
    assert api.get(f"/api/sms/{sms['id']}").status_code == 403
    assert api.get(f"/api/clients/{ivan}/sms").status_code == 403


def test_the_counter_knows_gsm_and_ucs2(api: Api) -> None:
    api.login("secretary")

    def count(text: str) -> dict[str, Any]:
        r = api.post("/api/sms/count", json={"text": text})
        assert r.status_code == 200, r.text
        return r.json()

    assert (count("a" * 160)["parts"], count("a" * 161)["parts"]) == (1, 2)
    assert count("a" * 161)["encoding"] == "gsm7"
    assert count("{" * 80) == {"encoding": "gsm7", "parts": 1, "units": 160, "per_part": 160,
                               "remaining": 0, "chars": 80}
    cyrillic = count("ж" * 200)
    assert (cyrillic["encoding"], cyrillic["parts"]) == ("ucs2", 3)
    assert count("😀" * 35)["parts"] == 1 and count("😀" * 36)["parts"] == 2


def test_a_manager_sees_only_their_clients_sms_live_and_in_lists(api: Api) -> None:
    client = api.client
    maria, dmitry = session(client, "maria"), session(client, "dmitry")
    with connect(maria) as ws_m, connect(dmitry) as ws_d:
        start(ws_m)
        start(ws_d)
        inbound(api, OLGA, "Olga writes")
        inbound(api, "+79161234567", "Ivan writes <script>")
        got = ws_m.receive_json()
        assert got["type"] == "sms.received" and got["data"]["sms"]["text"] == \
            "Ivan writes <script>"
        got = ws_d.receive_json()
        assert got["type"] == "sms.received" and got["data"]["sms"]["text"] == "Olga writes"
        ws_d.send_json({"type": "ping"})
        assert ws_d.receive_json() == {"type": "pong"}  # Ivan's SMS never reached Dmitry
    mine = Api(maria).get("/api/sms").json()
    assert [m["text"] for m in mine] == ["Ivan writes <script>"]
    detail = Api(maria).get(f"/api/sms/{mine[0]['id']}").json()
    assert detail["inbound_parts"][0]["smsc_time"].startswith("2026-05-28T")
    api.login("secretary")
    assert len(api.get("/api/sms", params={"direction": "in"}).json()) == 2


def test_opt_out_list_and_confirmation(api: Api) -> None:
    api.login("maria")
    inbound(api, "+79161234567", "STOP")
    r = api.post("/api/sms", json={"to": IVAN, "text": "hello"})
    assert r.status_code == 400 and r.json()["error"] == "sms-opted-out", r.text
    assert "confirm" in r.json()["message"]
    r = api.post("/api/sms", json={"to": IVAN, "text": "hello", "confirm_opted_out": True})
    assert r.status_code == 201
    assert api.get("/api/sms/optout").status_code == 403
    api.login("admin")
    (row,) = api.get("/api/sms/optout").json()
    assert row["number"] == "+79161234567" and row["keyword"] == "stop"
    r = api.post("/api/sms/optout", json={"number": IVAN, "opted_out": False})
    assert r.json()["changed"] is True
    assert api.get("/api/sms/optout").json() == []
    assert api.get("/api/sms/pool").json() == {"modems": [], "waiting": 1}


def test_templates_are_offered(api: Api) -> None:
    api.client.app.state.config.sms.templates = ["Hello {contact.first_name}!"]
    api.login("maria")
    assert api.get("/api/sms/templates").json() == [
        {"id": 0, "text": "Hello {contact.first_name}!"}]


def test_an_sms_to_a_number_not_on_the_card_is_still_the_clients(api: Api) -> None:
    api.login("secretary")
    ivan = clients(api)["ООО «Ромашка»"]
    r = api.post("/api/sms", json={"to": "+79990001122", "text": "hi", "client_id": ivan})
    assert r.status_code == 201 and r.json()["client_id"] == ivan
    maria = api.login("maria")  # Ivan's manager: live events go to her too
    assert r.json()["manager_id"] == maria["id"]
    assert [m["id"] for m in api.get("/api/sms").json()] == [r.json()["id"]]


def test_a_failed_sms_is_sent_again_only_when_a_person_asks(api: Api) -> None:
    maria = api.login("maria")
    first = api.post("/api/sms", json={"to": IVAN, "text": "try 1"}).json()
    r = api.post(f"/api/sms/{first['id']}/resend", json={})
    assert r.status_code == 400 and "only a failed" in r.json()["message"]
    services = api.client.app.state.services
    store, service = services.store, services.extra["sms"]

    async def fail_it() -> None:
        (part,) = (await store.sms_get(first["id"]))["parts"]
        await store.sms_update_part(part["id"], state="failed", error="barred")
        await service.refresh(first["id"])

    api.client.portal.call(fail_it)
    assert api.get(f"/api/sms/{first['id']}").json()["error"] == "failed: barred"
    r = api.post(f"/api/sms/{first['id']}/resend", json={"text": "try 2"})
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["id"] != first["id"] and again["text"] == "try 2"
    assert again["state"] == "queued" and again["user_id"] == maria["id"]
    api.login("dmitry")
    assert api.post(f"/api/sms/{first['id']}/resend", json={}).status_code == 403


def test_an_sms_is_sent_again_once_and_an_unknown_one_only_when_confirmed(api: Api) -> None:
    api.login("maria")
    first = api.post("/api/sms", json={"to": IVAN, "text": "maybe arrived"}).json()
    services = api.client.app.state.services
    store, service = services.store, services.extra["sms"]

    async def unknown() -> None:
        (part,) = (await store.sms_get(first["id"]))["parts"]
        await store.sms_update_part(part["id"], state="unknown", error="no answer")
        await service.refresh(first["id"])

    api.client.portal.call(unknown)
    r = api.post(f"/api/sms/{first['id']}/resend", json={})
    assert r.status_code == 400 and r.json()["field"] == "confirm_unknown"
    r = api.post(f"/api/sms/{first['id']}/resend", json={"confirm_unknown": True})
    assert r.status_code == 201, r.text
    again = r.json()["id"]
    assert api.get(f"/api/sms/{first['id']}").json()["resent_as"] == again
    r = api.post(f"/api/sms/{first['id']}/resend", json={"confirm_unknown": True})
    assert r.status_code == 409 and "already sent again" in r.json()["message"]
    outbound = api.get("/api/sms", params={"direction": "out"}).json()
    assert sorted(m["id"] for m in outbound) == sorted([first["id"], again])

