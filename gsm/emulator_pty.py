"""A pseudo-terminal behind a stable path, as a USB modem's tty is for the product.

``open()`` makes a new pty and points the symlink at its slave; ``close()`` closes it (the reader
on the other side gets EIO, like a stick pulled out) and removes the symlink. The emulator keeps
its own fd on the slave so that the DTE closing its side (a product killed) never makes the master
fail: the modem lives on and the next opener finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import tty
from collections.abc import Callable

MAX_OUT = 256 * 1024  # bytes kept while the DTE does not read; beyond, output is dropped


class PtyLink:
    def __init__(self, path: str, on_data: Callable[[bytes], None]) -> None:
        self.path = path
        self._on_data = on_data
        self._master: int | None = None
        self._slave: int | None = None
        self._out = bytearray()
        self.dropped = 0  # bytes dropped because nobody read them

    @property
    def is_open(self) -> bool:
        return self._master is not None

    def open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or CR/LF translation by the tty itself: the modem does it
        os.set_blocking(master, False)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(os.ttyname(slave), tmp)
            os.replace(tmp, self.path)  # the path never points at nothing while it exists
        except OSError:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave = master, slave
        self._out.clear()
        asyncio.get_running_loop().add_reader(master, self._readable)

    def close(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._master is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._master)
            loop.remove_writer(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        self._out.clear()

    def write(self, data: bytes) -> None:
        if self._master is None:
            return
        if self._out:
            room = max(0, MAX_OUT - len(self._out))
            self._out += data[:room]
            self.dropped += len(data) - min(room, len(data))
            return
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError:
            return
        if n < len(data):
            self._out += data[n : n + MAX_OUT]
            asyncio.get_running_loop().add_writer(self._master, self._flush)

    def _flush(self) -> None:
        assert self._master is not None
        try:
            n = os.write(self._master, self._out)
        except BlockingIOError:
            return
        del self._out[:n]
        if not self._out:
            asyncio.get_running_loop().remove_writer(self._master)

    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                # every slave fd closed (ours too): it would be "readable" with EIO for ever
                asyncio.get_running_loop().remove_reader(self._master)
                return
            raise
        self._on_data(data)
