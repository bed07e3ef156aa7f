"""Request validation: pydantic v2 (what the API uses) against msgspec on the hot routes.

    .venv/bin/python benchmarks/api_models.py [--n 20000]

Validates the real bodies of the busiest routes N times with each library: a client create
(with contacts and phones), a client update, a task patch, and the call-log query string
(lax: everything arrives as text). The pydantic side is the product's own models
(ui/api/models.py); the msgspec side is an equivalent set of Structs written here, checked to
accept the same bodies and to refuse the same malformed one before anything is timed.
Prints ops/s for each and the ratio msgspec/pydantic.

The choice, pydantic v2: msgspec is faster, but both validate a body in microseconds, against
the milliseconds a request spends in the session check and SQLite; pydantic's lax mode
parses query strings without glue, its errors carry location, type and context for the
``{"error", "message", "field"}`` shape, and it generates the JSON Schema (2020-12, as
OpenAPI 3.1 wants) the document is built from. Exits non-zero only when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pydantic

try:
    import msgspec
    from msgspec import Meta, Struct
except ImportError:  # pragma: no cover - the test extras install it
    sys.exit("msgspec is not installed: pip install -e '.[test]'")

from ui.api import models

Text = Annotated[str, Meta(max_length=2000)]
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]


class MsPhone(Struct, forbid_unknown_fields=True):
    number: Annotated[str, Meta(min_length=1, max_length=64)]
    kind: Annotated[str, Meta(max_length=64)] | None = None


class MsContact(Struct, forbid_unknown_fields=True):
    name: Text | None = None
    position: Text | None = None
    email: Annotated[str, Meta(max_length=320)] | None = None
    phones: Annotated[list[Annotated[str, Meta(max_length=64)] | MsPhone],
                      Meta(max_length=50)] = []


class MsClientCreate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=2000)]
    kind: Literal["company", "person"] = "company"
    manager_id: Id | None = None
    notes: Text | None = None
    custom: dict[str, str | int | float | bool | None] = {}
    contacts: Annotated[list[MsContact], Meta(max_length=100)] = []


class MsClientUpdate(Struct, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=2000)] | None = None
    kind: Literal["company", "person"] | None = None
    manager_id: Id | None = None
    notes: Text | None = None
    custom: dict[str, str | int | float | bool | None] | None = None


class MsTaskUpdate(Struct, forbid_unknown_fields=True):
    title: Annotated[str, Meta(min_length=1, max_length=2000)] | None = None
    due_at: datetime | None = None
    done: bool | None = None
    assignee_id: Id | None = None


class MsCallsQuery(Struct, forbid_unknown_fields=True):
    since: datetime | None = None
    until: datetime | None = None
    number: Annotated[str, Meta(max_length=40)] | None = None
    client_id: Id | None = None
    user_id: Id | None = None
    state: Literal["answered", "missed", "failed", "ringing"] | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    offset: Annotated[int, Meta(ge=0, le=10**9)] = 0


CLIENT = json.dumps({
    "name": "ООО «Ромашка»", "kind": "company", "manager_id": 2, "notes": "key account",
    "custom": {"inn": "7701234567", "employees": 120},
    "contacts": [
        {"name": "Иван Петров", "position": "CEO", "email": "ivan@romashka.test",
         "phones": ["+7 916 123-45-67", {"number": "8 (495) 123-45-67", "kind": "work"}]},
        {"name": "Olga", "phones": ["+79031234567"]},
    ],
}).encode()
CLIENT_PATCH = json.dumps({"notes": "VIP since 2026", "custom": {"employees": 130}}).encode()
TASK_PATCH = json.dumps({"done": True, "assignee_id": 3,
                         "due_at": "2026-12-01T10:00:00+03:00"}).encode()
CALLS_QUERY = {"since": "2026-11-01T00:00:00+03:00", "until": "2026-11-30T23:59:59+03:00",
               "number": "8 916 123 45 67", "state": "missed", "limit": "50", "offset": "100"}
BAD_TASK_PATCH = json.dumps({"assignee_id": "abc"}).encode()


def _cases() -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    ms_client = msgspec.json.Decoder(MsClientCreate)
    ms_patch = msgspec.json.Decoder(MsClientUpdate)
    ms_task = msgspec.json.Decoder(MsTaskUpdate)
    return [
        ("POST /api/clients", lambda: models.ClientCreate.model_validate_json(CLIENT),
         lambda: ms_client.decode(CLIENT)),
        ("PATCH /api/clients/{id}", lambda: models.ClientUpdate.model_validate_json(CLIENT_PATCH),
         lambda: ms_patch.decode(CLIENT_PATCH)),
        ("PATCH /api/tasks/{id}", lambda: models.TaskUpdate.model_validate_json(TASK_PATCH),
         lambda: ms_task.decode(TASK_PATCH)),
        ("GET /api/calls?...", lambda: models.CallsQuery.model_validate(CALLS_QUERY),
         lambda: msgspec.convert(CALLS_QUERY, MsCallsQuery, strict=False)),
    ]


def _check_alike() -> None:
    """Both sides accept the same bodies and refuse the same malformed one."""
    for _name, pyd, ms in _cases():
        pyd()
        ms()
    refused = 0
    try:
        models.TaskUpdate.model_validate_json(BAD_TASK_PATCH)
    except pydantic.ValidationError:
        refused += 1
    try:
        msgspec.json.decode(BAD_TASK_PATCH, type=MsTaskUpdate)
    except msgspec.ValidationError:
        refused += 1
    if refused != 2:
        sys.exit("the two model sets disagree on a malformed body: fix the benchmark")


def _rate(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(n, 1000)):  # warm-up
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


async def _whole_request(n: int) -> float:
    """Mean µs of one GET /api/calls with the query above, through the whole app in-process
    (session check, validation, SQLite, JSON out) on the demo database."""
    import tempfile

    import httpx

    from callcenter.app import create_app
    from callcenter.config import load_config
    from callcenter.demo import DEMO_PASSWORD

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(None, env={})
        config.base_dir = Path(tmp)
        config.server.secret_key = "benchmark-secret-key"
        app = create_app(config, demo=True, demo_calls=False)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://cc"
        ) as client:
            r = await client.post("/api/session",
                                  json={"login": "secretary", "password": DEMO_PASSWORD})
            r.raise_for_status()
            for _ in range(50):
                await client.get("/api/calls", params=CALLS_QUERY)
            start = time.perf_counter()
            for _ in range(n):
                (await client.get("/api/calls", params=CALLS_QUERY)).raise_for_status()
            return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="validations per case")
    args = parser.parse_args()
    _check_alike()
    print(f"pydantic {pydantic.VERSION}, msgspec {msgspec.__version__}, n={args.n}")
    print(f"{'route':<26}{'pydantic ops/s':>16}{'msgspec ops/s':>16}{'msgspec/pydantic':>18}"
          f"{'pydantic µs':>13}")
    for name, pyd, ms in _cases():
        p, m = _rate(pyd, args.n), _rate(ms, args.n)
        print(f"{name:<26}{p:>16,.0f}{m:>16,.0f}{m / p:>17.1f}x{1e6 / p:>13.1f}")
        if name.startswith("GET /api/calls"):
            query_us = 1e6 / p
    import asyncio

    whole = asyncio.run(_whole_request(max(args.n // 40, 100)))
    print(f"a whole GET /api/calls?... in-process: {whole:,.0f} µs, of which pydantic "
          f"{query_us:.1f} µs ({query_us / whole:.1%})")


if __name__ == "__main__":
    main()
