"""The composition root's GSM modems: a failed start leaks none of those already started."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest

from callcenter import app
from callcenter.config import GsmModemConfig, SmsConfig


class StartOrFail:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def start(self) -> None:
        if self.name == "broken":
            raise OSError("no such device")
        self.log.append(f"start {self.name}")

    async def stop(self) -> None:
        self.log.append(f"stop {self.name}")


async def test_a_modem_failing_to_start_stops_those_started_before_it(monkeypatch):
    log: list[str] = []
    monkeypatch.setattr(app, "_gsm_modem", lambda cfg, *args: StartOrFail(cfg.name, log))
    services = SimpleNamespace(
        config=SimpleNamespace(gsm=[GsmModemConfig(name=n) for n in ("a", "b", "broken")],
                               sms=SmsConfig()), extra={})
    with pytest.raises(OSError):
        async with contextlib.AsyncExitStack() as stack:
            await app.gsm_modems(services, lambda event: None, stack, False)
    assert log == ["start a", "start b", "stop b", "stop a"]


async def test_started_modems_are_left_to_the_caller_to_stop(monkeypatch):
    log: list[str] = []
    monkeypatch.setattr(app, "_gsm_modem", lambda cfg, *args: StartOrFail(cfg.name, log))
    services = SimpleNamespace(
        config=SimpleNamespace(gsm=[GsmModemConfig(name="a")], sms=SmsConfig()), extra={})
    async with contextlib.AsyncExitStack() as stack:
        modems = await app.gsm_modems(services, lambda event: None, stack, False)
    assert [m.name for m, _ in modems] == ["a"] and log == ["start a"]


def test_a_modems_late_send_result_goes_to_the_pool():
    calls = []
    pool = SimpleNamespace(late_result=lambda *args: calls.append(args))
    services = SimpleNamespace(extra={})
    late = app._late_result(services, "gsm1")
    late("part", 7)  # before the pool exists: dropped, no error
    services.extra["sms_pool"] = pool
    late("part", 8)
    assert calls == [("gsm1", "part", 8)]
    modem = app._gsm_modem(GsmModemConfig(name="gsm1", device="/dev/null"), None, None,
                           "*100#", late)
    assert modem._on_late_result is late
