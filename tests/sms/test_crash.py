"""SIGKILL while a part is being sent: after the restart that part is "unknown" and never sent
again, what was sent stays sent, and what was still queued is sent once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from callcenter.store.sqlite import SqliteStore
from tests.conftest import REPO
from tests.sms.harness import FakeModem, sms_core


async def test_sigkill_during_a_send_never_sends_twice(tmp_path: Path) -> None:
    db, log = tmp_path / "sms.db", tmp_path / "modem.log"
    store = await SqliteStore.open(db)
    core = await sms_core(store)
    core.clock.now = time.time()
    ids = [await core.service.enqueue(f"+7916000000{i}", f"message {i}") for i in range(3)]
    await store.close()

    child = subprocess.Popen([sys.executable, "-m", "tests.sms.crash_child", str(db), str(log)],
                             cwd=REPO, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "hanging"  # the second send is in flight
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    assert log.read_text().splitlines() == ["message 0", "message 1"]

    store = await SqliteStore.open(db)
    try:
        modem = FakeModem("a")
        again = await sms_core(store, modem)
        again.clock.now = time.time()
        await again.drain()
        states = [(await again.message(i))["state"] for i in ids]
        assert states == ["sent", "unknown", "sent"]
        assert [p.text for p in modem.sent] == ["message 2"]  # message 1 is never re-sent
        assert "check delivery" in (await again.message(ids[1]))["error"]
    finally:
        await store.close()
