"""The fax API on the real app: upload (real converter), send through a loopback line, the
inbox and its PDF, rejected documents, and what managers may see."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.config import Config, FaxLineConfig
from callcenter.store.sqlite_faxes import FaxFilter
from tests.conftest import Api
from tests.fax.documents_fixtures import make_encrypted_pdf, make_pdf


@pytest.fixture
def fax_app(config: Config) -> Any:
    config.fax = [FaxLineConfig(name="fax", kind="loopback", page_seconds=0.02,
                                local_station_id="+7 495 111-00-00")]
    return create_app(config, demo=True, demo_calls=False)


@pytest.fixture
def clients(fax_app: Any) -> Iterator[Any]:
    opened: list[TestClient] = []

    def make(login: str) -> Api:
        # Only the first client runs the app's lifespan; the others share its services.
        client = TestClient(fax_app)
        if not opened:
            client.__enter__()
        else:  # the app's event loop: its store (an asyncpg pool) belongs to that loop
            client.portal = opened[0].portal
        opened.append(client)
        api = Api(client)
        api.login(login)
        return api

    yield make
    if opened:
        opened[0].__exit__(None, None, None)


def _service(api: Api) -> Any:
    return api.client.app.state.services.extra["faxes"]  # type: ignore[attr-defined]


def _wait(first: Api, condition: Any) -> Any:
    """Wait on the app's loop (through the lifespan client's portal) for ``condition``, an
    async function of the fax store."""
    service = _service(first)

    async def check() -> Any:
        return await condition(service.store)

    return first.client.portal.call(service.wait_for, check)  # type: ignore[union-attr]


async def _inbox(store: Any) -> Any:
    return await store.list_received_faxes(FaxFilter())


def _upload(api: Api, path: Path, name: str | None = None) -> Any:
    with path.open("rb") as fh:
        return api.post("/api/fax-documents", files={"file": (name or path.name, fh)})


def _romashka(api: Api) -> dict[str, Any]:
    [client] = [c for c in api.get("/api/clients").json() if c["name"] == "ООО «Ромашка»"]
    return client


def test_send_from_upload_to_inbox(clients: Any, tmp_path: Path) -> None:
    api = clients("secretary")
    up = _upload(api, make_pdf(tmp_path / "invoice.pdf", 2))
    assert up.status_code == 201, up.text
    doc = up.json()
    assert doc["pages"] == 2 and doc["name"] == "invoice.pdf"
    thumb = api.get(doc["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.content.startswith(b"\x89PNG")
    client = _romashka(api)
    sent = api.post("/api/faxes", json={"document": doc["document"],
                                        "number": "+7 916 123-45-67", "client_id": client["id"]})
    assert sent.status_code == 201, sent.text
    job_id = sent.json()["id"]

    async def done(store: Any) -> Any:
        return (await store.get_fax_job(job_id))["state"] == "sent"

    _wait(api, done)
    job = api.get(f"/api/faxes/{job_id}").json()
    assert (job["pages_confirmed"], job["pages"]) == (2, 2)
    assert job["words"]["ru"] == "отправлен: все страницы (2) подтверждены получателем"
    # The loopback line delivers it back, from the number it was sent to: matched to the client.
    _wait(api, _inbox)
    [fax] = api.get("/api/fax-inbox").json()
    assert fax["client_id"] == client["id"] and fax["pages"] == 2
    assert fax["matched_by"] == "caller_id"
    pdf = api.get(fax["pdf_url"])
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("inline")
    assert f'fax-{fax["id"]}.pdf' in pdf.headers["content-disposition"]
    assert pdf.headers["x-content-type-options"] == "nosniff"
    history = api.get(f"/api/clients/{client['id']}/interactions").json()
    refs = {h["ref"] for h in history}
    assert {f"fax-out-{job_id}", f"fax-in-{fax['id']}"} <= refs
    filtered = api.get("/api/fax-inbox", params={"client_id": client["id"], "state": "ok"})
    assert [f["id"] for f in filtered.json()] == [fax["id"]]


def test_bad_documents_are_refused_with_their_reason(clients: Any, tmp_path: Path) -> None:
    api = clients("secretary")
    fake = tmp_path / "fake.pdf"
    fake.write_bytes(b"GIF89a not a pdf at all" * 10)
    r = _upload(api, fake)
    assert r.status_code == 400 and r.json()["error"] == "fax-document-rejected"
    assert r.json()["message"]
    r = _upload(api, make_encrypted_pdf(tmp_path / "locked.pdf"))
    message = r.json()["message"].lower()
    assert r.status_code == 400 and ("password" in message or "encrypt" in message), message
    # Larger than the JSON cap (1 MiB) still reaches the converter, which refuses it itself.
    big = tmp_path / "big.pdf"
    big.write_bytes(b"\0" * (2 << 20))
    r = _upload(api, big)
    assert r.status_code == 400 and r.json()["error"] == "fax-document-rejected"
    huge = tmp_path / "huge.pdf"
    huge.write_bytes(b"\0" * (27 << 20))
    assert _upload(api, huge).status_code == 413
    assert api.get("/api/faxes").json() == []
    r = api.post("/api/faxes", json={"document": "nosuchdocument", "number": "+74951234567"})
    assert r.status_code == 400


def test_managers_see_only_their_clients_faxes(clients: Any, tmp_path: Path) -> None:
    secretary = clients("secretary")
    doc = _upload(secretary, make_pdf(tmp_path / "a.pdf", 1)).json()
    romashka = _romashka(secretary)  # maria's client
    job = secretary.post("/api/faxes", json={"document": doc["document"],
                                             "number": "+79161234567",
                                             "client_id": romashka["id"]}).json()
    _wait(secretary, _inbox)
    [fax] = secretary.get("/api/fax-inbox").json()
    maria, dmitry = clients("maria"), clients("dmitry")
    assert [j["id"] for j in maria.get("/api/faxes").json()] == [job["id"]]
    assert [f["id"] for f in maria.get("/api/fax-inbox").json()] == [fax["id"]]
    assert maria.get(fax["pdf_url"]).status_code == 200
    assert dmitry.get("/api/faxes").json() == []
    assert dmitry.get("/api/fax-inbox").json() == []
    assert dmitry.get(f"/api/faxes/{job['id']}").status_code == 403
    assert dmitry.get(fax["pdf_url"]).status_code == 403
    assert dmitry.get(job["thumbnail_url"]).status_code == 403
    assert dmitry.post(f"/api/faxes/{job['id']}/cancel").status_code == 403
    assert maria.get(job["thumbnail_url"]).status_code == 200
    # nor can he fax on behalf of maria's client
    doc2 = _upload(dmitry, make_pdf(tmp_path / "b.pdf", 1)).json()
    r = dmitry.post("/api/faxes", json={"document": doc2["document"], "number": "+79161234567",
                                        "client_id": romashka["id"]})
    assert r.status_code == 403
