"""Run by test_crash.py in its own process: send the queued SMS of a database through a modem
that logs every part it is given and stops answering at the second one, so the test can
SIGKILL this process while a part is "sending"."""

from __future__ import annotations

import asyncio
import os
import sys
import time

from callcenter.sms.ports import OutboundPart
from callcenter.store.sqlite import SqliteStore
from tests.sms.harness import FakeModem, sms_core


class LoggingModem(FakeModem):
    def __init__(self, name: str, log_path: str) -> None:
        super().__init__(name)
        self.log_path = log_path

    async def send_part(self, part: OutboundPart) -> int:
        with open(self.log_path, "a") as log:
            log.write(part.text + "\n")
            log.flush()
            os.fsync(log.fileno())
        if len(self.sent) == 1:  # the second part: +CMGS written, the answer never comes
            print("hanging", flush=True)
            await asyncio.Event().wait()
        return await super().send_part(part)


async def main(db: str, log_path: str) -> None:
    store = await SqliteStore.open(db)
    core = await sms_core(store, LoggingModem("a", log_path))
    core.clock.now = time.time()
    await core.drain()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
