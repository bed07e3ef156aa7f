"""The replaying AMI server and the demo PBX built on it, over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time

import pytest

from pbx.ami.codec import encode_action, parse_message
from pbx.ami.demo import Caller, CallTemplate, DemoPbx, demo_segments
from pbx.ami.emulator import AmiEmulator, action_id_of, response, rewrite_action_id
from pbx.ami.message import Message
from pbx.ami.protocol import AmiProtocol, EventReceived, ResponseReceived
from pbx.ami.trace import BlockKind, Trace
from tests.pbx.conftest import ami_fixtures, load, trace_names

TIMEOUT = 10.0


async def read_until(reader: asyncio.StreamReader, buffer: bytearray, size: int) -> None:
    while len(buffer) < size:
        data = await reader.read(65536)
        if not data:
            return
        buffer += data


async def replay_as_client(trace: Trace, port: int) -> list[tuple[bytes, bytes]]:
    """Act as the recorded client: send each recorded action (with a new ActionID) once the
    bytes that preceded it in the recording have arrived. Returns (received, expected) bytes
    per connection, expected being the recording with ActionIDs rewritten to ours."""
    numbers = itertools.count(100)
    ours: dict[str, str] = {}
    results = []
    for blocks in trace.sessions():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        received = bytearray()
        expected = bytearray()
        try:
            for block in blocks:
                if block.kind is BlockKind.SEND:
                    recorded = action_id_of(block.data)
                    assert recorded is not None
                    ours[recorded] = f"test-{next(numbers)}"
                    await read_until(reader, received, len(expected))
                    with contextlib.suppress(ConnectionError):
                        writer.write(rewrite_action_id(block.data, recorded, ours[recorded]))
                        await writer.drain()
                else:
                    recorded = action_id_of(block.data)
                    data = block.data
                    if recorded in ours:
                        data = rewrite_action_id(data, recorded, ours[recorded])
                    expected += data
            await read_until(reader, received, len(expected) + 1)  # to EOF: the server closes
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        results.append((bytes(received), bytes(expected)))
    return results


@pytest.mark.parametrize("name", trace_names())
async def test_every_trace_replays_byte_for_byte(name: str) -> None:
    trace = load(name)
    async with AmiEmulator(trace, auth_failure_delay=0, action_wait=5.0) as emulator:
        results = await asyncio.wait_for(replay_as_client(trace, emulator.port), TIMEOUT)
        await asyncio.wait_for(emulator.finished.wait(), TIMEOUT)
    assert len(results) == len(trace.sessions())
    for received, expected in results:
        assert b"ActionID: test-" in expected or name == "00_basics_badlogin"
        assert received == expected
    sent = [parse_message(b.data) for b in trace.blocks if b.kind is BlockKind.SEND]
    if name == "00_basics_badlogin":
        sent = sent[:1]  # the socket is closed before the recorded Logoff
    assert [m["Action"] for m in emulator.received_actions[: len(sent)]] == [
        m["Action"] for m in sent
    ]


async def test_received_actions_keep_headers_for_assertions() -> None:
    trace = load("03_blind_transfer")
    async with AmiEmulator(trace) as emulator:
        await asyncio.wait_for(replay_as_client(trace, emulator.port), TIMEOUT)
    (transfer,) = emulator.actions_named("BlindTransfer")
    recorded = next(
        parse_message(b.data)
        for b in trace.blocks
        if b.kind is BlockKind.SEND and b"BlindTransfer" in b.data
    )
    assert transfer["Channel"] == recorded["Channel"]
    assert transfer["Channel"].startswith("PJSIP/101-")


class RawClient:
    """A minimal AMI client for poking at the server."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = AmiProtocol()
        self.pending: list[Message] = []
        self.numbers = itertools.count(1)

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def next_message(self) -> Message | None:
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
            if not data:
                return None
            self.protocol.receive_data(data)
            self.pending += [
                i.message
                for i in self.protocol.messages_received()
                if isinstance(i, EventReceived | ResponseReceived)
            ]
        return self.pending.pop(0)

    async def call(self, name: str, **headers: str) -> Message:
        action_id = f"raw-{next(self.numbers)}"
        self.writer.write(encode_action(name, action_id, headers.items()))
        while True:
            message = await self.next_message()
            assert message is not None, f"closed before the answer to {name}"
            if message.response and message.action_id == action_id and not message.event:
                return message

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def test_synthetic_answers_and_responders() -> None:
    async def queue_summary(message: Message) -> list[bytes]:
        await asyncio.sleep(0)
        return [response(message.action_id, ("Response", "Success"), ("Message", "custom"))]

    trace = load("08b_callerid_anonymous")
    async with AmiEmulator(
        trace, action_wait=0.05, responders={"QueueSummary": queue_summary}
    ) as emulator:
        client = await RawClient.connect(emulator.port)
        denied = await client.call("Ping")
        assert denied.response == "Error" and denied["Message"] == "Permission denied"
        login = await client.call("Login", Username="crm", Secret="crm-secret", Events="on")
        assert login["Message"] == "Authentication accepted"
        pong = await client.call("Ping")
        assert pong["Ping"] == "Pong"
        assert abs(float(pong["Timestamp"]) - time.time()) < 60
        custom = await client.call("QueueSummary")
        assert custom["Message"] == "custom"
        unknown = await client.call("NoSuchAction")
        assert unknown.response == "Error"
        assert unknown["Message"].startswith("Invalid/unknown command: NoSuchAction.")
        goodbye = await client.call("Logoff")
        assert goodbye.response == "Goodbye"
        while await client.next_message() is not None:
            pass  # the server closes after Goodbye
        await client.close()
        assert [m["Action"] for m in emulator.received_actions] == [
            "Ping", "Login", "Ping", "QueueSummary", "NoSuchAction", "Logoff",
        ]  # fmt: skip


