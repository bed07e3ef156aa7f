"""A demo PBX: recorded inbound calls replayed in a loop, each time as a new call.

Every loop iteration rewrites the recorded bytes so the CRM sees a distinct call: the caller
number and display name come from a caller list, Uniqueid/Linkedid values become fresh
``<epoch>.<seq>`` ids, and channel-name counters (``PJSIP/101-0000000b``) keep counting up.
A call is compressed to a few seconds and a new one starts every ``interval`` seconds.
Rewriting works on bytes, on whole header values only, so CRLF framing and UTF-8 (Cyrillic
names) stay intact.

    python -m pbx.ami.demo --port 5038
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import random
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pbx.ami.codec import parse_message
from pbx.ami.emulator import AmiEmulator, Segment, action_id_of, is_banner
from pbx.ami.trace import Block, BlockKind, Trace, load_trace

log = logging.getLogger(__name__)

DEFAULT_SCENARIOS = (
    "01_inbound_answered",
    "02_inbound_missed",
    "08a_callerid_cyrillic",
    "08b_callerid_anonymous",
    "06_overlapping_inbound",
    "11_queue_two_agents_ringall",
    "15_ringgroup_noanswer_then_voicemail_like",
)
DEFAULT_CALLERS = (
    ("+79161234567", "Ivan Petrov"),
    ("89035556677", "Ольга Смирнова"),
    ("+74957654321", 'ООО "Ромашка"'),
)
# Events that belong to a login, not to a call: the emulator makes its own at each login.
_LOGIN_EVENTS = frozenset({"FullyBooted", "SuccessfulAuth"})
_NUMBER = re.compile(r"\+?[0-9]{2,20}")
_UNIQUEID = re.compile(r"[0-9]+\.[0-9]+")
_CHANNEL_COUNTER = re.compile(
    rb"(?P<prefix>(?:PJSIP|Local|SIP|IAX2|DAHDI)/[^\s,;]+?-)(?P<counter>[0-9a-f]{8})(?![0-9A-Za-z])"
)
_C_UNESCAPE = re.compile(r"\\(.)")


def _sip_escape(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')


def _ami_escape(value: str) -> str:
    # What ast_escape_c does to the characters a sanitized name can contain.
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True, slots=True)
class Caller:
    number: str
    name: str

    def __post_init__(self) -> None:
        if not _NUMBER.fullmatch(self.number):
            raise ValueError(
                f"demo caller number must be digits with an optional +: {self.number!r}"
            )
        if any(ord(c) < 32 or ord(c) == 127 for c in self.name):
            raise ValueError("demo caller name must not contain control characters")


@dataclass(frozen=True, slots=True)
class _RecordedCaller:
    number: str
    name_forms: tuple[str, str]  # (as AMI shows it, once unescaped) e.g. \\\"X\\\" and \"X\"


@dataclass(frozen=True, slots=True)
class CallTemplate:
    """One recorded call, stripped of everything that belongs to the recording session."""

    scenario: str
    blocks: tuple[Block, ...]  # RECV only, t relative to the first block
    callers: tuple[_RecordedCaller, ...]
    uniqueids: tuple[str, ...]

    @property
    def duration(self) -> float:
        return self.blocks[-1].t if self.blocks else 0.0

    @classmethod
    def from_trace(cls, trace: Trace) -> CallTemplate:
        session = trace.sessions()[0]
        ours = {
            action_id
            for block in session
            if block.kind is BlockKind.SEND and (action_id := action_id_of(block.data))
        }
        kept: list[Block] = []
        callers: list[_RecordedCaller] = []
        uniqueids: dict[str, None] = {}
        for block in session:
            if block.kind is not BlockKind.RECV or is_banner(block):
                continue
            if action_id_of(block.data) in ours:
                continue  # answers to the recording's own actions (Login, CoreShowChannels…)
            message = parse_message(block.data)
            if message.event in _LOGIN_EVENTS:
                continue
            kept.append(block)
            for key, value in message.headers.items():
                lowered = key.lower()
                if lowered.endswith(("uniqueid", "linkedid")) and _UNIQUEID.fullmatch(value):
                    uniqueids.setdefault(value)
            if message.event == "Newchannel" and message.get("Uniqueid") == message.get("Linkedid"):
                caller = _recorded_caller(message.get("CallerIDNum"), message.get("CallerIDName"))
                if caller is not None and caller not in callers:
                    callers.append(caller)
        start = kept[0].t if kept else 0.0
        blocks = tuple(Block(BlockKind.RECV, b.t - start, b.data) for b in kept)
        return cls(trace.scenario, blocks, tuple(callers), tuple(uniqueids))


def _recorded_caller(number: str | None, name: str | None) -> _RecordedCaller | None:
    # Withheld and unknown callers stay as recorded: that is what the scenario is about.
    if not number or not _NUMBER.fullmatch(number):
        return None
    shown = name or ""
    return _RecordedCaller(number, (shown, _C_UNESCAPE.sub(r"\1", shown)))


class _Rewriter:
    """Maps one template's recorded values to fresh ones, for one loop iteration."""

    def __init__(
        self,
        template: CallTemplate,
        callers: list[Caller],
        uid_seq: Iterator[int],
        channel_seq: Iterator[int],
    ) -> None:
        epoch = int(time.time())
        values: dict[bytes, bytes] = {}
        for uid in template.uniqueids:
            values[uid.encode()] = f"{epoch}.{next(uid_seq)}".encode()
        for recorded, new in zip(template.callers, callers, strict=False):
            values[recorded.number.encode()] = new.number.encode()
            shown, plain = recorded.name_forms
            if shown:
                sip = _sip_escape(new.name)
                values[plain.encode()] = sip.encode()
                values[shown.encode()] = _ami_escape(sip).encode()
        self._values = values
        # Longest first so that a value containing another one wins; digits must not run on
        # (1795388457.1 is not 1795388457.12).
        tokens = sorted(values, key=len, reverse=True)
        self._pattern = (
            re.compile(
                rb"(?<![0-9.])(?:" + b"|".join(re.escape(t) for t in tokens) + rb")(?![0-9])"
            )
            if tokens
            else None
        )
        self._counters: dict[bytes, bytes] = {}
        self._channel_seq = channel_seq

    def _counter(self, match: re.Match[bytes]) -> bytes:
        old = match.group("counter")
        new = self._counters.get(old)
        if new is None:
            new = self._counters[old] = f"{next(self._channel_seq):08x}".encode()
        return match.group("prefix") + new

    def rewrite(self, data: bytes) -> bytes:
        if self._pattern is not None:
            data = self._pattern.sub(lambda m: self._values[m.group(0)], data)
        return _CHANNEL_COUNTER.sub(self._counter, data)


