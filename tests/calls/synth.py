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


CLICK = "05_click_to_call"
LOCAL1 = "Local/102@from-internal-00000001;1"
LOCAL2 = "Local/102@from-internal-00000001;2"
PHONE = "PJSIP/102-0000000e"
PHONE_UID = "1795388583.17"
_C2C_KEEP = {"Newchannel", "NewCallerid", "DialBegin", "DialEnd", "Newstate",
             "OriginateResponse", "MixMonitorStart", "BridgeEnter", "BridgeLeave", "Hangup",
             "FullyBooted", "SuccessfulAuth"}


def local_click_to_call() -> Trace:
    """Trace 05 as if the Originate had used ``Channel: Local/102@from-internal`` (FreePBX
    follow-me): the Local pair's blocks are trace 04's ``Local/103@from-internal-00000000;1/;2``
    (Newchannel, LocalBridge, DialBegin, Newstate, DialEnd, Hangup) renamed to 102 and to the
    Originate's ChannelId/OtherChannelId; ``;2`` dials the phone (trace 05's PJSIP/102 blocks,
    with a Uniqueid of its own), and ``;1`` runs the outbound dialplan that trace 05 ran on the
    phone's channel (its MixMonitor, the trunk Dial, the bridge, the hang-up)."""
    c2c, blocks = load_trace(FIXTURES / f"{CLICK}.log"), []
    att = list(load_trace(FIXTURES / "04_attended_transfer.log").blocks)
    one = {"Channel": LOCAL1, "Uniqueid": "crm-c2c-0001", "Linkedid": "crm-c2c-0001",
           "Exten": "102"}
    two = {"Channel": LOCAL2, "Uniqueid": "crm-c2c-0001-b", "Linkedid": "crm-c2c-0001",
           "Exten": "102"}
    dest_one = {"DestChannel": LOCAL1, "DestUniqueid": "crm-c2c-0001", "DestExten": "102",
                "DialString": "Local/102@from-internal"}
    local_new = [b for b in att if b.data.startswith(b"Event: Newchannel")
                 and b"Channel: Local/103" in b.data]
    local_bridge = _find(att, "LocalBridge")
    local_dial = _find(att, "DialBegin", Channel="Local/103@from-internal-00000000;2")
    local_ring = _find(att, "Newstate", Channel="Local/103@from-internal-00000000;1")
    local_answer = _find(att, "DialEnd", Channel="Local/103@from-internal-00000000;2")
    local_up = [b for b in att if b.data.startswith(b"Event: Newstate")
                and b"Channel: Local/103" in b.data and b"ChannelState: 6" in b.data]
    local_hangup = [b for b in att if b.data.startswith(b"Event: Hangup")
                    and b"Channel: Local/103" in b.data]
    phone = {"Uniqueid": PHONE_UID}
    for block in c2c.blocks:
        if block.kind is not BlockKind.RECV or block.data.startswith(b"Asterisk"):
            blocks.append(block)
            continue
        h = parse_message(block.data).headers
        event, t = h.get("Event"), block.t
        if event is None:  # responses (Login, Originate, Logoff)
            blocks.append(block)
            continue
        if event == "VarSet" and h.get("Variable") == "MIXMONITOR_FILENAME":
            blocks.append(changed(block, t, **one))
            continue
        if event not in _C2C_KEEP:
            continue
        on_phone = h.get("Channel") == PHONE
        after_answer = h.get("Context") == "outbound" or event == "Hangup"
        if event == "Newchannel" and on_phone:
            blocks += [changed(local_new[0], t, **one),
                       changed(local_new[1], t, **two),
                       changed(local_bridge, t, LocalOneChannel=LOCAL1,
                               LocalOneUniqueid="crm-c2c-0001", LocalOneLinkedid="crm-c2c-0001",
                               LocalTwoChannel=LOCAL2, LocalTwoUniqueid="crm-c2c-0001-b",
                               LocalTwoLinkedid="crm-c2c-0001", Exten="102"),
                       changed(block, t, **phone)]
        elif event == "DialBegin" and h.get("DestChannel") == PHONE:  # the Originate's own
            blocks += [changed(block, t, **dest_one),
                       changed(local_dial, t, **two, DestChannel=PHONE,
                               DestUniqueid=PHONE_UID, DestLinkedid="crm-c2c-0001",
                               DestExten="s", DestCallerIDNum="102",
                               DestCallerIDName="Manager Two", DialString="102")]
        elif event == "Newstate" and on_phone and h.get("ChannelState") == "5":
            blocks += [changed(block, t, **phone), changed(local_ring, t, **one)]
        elif event == "Newstate" and on_phone and h.get("Context") == "from-internal":
            blocks += [changed(block, t, **phone),
                       changed(local_answer, t, **two, DestChannel=PHONE,
                               DestUniqueid=PHONE_UID, DestLinkedid="crm-c2c-0001"),
                       changed(local_up[0], t, **two), changed(local_up[1], t, **one)]
        elif event == "DialEnd" and h.get("DestChannel") == PHONE:
            blocks.append(changed(block, t, **dest_one))
        elif event == "OriginateResponse":
            blocks.append(changed(block, t, Channel=LOCAL1))
        elif on_phone and after_answer and event == "Hangup":
            blocks += [changed(block, t, **one), changed(local_hangup[1], t, **two),
                       changed(block, t, **phone, Context="from-internal", Exten="s")]
        elif on_phone and after_answer:
            blocks.append(changed(block, t, **one))
        elif on_phone:
            blocks.append(changed(block, t, **phone))
        elif event in ("DialBegin", "DialEnd") and h.get("Uniqueid") == "crm-c2c-0001":
            blocks.append(changed(block, t, **one))
        else:
            blocks.append(block)
    return Trace(c2c.scenario + "_local", c2c.description, c2c.meta, blocks)