async def test_getvar_answers_from_the_test_the_stream_or_asterisk_defaults() -> None:
    trunk = "PJSIP/trunk-0000001c"
    variables = {("PJSIP/101-0000001d", "CALLERID(pres)"): "prohib_passed_screen"}
    async with AmiEmulator(load("08b_callerid_anonymous"), action_wait=0.05,
                           variables=variables) as emulator:
        client = await RawClient.connect(emulator.port)
        await client.call("Login", Username="crm", Secret="crm-secret", Events="on")
        await asyncio.wait_for(emulator.finished.wait(), TIMEOUT)

        async def getvar(channel: str, variable: str) -> tuple[str | None, str | None]:
            answer = await client.call("Getvar", Channel=channel, Variable=variable)
            return answer.response, answer.get("Value") or answer.get("Message")

        assert await getvar(trunk, "CALLERID(pres)") == ("Success", "allowed_not_screened")
        assert await getvar(trunk, "MIXMONITOR_FILENAME") == (
            "Success", "/var/spool/asterisk/monitor/q-20261122-230456-1795388696.33.wav")
        assert await getvar("PJSIP/101-0000001d", "CALLERID(pres)") == (
            "Success", "prohib_passed_screen")
        assert await getvar("PJSIP/999-00000099", "CALLERID(pres)") == (
            "Error", "No such channel")
        await client.close()


async def test_wrong_secret_is_refused_after_the_delay_then_closed() -> None:
    async with AmiEmulator(load("01_inbound_answered"), auth_failure_delay=0.3) as emulator:
        client = await RawClient.connect(emulator.port)
        started = time.monotonic()
        answer = await client.call("Login", Username="crm", Secret="nope")
        assert time.monotonic() - started >= 0.25
        assert (answer.response, answer["Message"]) == ("Error", "Authentication failed")
        assert await client.next_message() is None
        await client.close()
        assert emulator.logins == 0


async def test_speed_and_gap_compression() -> None:
    trace = load("05c_click_to_call_no_answer")  # 11 s recorded
    async with AmiEmulator(trace, speed=1.0, max_gap=0.02) as emulator:
        started = time.monotonic()
        await asyncio.wait_for(replay_as_client(trace, emulator.port), TIMEOUT)
        assert time.monotonic() - started < 3.0
    trace = load("00_basics")  # Logoff recorded at t=3.03 s
    async with AmiEmulator(trace, speed=20.0) as emulator:
        started = time.monotonic()
        await asyncio.wait_for(replay_as_client(trace, emulator.port), TIMEOUT)
        assert 0.12 <= time.monotonic() - started < 3.0


async def login(client: RawClient) -> None:
    answer = await client.call("Login", Username="crm", Secret="crm-secret")
    assert answer.response == "Success"


async def test_kill_after_block_then_the_stream_resumes_on_a_new_login() -> None:
    trace = load("01_inbound_answered")
    kill_at = next(i for i, b in enumerate(trace.blocks) if b"Event: AgentConnect" in b.data)
    after = trace.blocks[kill_at + 1].data
    async with AmiEmulator(trace, action_wait=0.05) as emulator:
        emulator.kill_after_block(kill_at)
        first = await RawClient.connect(emulator.port)
        await login(first)
        seen = []
        while (message := await first.next_message()) is not None:
            seen.append(message)
        assert seen[-1].event == "AgentConnect"
        await first.close()
        second = await RawClient.connect(emulator.port)
        await login(second)
        message = await second.next_message()
        assert message is not None and message.event == "FullyBooted"  # synthetic login
        assert await second.next_message() == parse_message(after)
        await emulator.inject(b"raw garbage\r\n\r\nEvent: Injected\r\n\r\n")
        while (message := await second.next_message()) is not None:
            if message.event == "Injected":
                break
        assert message is not None
        await second.close()
        assert emulator.connections == 2