def demo_segments(
    templates: Sequence[CallTemplate],
    callers: Sequence[Caller],
    *,
    call_seconds: float = 6.0,
    interval: tuple[float, float] = (10.0, 20.0),
    first_delay: float = 1.0,
    rng: random.Random | None = None,
) -> Iterator[Segment]:
    """Endless segments, one call each, for ``AmiEmulator(..., speed=1.0)``."""
    if not templates or not callers:
        raise ValueError("the demo needs at least one scenario and one caller")
    rng = rng or random.Random()
    uid_seq = itertools.count(1)
    channel_seq = itertools.count(0x100)
    caller_cycle = itertools.cycle(callers)
    delay = first_delay
    for template in itertools.cycle(templates):
        chosen = [next(caller_cycle) for _ in template.callers]
        rewriter = _Rewriter(template, chosen, uid_seq, channel_seq)
        scale = min(1.0, call_seconds / template.duration) if template.duration > 0 else 1.0
        blocks = tuple(
            Block(BlockKind.RECV, delay + block.t * scale, rewriter.rewrite(block.data))
            for block in template.blocks
        )
        yield Segment(blocks)
        delay = max(rng.uniform(*interval) - template.duration * scale, 0.5)


class DemoPbx:
    """An ``AmiEmulator`` looping inbound calls forever. ``async with DemoPbx(...) as pbx``,
    then point the CRM at ``127.0.0.1:pbx.port`` with the configured credentials."""

    def __init__(
        self,
        callers: Sequence[tuple[str, str]] = DEFAULT_CALLERS,
        *,
        fixtures: Path,
        scenarios: Sequence[str] = DEFAULT_SCENARIOS,
        call_seconds: float = 6.0,
        interval: tuple[float, float] = (10.0, 20.0),
        first_delay: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "crm",
        secret: str = "crm-secret",
        seed: int | None = None,
    ) -> None:
        self.callers = [Caller(number, name) for number, name in callers]
        self.templates = [
            CallTemplate.from_trace(load_trace(Path(fixtures) / f"{name}.log"))
            for name in scenarios
        ]
        segments = demo_segments(
            self.templates,
            self.callers,
            call_seconds=call_seconds,
            interval=interval,
            first_delay=first_delay,
            rng=random.Random(seed),
        )
        # action_wait=0: the demo has no recorded actions; everything the CRM sends is
        # answered synthetically (or by responders added to .emulator.responders).
        self.emulator = AmiEmulator(
            segments,
            host=host,
            port=port,
            username=username,
            secret=secret,
            speed=1.0,
            action_wait=0.0,
        )

    @property
    def port(self) -> int:
        return self.emulator.port

    async def start(self) -> DemoPbx:
        await self.emulator.start()
        return self

    async def close(self) -> None:
        await self.emulator.close()

    async def __aenter__(self) -> DemoPbx:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _main(argv: list[str] | None = None) -> None:
    default_fixtures = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "ami"
    parser = argparse.ArgumentParser(description="Loop recorded inbound calls as a demo PBX.")
    parser.add_argument("--fixtures", type=Path, default=default_fixtures)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5038)
    parser.add_argument("--username", default="crm")
    parser.add_argument("--secret", default="crm-secret")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)

    async def run() -> None:
        pbx = DemoPbx(
            fixtures=args.fixtures,
            host=args.host,
            port=args.port,
            username=args.username,
            secret=args.secret,
        )
        async with pbx:
            log.info("demo PBX on %s:%d", args.host, pbx.port)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":
    _main()
