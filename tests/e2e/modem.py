"""A live server with one emulated modem (gsm1, Huawei family) on a pseudo-terminal, plugged in
before the server starts and unplugged after it stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.server import LiveServer


def server_with_modem(live_server: Any, config: Any, tmp_path: Path) -> tuple[LiveServer, list]:
    from callcenter.config import GsmModemConfig
    from gsm.emulator import ModemEmulator
    from gsm.emulator_families import ModemConfig

    path = str(tmp_path / "modem0")
    config.gsm = [GsmModemConfig(name="gsm1", device=path)]
    emulators: list[ModemEmulator] = []

    async def plug_in(server: LiveServer) -> None:
        emu = ModemEmulator(path, ModemConfig(family="huawei", time_scale=0.05), name="gsm1")
        await emu.start()
        emulators.append(emu)

    async def unplug(server: LiveServer) -> None:
        for emu in emulators:
            await emu.stop()

    return live_server(before=plug_in, after=unplug), emulators
