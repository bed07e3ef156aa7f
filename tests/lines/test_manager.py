"""The line manager with fake lines: stored, seeded once, checked before saving, replaced and
removed at run time; the calls of a replaced line re-adopted or closed."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from callcenter.errors import ValidationError
from callcenter.lines.audit import CLI_ACTOR
from callcenter.lines.lifecycle import CheckResult, Line, LineState, LineStatus
from callcenter.lines.manager import LineCheckFailed, LineManager
from callcenter.lines.records import FieldSpec, LineKind, LineRecord
from callcenter.store.sqlite import SqliteStore


class FakeLine:
    kind = "fake"

    def __init__(self, record: LineRecord, log: list[tuple[str, str, int]]) -> None:
        self.name = record.name
        self.record = record
        self.log = log
        self.state = LineState.STOPPED
        self.synced = asyncio.Event()

    async def check(self) -> CheckResult:
        if self.record.secrets.get("token") == "good":
            return CheckResult(True, "fake 1.0", {"version": "1.0"})
        return CheckResult(False, "refused", error="wrong token")

    async def start(self) -> None:
        self.state = LineState.UP
        self.log.append(("start", self.name, self.record.settings["port"]))

    async def stop(self) -> None:
        if self.state is not LineState.STOPPED:
            self.log.append(("stop", self.name, self.record.settings["port"]))
        self.state = LineState.STOPPED

    def status(self) -> LineStatus:
        return LineStatus(self.name, self.kind, self.state, f"port {self.record.settings['port']}")


def fake_kind(log: list[tuple[str, str, int]]) -> LineKind:
    def validate(settings: dict[str, Any], secrets: dict[str, str]) -> None:
        if settings["port"] == 13:
            raise ValidationError("port 13 is unlucky", field="port")

    return LineKind("fake", "Fake line", (
        FieldSpec("port", "int", 1, minimum=1, maximum=65535),
        FieldSpec("token", secret=True)), lambda r: FakeLine(r, log), validate)


def rec(name: str = "a", port: int = 1, token: str = "good", enabled: bool = True
        ) -> LineRecord:
    return LineRecord(name, "fake", enabled, {"port": port}, {"token": token})


@pytest.fixture
async def setup(store: SqliteStore) -> Any:
    log: list[tuple[str, str, int]] = []
    manager = LineManager(store)
    manager.register(fake_kind(log))
    changes: list[tuple[str, Line | None, Line | None]] = []
    manager.listeners.append(lambda name, old, new: changes.append((name, old, new)))
    yield manager, log, changes, store
    await manager.close()


async def test_seeded_once_then_the_database_wins(setup: Any) -> None:
    manager, log, _, store = setup
    await manager.load([rec("a", 1)], source="test.toml")
    assert log == [("start", "a", 1)]
    await manager.delete("a", CLI_ACTOR)
    again = LineManager(store)
    again.register(fake_kind(log))
    await again.load([rec("a", 1)], source="test.toml")  # the file still has it
    assert again.records == {} and again.running == {}


async def test_lines_added_before_the_first_start_win_over_the_seed(setup: Any) -> None:
    # A scripted install: `callcenter line add office` runs before the first serve, whose
    # TOML also has [[pbx]] name="office": the first start must not fail on UNIQUE(name).
    manager, log, _, store = setup
    cli = LineManager(store, run_lines=False)
    cli.register(fake_kind(log))
    await cli.load()
    await cli.add(rec("office", 5), CLI_ACTOR)
    await manager.load([rec("office", 1), rec("other", 2)], source="test.toml")
    assert sorted(manager.records) == ["office"]
    assert manager.records["office"].settings["port"] == 5
    assert await store.lines_seeded()


async def test_add_checks_first_and_refuses_a_failing_line(setup: Any) -> None:
    manager, log, _, store = setup
    await manager.load([])
    with pytest.raises(LineCheckFailed) as failed:
        await manager.add(rec("a", token="bad"), CLI_ACTOR)
    assert "wrong token" in failed.value.message and "nothing was saved" in failed.value.message
    assert await store.list_lines() == [] and log == []
    record, result = await manager.add(rec("a", token="bad"), CLI_ACTOR, save_disabled=True)
    assert not record.enabled and result is not None and not result.ok
    assert log == [] and manager.status("a").state is LineState.DISABLED
    assert [r.enabled for r in await store.list_lines()] == [False]


async def test_schema_and_kind_checks_name_the_field(setup: Any) -> None:
    manager, _, _, _ = setup
    for bad, field in ((rec(port=0), "port"), (rec(port=13), "port"),
                       (LineRecord("a", "fake", True, {"port": "1"}), "port"),
                       (LineRecord("a", "fake", True, {"nope": 1}), "nope"),
                       (LineRecord("a b", "fake", True, {}), "name"),
                       (LineRecord("a", "gsm", True, {}), "kind")):
        with pytest.raises(ValidationError) as err:
            await manager.add(bad, CLI_ACTOR)
        assert err.value.field == field, (bad, err.value.message)


async def test_edit_replaces_the_running_line_without_a_restart(setup: Any) -> None:
    manager, log, changes, store = setup
    await manager.load([rec("a", 1)])
    first = manager.running["a"]
    changes.clear()
    record = manager.merged("a", settings={"port": 2}, secrets={"token": ""})
    assert record.secrets == {"token": "good"}  # an empty secret keeps the stored one
    await manager.update("a", record, CLI_ACTOR)
    assert log == [("start", "a", 1), ("stop", "a", 1), ("start", "a", 2)]
    second = manager.running["a"]
    assert second is not first
    assert changes == [("a", first, second)]  # one replace, so its calls can be re-adopted
    stored = await store.get_line("a", with_secrets=True)
    assert stored.settings == {"port": 2} and stored.secrets == {"token": "good"}


async def test_a_failing_edit_changes_nothing(setup: Any) -> None:
    manager, log, _, store = setup
    await manager.load([rec("a", 1)])
    with pytest.raises(LineCheckFailed):
        await manager.update("a", manager.merged("a", settings={"port": 2},
                                                 secrets={"token": "bad"}), CLI_ACTOR)
    assert log == [("start", "a", 1)] and manager.running["a"].record.settings["port"] == 1
    assert (await store.get_line("a", with_secrets=True)).secrets == {"token": "good"}


async def test_disable_enable_rename_delete(setup: Any) -> None:
    manager, log, changes, store = setup
    await manager.load([rec("a", 1)])
    await manager.set_enabled("a", False, CLI_ACTOR)
    assert "a" not in manager.running and manager.status("a").state is LineState.DISABLED
    await manager.set_enabled("a", True, CLI_ACTOR)
    assert manager.status("a").state is LineState.UP
    await manager.update("a", manager.merged("a", new_name="b"), CLI_ACTOR)
    assert list(manager.running) == ["b"] and [r.name for r in await store.list_lines()] == [
        "b"]
    changes.clear()
    old = manager.running["b"]
    await manager.delete("b", CLI_ACTOR)
    assert manager.running == {} and manager.records == {} and await store.list_lines() == []
    assert changes == [("b", old, None)]
    assert log[-1] == ("stop", "b", 1)


async def test_secrets_are_never_public(setup: Any) -> None:
    manager, _, _, store = setup
    await manager.load([])
    await manager.add(rec("a", token="good"), CLI_ACTOR)
    shown = manager.record("a").public()
    assert "good" not in repr(shown) and shown["secrets_set"] == ["token"]
    assert "good" not in repr(manager.record("a"))
    assert all("good" not in repr(r) and r.secrets == {} for r in await store.list_lines())


async def test_the_view_follows_the_manager(setup: Any) -> None:
    manager, _, _, _ = setup
    view = manager.view("check")
    await manager.load([rec("a", 1)])
    assert list(view) == ["a"]
    await manager.add(rec("b", 2), CLI_ACTOR)
    assert sorted(view) == ["a", "b"] and len(manager.view("originate")) == 0


async def test_reload_applies_what_the_command_line_changed(setup: Any) -> None:
    manager, log, changes, store = setup
    await manager.load([rec("a", 1), rec("b", 2)])
    first_a = manager.running["a"]
    # another process (callcenter line ...) edits the database
    cli = LineManager(store, run_lines=False)
    cli.register(fake_kind([]))
    await cli.load()
    await cli.update("a", cli.merged("a", settings={"port": 3}), CLI_ACTOR)
    await cli.delete("b", CLI_ACTOR)
    await cli.add(rec("c", 4), CLI_ACTOR)
    changes.clear()
    assert sorted(await manager.reload()) == ["a", "b", "c"]
    assert sorted(manager.running) == ["a", "c"]
    assert manager.running["a"].record.settings["port"] == 3
    assert ("a", first_a, manager.running["a"]) in changes  # one replace: calls re-adopted
    assert ("stop", "b", 2) in log and ("start", "c", 4) in log
    assert await manager.reload() == []  # nothing changed since


async def test_a_built_in_line_is_run_but_not_stored_or_edited(setup: Any) -> None:
    manager, log, _, store = setup
    await manager.run_only([rec("demo", 9)])
    assert log == [("start", "demo", 9)] and await store.list_lines() == []
    for change in (manager.delete("demo", CLI_ACTOR),
                   manager.update("demo", manager.merged("demo", settings={"port": 8}),
                                  CLI_ACTOR)):
        with pytest.raises(ValidationError) as err:
            await change
        assert "built in" in err.value.message


async def test_reload_keeps_a_built_in_line_running(setup: Any) -> None:
    # SIGHUP in demo mode: the demo's line is not in the database, and not "deleted" there.
    manager, log, _, _ = setup
    await manager.run_only([rec("demo", 9)])
    assert await manager.reload() == []
    assert "demo" in manager.running and ("stop", "demo", 9) not in log


async def test_shutdown_stops_the_lines_without_telling_the_listeners(setup: Any) -> None:
    # A call still up at shutdown stays open in the log for the next start to re-adopt:
    # nothing may close it as if an admin had stopped its line.
    manager, log, changes, _ = setup
    await manager.load([rec("a", 1)])
    changes.clear()
    await manager.close()
    assert log[-1] == ("stop", "a", 1) and manager.running == {} and changes == []


async def test_an_edit_racing_a_disable_is_refused_not_lost(setup: Any,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    # PATCH port 2 while another admin disables the line: the check runs outside the lock
    # (the disable is not held up by it), and the edit, checked against a line that changed
    # meanwhile, is refused (409) instead of silently undoing the disable.
    from callcenter.store.base import Conflict

    manager, _, _, store = setup
    await manager.load([rec("a", 1)])
    entered, gate = asyncio.Event(), asyncio.Event()
    checked = FakeLine.check

    async def slow_check(self: FakeLine) -> CheckResult:
        entered.set()
        await gate.wait()
        return await checked(self)

    monkeypatch.setattr(FakeLine, "check", slow_check)
    edit = asyncio.create_task(manager.edit("a", CLI_ACTOR, settings={"port": 2}))
    await entered.wait()
    await asyncio.wait_for(manager.set_enabled("a", False, CLI_ACTOR), 5)
    gate.set()
    with pytest.raises(Conflict):
        await edit
    stored = await store.get_line("a", with_secrets=True)
    assert (stored.enabled, stored.settings["port"]) == (False, 1)
    assert manager.records["a"] == stored


async def test_a_stored_secret_is_not_sent_to_another_host(setup: Any) -> None:
    manager, log, _, _ = setup
    kind = fake_kind(log)
    manager.kinds["fake"] = replace(kind, secret_bound=("port",))
    await manager.load([rec("a", 1)])
    with pytest.raises(ValidationError) as err:
        manager.merged("a", settings={"port": 2}, secrets={"token": ""})
    assert err.value.field == "token" and "port changed" in err.value.message
    with pytest.raises(ValidationError):
        await manager.edit("a", CLI_ACTOR, settings={"port": 2})
    assert manager.merged("a", settings={"port": 2}, secrets={"token": "good"}
                          ).secrets == {"token": "good"}
    assert manager.merged("a", settings={"port": 1}).secrets == {"token": "good"}


async def test_a_start_failing_after_a_saved_edit_is_reported(setup: Any,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    manager, _, changes, _ = setup
    await manager.load([rec("a", 1)])
    first = manager.running["a"]
    started = FakeLine.start

    async def start(self: FakeLine) -> None:
        if self.record.settings["port"] == 66:
            raise OSError("no route to port 66")
        await started(self)

    monkeypatch.setattr(FakeLine, "start", start)
    record, _ = await manager.edit("a", CLI_ACTOR, settings={"port": 66})
    assert record.enabled and "no route to port 66" in (manager.start_error("a") or "")
    assert changes[-1] == ("a", first, None) and manager.records["a"].enabled
    await manager.edit("a", CLI_ACTOR, settings={"port": 2})
    assert manager.start_error("a") is None


async def test_line_breaks_in_secrets_and_list_items_are_refused(setup: Any) -> None:
    manager, _, _, _ = setup
    for token in ("a\r\nAction: Originate", "a\nb", "a\x00b"):
        with pytest.raises(ValidationError) as err:
            await manager.add(LineRecord("a", "fake", True, {"port": 1}, {"token": token}),
                              CLI_ACTOR)
        assert err.value.field == "token"
    kind = LineKind("listy", "Listy", (FieldSpec("names", "list", []),), lambda r: None)
    with pytest.raises(ValidationError) as err:
        kind.clean({"names": ["trunk", "x\r\nAction: Hangup"]}, {})
    assert err.value.field == "names"


async def test_a_failed_sighup_reload_is_logged_as_an_error(caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    from callcenter.app import _reloaded

    async def reload() -> list[str]:
        raise RuntimeError("database is locked")

    task = asyncio.create_task(reload())
    await asyncio.gather(task, return_exceptions=True)
    _reloaded(task)
    (record,) = [r for r in caplog.records if "SIGHUP" in r.getMessage()]
    assert record.levelname == "ERROR" and "database is locked" in caplog.text


def test_secrets_are_left_out_of_reprs() -> None:
    from callcenter.config import PbxLineConfig
    from ui.api.models import LineCheckIn, LineIn, LineUpdate, TrunkIn

    secret = "S3cret-in-a-traceback"
    texts = [repr(PbxLineConfig(secret=secret)),
             repr(TrunkIn(host="sip.example", password=secret)),
             repr(LineIn(name="a", kind="asterisk", secrets={"secret": secret})),
             repr(LineUpdate(secrets={"secret": secret})),
             repr(LineCheckIn(kind="asterisk", secrets={"secret": secret}))]
    for text in texts:
        assert secret not in text, text
    assert LineUpdate(secrets={"secret": secret}).model_dump(exclude_unset=True) == {
        "secrets": {"secret": secret}}


async def test_a_change_stays_signalled_until_its_waiter_clears_it(setup: Any) -> None:
    # finish_left_open reads the running lines, then waits on `changed`: a replace landing
    # between the two must still wake it (set-and-clear at once was lost then).
    manager, _, _, _ = setup
    await manager.load([rec("a", 1)])
    assert manager.changed.is_set() and manager.version == 1
    manager.changed.clear()
    await manager.edit("a", CLI_ACTOR, settings={"port": 2})
    assert manager.changed.is_set() and manager.version == 2
