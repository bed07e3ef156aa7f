"""Faxes: upload a document (page count, thumbnail), send it, follow it, cancel it; the inbox
of received faxes with their PDFs. Managers see only their clients' faxes."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse

from callcenter.errors import CallcenterError, ValidationError
from callcenter.faxes.ports import Paper, Resolution
from callcenter.faxes.service import FaxService, job_json, received_json
from callcenter.models import Role
from callcenter.store.sqlite_faxes import FaxFilter
from ui.api.common import body_of, current_user, ok, path_id, query_of, services
from ui.api.models import Body, Id, Query

# Uploads may be larger than the JSON body cap (ui.security.MAX_BODY): the document
# converter refuses anything above its own limit with a sentence.
MAX_UPLOAD = 26 * 1024 * 1024
UPLOAD_PATH = "/api/fax-documents"


class FaxSendIn(Body):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"document": "Zm9vYmFyYmF6cXV4cXV1", "number": "+7 495 765-43-21", "client_id": 1}]})
    document: Annotated[str, StringConstraints(min_length=8, max_length=40,
                                               pattern=r"^[A-Za-z0-9_-]+$")]
    number: Annotated[str, StringConstraints(max_length=40)]
    client_id: Id | None = None
    line: Annotated[str | None, StringConstraints(max_length=64)] = None


class FaxesQuery(Query):
    client_id: Id | None = None
    state: Annotated[str | None, StringConstraints(max_length=20,
                                                   pattern=r"^[a-z_]+$")] = None
    search: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=64)
                      ] = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


class InboxQuery(Query):
    client_id: Id | None = None
    state: Literal["ok", "failed"] | None = None
    search: Annotated[str | None, StringConstraints(strip_whitespace=True, max_length=64)
                      ] = None
    limit: Annotated[int, Field(ge=1, le=500)] = 100


def _faxes(request: Request) -> FaxService:
    service = services(request).extra.get("faxes")
    if service is None:
        raise CallcenterError("fax handling is not running")
    return service


async def upload_document(request: Request) -> JSONResponse:
    """multipart/form-data: ``file`` (PDF, PNG, JPEG or TIFF), optional ``resolution``
    (fine|normal) and ``paper`` (a4|letter). Answers the page count and a thumbnail URL."""
    await current_user(request)
    service = _faxes(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ValidationError("send the document as multipart/form-data with a 'file' field",
                              field="file")
    form = await request.form(max_files=1, max_fields=4)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise ValidationError("no file in the upload (field 'file')", field="file")
        resolution = _choice(form.get("resolution"), Resolution, Resolution.FINE, "resolution")
        paper = _choice(form.get("paper"), Paper, Paper.A4, "paper")
        with tempfile.TemporaryDirectory(prefix="fax-upload-") as folder:
            # Our own fixed name on disk: the user's name is only checked and shown.
            path = Path(folder) / "upload"
            await asyncio.to_thread(_save, upload.file, path)
            doc = await service.prepare(path, upload.filename or "", resolution=resolution,
                                        paper=paper)
    finally:
        await form.close()
    return ok({"document": doc.token, "pages": doc.pages, "name": doc.name,
               "resolution": doc.resolution, "paper": doc.paper,
               "thumbnail_url": f"{UPLOAD_PATH}/{doc.token}/thumbnail"}, 201)


def _save(source: Any, path: Path) -> None:
    # Up to 26 MiB: copied in a thread, off the event loop.
    with path.open("wb") as out:
        shutil.copyfileobj(source, out)


def _choice(value: Any, kind: Any, default: Any, field: str) -> Any:
    if value in (None, ""):
        return default
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(k.value for k in kind)
        raise ValidationError(f"{field} must be one of {allowed}", field=field) from None


async def document_thumbnail(request: Request) -> FileResponse:
    await current_user(request)
    path = _faxes(request).thumbnail(request.path_params["token"])
    if path is None:
        raise ValidationError("this document has no thumbnail")
    return FileResponse(path, media_type="image/png", headers={"cache-control": "private"})


async def send_fax(request: Request) -> JSONResponse:
    user = await current_user(request)
    data = await body_of(request, FaxSendIn)
    job = await _faxes(request).send(user, document=data.document, number=data.number,
                                     client_id=data.client_id, line=data.line)
    return ok(job_json(job), 201)


async def list_faxes(request: Request) -> JSONResponse:
    user = await current_user(request)
    q = query_of(request, FaxesQuery)
    jobs = await _faxes(request).list_jobs(user, FaxFilter(
        client_id=q.client_id, state=q.state, search=q.search or "", limit=q.limit))
    return ok([job_json(j) for j in jobs])


async def get_fax(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok(job_json(await _faxes(request).visible_job(user, path_id(request))))


async def cancel_fax(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok(job_json(await _faxes(request).cancel(user, path_id(request))))


async def fax_thumbnail(request: Request) -> FileResponse:
    user = await current_user(request)
    job = await _faxes(request).visible_job(user, path_id(request))
    path = Path(job["thumbnail"])
    if not path.is_file():
        raise ValidationError("this fax has no thumbnail")
    return FileResponse(path, media_type="image/png", headers={"cache-control": "private"})


async def inbox(request: Request) -> JSONResponse:
    user = await current_user(request)
    q = query_of(request, InboxQuery)
    faxes = await _faxes(request).list_received(user, FaxFilter(
        client_id=q.client_id, state=q.state, search=q.search or "", limit=q.limit))
    return ok([received_json(f) for f in faxes])


async def received_pdf(request: Request) -> FileResponse:
    user = await current_user(request)
    service = _faxes(request)
    fax = await service.visible_received(user, path_id(request))
    path = Path(fax["pdf"])
    base = service.folder.resolve()
    if not path.resolve().is_relative_to(base) or not path.is_file():
        raise ValidationError("the fax file is missing from storage")
    # Named by us (never by the sender's station text); shown inline by the browser's viewer.
    kind = "application/pdf" if path.suffix == ".pdf" else "image/tiff"
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"fax-{fax['id']}") + path.suffix
    return FileResponse(path, media_type=kind, filename=name,
                        content_disposition_type="inline",
                        headers={"cache-control": "private, no-store"})


async def fax_lines(request: Request) -> JSONResponse:
    await current_user(request, Role.ADMIN)
    service = _faxes(request)
    out = []
    for name, backend in service.backends.items():
        status = backend.status()  # type: ignore[attr-defined]
        out.append({"name": name, "kind": status.kind, "state": status.state.value,
                    "detail": status.detail, "last_error": status.last_error})
    return ok(out)
