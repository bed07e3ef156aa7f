"""check() of an Asterisk line: its own short AMI login + CoreSettings, closed afterwards,
never disturbing the running connection; each failure in words with what to change."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
import trustme

from callcenter.config import PbxLineConfig
from pbx import asterisk_check
from pbx.ami.emulator import AmiEmulator, response
from pbx.ami.message import Message
from pbx.ami.trace import load_trace
from pbx.asterisk_line import AsteriskLine
from tests.conftest import FIXTURES


def _line(port: int, secret: str = "crm-secret", **kw) -> AsteriskLine:
    return AsteriskLine(PbxLineConfig(name="office", port=port, secret=secret,
                                      withheld_getvar=False, **kw), lambda _: None)


@pytest.fixture
async def emulator():
    async with AmiEmulator(load_trace(FIXTURES / "01_inbound_answered.log"), speed=0,
                           action_wait=0.2, auth_failure_delay=0) as emu:
        yield emu


async def test_check_gives_the_versions_and_leaves_the_running_line_alone(emulator) -> None:
    running = _line(emulator.port)
    await running.start()
    await emulator.wait_for_client()
    await running.synced.wait()
    try:
        result = await _line(emulator.port).check()
        assert result.ok, result
        assert result.summary == "Asterisk 22.10.1, AMI 11.0.0"
        assert result.facts["Asterisk"] == "22.10.1" and result.facts["AMI"] == "11.0.0"
        logins = emulator.actions_named("Login")
        assert logins[-1]["Events"] == "off"  # the check's session gets no events
        assert running.connected and emulator.logins == 2
        async with asyncio.timeout(5):
            await emulator.wait_open_connections(1)  # the check's socket is closed again
        assert running.status().state.value == "up"
    finally:
        await running.stop()
    assert running.status().state.value == "stopped"


async def test_a_wrong_secret_is_said_in_words(emulator) -> None:
    result = await _line(emulator.port, secret="Qx7-not-the-secret").check()
    assert not result.ok and result.summary == "login refused"
    assert "wrong username or secret" in result.error and "manager.conf" in result.hint
    assert "Qx7" not in result.error + result.hint


async def test_refused_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        result = await _line(port).check()
    assert not result.ok and result.summary == "connection refused"
    assert f"127.0.0.1:{port}" in result.error and "enabled = yes" in result.hint


async def test_missing_permission_says_what_to_put_in_manager_conf(emulator) -> None:
    def denied(message: Message) -> list[bytes]:
        return [response(message.action_id, ("Response", "Error"),
                         ("Message", "Permission denied"))]

    emulator.responders["coresettings"] = denied
    result = await _line(emulator.port).check()
    assert not result.ok and result.summary == "missing AMI permission"
    assert "[crm]" in result.hint and "read = call,dialplan,agent,system" in result.hint
    assert "write = call,originate,reporting,system,config;" in result.hint


async def test_a_silent_port_is_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(asterisk_check, "CHECK_LOGIN_TIMEOUT", 0.2)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # says nothing, like a port that is not AMI
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        result = await _line(server.sockets[0].getsockname()[1]).check()
    finally:
        server.close()
        await server.wait_closed()
    assert not result.ok and result.summary == "timeout"
    assert "did not answer as Asterisk AMI does" in result.error and "5038" in result.hint


async def test_tls_to_a_plain_port_fails_in_words(emulator) -> None:
    result = await _line(emulator.port, tls=True).check()
    # the emulator's banner is plain text, not a TLS ServerHello
    assert not result.ok and result.summary == "TLS failed", result
    assert "TLS handshake" in result.error and "tlsenable = yes" in result.hint


async def test_a_secret_with_a_line_break_is_a_failed_check_not_a_crash(emulator) -> None:
    result = await _line(emulator.port, secret="crm-secret\r\nAction: Originate").check()
    assert not result.ok and result.summary == "bad setting"
    assert "Originate" not in result.error


async def test_a_missing_write_class_is_named_with_its_manager_conf_line(emulator) -> None:
    # ListCommands lists only what the user's write= allows: no originate, no click-to-call.
    emulator.write_classes = frozenset({"system", "call", "reporting", "config"})
    result = await _line(emulator.port).check()
    assert not result.ok and result.summary == "missing AMI permission"
    assert "may not send Originate: Originate needs one of write = originate" in result.error
    assert "write = call,originate,reporting,system,config;" in result.hint
    assert "read= classes, the events, cannot be checked" in result.hint


async def test_without_config_the_calls_work_but_trunks_are_said_unavailable(emulator) -> None:
    emulator.write_classes = frozenset({"call", "originate", "reporting"})
    result = await _line(emulator.port).check()
    assert result.ok and "no trunk administration" in result.summary
    assert "UpdateConfig" in result.summary and "config" in result.facts["trunks"]


@pytest.fixture
def tls_ca() -> trustme.CA:
    return trustme.CA()


async def _tls_check(ca: trustme.CA, identity: str, **kw) -> tuple[bool, str]:
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(identity).configure_cert(server)
    async with AmiEmulator(load_trace(FIXTURES / "00_basics.log"), speed=0,
                           auth_failure_delay=0, ssl=server) as emu:
        result = await _line(emu.port, tls=True, **kw).check()
    return result.ok, result.error


async def test_tls_an_untrusted_certificate_is_refused_unless_verify_is_off(tls_ca) -> None:
    ok, error = await _tls_check(tls_ca, "127.0.0.1")
    assert not ok and "certificate" in error
    ok, _ = await _tls_check(tls_ca, "127.0.0.1", tls_verify=False)
    assert ok


async def test_tls_a_trusted_certificate_passes_for_its_host_only(
        tls_ca, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # the system's trust store, for the test
    ok, error = await _tls_check(tls_ca, "127.0.0.1")
    assert ok, error
    ok, error = await _tls_check(tls_ca, "pbx.example.net")  # not the host connected to
    assert not ok and "certificate" in error
