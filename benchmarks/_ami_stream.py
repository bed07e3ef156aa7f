"""Shared by the AMI benchmarks: recorded inbound calls as many distinct, interleaved calls.

The recorded traces (tests/fixtures/ami, else the demo traces shipped in pbx/ami/demo_traces) are
rewritten by the demo PBX's own code (``CallTemplate``, ``demo_segments``): fresh Uniqueid and
Linkedid values, channel counters and caller numbers per copy, so the correlator sees distinct
calls. Calls arrive as a Poisson process and their events are merged by time, as a busy PBX
interleaves them. Every event of the recording is kept (VarSet, Newexten, CEL noise included).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.lookup import number_for
from pbx.ami.demo import DEFAULT_SCENARIOS, Caller, CallTemplate, demo_segments
from pbx.ami.trace import load_trace

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "ami"
DEMO_TRACES = REPO / "pbx" / "ami" / "demo_traces"
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
LINE = "office"  # the line name: call ids are "office:<Linkedid>"
TRUNKS = frozenset({"trunk", "faxtrunk"})


def fixtures_dir() -> Path:
    if (FIXTURES / f"{DEFAULT_SCENARIOS[0]}.log").exists():
        return FIXTURES
    return DEMO_TRACES


def load_templates(scenarios: Sequence[str] = DEFAULT_SCENARIOS) -> list[CallTemplate]:
    where = fixtures_dir()
    return [CallTemplate.from_trace(load_trace(where / f"{name}.log")) for name in scenarios]


def base_callers(count: int, phones: int, unknown: float, rng: random.Random) -> list[Caller]:
    """Caller IDs as a trunk sends them: numbers of the client base in +7 and 8 form, and a
    share of strangers (a miss costs an E.164 probe plus a tail probe)."""
    out = []
    for i in range(count):
        if rng.random() < unknown:
            number = f"+7{rng.randint(3_000_000_000, 3_999_999_999)}"
        else:
            ten = number_for(rng.randint(1, phones))
            number = f"+7{ten}" if rng.random() < 0.66 else f"8{ten}"
        out.append(Caller(number, f"Client {i}"))
    return out


@dataclass(frozen=True, slots=True)
class StreamEvent:
    t: float  # when the PBX would send it, seconds from the first call (ordering only)
    call: int  # which generated call it belongs to
    data: bytes  # one whole AMI message, CRLF-framed


def interleaved_calls(
    templates: Sequence[CallTemplate],
    callers: Sequence[Caller],
    *,
    calls: int,
    calls_per_second: float,
    call_seconds: float = 6.0,
    seed: int = 1,
) -> list[StreamEvent]:
    """``calls`` fresh calls starting ``calls_per_second`` on average, each squeezed into
    ``call_seconds``, merged into one stream in time order."""
    rng = random.Random(seed)
    segments = demo_segments(
        templates, callers, call_seconds=call_seconds, interval=(0.0, 0.0), first_delay=0.0,
        rng=random.Random(seed),
    )
    events: list[StreamEvent] = []
    start = 0.0
    for call, segment in zip(range(calls), segments, strict=False):
        first = segment.blocks[0].t
        events.extend(StreamEvent(start + b.t - first, call, b.data) for b in segment.blocks)
        start += rng.expovariate(calls_per_second)
    events.sort(key=lambda e: e.t)  # stable: a call's own events keep their order
    return events


def mean_events_per_call(templates: Sequence[CallTemplate]) -> float:
    return sum(len(t.blocks) for t in templates) / len(templates)
