"""`callcenter import clients` end to end: file -> validation -> one transaction -> report."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest
from openpyxl import Workbook

from callcenter.cli import main
from callcenter.models import Role
from callcenter.store.sqlite import SqliteStore


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "cc.toml"
    path.write_text('[store]\ndata_dir = "data"\n', encoding="utf-8")

    async def seed() -> None:
        store = await SqliteStore.open(tmp_path / "data" / "callcenter.db")
        await store.create_user("maria", "Maria Ivanova", Role.MANAGER, "102")
        await store.close()

    asyncio.run(seed())
    return path


def clients(tmp_path: Path) -> list[tuple[str, list[str]]]:
    async def read() -> list[tuple[str, list[str]]]:
        store = await SqliteStore.open(tmp_path / "data" / "callcenter.db")
        try:
            return [(c.name, [p.e164 or p.raw for k in c.contacts for p in k.phones])
                    for c in await store.list_clients(limit=500)]
        finally:
            await store.close()

    return asyncio.run(read())


MIXED = (
    "Компания;Контакт;Телефон;Менеджер\n"
    "ООО Ромашка;Иван Петров;8 916 123-45-67;maria\n"
    ";Без имени;89035556677;maria\n"
    "Бета;Олег;12;maria\n"
    "Гамма;Анна;+7 (916) 111-11-11;nobody\n"
    "ООО Ромашка;Пётр Иванов;+79162222222;maria\n"
)


def test_mixed_cp1251_file_imports_good_rows_and_reports_bad(tmp_path: Path, cfg: Path,
                                                             capsys) -> None:
    src = tmp_path / "clients.csv"
    src.write_bytes(MIXED.encode("cp1251"))
    report = tmp_path / "rejected.csv"
    code = main(["import", "clients", str(src), "--config", str(cfg), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 1  # some rows rejected
    assert "imported 1 clients, 2 contacts, 2 phones; rejected 3 rows" in out
    assert "row 3:" in out and "row 4:" in out and "row 5:" in out
    assert clients(tmp_path) == [("ООО Ромашка", ["+79161234567", "+79162222222"])]
    rows = list(csv.reader(report.open(encoding="utf-8-sig")))
    assert rows[0][:2] == ["row", "reason"]
    assert [r[0] for r in rows[1:]] == ["3", "4", "5"]

    # running the same import again adds nothing and says why
    code = main(["import", "clients", str(src), "--config", str(cfg)])
    assert "already exists" in capsys.readouterr().out
    assert len(clients(tmp_path)) == 1


def test_dry_run_writes_nothing(tmp_path: Path, cfg: Path, capsys) -> None:
    src = tmp_path / "good.csv"
    src.write_text("name,phone\nAcme,+79161234567\nBeta,89035556677\n", encoding="utf-8")
    assert main(["import", "clients", str(src), "--config", str(cfg), "--dry-run"]) == 0
    assert "would import 2 clients" in capsys.readouterr().out
    assert clients(tmp_path) == []
    assert main(["import", "clients", str(src), "--config", str(cfg)]) == 0
    assert [c[0] for c in clients(tmp_path)] == ["Acme", "Beta"]


def test_xlsx_with_mapping(tmp_path: Path, cfg: Path, capsys) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(["Org", "Tel", "Who"])
    ws.append(["Acme", 79161234567, "Ivan"])
    ws.append(["", 79035556677, "Nobody"])
    src = tmp_path / "c.xlsx"
    wb.save(src)
    code = main(["import", "clients", str(src), "--config", str(cfg), "--map", "Org=name",
                 "--map", "Tel=phone", "--map", "Who=contact"])
    out = capsys.readouterr().out
    assert code == 1
    assert "imported 1 clients" in out and "row 3:" in out
    assert clients(tmp_path) == [("Acme", ["+79161234567"])]


def test_unreadable_file_is_a_clear_error(tmp_path: Path, cfg: Path, capsys) -> None:
    src = tmp_path / "c.pdf"
    src.write_bytes(b"%PDF-1.4")
    assert main(["import", "clients", str(src), "--config", str(cfg)]) == 2
    assert str(src) in capsys.readouterr().err
    assert clients(tmp_path) == []


def test_help_lists_the_commands(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for command in ("serve", "import", "user", "migrate", "check-config"):
        assert command in text


def test_bad_config_exits_with_the_key(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'x'\n", encoding="utf-8")
    assert main(["check-config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "server.port" in err and str(bad) in err
