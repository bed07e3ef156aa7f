"""`make run` (demo mode) has a working fax line: libspandsp talking to itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from callcenter.app import create_app
from callcenter.config import Config
from callcenter.store.sqlite_faxes import FaxFilter
from tests.conftest import Api
from tests.fax.documents_fixtures import make_pdf


def test_the_demo_sends_and_receives_a_fax(config: Config, tmp_path: Path) -> None:
    app = create_app(config, demo=True, demo_calls=False)
    with TestClient(app) as client:
        api = Api(client)
        api.login("secretary")
        [line] = api.client.app.state.services.extra["faxes"].backends.values()  # type: ignore[attr-defined]
        assert line.kind == "fax-spandsp" and line.status().connected
        with make_pdf(tmp_path / "one.pdf", 1).open("rb") as fh:
            doc = api.post("/api/fax-documents", files={"file": ("one.pdf", fh)}).json()
        job = api.post("/api/faxes", json={"document": doc["document"],
                                           "number": "+74957654321"}).json()
        service = app.state.services.extra["faxes"]

        async def both() -> Any:
            sent = (await service.store.get_fax_job(job["id"]))["state"] == "sent"
            return sent and await service.store.list_received_faxes(FaxFilter())

        [fax] = client.portal.call(service.wait_for, both, 30)  # type: ignore[union-attr]
        assert fax["pages"] == 1 and fax["ok"] == 1
        assert api.get(f"/api/faxes/{job['id']}").json()["pages_confirmed"] == 1
