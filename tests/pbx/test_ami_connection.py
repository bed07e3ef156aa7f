"""The asyncio AMI client against the replaying emulator, over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from pbx.ami.connection import AmiConnection
from pbx.ami.emulator import AmiEmulator, response
from pbx.ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionLost,
    AmiError,
    AmiTimeout,
    AmiUnreachable,
)
from pbx.ami.message import Message
from tests.pbx.conftest import load

SECRET = "crm-secret"


class Recorder:
    """Collects what the connection reports through its callbacks."""

    def __init__(self) -> None:
        self.events: list[Message] = []
        self.connected = 0
        self.disconnects: list[str] = []
        self.changed = asyncio.Event()

    def on_event(self, message: Message) -> None:
        self.events.append(message)
        self.changed.set()

    async def on_connected(self) -> None:
        self.connected += 1
        self.changed.set()

    def on_disconnected(self, reason: str) -> None:
        self.disconnects.append(reason)
        self.changed.set()

    def named(self, name: str) -> list[Message]:
        return [m for m in self.events if m.event == name]

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def make_connection(
    port: int, recorder: Recorder | None = None, secret: str = SECRET, **kwargs: float
) -> AmiConnection:
    recorder = recorder or Recorder()
    options: dict = {"reconnect_initial": 0.02, "reconnect_max": 0.2, "action_timeout": 5.0}
    options.update(kwargs)
    return AmiConnection(
        "127.0.0.1",
        port,
        "crm",
        secret,
        on_event=recorder.on_event,
        on_connected=recorder.on_connected,
        on_disconnected=recorder.on_disconnected,
        **options,
    )


@pytest.fixture
async def basics() -> AsyncIterator[AmiEmulator]:
    async with AmiEmulator(load("00_basics"), action_wait=0.05) as emulator:
        yield emulator


def ami_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("ami-") and not t.done()]


async def test_login_events_and_close(basics: AmiEmulator) -> None:
    recorder = Recorder()
    connection = make_connection(basics.port, recorder)
    await connection.start()
    assert connection.connected
    assert connection.banner is not None and connection.banner.version == "11.0.0"
    assert recorder.connected == 1
    await recorder.until(lambda: bool(recorder.named("FullyBooted")))
    await connection.close()
    assert not connection.connected
    assert [t for t in ami_tasks() if "emulator" not in t.get_name()] == []
    assert basics.actions_named("Logoff")
    assert recorder.disconnects == []  # our own close is not a loss


async def test_wrong_secret_raises_auth_error_once() -> None:
    async with AmiEmulator(load("00_basics_badlogin"), auth_failure_delay=0) as emulator:
        connection = make_connection(emulator.port, secret="wrong-secret")
        with pytest.raises(AmiAuthError, match="Authentication failed"):
            await connection.start()
        await asyncio.sleep(0.3)  # no retry loop behind our back
        assert emulator.connections == 1
        assert len(emulator.actions_named("Login")) == 1
        assert not connection.connected
        await connection.close()


async def test_unreachable_port_names_host_and_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = make_connection(port)
    with pytest.raises(AmiUnreachable, match=f"127.0.0.1:{port}"):
        await connection.start()
    await connection.close()


async def test_action_timeout_and_the_connection_stays_usable() -> None:
    trace = load("08b_callerid_anonymous")
    async with AmiEmulator(trace, responders={"Getvar": lambda m: []}) as emulator:
        connection = make_connection(emulator.port)
        await connection.start()
        with pytest.raises(AmiTimeout, match="Getvar"):
            await connection.action("Getvar", [("Variable", "X")], timeout=0.2)
        pong = await connection.action("Ping")
        assert pong["Ping"] == "Pong"
        with pytest.raises(AmiActionError) as caught:
            await connection.action("NoSuchAction")
        assert caught.value.response.response == "Error"
        await connection.close()


async def test_list_actions(basics: AmiEmulator) -> None:
    connection = make_connection(basics.port)
    await connection.start()
    response, events = await connection.list_action("QueueStatus", timeout=5)
    assert response["EventList"] == "start"
    assert [e.event for e in events] == ["QueueParams", "QueueMember"]
    assert all(e.action_id == response.action_id for e in events)
    response, events = await connection.list_action("CoreShowChannels", timeout=5)
    assert events == []
    await connection.close()


async def test_fax_sessions_list_with_capital_start() -> None:
    async with AmiEmulator(load("09_fax_send"), action_wait=0.05) as emulator:
        connection = make_connection(emulator.port)
        await connection.start()
        response, events = await connection.list_action("FAXSessions", timeout=5)
        assert response["EventList"] == "Start"
        assert [e.event for e in events] == ["FAXSessionsEntry", "FAXSessionsEntry"]
        await connection.close()


ORIGINATE = [
    ("Channel", "PJSIP/102"),
    ("Context", "from-internal"),
    ("Exten", "89031234567"),
    ("Priority", "1"),
    ("Timeout", "30000"),
]


@pytest.mark.parametrize(
    ("name", "outcome", "reason"),
    [("05_click_to_call", "Success", "4"), ("05c_click_to_call_no_answer", "Failure", "3")],
)
async def test_originate_queued_then_result(name: str, outcome: str, reason: str) -> None:
    recorder = Recorder()
    async with AmiEmulator(load(name)) as emulator:
        connection = make_connection(emulator.port, recorder)
        await connection.start()
        call = await connection.originate(ORIGINATE, timeout=5)
        assert call.queued["Message"] == "Originate successfully queued"
        result = await asyncio.wait_for(call.result, 5)
        assert (result.event, result.response, result["Reason"]) == (
            "OriginateResponse",
            outcome,
            reason,
        )
        assert result.action_id == call.action_id
        # handlers see it too, once (it used to be delivered as event and as follow-up)
        assert recorder.named("OriginateResponse") == [result]
        (sent,) = emulator.actions_named("Originate")
        assert sent["Async"] == "true"
        await connection.close()


async def test_ping_timeout_forces_a_reconnect() -> None:
    recorder = Recorder()
    trace = load("08b_callerid_anonymous")
    async with AmiEmulator(trace, responders={"Ping": lambda m: []}) as emulator:
        connection = make_connection(emulator.port, recorder, ping_interval=0.1, ping_timeout=0.15)
        await connection.start()
        await recorder.until(lambda: recorder.connected >= 2)
        assert recorder.disconnects[0] == "ping timeout"
        assert emulator.logins >= 2
        await connection.close()


async def test_recorded_reconnect_mid_call_and_resync() -> None:
    recorder = Recorder()
    resync: list[list[Message]] = []

    async def on_connected() -> None:
        await Recorder.on_connected(recorder)
        if recorder.connected > 1:
            _, channels = await connection.list_action("CoreShowChannels")
            _, status = await connection.list_action("Status")
            resync.append(channels)
            resync.append(status)

    async with AmiEmulator(load("12_ami_reconnect_midcall"), action_wait=2.0) as emulator:
        connection = make_connection(emulator.port, recorder)
        connection.on_connected = on_connected
        await connection.start()
        await asyncio.wait_for(emulator.finished.wait(), 10)
        await recorder.until(lambda: len(recorder.named("Hangup")) == 2)
        assert recorder.connected == 2
        assert len(recorder.disconnects) == 1
        assert len(recorder.named("FullyBooted")) == 2
        channels, status = resync
        assert {c["Channel"][:10] for c in channels} == {"PJSIP/trun", "PJSIP/101-"}
        assert len(status) == 2
        assert emulator.connections == 2
        await connection.close()


async def test_dropped_socket_mid_call_reconnects_and_events_continue() -> None:
    recorder = Recorder()
    trace = load("01_inbound_answered")
    async with AmiEmulator(trace, action_wait=0.05) as emulator:
        at = next(i for i, b in enumerate(trace.blocks) if b"Event: AgentConnect" in b.data)
        emulator.kill_after_block(at)
        connection = make_connection(emulator.port, recorder)
        await connection.start()
        await recorder.until(lambda: len(recorder.named("Hangup")) == 2)
        assert recorder.connected == 2
        assert len(recorder.named("AgentConnect")) == 1
        assert len(recorder.named("AgentComplete")) == 1
        await connection.close()


async def test_originate_in_flight_fails_and_is_never_resent() -> None:
    recorder = Recorder()
    async with AmiEmulator(load("05_click_to_call")) as emulator:
        emulator.drop_on_action("Originate")
        connection = make_connection(emulator.port, recorder)
        await connection.start()
        with pytest.raises(AmiConnectionLost, match="not re-sent"):
            await connection.originate(ORIGINATE, timeout=5)
        await recorder.until(lambda: recorder.connected == 2)
        pong = await connection.action("Ping")  # the new connection works
        assert pong["Ping"] == "Pong"
        await asyncio.sleep(0.2)
        assert len(emulator.actions_named("Originate")) == 1
        assert len(emulator.actions_named("Login")) == 2
        await connection.close()


async def test_actions_while_disconnected_fail_fast() -> None:
    recorder = Recorder()
    async with AmiEmulator(load("08b_callerid_anonymous")) as emulator:
        connection = make_connection(emulator.port, recorder, reconnect_initial=1.0)
        await connection.start()
        await emulator.drop_client()
        await recorder.until(lambda: len(recorder.disconnects) == 1)
        with pytest.raises(AmiConnectionLost):
            await connection.action("Redirect", [("Channel", "PJSIP/101-00000001")])
        assert not emulator.actions_named("Redirect")
        await connection.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"total garbage without a colon\r\n\r\n",
        b"Event: Broken\r\nNo-Blank-Line: here\r\nEvent: Next\r\n\r\n",
        b"Event: BadUtf8\r\nName: \xff\xfe\xd0\r\n\r\n",
        b"Event: Huge\r\nData: " + b"x" * (10 * 1024 * 1024) + b"\r\n\r\n",
        b"\x00\x01\x02\x03" * 1000 + b"\r\n\r\n",
    ],
    ids=["no-colon", "missing-blank-line", "invalid-utf8", "10MB-header", "binary"],
)
async def test_malformed_frames_do_not_kill_the_connection(garbage: bytes) -> None:
    recorder = Recorder()
    async with AmiEmulator(load("08b_callerid_anonymous"), action_wait=0.05) as emulator:
        connection = make_connection(emulator.port, recorder)
        await connection.start()
        await emulator.inject(garbage + b"Event: AfterGarbage\r\n\r\n")
        await recorder.until(lambda: bool(recorder.named("AfterGarbage")))
        pong = await connection.action("Ping")
        assert pong["Ping"] == "Pong"
        assert connection.connected
        if garbage.startswith(b"Event: BadUtf8"):
            assert recorder.named("BadUtf8")[0]["Name"] == "\ufffd\ufffd\ufffd"
        if garbage.startswith(b"Event: Huge"):
            assert not recorder.named("Huge")
        await connection.close()


async def test_secret_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "s3cr3t-never-logged"
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    trace = load("01_inbound_answered")
    async with AmiEmulator(trace, secret=secret, auth_failure_delay=0, action_wait=0.05) as emu:
        bad = make_connection(emu.port, secret=secret + "-wrong")
        with pytest.raises(AmiAuthError) as caught:
            await bad.start()
        assert secret not in str(caught.value)
        connection = make_connection(emu.port, recorder, secret=secret)
        await connection.start()
        assert secret not in repr(connection)
        await emu.drop_client()
        await recorder.until(lambda: recorder.connected == 2)
        await connection.action("Ping")
        await connection.close()
    assert "AMI -> Login" in caplog.text  # actions are logged at DEBUG, without headers
    assert secret not in caplog.text


def _snapshot_answer(*, complete: bool) -> Callable[[Message], list[bytes]]:
    def answer(action: Message) -> list[bytes]:
        aid = action.action_id
        parts = [
            response(aid, ("Response", "Success"), ("EventList", "start")),
            response(aid, ("Event", "CoreShowChannel"), ("Channel", "PJSIP/101-1"),
                     ("Uniqueid", "1")),
            response(None, ("Event", "Hangup"), ("Uniqueid", "1")),  # inside the list
        ]
        if complete:
            parts += [
                response(aid, ("Event", "CoreShowChannelsComplete"), ("EventList", "Complete")),
                response(None, ("Event", "Newchannel"), ("Uniqueid", "2")),  # after it
            ]
        return [b"".join(parts)]  # one write: one TCP read for the client

    return answer


async def test_snapshot_list_is_applied_at_its_place_in_the_stream() -> None:
    recorder = Recorder()
    seen_by_apply: list[tuple[list[str], list[str | None]]] = []

    def apply(_response: Message, events: list[Message]) -> None:
        seen_by_apply.append(([e["Uniqueid"] for e in events],
                              [e.event for e in recorder.events]))

    answers = {"CoreShowChannels": _snapshot_answer(complete=True)}
    async with AmiEmulator([], responders=answers, auth_failure_delay=0) as emulator:
        connection = make_connection(emulator.port, recorder)
        await connection.start()
        before = len(recorder.events)
        _, events = await connection.list_action("CoreShowChannels", apply=apply)
        assert [e.event for e in events] == ["CoreShowChannel"]
        # when the snapshot was applied, neither the Hangup inside nor the Newchannel after it
        # had been delivered; both come after it, in stream order
        assert seen_by_apply == [(["1"], [e.event for e in recorder.events[:before]])]
        assert [e.event for e in recorder.events[before:]] == ["Hangup", "Newchannel"]
        await connection.close()


async def test_events_held_by_a_snapshot_that_times_out_are_delivered() -> None:
    recorder = Recorder()
    applied: list[object] = []
    answers = {"CoreShowChannels": _snapshot_answer(complete=False)}
    async with AmiEmulator([], responders=answers, auth_failure_delay=0) as emulator:
        connection = make_connection(emulator.port, recorder)
        await connection.start()
        with pytest.raises(AmiTimeout):
            await connection.list_action("CoreShowChannels", timeout=0.2,
                                         apply=lambda *a: applied.append(a))
        assert applied == []
        assert [e.event for e in recorder.named("Hangup")] == ["Hangup"]
        await connection.close()


async def test_a_second_snapshot_list_while_one_is_open_is_refused() -> None:
    recorder = Recorder()
    answers = {"CoreShowChannels": _snapshot_answer(complete=False)}
    async with AmiEmulator([], responders=answers, auth_failure_delay=0) as emulator:
        connection = make_connection(emulator.port, recorder)
        await connection.start()
        first = asyncio.create_task(
            connection.list_action("CoreShowChannels", timeout=0.5, apply=lambda *a: None))
        await emulator.wait_for_action("CoreShowChannels")
        with pytest.raises(ValueError, match="is still open"):
            await connection.list_action("Status", apply=lambda *a: None)
        assert emulator.actions_named("Status") == []  # never sent
        with pytest.raises(AmiTimeout):
            await first
        await connection.close()


async def test_a_snapshot_list_over_the_held_bytes_budget_is_abandoned() -> None:
    recorder = Recorder()
    answers = {"CoreShowChannels": _snapshot_answer(complete=True)}
    async with AmiEmulator([], responders=answers, auth_failure_delay=0) as emulator:
        connection = make_connection(emulator.port, recorder)
        connection._tracker.max_held_bytes = 20  # the Hangup inside the list is 30 bytes
        await connection.start()
        with pytest.raises(AmiError, match="abandoned"):
            await connection.list_action("CoreShowChannels", apply=lambda *a: None)
        await recorder.until(lambda: bool(recorder.named("Newchannel")))
        assert [e.event for e in recorder.events if e.event in ("Hangup", "Newchannel")] == [
            "Hangup", "Newchannel"]
        await connection.close()