async def test_drop_on_action_never_answers_it() -> None:
    async with AmiEmulator(load("05_click_to_call")) as emulator:
        emulator.drop_on_action("Originate")
        client = await RawClient.connect(emulator.port)
        await login(client)
        client.writer.write(encode_action("Originate", "x-1", [("Channel", "PJSIP/102")]))
        while (message := await client.next_message()) is not None:
            assert message.action_id != "x-1"
        await client.close()
        assert len(emulator.actions_named("Originate")) == 1


# -- demo ----------------------------------------------------------------------------------------

CALLERS = [Caller("+79990001122", 'Пётр "Первый" Иванов'), Caller("84950000001", "Second")]


def take_calls(template: CallTemplate, count: int) -> list[list[Message]]:
    segments = demo_segments([template], CALLERS, rng=random.Random(1))
    calls = []
    for segment in itertools.islice(segments, count):
        for block in segment.blocks:
            assert block.data.endswith(b"\r\n\r\n")
            assert b"\r\n\r\n" not in block.data[:-4]
            assert b"\n" not in block.data.replace(b"\r\n", b"")
        calls.append([parse_message(b.data) for b in segment.blocks])
    return calls


def values(messages: list[Message], *keys: str) -> set[str]:
    return {m[k] for m in messages for k in keys if k in m}


def test_demo_rewrites_caller_ids_and_channels_per_iteration() -> None:
    template = CallTemplate.from_trace(load("08a_callerid_cyrillic"))
    first, second = take_calls(template, 2)
    for call, caller in ((first, CALLERS[0]), (second, CALLERS[1])):
        names = values(call, "CallerIDName")
        assert "89161234567" not in values(call, "CallerIDNum")
        assert caller.number in values(call, "CallerIDNum")
        assert not [n for n in names if "Ромашка" in n]
        assert not [m for m in call if m.event in ("FullyBooted", "SuccessfulAuth")]
        assert not [m for m in call if m.response]
    assert 'Пётр \\\\\\"Первый\\\\\\" Иванов' in values(first, "CallerIDName")
    assert "Second" in values(second, "CallerIDName")
    ids = ("Uniqueid", "Linkedid")
    assert values(first, *ids).isdisjoint(values(second, *ids))
    assert values(first, "Channel").isdisjoint(values(second, "Channel"))
    assert all(c.startswith(("PJSIP/trunk-", "PJSIP/101-")) for c in values(second, "Channel"))
    now = time.time()
    assert all(abs(float(u) - now) < 60 for u in values(first, *ids))
    # Linkedid still names the first leg of the call
    (linked,) = values(first, "Linkedid")
    assert linked in values(first, "Uniqueid")


def test_demo_keeps_anonymous_and_handles_two_callers() -> None:
    anonymous = CallTemplate.from_trace(load("08b_callerid_anonymous"))
    assert anonymous.callers == ()
    (call,) = take_calls(anonymous, 1)
    assert "anonymous" in values(call, "CallerIDNum")
    overlapping = CallTemplate.from_trace(load("06_overlapping_inbound"))
    assert [c.number for c in overlapping.callers] == ["+79161111111", "89162222222"]
    (call,) = take_calls(overlapping, 1)
    numbers = values(call, "CallerIDNum")
    assert {"+79990001122", "84950000001"} <= numbers
    assert not {"+79161111111", "89162222222"} & numbers


def test_demo_callers_are_validated() -> None:
    with pytest.raises(ValueError):
        Caller("123\r\nEvent: Fake", "x")
    with pytest.raises(ValueError):
        Caller("+7999", "Name\r\nEvent: Fake")


async def test_demo_pbx_serves_fresh_calls_over_tcp() -> None:
    pbx = DemoPbx(
        [("+79990001122", "Анна"), ("84950000001", "Bob")],
        fixtures=ami_fixtures(),
        scenarios=["01_inbound_answered", "15_ringgroup_noanswer_then_voicemail_like"],
        call_seconds=0.3,
        interval=(0.3, 0.4),
        first_delay=0.0,
    )
    async with pbx:
        client = await RawClient.connect(pbx.port)
        await login(client)
        calls: dict[str, str] = {}
        while len(calls) < 3:
            message = await client.next_message()
            assert message is not None
            if message.event == "Newchannel" and message["Uniqueid"] == message["Linkedid"]:
                calls[message["Linkedid"]] = message["CallerIDNum"]
        await client.close()
    assert list(calls.values()) == ["+79990001122", "84950000001", "+79990001122"]
