"""Trunk administration against the AMI emulator replaying 14_pjsip_trunk_admin: the list,
a trunk added and registered, a 403 reported in words with the previous configuration
restored, and a change Asterisk refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from callcenter.config import PbxLineConfig
from pbx.ami.emulator import AmiEmulator, response
from pbx.ami.message import Message
from pbx.asterisk_line import AsteriskLine
from pbx.pjsip_admin import (
    TrunkChangeFailed,
    TrunkSpec,
    build_sections,
    parse_getconfig,
    update_headers,
)
from tests.lines.trunk_trace import trunk_admin_segments

PASSWORD = "prov1der-S3cret"


async def _line(emulator: AmiEmulator) -> AsteriskLine:
    line = AsteriskLine(PbxLineConfig(name="office", port=emulator.port, secret="crm-secret",
                                      withheld_getvar=False), lambda _: None)
    await line.start()
    await emulator.wait_for_client()
    await line.synced.wait()
    return line


@pytest.fixture
async def replay(request: pytest.FixtureRequest) -> AsyncIterator[tuple[AmiEmulator,
                                                                         AsteriskLine]]:
    kwargs = getattr(request, "param", {})
    async with AmiEmulator(trunk_admin_segments(**kwargs), speed=0, action_wait=10) as emu:
        line = await _line(emu)
        try:
            yield emu, line
        finally:
            await line.stop()


def _updates(emulator: AmiEmulator) -> list[list[tuple[str, str]]]:
    out = []
    for action in emulator.actions_named("UpdateConfig"):
        out.append([(k, v) for k, v in action.headers.items()
                    if k.startswith(("Action-", "Cat-", "Var-", "Value-", "Options-", "Reload"))])
    return out


async def test_list_shows_endpoints_registrations_and_no_contacts(replay) -> None:
    _, line = replay
    overview = await line.trunks()
    names = [e["name"] for e in overview["endpoints"]]
    assert names == ["101", "102", "103", "faxpeer", "faxtrunk", "trunk"]
    trunk = overview["endpoints"][-1]
    assert trunk["trunk"] and trunk["contacts"] == ["sip:127.0.0.1:5191"]
    assert trunk["state"] == "Not in use"
    assert not overview["endpoints"][0]["trunk"]
    assert overview["registrations"] == [] and overview["contacts"] == []  # "No Contacts found"


@pytest.mark.parametrize("replay", [{"cut_after": "14-12"}], indirect=True)
async def test_a_trunk_is_added_and_its_registration_shown(replay) -> None:
    emulator, line = replay
    await line.trunks()
    result = await line.save_trunk(TrunkSpec("crm-trunk2", "127.0.0.1", 5195, "74951110077",
                                             PASSWORD))
    assert result["ok"] and result["registration"] == "Registered"
    assert "sip:74951110077@127.0.0.1:5195 registered" in result["message"]
    (update,) = _updates(emulator)
    assert ("Reload", "no") in update
    cats = [v for k, v in update if k.startswith("Action-")]
    assert cats.count("NewCat") == 5 and "DelCat" not in cats  # nothing existed before
    (reload,) = emulator.actions_named("ModuleLoad")
    assert (reload["LoadType"], reload["Module"]) == ("reload", "res_pjsip.so")
    assert emulator.actions_named("Command") == []
    # the live state followed the Registry events (the 403 of the other one too)
    live = line.trunks_live.to_json()
    assert live["registrations"]["sip:74951110077@127.0.0.1:5195"]["status"] == "Registered"
    assert live["registrations"]["sip:74951110078@127.0.0.1:5196"]["status"] == "Rejected"
    assert live["peers"]["crm-trunk2"]["status"] == "Reachable"


async def test_a_403_is_reported_and_the_previous_configuration_restored(replay) -> None:
    emulator, line = replay
    await line.trunks()
    with pytest.raises(TrunkChangeFailed) as failed:
        await line.save_trunk(TrunkSpec("crm-trunk3", "127.0.0.1", 5196, "74951110078",
                                        PASSWORD))
    text = failed.value.message
    assert failed.value.restored
    assert "rejected the registration of sip:74951110078@127.0.0.1:5196" in text
    assert "403" in text and "the previous configuration was restored" in text
    change, restore = _updates(emulator)
    written = [v for k, v in change if k.startswith("Cat-")]
    assert ("Reload", "res_pjsip.so") in restore
    # the backup (the first GetConfig) had none of the sections: all are deleted again
    assert [v for k, v in restore if k.startswith("Action-")] == ["DelCat"] * 5
    assert {v for k, v in restore if k.startswith("Cat-")} == set(written)
    assert not any(PASSWORD in v for k, v in restore)
    # and the PBX says so afterwards: no registration left
    overview = await line.trunks()
    assert overview["registrations"] == []


@pytest.mark.parametrize("replay", [{"replace": {"14-8": (
    b"Response: Error\r\nActionID: 14-8\r\n"
    b"Message: Update did not complete successfully\r\n\r\n")}}], indirect=True)
async def test_a_change_asterisk_refuses_is_reported_and_nothing_else_sent(replay) -> None:
    emulator, line = replay
    await line.trunks()
    with pytest.raises(TrunkChangeFailed) as failed:
        await line.save_trunk(TrunkSpec("crm-trunk2", "127.0.0.1", 5195, "74951110077"))
    assert "Asterisk refused the change of pjsip.conf: Update did not complete" in (
        failed.value.message)
    assert "nothing was changed" in failed.value.message
    assert len(_updates(emulator)) == 1 and emulator.actions_named("ModuleLoad") == []


async def test_a_failed_reload_is_reported_and_the_previous_configuration_restored() -> None:
    # manager.c answers a reload that failed with Error (a Command would say Success). The
    # recording ends there: the restoring UpdateConfig is answered as Asterisk acks one.
    failed_reload = (b"Response: Error\r\nActionID: 14-11\r\n"
                     b"Message: An unknown error occurred\r\n\r\n")
    segments = trunk_admin_segments(cut_after="14-11", replace={"14-11": failed_reload})
    acked = {"updateconfig": lambda m: [response(m.action_id, ("Response", "Success"))]}
    async with AmiEmulator(segments, speed=0, action_wait=10, responders=acked) as emulator:
        line = await _line(emulator)
        try:
            await line.trunks()
            with pytest.raises(TrunkChangeFailed) as failed:
                await line.save_trunk(TrunkSpec("crm-trunk2", "127.0.0.1", 5195,
                                                "74951110077", PASSWORD))
        finally:
            await line.stop()
    text = failed.value.message
    assert "could not reload res_pjsip: An unknown error occurred" in text
    assert failed.value.restored and "the previous configuration was restored" in text
    _, restore = _updates(emulator)
    assert [v for k, v in restore if k.startswith("Action-")] == ["DelCat"] * 5


def test_getconfig_keeps_sections_of_the_same_name() -> None:
    msg = Message.from_pairs([
        ("Response", "Success"), ("Category-000000", "trunk"), ("Templates-000000", "ep-common"),
        ("Line-000000-000000", "type=endpoint"), ("Line-000000-000001", "context=from-trunk"),
        ("Category-000001", "trunk"), ("Line-000001-000000", "type=aor"),
        ("Line-000001-000001", "contact=sip:127.0.0.1:5191")])
    endpoint, aor = parse_getconfig(msg)
    assert (endpoint.name, endpoint.type, endpoint.templates) == ("trunk", "endpoint",
                                                                  ("ep-common",))
    assert (aor.name, aor.type, aor.get("contact")) == ("trunk", "aor", "sip:127.0.0.1:5191")


def test_an_edit_rewrites_the_trunk_sections_and_keeps_the_stored_password() -> None:
    spec = TrunkSpec("t2", "sip.example.net", 5060, "777", template="ep-common")
    sections = build_sections(spec, keep_password="old-pass")
    auth = next(s for s in sections if s.name == "t2-auth")
    assert auth.get("password") == "old-pass"
    headers = update_headers(["t2", "t2-reg"], sections[:1])
    assert headers[:4] == [("Action-000000", "DelCat"), ("Cat-000000", "t2"),
                           ("Action-000001", "DelCat"), ("Cat-000001", "t2-reg")]
    assert ("Options-000002", "inherit=ep-common") in headers


async def test_a_registration_nobody_answers_is_a_timeout_and_restored() -> None:
    from pbx.ami.trace import load_trace
    from tests.conftest import FIXTURES
    from tests.lines.recorded import answer_of, replaying

    trace = load_trace(FIXTURES / "14_pjsip_trunk_admin.log")
    # The recording up to the reload's answer, without the Registry events that followed;
    # later questions get the PBX's recorded answers (no registration yet; the restore).
    segments = trunk_admin_segments(cut_after="14-11")
    again = {"pjsipshowregistrationsoutbound": replaying("14-3", answer_of(trace, "14-3")),
             "updateconfig": replaying("14-17", answer_of(trace, "14-17"))}
    async with AmiEmulator(segments, speed=0, action_wait=10, responders=again) as emulator:
        line = await _line(emulator)
        line.trunk_admin.registration_wait = 0.3
        try:
            await line.trunks()
            with pytest.raises(TrunkChangeFailed) as failed:
                await line.save_trunk(TrunkSpec("crm-trunk2", "127.0.0.1", 5195,
                                                "74951110077"))
        finally:
            await line.stop()
    assert "no answer to the registration of sip:74951110077@127.0.0.1:5195" in (
        failed.value.message)
    assert "within 0.3 s" in failed.value.message and failed.value.restored
    _change, restore = _updates(emulator)
    assert [v for k, v in restore if k.startswith("Action-")] == ["DelCat"] * 4


async def test_a_restore_on_a_line_gone_meanwhile_is_a_failed_restore_not_a_crash() -> None:
    from callcenter.errors import LineUnavailable
    from pbx.pjsip_admin import LiveState, TrunkAdmin

    def gone() -> Any:
        raise LineUnavailable("PBX line office is not connected: stopped")

    admin = TrunkAdmin(gone, LiveState())
    assert await admin._restore([], ["crm-trunk2"], None) is False


async def test_a_line_stops_only_once_its_trunk_change_is_over() -> None:
    line = AsteriskLine(PbxLineConfig(name="office"), lambda _: None)
    order: list[str] = []

    class Connection:
        async def close(self) -> None:
            order.append("closed")

    line._connection = Connection()  # type: ignore[assignment]
    async with line.trunk_admin.busy:
        stopping = asyncio.create_task(line.stop())
        for _ in range(5):  # let the stop run as far as it can
            await asyncio.sleep(0)
        order.append("trunk change over")
    await stopping
    assert order == ["trunk change over", "closed"]


def test_a_password_with_a_leading_gt_is_refused() -> None:
    from callcenter.errors import ValidationError
    from pbx.pjsip_admin import validate_spec

    with pytest.raises(ValidationError) as err:
        validate_spec(TrunkSpec("t", "sip.example", username="u", password=">secret"))
    assert err.value.field == "password" and "'>'" in err.value.message


def test_a_restore_escapes_semicolons_again() -> None:
    # pjsip.conf had password=a\;b; GetConfig shows a;b; written back as is, ";b" would be a
    # comment and the password "a".
    from pbx.pjsip_admin import Section, restore_plan

    before = [Section("t-auth", (("type", "auth"), ("password", "a;b")))]
    _, (section,) = restore_plan(before, ["t-auth"])
    assert section.get("password") == "a\\;b" and section.get("type") == "auth"


async def test_a_registration_wait_that_timed_out_is_forgotten() -> None:
    from pbx.pjsip_admin import LiveState

    live = LiveState()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(live.wait_for("sip:a@b:5060"), 0.01)
    await asyncio.sleep(0)  # the done callbacks run on the next turn of the loop
    assert live.waiters == {}


async def test_a_trunk_never_overwrites_a_phone_endpoint() -> None:
    from callcenter.errors import ValidationError
    from pbx.pjsip_admin import LiveState, TrunkAdmin

    class Session:
        def __init__(self) -> None:
            self.sent: list[str] = []

        async def action(self, name: str, headers: Any = (), timeout: Any = None, *,
                         check: bool = True) -> Message:
            self.sent.append(name)
            return Message.from_pairs([
                ("Response", "Success"), ("Category-000000", "101"),
                ("Line-000000-000000", "type=endpoint"), ("Line-000000-000001", "aors=101")])

    session = Session()
    admin = TrunkAdmin(lambda: session, LiveState(), trunk_endpoints=frozenset({"trunk"}))
    with pytest.raises(ValidationError) as err:
        await admin.save(TrunkSpec("101", "sip.example", username="u", password="p"))
    assert err.value.field == "name" and "not a trunk" in err.value.message
    assert session.sent == ["GetConfig"]  # nothing written


def _recorded_answer(action_id: str) -> bytes:
    from pbx.ami.codec import parse_message
    from pbx.ami.trace import BlockKind, load_trace
    from tests.conftest import FIXTURES

    trace = load_trace(FIXTURES / "14_pjsip_trunk_admin.log")
    return next(b.data for b in trace.blocks if b.kind is BlockKind.RECV
                and parse_message(b.data).action_id == action_id)


_STALE = (b"Event: Registry\r\nPrivilege: system,all\r\nChannelType: PJSIP\r\n"
          b"Username: sip:74951110077@127.0.0.1:5195\r\nDomain: sip:127.0.0.1:5195\r\n"
          b"Status: Rejected\r\n\r\n")


@pytest.mark.parametrize("replay", [{"cut_after": "14-12", "replace": {
    "14-9": _STALE + _recorded_answer("14-9")}}], indirect=True)
async def test_a_registry_event_before_the_reload_is_not_the_result(replay) -> None:
    # The old registration, still retrying, is rejected once more between the write and
    # the reload: that is not what the new settings got.
    _, line = replay
    await line.trunks()
    result = await line.save_trunk(TrunkSpec("crm-trunk2", "127.0.0.1", 5195, "74951110077",
                                             PASSWORD))
    assert result["ok"] and result["registration"] == "Registered"


class _Pbx:
    """A pjsip.conf of one [trunk] endpoint for TrunkAdmin, answering as Asterisk does."""

    def __init__(self, templates: str) -> None:
        self.templates = templates
        self.sent: list[tuple[str, Any]] = []

    async def action(self, name: str, headers: Any = (), timeout: Any = None, *,
                     check: bool = True) -> Message:
        self.sent.append((name, list(headers)))
        if name == "GetConfig":
            return Message.from_pairs([
                ("Response", "Success"), ("Category-000000", "trunk"),
                ("Templates-000000", self.templates),
                ("Line-000000-000000", "type=endpoint"),
                ("Line-000000-000001", "context=from-trunk")])
        return Message.from_pairs([("Response", "Success")])


async def test_a_trunk_edit_keeps_its_template_and_refuses_two() -> None:
    from callcenter.errors import ValidationError
    from pbx.pjsip_admin import LiveState, TrunkAdmin

    pbx = _Pbx("ep-common")
    admin = TrunkAdmin(lambda: pbx, LiveState(), trunk_endpoints=frozenset({"trunk"}))
    await admin.save(TrunkSpec("trunk", "sip.example", register=False))
    (_, update), = [(n, h) for n, h in pbx.sent if n == "UpdateConfig"]
    assert ("Options-000001", "inherit=ep-common") in update  # DelCat trunk, NewCat trunk
    assert ("Value-000002", "endpoint") not in update  # type= comes from the template

    pbx = _Pbx("ep-common,ep-codecs")
    admin = TrunkAdmin(lambda: pbx, LiveState(), trunk_endpoints=frozenset({"trunk"}))
    with pytest.raises(ValidationError) as err:
        await admin.save(TrunkSpec("trunk", "sip.example", register=False))
    assert "2 templates" in err.value.message and [n for n, _ in pbx.sent] == ["GetConfig"]
