"""``callcenter line ...``: the same validation, check-before-save and audit as the lines page;
secrets from the environment or a prompt, never from argv, never printed or logged."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from callcenter.cli import main
from pbx.ami.emulator import AmiEmulator
from pbx.ami.trace import load_trace
from tests.conftest import FIXTURES

SECRET = "crm-secret"
WRONG = "Wr0ng-cli-S3cret"


@pytest.fixture
def emulator_port() -> Iterator[int]:
    """The emulator on a loop of its own: the CLI runs asyncio.run() in the test's thread."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    holder: dict[str, object] = {}

    async def serve() -> None:
        stop = asyncio.Event()
        holder["stop"] = stop
        async with AmiEmulator(load_trace(FIXTURES / "00_basics.log"), speed=0,
                               action_wait=0.1, auth_failure_delay=0) as emu:
            holder["port"] = emu.port
            started.set()
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield int(holder["port"])  # type: ignore[call-overload]
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)  # type: ignore[attr-defined]
        thread.join(10)
        loop.close()


@pytest.fixture
def conf(tmp_path: Path) -> str:
    path = tmp_path / "callcenter.toml"
    path.write_text(f'[store]\ndata_dir = "{tmp_path / "var"}"\n')
    return str(path)


def run(conf: str, *argv: str) -> int:
    action, *rest = argv
    return main(["line", action, "-c", conf, *rest])


def test_line_commands_check_store_and_never_show_secrets(
        conf: str, emulator_port: int, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sets = ["--set", "host=127.0.0.1", "--set", f"port={emulator_port}",
            "--set", "trunk_endpoints=trunk,trunk2", "--set", "record_calls=yes"]
    monkeypatch.setenv("CALLCENTER_LINE_SECRET", WRONG)
    assert run(conf, "add", "office", *sets) == 1
    assert "refused the login" in capsys.readouterr().err
    assert run(conf, "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == []

    monkeypatch.setenv("CALLCENTER_LINE_SECRET", SECRET)
    assert run(conf, "add", "office", *sets) == 0
    out = capsys.readouterr().out
    assert "check: Asterisk 22.10.1, AMI 11.0.0" in out and "saved (enabled)" in out
    assert run(conf, "list") == 0
    listing = capsys.readouterr().out
    assert "secret = (set, write-only)" in listing and "trunk_endpoints = trunk,trunk2" in (
        listing) and "record_calls = True" in listing
    assert run(conf, "check", "office") == 0
    assert "office: OK, Asterisk 22.10.1" in capsys.readouterr().out

    # the same validation as the API, naming the setting
    assert run(conf, "edit", "office", "--set", "port=70000") == 2
    assert "port must be at most 65535" in capsys.readouterr().err
    assert run(conf, "edit", "office", "--set", "dial_format=weird") == 2
    assert "dial_format must be one of" in capsys.readouterr().err
    assert run(conf, "edit", "office", "--set", f"secret={WRONG}") == 2
    assert "never on the command line" in capsys.readouterr().err
    # the stored secret never goes to another host: asked for again
    assert run(conf, "edit", "office", "--set", "host=localhost") == 2
    assert "--change-secrets" in capsys.readouterr().err
    # a new wrong secret fails its check: refused, the old one stays; --save-disabled keeps it off
    monkeypatch.setenv("CALLCENTER_LINE_SECRET", WRONG)
    assert run(conf, "edit", "office", "--change-secrets") == 1
    capsys.readouterr()
    assert run(conf, "check", "office") == 0
    capsys.readouterr()
    assert run(conf, "edit", "office", "--change-secrets", "--save-disabled") == 0
    assert "saved (DISABLED)" in capsys.readouterr().out
    monkeypatch.setenv("CALLCENTER_LINE_SECRET", SECRET)
    assert run(conf, "edit", "office", "--change-secrets", "--set", "ping_interval=15") == 0
    assert run(conf, "enable", "office") == 0
    assert "saved (enabled)" in capsys.readouterr().out
    assert run(conf, "disable", "office") == 0
    assert "saved (DISABLED)" in capsys.readouterr().out
    assert run(conf, "list", "--json") == 0
    (line,) = json.loads(capsys.readouterr().out)
    assert line["settings"]["ping_interval"] == 15.0 and not line["enabled"]
    assert run(conf, "delete", "office") == 0
    assert run(conf, "delete", "office") == 2
    assert "there is no line 'office'" in capsys.readouterr().err

    texts = [f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records]
    assert any("audit: cli:" in t and "create line office" in t for t in texts)
    assert any("delete line office" in t for t in texts)
    for text in texts:
        assert SECRET not in text and WRONG not in text, text
    entries = asyncio.run(_audit(conf))
    assert [e.action for e in reversed(entries)] == [
        "create", "update", "update", "enable", "disable", "delete"]
    assert all(e.actor_label.startswith("cli:") and e.address == "local" for e in entries)
    changed = list(reversed(entries))[2]  # the new secret, with ping_interval
    assert changed.after["secrets"]["secret"] == "(changed)"
    assert SECRET not in repr(entries) and WRONG not in repr(entries)


async def _audit(conf: str) -> list:
    from callcenter.audit import AuditFilter, AuditService
    from callcenter.config import load_config
    from callcenter.store.sqlite import SqliteStore

    store = await SqliteStore.open(load_config(conf).database_path)
    try:
        return await AuditService(store).list(AuditFilter(target_kind="line"))
    finally:
        await store.close()


def test_without_a_terminal_the_secret_must_come_from_the_environment(
        conf: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CALLCENTER_LINE_SECRET", raising=False)
    assert run(conf, "add", "office", "--set", "port=5038") == 2
    assert "set $CALLCENTER_LINE_SECRET" in capsys.readouterr().err


def test_the_command_line_knows_every_registered_kind(
        conf: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A GSM or fax kind registered with the shared registry is editable from the command
    # line too, not only on the lines page.
    from callcenter.lines import kinds
    from tests.lines.test_manager import fake_kind

    monkeypatch.setitem(kinds._FACTORIES, "fake", lambda _context: fake_kind([]))
    monkeypatch.setenv("CALLCENTER_LINE_TOKEN", "good")
    assert run(conf, "add", "modem1", "--kind", "fake", "--set", "port=7") == 0
    capsys.readouterr()
    assert run(conf, "list", "--json") == 0
    (line,) = json.loads(capsys.readouterr().out)
    assert (line["kind"], line["settings"], line["secrets_set"]) == (
        "fake", {"port": 7}, ["token"])


def test_kinds_describe_their_capabilities(conf: str) -> None:
    from callcenter.app import line_kinds
    from callcenter.config import load_config

    described = {k.name: k.describe() for k in line_kinds(load_config(conf))}
    assert described["asterisk"]["capabilities"] == ["trunks"]
