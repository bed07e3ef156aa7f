"""A scripted modem on a real pseudo-terminal, for the Modem's own tests.

It speaks the bytes of 27.005/27.007 (``\\r\\nOK\\r\\n``, the ``\\r\\n> `` prompt, ``+CMGS: <mr>``,
``+CMTI``/``+CDS``/``RING``/``+CLIP``/``+CUSD`` URCs) over a pty the Modem opens by path. The
path is a symlink, so a test can "unplug" the modem (close the pty, remove the link) and plug
it back (a new pty behind the same path). Unlike the full emulator of ``gsm/`` it keeps every
command it saw in order, which the ordering tests (store before delete) read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tty
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Stored:
    stat: int
    pdu: str  # with the SMSC field

    @property
    def length(self) -> int:
        return len(self.pdu) // 2 - 1 - int(self.pdu[:2], 16)


@dataclass
class ModemScript:
    pin: str = ""  # "" : SIM ready; else "SIM PIN" until this PIN is given
    sim_inserted: bool = True
    csms: int = 0
    cnmi_ds2: bool = True  # accepts AT+CNMI=2,1,0,2,0
    model: str = "E3372"
    smsc: str = "+79168999100"
    storage: dict[int, Stored] = field(default_factory=dict)
    sr_storage: dict[int, Stored] = field(default_factory=dict)
    cmgs_answers: list[str] = field(default_factory=list)  # scripted finals for AT+CMGS
    silent_after_pdu: bool = False  # write the prompt, take the PDU, never answer
    ussd_reply: str = '+CUSD: 0,"C2303BEC1E97413D90B40E",15'


class PtyModem:
    def __init__(self, link: str, script: ModemScript | None = None) -> None:
        self.link = link
        self.s = script or ModemScript()
        self.log: list[str] = []  # every command line, in order
        self.sent: list[tuple[int, str]] = []  # (mr, pdu) of every AT+CMGS answered
        self.pin_tries = 0
        self.echo = True
        self._mr = 0
        self._master: int | None = None
        self._slave: int | None = None
        self._buf = bytearray()
        self._pdu_for: int | None = None  # AT+CMGS=<len> waiting for its PDU
        self._pin_ok = not self.s.pin
        self._mem = "SM"
        self.changed = asyncio.Event()
        self.on_command: Callable[[str], None] | None = None

    # -- plug ---------------------------------------------------------------------------------
    def plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        self._master, self._slave = master, slave
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link)
        os.symlink(os.ttyname(slave), self.link)
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self.echo = True

    def unplug(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.link)
        if self._master is not None:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
        if self._slave is not None:
            os.close(self._slave)
        self._master = self._slave = None
        self._buf.clear()
        self._pdu_for = None

    # -- output -------------------------------------------------------------------------------
    def write(self, data: str) -> None:
        if self._master is not None:
            os.write(self._master, data.encode())

    def urc(self, line: str) -> None:
        self.write(f"\r\n{line}\r\n")

    def _reply(self, *lines: str, final: str = "OK") -> None:
        out = "".join(f"\r\n{ln}\r\n" for ln in lines) + f"\r\n{final}\r\n"
        self.write(out)

    # -- input --------------------------------------------------------------------------------
    def _readable(self) -> None:
        assert self._master is not None
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        self._buf += data
        while True:
            if self._pdu_for is not None:
                end = self._buf.find(b"\x1a")
                if end < 0:
                    return
                pdu = self._buf[:end].decode(errors="replace").strip()
                del self._buf[: end + 1]
                self._got_pdu(pdu)
                continue
            end = self._buf.find(b"\r")
            if end < 0:
                return
            line = self._buf[:end].decode(errors="replace").strip()
            del self._buf[: end + 1]
            if line:
                if self.echo:
                    self.write(line + "\r")
                self._command(line)

    def _command(self, line: str) -> None:
        self.log.append(line)
        if self.on_command is not None:
            self.on_command(line)
        self.changed.set()
        up = line.upper()
        s = self.s
        if up == "ATE0":
            self.echo = False
            return self._reply()
        if up in ("AT", "AT+CMEE=1", "AT+CMGF=0", "AT+CLIP=1", "AT+CREG=1", "AT+CUSD=1"):
            return self._reply()
        if up == "AT+COPS=3,0":
            return self._reply()
        if up == "AT+CGMI":
            return self._reply("huawei")
        if up == "AT+CGMM":
            return self._reply(s.model)
        if up == "AT+CGSN":
            return self._reply("861234567890123")
        if up == "AT+CPIN?":
            if not s.sim_inserted:
                return self._reply(final="+CME ERROR: 10")
            return self._reply("+CPIN: READY" if self._pin_ok else "+CPIN: SIM PIN")
        if up.startswith("AT+CPIN="):
            self.pin_tries += 1
            if line.split("=", 1)[1].strip('"') == s.pin:
                self._pin_ok = True
                return self._reply()
            return self._reply(final="+CME ERROR: 16")
        if up.startswith("AT+CPMS="):
            self._mem = up.split("=", 1)[1].split(",")[0].strip('"')
            return self._reply("+CPMS: 0,20,0,20,0,20")
        if up == "AT+CSMS?":
            return self._reply(f"+CSMS: {s.csms},1,1,1")
        if up.startswith("AT+CNMI="):
            if up.endswith("2,1,0,2,0") and not s.cnmi_ds2:
                return self._reply(final="+CMS ERROR: 303")
            return self._reply()
        if up == "AT+CSCA?":
            return self._reply(f'+CSCA: "{s.smsc}",145')
        if up == "AT+CSQ":
            return self._reply("+CSQ: 21,99")
        if up == "AT+CREG?":
            return self._reply("+CREG: 1,1")
        if up == "AT+COPS?":
            return self._reply('+COPS: 0,0,"MTS RUS",2')
        if up == "AT+CMGL=4":
            lines = []
            for idx, m in sorted(self._store().items()):
                lines += [f"+CMGL: {idx},{m.stat},,{m.length}", m.pdu]
            return self._reply(*lines)
        if m := re.fullmatch(r"AT\+CMGR=(\d+)", up):
            st = self._store().get(int(m.group(1)))
            if st is None:
                return self._reply(final="+CMS ERROR: 321")
            return self._reply(f"+CMGR: {st.stat},,{st.length}", st.pdu)
        if m := re.fullmatch(r"AT\+CMGD=(\d+)", up):
            self._store().pop(int(m.group(1)), None)
            return self._reply()
        if re.fullmatch(r"AT\+CMGS=\d+", up):
            self._pdu_for = int(up.split("=")[1])
            self.write("\r\n> ")
            return None
        if up.startswith("AT+CUSD=1,"):
            self._reply()
            self.urc(s.ussd_reply)
            return None
        if up in ("AT+CUSD=2", "ATA", "AT+CNMA", "AT+CNMA=2"):
            return self._reply()
        return self._reply(final="ERROR")

    def _store(self) -> dict[int, Stored]:
        return self.s.sr_storage if self._mem == "SR" else self.s.storage

    def _got_pdu(self, pdu: str) -> None:
        self._pdu_for = None
        self.log.append(f"<pdu {pdu}>")
        self.changed.set()
        if self.s.silent_after_pdu:
            return
        if self.s.cmgs_answers:
            final = self.s.cmgs_answers.pop(0)
            if final != "OK":
                return self._reply(final=final)
        self._mr = (self._mr + 1) % 256
        self.sent.append((self._mr, pdu))
        self._reply(f"+CMGS: {self._mr}")

    async def wait_for(self, pred: Callable[[], bool], timeout: float = 10.0) -> None:
        async def loop() -> None:
            while not pred():
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout)
