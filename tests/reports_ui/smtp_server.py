"""A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port, on the test's own loop."""

from __future__ import annotations

import asyncio
import email
import email.policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP


class Inbox:
    """Keeps every accepted mail; ``refuse`` makes DATA fail with a temporary error."""

    def __init__(self) -> None:
        self.mails: list[EmailMessage] = []
        self.envelopes: list[Any] = []
        self.refuse: str | None = None
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refuse:
            return self.refuse
        self.envelopes.append(envelope)
        self.mails.append(email.message_from_bytes(envelope.content,
                                                   policy=email.policy.default))
        self.arrived.set()
        return "250 OK"


async def start_smtp(inbox: Inbox) -> tuple[asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="test.local"),
                                      "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]
