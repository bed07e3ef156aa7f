"""The kinds of line the product has, one registry for the server and the command line.

A kind's factory gets a :class:`KindContext`: the configuration, and ``attach`` -- how a line it
builds hands its events to the calls (None in the command line, whose lines are only checked:
they get a sink that drops everything). The composition root (``callcenter/app/``) registers
the kinds it wires (Asterisk; GSM, fax and SIP as they land) with :func:`register_kind`, so the
command line can add, edit and check every kind the lines page can.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callcenter.config import Config
from callcenter.line_events import LineEvent
from callcenter.lines.records import LineKind

Sink = Callable[[LineEvent], None]


@dataclass(frozen=True, slots=True)
class KindContext:
    config: Config
    # (sink for a new line, and what to call with the line once built); None: check only
    attach: Callable[[], tuple[Sink, Callable[[Any], None]]] | None = None

    def sink(self) -> tuple[Sink, Callable[[Any], None]]:
        if self.attach is None:
            return (lambda _event: None), (lambda _line: None)
        return self.attach()


KindFactory = Callable[[KindContext], LineKind]
_FACTORIES: dict[str, KindFactory] = {}


def register_kind(name: str, factory: KindFactory) -> None:
    """Make a kind known to the server and to the command line (once per name)."""
    _FACTORIES[name] = factory


def build_kinds(context: KindContext) -> list[LineKind]:
    return [factory(context) for factory in _FACTORIES.values()]
