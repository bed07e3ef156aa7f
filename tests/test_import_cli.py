"""`callcenter import clients` end to end: file -> validation -> batches -> report."""

from __future__ import annotations

import asyncio
import csv
import sqlite3
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


def many_clients(tmp_path: Path, count: int) -> Path:
    src = tmp_path / "many.csv"
    src.write_text("name,phone\n" + "".join(f"Client {i:03d},+7916{i:07d}\n"
                                            for i in range(count)), encoding="utf-8")
    return src


def test_import_commits_in_batches_and_reports_each(tmp_path: Path, cfg: Path,
                                                    capsys) -> None:
    src = many_clients(tmp_path, 5)
    assert main(["import", "clients", str(src), "--config", str(cfg), "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "batch 1 (2 clients, rows 2-3) of 3 landed" in out
    assert "batch 3 (1 clients, rows 6-6) of 3 landed" in out
    assert "batches landed: 1-3 of 3" in out
    assert "read as utf-8 (detected)" in out
    assert len(clients(tmp_path)) == 5


def test_a_failed_batch_leaves_nothing_and_a_rerun_imports_the_rest(
        tmp_path: Path, cfg: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    src = many_clients(tmp_path, 7)
    real = SqliteStore.import_clients
    calls = 0

    async def second_batch_fails(self, batch):
        nonlocal calls
        calls += 1
        if calls == 2:
            # half of the batch is written, then the disk fills up
            await real(self, batch[:1])
            raise sqlite3.OperationalError("database or disk is full")
        return await real(self, batch)

    monkeypatch.setattr(SqliteStore, "import_clients", second_batch_fails)
    assert main(["import", "clients", str(src), "--config", str(cfg), "--batch-size", "3"]) == 2
    out = capsys.readouterr().out
    assert "batches landed: 1 of 3" in out
    assert "batch 2 (3 clients, rows 5-7) failed and left nothing behind: database or disk" \
        " is full" in out
    assert "imported 3 clients" in out
    assert [c[0] for c in clients(tmp_path)] == ["Client 000", "Client 001", "Client 002",
                                                 "Client 003"]  # the half-batch's one
    monkeypatch.undo()

    # The half-written client is the test's doing (the store's batches are atomic, below);
    # the re-run skips what exists and imports the rest: skipping is not a failure.
    assert main(["import", "clients", str(src), "--config", str(cfg), "--batch-size", "3",
                 "--report", str(tmp_path / "rejected.csv")]) == 0
    out = capsys.readouterr().out
    assert "imported 3 clients" in out and out.count("already exists") == 4
    assert "rejected 0 rows; skipped 4 rows (already imported)" in out
    assert "row 2: skipped, client 'Client 000' already exists" in out
    rejected = list(csv.reader((tmp_path / "rejected.csv").open(encoding="utf-8-sig")))
    assert rejected == [["row", "reason"]]  # skipped rows are not rejections
    assert [c[0] for c in clients(tmp_path)] == [f"Client {i:03d}" for i in range(7)]


async def test_a_batch_is_atomic(tmp_path: Path) -> None:
    from callcenter.store.base import ClientInput, Conflict

    store = await SqliteStore.open(tmp_path / "a.db")
    try:
        with pytest.raises(Conflict):
            await store.import_clients([ClientInput("Fine"),
                                        ClientInput("Broken", custom={"no-such": "x"})])
        assert await store.client_names() == []
    finally:
        await store.close()


def test_a_terminal_gets_a_progress_bar_with_rate_and_time_left(
        tmp_path: Path, cfg: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    import callcenter.import_run as import_run

    monkeypatch.setattr(import_run, "_isatty", lambda stream: True)
    src = many_clients(tmp_path, 5)
    assert main(["import", "clients", str(src), "--config", str(cfg), "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    assert "rows/s" in captured.err and "5/5" in captured.err and "<" in captured.err
    assert "batch 3/3" in captured.err
    assert "of 3 landed" not in captured.out  # no plain lines under the bar


def test_batch_size_must_be_positive(tmp_path: Path, cfg: Path, capsys) -> None:
    src = many_clients(tmp_path, 1)
    with pytest.raises(SystemExit):
        main(["import", "clients", str(src), "--config", str(cfg), "--batch-size", "0"])
    assert "at least 1" in capsys.readouterr().err


async def test_an_import_holds_up_the_call_log_for_one_batch_at_most(tmp_path: Path) -> None:
    from callcenter.bus import EventBus
    from callcenter.calls.log import CallLog
    from callcenter.calls.registry import CallRegistry
    from callcenter.config import PhonesConfig
    from callcenter.import_run import plan_import, write_batches
    from callcenter.line_events import CallEnded, CallStarted, Direction, EndState, MissReason
    from callcenter.matching import CallerMatcher
    from callcenter.store.base import CallFilter

    path = tmp_path / "shared.db"
    # The running product and the import command: two processes' worth of connections.
    product = await SqliteStore.open(path)
    importer = await SqliteStore.open(path)
    call_log = CallLog(product, journal=tmp_path / "journal")
    await call_log.start()
    registry = CallRegistry(CallerMatcher(product.caller_index, PhonesConfig()),
                            product.caller_index, EventBus(), call_log)
    try:
        plan = await plan_import(importer, many_clients(tmp_path, 50), region="RU", specs=[])
        seen: dict[int, int] = {}

        async def a_call_arrives(batch) -> None:
            registry.handle(CallStarted("office", f"k{batch.number}", 100.0 * batch.number,
                                        Direction.INBOUND, "89035556677", "", "74951110000"))
            registry.handle(CallEnded(f"k{batch.number}", 100.0 * batch.number + 5,
                                      EndState.MISSED, MissReason.ABANDONED))
            # The call is stored before the next batch starts (the bound only limits a failure).
            await asyncio.wait_for(call_log.drained(), 30)
            seen[batch.number] = len(await product.list_calls(CallFilter()))

        result = await write_batches(importer, plan.drafts, 10, a_call_arrives)
        assert len(result.landed) == 5
        assert seen == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}
    finally:
        await call_log.stop()
        await importer.close()
        await product.close()


@pytest.mark.parametrize(("raised", "code"), [(KeyboardInterrupt, 130), (RuntimeError, None)])
def test_ctrl_c_or_an_unexpected_error_still_reports_the_batches_that_landed(
        tmp_path: Path, cfg: Path, capsys, monkeypatch: pytest.MonkeyPatch,
        raised: type[BaseException], code: int | None) -> None:
    src = many_clients(tmp_path, 7)
    real = SqliteStore.import_clients
    calls = 0

    async def stops_at_the_second_batch(self, batch):
        nonlocal calls
        calls += 1
        if calls == 2:
            raise raised("stop")
        return await real(self, batch)

    monkeypatch.setattr(SqliteStore, "import_clients", stops_at_the_second_batch)
    argv = ["import", "clients", str(src), "--config", str(cfg), "--batch-size", "3"]
    if code is None:
        with pytest.raises(raised):
            main(argv)
    else:
        assert main(argv) == code
    out = capsys.readouterr().out
    assert "imported 3 clients" in out
    assert "batches landed: 1 of 3" in out
    assert ("interrupted" if code else "stopped by an error (RuntimeError: stop)") in out
    assert "the clients that landed are skipped" in out
    assert len(clients(tmp_path)) == 3


async def test_a_call_arriving_during_a_batch_is_stored_before_the_next_batch_ends(
        tmp_path: Path) -> None:
    # Calls arrive while a batch is being written (not only between batches, as above): the
    # call log waits for that batch, and gets in before the import moves on much further.
    from callcenter.bus import EventBus
    from callcenter.calls.log import CallLog
    from callcenter.calls.registry import CallRegistry
    from callcenter.config import PhonesConfig
    from callcenter.import_run import plan_import, write_batches
    from callcenter.line_events import CallEnded, CallStarted, Direction, EndState, MissReason
    from callcenter.matching import CallerMatcher

    path = tmp_path / "shared.db"
    events: list[tuple[str, int]] = []
    product = await SqliteStore.open(path)
    importer = await SqliteStore.open(path)

    class Product:
        def __getattr__(self, name: str):
            return getattr(product, name)

        async def add_interaction(self, *args, **kwargs):
            result = await product.add_interaction(*args, **kwargs)
            events.append(("call stored", int(kwargs["ref"][1:])))
            return result

    call_log = CallLog(Product(), journal=tmp_path / "journal")  # type: ignore[arg-type]
    await call_log.start()
    registry = CallRegistry(CallerMatcher(product.caller_index, PhonesConfig()),
                            product.caller_index, EventBus(), call_log)
    real = importer.import_clients
    batch = 0

    async def import_clients(clients):
        nonlocal batch
        batch += 1
        events.append(("batch start", batch))
        if batch <= 8:
            registry.handle(CallStarted("office", f"k{batch}", 100.0 * batch,
                                        Direction.INBOUND, "89035556677", "", "74951110000"))
            registry.handle(CallEnded(f"k{batch}", 100.0 * batch + 5, EndState.MISSED,
                                      MissReason.ABANDONED))
        result = await real(clients)
        events.append(("batch end", batch))
        return result

    importer.import_clients = import_clients  # type: ignore[method-assign]
    try:
        plan = await plan_import(importer, many_clients(tmp_path, 200), region="RU", specs=[])
        result = await write_batches(importer, plan.drafts, 20)
        assert len(result.landed) == 10
        await asyncio.wait_for(call_log.drained(), 30)
    finally:
        await call_log.stop()
        await importer.close()
        await product.close()
    for n in range(1, 9):
        assert events.index(("call stored", n)) < events.index(("batch end", n + 1)), events


def test_import_reads_numbers_in_the_region_an_admin_stored(tmp_path: Path, cfg: Path,
                                                            capsys) -> None:
    async def store_region() -> None:
        store = await SqliteStore.open(tmp_path / "data" / "callcenter.db")
        await store.set_setting("phones.default_region", "DE")  # the file says RU
        await store.close()

    asyncio.run(store_region())
    src = tmp_path / "de.csv"
    src.write_text("name,phone\nBerlin GmbH,030 1234567\n", encoding="utf-8")
    assert main(["import", "clients", str(src), "--config", str(cfg)]) == 0, capsys.readouterr()
    assert clients(tmp_path) == [("Berlin GmbH", ["+49301234567"])]
