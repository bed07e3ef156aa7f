"""``callcenter user ...``: the same rules and audit entries as the API, actor "cli"."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from callcenter.audit import AuditFilter
from callcenter.cli import main
from callcenter.store.sqlite import SqliteStore

PASSWORD = "Cli-Pa55word-123"


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "cc.toml"
    path.write_text('[store]\ndata_dir = "var"\n')
    monkeypatch.setenv("CALLCENTER_NEW_PASSWORD", PASSWORD)
    return path


def run(cfg: Path, *args: str) -> int:
    return main(["user", args[0], "--config", str(cfg), *args[1:]])


def audit(cfg: Path) -> list:
    async def read() -> list:
        store = await SqliteStore.open(cfg.parent / "var" / "callcenter.db")
        try:
            return await store.list_audit(AuditFilter())
        finally:
            await store.close()

    return asyncio.run(read())


def test_user_commands_validate_and_audit(cfg: Path, capsys, caplog) -> None:
    assert run(cfg, "add", "boss", "--role", "admin") == 0
    assert run(cfg, "add", "olga", "--role", "manager", "--extension", "105") == 0
    assert run(cfg, "add", "ivan", "--extension", "1") == 1
    assert "extension must be 2 to 6 digits" in capsys.readouterr().err
    assert run(cfg, "add", "olga") == 1
    assert "login is already taken" in capsys.readouterr().err
    # the last enabled admin can be neither demoted nor disabled
    assert run(cfg, "edit", "boss", "--role", "manager") == 1
    assert "last enabled admin" in capsys.readouterr().err
    assert run(cfg, "disable", "boss") == 1
    assert "last enabled admin" in capsys.readouterr().err
    assert run(cfg, "edit", "olga", "--name", "Olga P.", "--extension", "106") == 0
    assert run(cfg, "disable", "olga") == 0
    assert run(cfg, "enable", "olga") == 0
    assert run(cfg, "reset-password", "olga") == 0
    assert run(cfg, "handover", "olga", "--to", "boss") == 0
    assert "0 open task(s) and 0 client(s) of olga handed to boss" in capsys.readouterr().out
    assert run(cfg, "handover", "olga", "--to", "nobody") == 1
    assert run(cfg, "list") == 0
    out = capsys.readouterr().out
    assert "olga" in out and "106" in out and "Olga P." in out and PASSWORD not in out

    entries = audit(cfg)
    assert all(e.actor_label == "cli" and e.actor_id is None for e in entries)
    assert [e.action for e in reversed(entries)] == [
        "create", "create", "update", "disable", "enable", "reset-password", "handover"]
    update = next(e for e in entries if e.action == "update")
    assert update.after == {"name": "Olga P.", "extension": "106"}
    assert PASSWORD not in str(entries) and PASSWORD not in caplog.text


def test_client_import_from_the_command_line_is_audited(cfg: Path, tmp_path: Path) -> None:
    src = tmp_path / "clients.csv"
    src.write_text("name,phone\nAcme,+79161234567\nBeta,89035556677\n", encoding="utf-8")
    assert main(["import", "clients", str(src), "--config", str(cfg), "--dry-run"]) == 0
    assert audit(cfg) == []  # a dry run changes nothing
    assert main(["import", "clients", str(src), "--config", str(cfg)]) == 0
    [entry] = audit(cfg)
    assert (entry.actor_label, entry.action, entry.target_kind) == ("cli", "import", "client")
    assert entry.after == {"file": "clients.csv", "clients": 2, "batches": 1}


def test_verbose_logging_shows_no_password_hash(cfg: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    assert main(["-v", "user", "add", "vera", "--config", str(cfg)]) == 0
    assert main(["-v", "user", "reset-password", "vera", "--config", str(cfg)]) == 0
    assert "argon2" not in caplog.text and PASSWORD not in caplog.text


def test_users_can_be_edited_while_no_admin_exists(cfg: Path, capsys) -> None:
    # a fresh database: no admin yet, and editing a user is no demotion of anyone
    assert run(cfg, "add", "olga") == 0
    assert run(cfg, "edit", "olga", "--name", "Olga P.") == 0, capsys.readouterr().err
    assert run(cfg, "disable", "olga") == 0
    assert run(cfg, "enable", "olga") == 0
    assert run(cfg, "edit", "olga", "--role", "admin") == 0
    assert run(cfg, "edit", "olga", "--role", "manager") == 1
    assert "last enabled admin" in capsys.readouterr().err


def test_cli_entries_name_the_account_and_host_and_one_time_resets(cfg: Path) -> None:
    import getpass
    import socket

    assert run(cfg, "add", "olga") == 0
    assert run(cfg, "reset-password", "olga", "--one-time") == 0
    entries = audit(cfg)
    assert {e.address for e in entries} == {f"{getpass.getuser()}@{socket.gethostname()}"}
    assert entries[0].action == "reset-password" and entries[0].after["one_time"] is True

    async def flag() -> bool:
        store = await SqliteStore.open(cfg.parent / "var" / "callcenter.db")
        try:
            found = await store.user_by_login("olga")
            assert found is not None
            return found[0].one_time_login
        finally:
            await store.close()

    assert asyncio.run(flag()) is True
