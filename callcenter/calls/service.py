"""Call actions the console asks for: permission checks, then the right line does it."""

from __future__ import annotations

import logging

from callcenter.calls.control import CallControl, LineStatus
from callcenter.calls.model import LiveCall
from callcenter.calls.registry import CallRegistry
from callcenter.calls.visibility import involves
from callcenter.errors import (
    CallNotFound,
    LineUnavailable,
    PermissionDenied,
    ValidationError,
)
from callcenter.models import Role, User

log = logging.getLogger(__name__)

TRANSFER_KINDS = {"blind", "attended", "redirect"}


class CallService:
    def __init__(self, registry: CallRegistry, lines: dict[str, CallControl],
                 managers_see_all: bool = False) -> None:
        self.registry = registry
        self.lines = lines
        self._managers_see_all = managers_see_all

    def statuses(self) -> list[LineStatus]:
        return [LineStatus(name, getattr(line, "kind", "pbx"), line.connected,
                           getattr(line, "detail", ""))
                for name, line in self.lines.items()]

    def _live(self, user: User, call_id: str) -> tuple[LiveCall, CallControl]:
        call = self.registry.get(call_id)
        if call is None:
            raise CallNotFound(f"call {call_id} is not live any more")
        if user.role is Role.MANAGER and not self._managers_see_all and not involves(
            user, call.to_json(), call.match_json
        ):
            raise PermissionDenied("this call does not involve you")
        line = self.lines.get(call.line)
        if line is None:
            raise LineUnavailable(f"line {call.line} is not configured")
        return call, line

    def _line_for_originate(self) -> CallControl:
        connected = [line for line in self.lines.values() if line.connected]
        if not self.lines:
            raise LineUnavailable("no PBX line is configured")
        if not connected:
            raise LineUnavailable("no PBX line is connected")
        return connected[0]

    async def originate(self, user: User, number: str) -> str:
        if not user.extension:
            raise ValidationError("you have no extension to ring first; ask an admin to set it")
        number = (number or "").strip()
        if not number:
            raise ValidationError("number is required", field="number")
        if any(ch.isalpha() for ch in number):
            # "+7 916 123-45-67 доб. 123" must not become one long wrong number
            raise ValidationError("the number contains letters (an extension part?); give the "
                                  "digits to dial only", field="number")
        line = self._line_for_originate()
        log.info("click-to-call by %s (ext %s) to %s", user.login, user.extension, number)
        return await line.originate(user.extension, number, user_id=user.id)

    async def transfer(self, user: User, call_id: str, to: str, kind: str) -> None:
        if kind not in TRANSFER_KINDS:
            raise ValidationError("kind must be blind, attended or redirect", field="kind")
        to = (to or "").strip()
        if not to.isdigit():
            raise ValidationError("to must be an extension such as 102", field="to")
        call, line = self._live(user, call_id)
        # Whoever holds the call now transfers it; the requester's own leg when it is theirs.
        from_ext = call.current_ext
        if user.extension and user.extension == call.current_ext:
            from_ext = user.extension
        if kind == "attended":
            if not from_ext:
                raise ValidationError("an attended transfer needs an answered call")
            await line.attended_transfer(call_id, from_ext, to)
        elif kind == "blind" and from_ext:
            await line.blind_transfer(call_id, from_ext, to)
        else:
            # Not answered yet (still ringing or queued): move the caller instead.
            await line.redirect(call_id, from_ext, to)

    async def hangup(self, user: User, call_id: str) -> None:
        _, line = self._live(user, call_id)
        await line.hangup(call_id)

    async def recording(self, user: User, call_id: str, on: bool) -> str | None:
        _, line = self._live(user, call_id)
        if on:
            return await line.start_recording(call_id)
        await line.stop_recording(call_id)
        return None
