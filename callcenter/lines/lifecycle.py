"""The lifecycle every line kind implements, so the line manager, the admin page and the
console never ask which kind a line is (see DESIGN.md, "Lines: one lifecycle for every kind").

An adapter (``pbx/asterisk_line.py``, ``gsm/``, ``fax/``, ``pbx/sip/``) implements :class:`Line`.
Its calls reach the core as the events of :mod:`callcenter.line_events`; SMS and faxes as the
line events of their own features. Actions go the other way through small protocols of the core
(``CallControl``, an SMS sender, a fax sender).
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


class LineState(enum.StrEnum):
    STOPPED = "stopped"  # not started, or stopped by the manager
    DISABLED = "disabled"  # stored but switched off by an admin
    STARTING = "starting"  # started, first connection not made yet
    UP = "up"  # connected and working
    DEGRADED = "degraded"  # working with a problem (weak signal, resync failed, SIM limit hit)
    DOWN = "down"  # lost or refused; the adapter retries with backoff


@dataclass(frozen=True, slots=True)
class LineStatus:
    """What a line says about itself, shown on the lines page and in the console."""

    name: str
    kind: str  # "asterisk", "gsm", "fax-hylafax", "sip", ...
    state: LineState
    detail: str = ""  # in words: "Asterisk 22.1.0, AMI 10.0.0", "signal -71 dBm, MTS RUS"
    last_error: str = ""  # the last fault, kept after the line came back
    since: float = field(default_factory=time.time)  # unix time the state was entered

    @property
    def connected(self) -> bool:
        return self.state in (LineState.UP, LineState.DEGRADED)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The answer of :meth:`Line.check`: a live test that disturbs nothing running.

    ``facts`` are what the test learnt, for display (``{"Asterisk": "22.1.0", "AMI": "10.0.0"}``,
    ``{"model": "E3372", "SIM": "READY"}``). ``error`` says in words what failed and what to do
    ("login refused: check the secret in manager.conf"); ``hint`` is optional extra help."""

    ok: bool
    summary: str
    facts: dict[str, str] = field(default_factory=dict)
    error: str = ""
    hint: str = ""


@runtime_checkable
class Line(Protocol):
    """One line of any kind. ``start()`` returns at once (connecting is the line's background
    job, retried with backoff); ``stop()`` closes everything the line opened and awaits its
    tasks; ``check()`` may be called on a running line or on a line that was never started
    (the admin's "Test connection" on a setting not saved yet)."""

    name: str
    kind: str

    async def check(self) -> CheckResult: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def status(self) -> LineStatus: ...


@runtime_checkable
class Readopting(Protocol):
    """Optional members of a line whose calls outlive a replacement (the calls of a replaced
    line, callcenter/lines/calls.py, and the calls the last run left open, ``finish_left_open``
    in callcenter/app/, use them when a line has them).

    ``synced`` is set once the line's first resync reported every call still up;
    ``live_call_keys()`` names the calls it tracks but holds back still (an Asterisk line
    waits for a caller's presentation before it reports the call)."""

    synced: asyncio.Event

    def live_call_keys(self) -> set[str]: ...
