"""Call event payloads in the shape of docs/events.md, for tests that publish on the bus."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def client_match(client_id: int, client: str, contact_id: int, contact: str, manager_id: int,
                 manager: str, extension: str, busy: bool = False) -> dict[str, Any]:
    return {
        "kind": "client",
        "client": {"id": client_id, "name": client, "kind": "company", "manager_id": manager_id},
        "contact": {"id": contact_id, "name": contact},
        "manager": {"id": manager_id, "name": manager, "extension": extension, "busy": busy},
        "candidates": [{"client_id": client_id, "client_name": client, "contact_id": contact_id,
                        "contact_name": contact, "manager_id": manager_id}],
        "user": None,
        "last_interactions": [{"at": "2026-11-20T10:00:00+00:00", "kind": "call",
                               "summary": "asked about the invoice"}],
        "open_tasks": [{"id": 1, "title": "Send the contract", "due_at": None}],
    }


def other_match(kind: str, candidates: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"kind": kind, "client": None, "contact": None, "manager": None,
            "candidates": candidates or [], "user": None, "last_interactions": [],
            "open_tasks": []}


class FakeCall:
    """One call's evolving payload: ``ringing()``, ``answered()``, ... return (topic, data)."""

    def __init__(self, call_id: str, number: str, name: str, match: dict[str, Any], *,
                 display: str | None = None, direction: str = "inbound",
                 withheld: bool = False, called: str = "74951110000",
                 originated_by: int | None = None) -> None:
        self.match = match
        self.call: dict[str, Any] = {
            "id": call_id, "line": "office", "direction": direction,
            "caller": {"raw": number, "e164": number if number.startswith("+") else None,
                       "name": name, "withheld": withheld, "display": display or number},
            "called": called, "state": "ringing", "reason": None, "ringing": [], "rang": [],
            "answered_by": None, "started_at": now_iso(), "answered_at": None,
            "ended_at": None, "ring_seconds": None, "talk_seconds": None, "transfers": [],
            "on_hold": False, "recordings": 0, "originated_by": originated_by,
        }

    def _event(self, topic: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        data = {"call": copy.deepcopy(self.call), "match": copy.deepcopy(self.match)}
        data.update(extra)
        return topic, data

    def started(self) -> tuple[str, dict[str, Any]]:
        return self._event("call.updated")

    def ringing(self, *extensions: str) -> tuple[str, dict[str, Any]]:
        self.call["ringing"] = list(extensions)
        self.call["rang"] += [e for e in extensions if e not in self.call["rang"]]
        return self._event("call.ringing", extension=extensions[-1], user=None)

    def answered(self, extension: str, user_id: int | None, user_name: str | None
                 ) -> tuple[str, dict[str, Any]]:
        self.call.update(state="answered", ringing=[], answered_at=now_iso(),
                         answered_by={"extension": extension, "user_id": user_id,
                                      "user_name": user_name})
        return self._event("call.answered")

    def transferred(self, kind: str, from_ext: str, to: str, result: str
                    ) -> tuple[str, dict[str, Any]]:
        transfer = {"kind": kind, "from": from_ext, "to": to, "at": now_iso(), "result": result}
        self.call["transfers"].append(transfer)
        return self._event("call.transferred", transfer=transfer)

    def ended(self, talk: float = 65.0) -> tuple[str, dict[str, Any]]:
        self.call.update(state="ended", ended_at=now_iso(), talk_seconds=talk, ringing=[])
        return self._event("call.ended")

    def missed(self, reason: str = "abandoned") -> tuple[str, dict[str, Any]]:
        self.call.update(state="missed", reason=reason, ended_at=now_iso(), ringing=[])
        return self._event("call.missed")

    def failed(self, reason: str = "no_answer") -> tuple[str, dict[str, Any]]:
        self.call.update(state="failed", reason=reason, ended_at=now_iso(), ringing=[])
        return self._event("call.ended")
