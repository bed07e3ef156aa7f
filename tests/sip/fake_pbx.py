"""The core's own endpoint playing a PBX for the line's tests: it accepts the REGISTER and
every dialog SUBSCRIBE (kept in ``subscribes``, ``got`` set at each), and the test sends the
NOTIFYs it wants from there."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from sip.endpoint import IncomingRequest, SipEndpoint


@dataclass
class FakePbx:
    endpoint: SipEndpoint
    subscribes: list[IncomingRequest] = field(default_factory=list)
    got: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def registrar(self) -> str:
        host, port = self.endpoint.local_address
        return f"{host}:{port}"

    def register(self, incoming: IncomingRequest) -> None:
        incoming.respond(200, headers=[("Expires", "300"),
                                       ("Contact", incoming.request.headers.get("Contact") or "")])

    def subscribe(self, incoming: IncomingRequest) -> None:
        incoming.respond(200, headers=[("Expires", "600"),
                                       ("Contact", f"<{self.endpoint.contact('101')}>")])
        self.subscribes.append(incoming)
        self.got.set()


@contextlib.asynccontextmanager
async def fake_pbx() -> AsyncIterator[FakePbx]:
    pbx = FakePbx(SipEndpoint("UDP", "127.0.0.1", 0))
    await pbx.endpoint.start()
    pbx.endpoint.on_request("REGISTER", pbx.register)
    pbx.endpoint.on_request("SUBSCRIBE", pbx.subscribe)
    try:
        yield pbx
    finally:
        await pbx.endpoint.close()
