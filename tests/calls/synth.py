"""Traces for PBX behaviour no recording shows, built only from recorded event shapes.

Every event here is a copy of a block of a recorded Asterisk 22.10.1 trace with some header
values changed (never a header invented from nothing, except ``Timestamp``, which Asterisk adds
with ``timestampevents = yes`` in manager.conf). The timestamps make ring and IVR times exact,
whatever the replay speed: ``Timestamp = started_wall + t``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from pbx.ami.codec import parse_message
from pbx.ami.trace import Block, BlockKind, Trace, load_trace
from tests.conftest import FIXTURES

RINGGROUP = "15_ringgroup_noanswer_then_voicemail_like"
VOICEMAIL_PATH = "/var/spool/asterisk/monitor/vm-20261122-232031-1795389601.51"


def _serialize(pairs: Iterable[tuple[str, str]]) -> bytes:
    return ("".join(f"{k}: {v}\r\n" for k, v in pairs) + "\r\n").encode("utf-8")


def _pairs(block: Block) -> list[tuple[str, str]]:
    out = []
    for line in block.data.decode("utf-8").split("\r\n"):
        if ": " in line:
            key, value = line.split(": ", 1)
            out.append((key, value))
    return out


def changed(block: Block, t: float, **values: str) -> Block:
    """``block`` at time ``t`` with some header values replaced (keys spelt ``Cause_txt`` for
    ``Cause-txt``); a header the block lacks is appended."""
    wanted = {k.replace("_", "-"): v for k, v in values.items()}
    pairs = [(k, wanted.pop(k, v)) for k, v in _pairs(block)]
    pairs += list(wanted.items())
    return Block(BlockKind.RECV, t, _serialize(pairs))


def timestamped(trace: Trace, blocks: list[Block]) -> Trace:
    """Events get ``Timestamp`` after ``Privilege`` (where Asterisk puts it)."""
    wall = datetime.fromisoformat(trace.meta["started_wall"]).timestamp()
    out = []
    for block in blocks:
        pairs = _pairs(block) if block.kind is BlockKind.RECV else []
        if pairs and pairs[0][0] == "Event":
            at = 2 if len(pairs) > 1 and pairs[1][0] == "Privilege" else 1
            pairs.insert(at, ("Timestamp", f"{wall + block.t:.6f}"))
            block = replace(block, data=_serialize(pairs))
        out.append(block)
    return Trace(trace.scenario + "_synth", trace.description, trace.meta, out)


def _find(blocks: list[Block], event: str, **match: str) -> Block:
    for block in blocks:
        if block.kind is not BlockKind.RECV or block.data.startswith(b"Asterisk"):
            continue
        h = parse_message(block.data).headers
        if h.get("Event") == event and all(h.get(k) == v for k, v in match.items()):
            return block
    raise LookupError(f"no {event} {match} in the recording")


def _base() -> tuple[Trace, list[Block]]:
    trace = load_trace(FIXTURES / f"{RINGGROUP}.log")
    return trace, list(trace.blocks)


TRUNK = {"Channel": "PJSIP/trunk-0000002e"}


def ringgroup_then_voicemail(*, hangup_cause: tuple[str, str] = ("16", "Normal Clearing")
                             ) -> Trace:
    """Trace 15 as recorded up to the ring group's NOANSWER (30 s of ringing, both phones torn
    down with cause 0); then, instead of its ``Hangup()``, the dialplan answers, plays a prompt
    and runs ``Record(<file>.wav,3,120)``; the caller speaks for 25 s and hangs up."""
    trace, blocks = _base()
    hangup_app = _find(blocks, "Newexten", Application="Hangup", **TRUNK)
    cut = blocks.index(hangup_app)
    soft = blocks[cut + 1]  # the SoftHangupRequest of the trunk
    trunk_hangup = _find(blocks, "Hangup", **TRUNK)
    phone_end = blocks.index(trunk_hangup)
    t0 = hangup_app.t
    ringing = _find(blocks, "Newstate", Channel="PJSIP/102-0000002f")
    dialstatus = blocks[cut - 1]  # VarSet DIALSTATUS=NOANSWER
    head = blocks[:cut]
    phones = [b for b in blocks[cut + 2:phone_end]]  # the phones' Hangups and CELs
    tail = [b for b in blocks[phone_end + 1:]]
    synth = [
        changed(hangup_app, t0 + 0.002, Application="Answer", AppData=""),
        changed(ringing, t0 + 0.003, Channel=TRUNK["Channel"], Uniqueid="1795389601.51",
                ChannelState="6", ChannelStateDesc="Up", CallerIDNum="+79165554433",
                CallerIDName="Pavel Sidorov", ConnectedLineNum="<unknown>",
                ConnectedLineName="<unknown>", Context="from-trunk", Exten="74951110001",
                Linkedid="1795389601.51"),
        changed(hangup_app, t0 + 0.004, Application="Playback", AppData="vm-intro"),
        changed(hangup_app, t0 + 3.0, Application="Record",
                AppData=f"{VOICEMAIL_PATH}.wav,3,120"),
        changed(dialstatus, t0 + 3.001, Variable="RECORDED_FILE", Value=VOICEMAIL_PATH),
        changed(soft, t0 + 25.0, Cause=hangup_cause[0]),
        changed(trunk_hangup, t0 + 25.001, Cause=hangup_cause[0], Cause_txt=hangup_cause[1],
                ChannelState="6", ChannelStateDesc="Up"),
    ]
    shifted = [replace(b, t=b.t + 25.0) for b in tail]
    return timestamped(trace, head + phones + synth + shifted)


def ivr_only(*, hangup_cause: tuple[str, str] = ("16", "Normal Clearing")) -> Trace:
    """The storm line of the lab PBX (README part 2: ``Answer, Playback(hello-world),
    Wait(6), Hangup``) on trace 15's trunk channel: nobody ever rings."""
    trace, blocks = _base()
    login = blocks[: blocks.index(_find(blocks, "FullyBooted")) + 2]
    new = _find(blocks, "Newchannel", **TRUNK)
    hangup_app = _find(blocks, "Newexten", Application="Hangup", **TRUNK)
    soft = _find(blocks, "SoftHangupRequest", **TRUNK)
    ringing = _find(blocks, "Newstate", Channel="PJSIP/102-0000002f")
    trunk_hangup = _find(blocks, "Hangup", **TRUNK)
    did = {"Exten": "74951110005"}
    t0 = new.t
    synth = [
        changed(new, t0, **did),
        changed(hangup_app, t0 + 0.001, Application="Answer", AppData="", **did),
        changed(ringing, t0 + 0.002, Channel=TRUNK["Channel"], Uniqueid="1795389601.51",
                ChannelState="6", ChannelStateDesc="Up", CallerIDNum="+79165554433",
                CallerIDName="Pavel Sidorov", ConnectedLineNum="<unknown>",
                ConnectedLineName="<unknown>", Context="from-trunk", Linkedid="1795389601.51",
                **did),
        changed(hangup_app, t0 + 0.003, Application="Playback", AppData="hello-world", **did),
        changed(hangup_app, t0 + 1.5, Application="Wait", AppData="6", **did),
        changed(hangup_app, t0 + 7.5, **did),
        changed(soft, t0 + 7.501, Cause="16", **did),
        changed(trunk_hangup, t0 + 7.502, Cause=hangup_cause[0], Cause_txt=hangup_cause[1],
                ChannelState="6", ChannelStateDesc="Up", **did),
    ]
    return timestamped(trace, login + synth)
