"""Call control: what the console can ask a line to do, and the service that checks it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class CallControl(Protocol):
    """Implemented by each line adapter (Asterisk AMI today). ``call_id`` is the core's call id;
    the adapter maps it and the extensions to its own channels. Each method raises
    callcenter.errors.LineUnavailable when the line is down and CallActionFailed when the PBX
    refused."""

    name: str

    @property
    def connected(self) -> bool: ...

    async def originate(self, extension: str, number: str, *, user_id: int | None) -> str: ...

    async def blind_transfer(self, call_id: str, from_ext: str | None, to_ext: str) -> None: ...

    async def attended_transfer(self, call_id: str, from_ext: str, to_ext: str) -> None: ...

    async def redirect(self, call_id: str, from_ext: str | None, to_ext: str) -> None: ...

    async def hangup(self, call_id: str) -> None: ...

    async def start_recording(self, call_id: str) -> str: ...

    async def stop_recording(self, call_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class LineStatus:
    name: str
    kind: str
    connected: bool
    detail: str
