"""Handing a received fax to the core: every backend awaits the sink's answer (the fax is
stored) before it removes its own copy, and keeps the copy when storing failed."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable

from callcenter.faxes.ports import FaxEvent, FaxReceived

log = logging.getLogger(__name__)


async def hand_over(sink: Callable[[FaxEvent], object], event: FaxReceived) -> bool:
    """True once the core stored the fax (the caller may then delete its copy)."""
    try:
        stored = sink(event)
        if inspect.isawaitable(stored):
            await stored
    except Exception:
        log.exception("fax line %s: received fax %s not stored; its copy is kept", event.line,
                      event.tiff.name)
        return False
    return True
