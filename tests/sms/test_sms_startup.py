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
