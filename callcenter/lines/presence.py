"""Presence the lines know beyond the calls: a line that watches phones (the SIP line's dialog
watcher) says which are offline, ringing or busy even with no call the registry holds (a
manager's own call). Merged under the registry's view, which is exact for the calls it has."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

STATES = frozenset({"free", "ringing", "busy", "offline"})


def merged_presence(calls: Mapping[str, str], lines: Iterable[Any]) -> dict[str, str]:
    """Extension -> state for every extension not free: the lines' words first, then the
    registry's (its calls win). ``lines`` are running lines; those without ``presence()``
    are skipped."""
    out: dict[str, str] = {}
    for line in lines:
        presence = getattr(line, "presence", None)
        if not callable(presence):
            continue
        try:
            states = presence()
        except Exception:  # a line's fault must not break the console's presence
            continue
        for ext, state in states.items():
            if state in STATES and state != "free":
                out[str(ext)] = state
    out.update(calls)
    return out
