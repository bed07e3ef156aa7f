"""The AT commands the emulated modem answers, one small handler each (see ``gsm/emulator.py``).

A handler returns ``(information lines, final code)``, or None when it wrote everything itself
(``AT+CMGS`` cancelled with ESC, a command swallowed by a fault).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from gsm import emulator_pdu as P
from gsm.at import split_values

if TYPE_CHECKING:
    from gsm.emulator import ModemEmulator

Reply = tuple[list[str], str] | None
Handler = Callable[["ModemEmulator", str], Awaitable[Reply]]
_NEEDS_SIM = {"AT+CMGS", "AT+CMGL", "AT+CMGR", "AT+CMGD", "AT+CPMS", "AT+CUSD", "AT+CSCA",
              "AT+CIMI", "AT+CNMI"}  # fmt: skip
_H: dict[str, Handler] = {}


def _on(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            _H[n] = fn
        return fn

    return deco


async def handle(m: ModemEmulator, name: str, rest: str, upper: str) -> Reply:
    if name in m.fam.unsupported:
        return [], m.fam.unknown
    if name in _NEEDS_SIM and not m.state.pin_ok:
        return m._cme(11, "SIM PIN required")
    h = _H.get(name)
    if h is None:
        if name in m.fam.vendor:
            if name == "AT^CURC":
                m.state.curc = rest.strip("= ") != "0"
            return [], "OK"
        return [], m.fam.unknown
    return await h(m, rest)


def _args(rest: str) -> list[str]:
    return split_values(rest[1:] if rest.startswith("=") else rest)


def _set_int(rest: str, default: int = 0) -> int:
    a = _args(rest)
    return int(a[0]) if a and a[0].isdigit() else default


@_on("AT", "ATZ", "ATS", "AT+CMMS")
async def _ok(m: ModemEmulator, rest: str) -> Reply:
    return [], "OK"


@_on("ATE")
async def _echo(m: ModemEmulator, rest: str) -> Reply:
    m.state.echo = rest.strip() == "1"  # V.250: a missing value is 0, bare ATE is ATE0
    return [], "OK"


# V.250 settings every product sends in its init: only the values the emulator behaves as
# (verbose, non-quiet result codes) are accepted; ATV0/ATQ1 would change what it writes.
_V250 = {"ATV": ("1",), "ATQ": ("", "0"), "ATX": ("", "0", "1", "2", "3", "4")}


def _v250(values: tuple[str, ...]) -> Handler:
    async def handler(m: ModemEmulator, rest: str) -> Reply:
        return [], "OK" if rest.strip() in values else "ERROR"

    return handler


for _name, _values in _V250.items():
    _H[_name] = _v250(_values)


@_on("ATI")
async def _ati(m: ModemEmulator, rest: str) -> Reply:
    f, c = m.fam, m.config
    if f.huawei_ati:
        return [f"Manufacturer: {f.manufacturer}", f"Model: {f.model}", f"Revision: {f.revision}",
                f"IMEI: {c.imei}", "+GCAP: +CGSM,+DS,+ES"], "OK"  # fmt: skip
    return [f.manufacturer, f.model, f.revision], "OK"


@_on("AT+CGMI", "AT+GMI")
async def _cgmi(m: ModemEmulator, rest: str) -> Reply:
    return [m.fam.manufacturer], "OK"


@_on("AT+CGMM", "AT+GMM")
async def _cgmm(m: ModemEmulator, rest: str) -> Reply:
    return [m.fam.model], "OK"


@_on("AT+CGMR", "AT+GMR")
async def _cgmr(m: ModemEmulator, rest: str) -> Reply:
    return [m.fam.revision], "OK"


@_on("AT+CGSN", "AT+GSN")
async def _cgsn(m: ModemEmulator, rest: str) -> Reply:
    return [m.config.imei], "OK"


@_on("AT+CIMI")
async def _cimi(m: ModemEmulator, rest: str) -> Reply:
    return [m.config.imsi], "OK"


@_on("AT+CMEE")
async def _cmee(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return [f"+CMEE: {m.state.cmee}"], "OK"
    m.state.cmee = _set_int(rest)
    return [], "OK"


@_on("AT+CPIN")
async def _cpin(m: ModemEmulator, rest: str) -> Reply:
    st = m.state
    if rest == "?":
        return [f"+CPIN: {'READY' if st.pin_ok else 'SIM PIN'}"], "OK"
    if st.pin_ok:
        return m._cme(3, "operation not allowed")
    if _args(rest)[0] != m.config.pin:
        return m._cme(16, "incorrect password")
    st.pin_ok = True
    if m.fam.cpin_ready_urc:
        asyncio.get_running_loop().call_soon(m.urc, "+CPIN: READY")
    return [], "OK"


@_on("AT+CSQ")
async def _csq(m: ModemEmulator, rest: str) -> Reply:
    return [f"+CSQ: {m.config.rssi},99"], "OK"


def _stat(m: ModemEmulator) -> int:
    return 1 if m.config.registered and m.state.pin_ok else 0


@_on("AT+CREG", "AT+CGREG", "AT+CEREG")
async def _creg(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        prefix = m.commands[-1][2:]
        if m.state.creg_n >= 2:
            return [f'{prefix}: {m.state.creg_n},{_stat(m)},"00A1","1B2C",7'], "OK"
        return [f"{prefix}: {m.state.creg_n},{_stat(m)}"], "OK"
    m.state.creg_n = _set_int(rest)
    return [], "OK"


@_on("AT+COPS")
async def _cops(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        if _stat(m):
            return [f'+COPS: 0,0,"{m.config.operator}",7'], "OK"
        return ["+COPS: 0"], "OK"
    if rest == "=?":
        return [f'+COPS: (2,"{m.config.operator}","MTS","25001",7),,(0-4),(0-2)'], "OK"
    return [], "OK"


@_on("AT+CSCA")
async def _csca(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return [f'+CSCA: "{m.config.smsc}",145'], "OK"
    m.config.smsc = _args(rest)[0]
    return [], "OK"


@_on("AT+CMGF")
async def _cmgf(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return [f"+CMGF: {m.state.cmgf}"], "OK"
    m.state.cmgf = _set_int(rest)
    return [], "OK"


@_on("AT+CSCS")
async def _cscs(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return [f'+CSCS: "{m.state.cscs}"'], "OK"
    m.state.cscs = _args(rest)[0].upper()
    return [], "OK"


@_on("AT+CSMS")
async def _csms(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return [f"+CSMS: {m.state.csms},1,1,1"], "OK"
    m.state.csms = 1 if _set_int(rest) == 1 else 0
    return ["+CSMS: 1,1,1"], "OK"


@_on("AT+CNMA")
async def _cnma(m: ModemEmulator, rest: str) -> Reply:
    if m.state.csms != 1:
        return [], "OK"  # phase 2 (CSMS=0): nothing to acknowledge, accepted anyway
    return [], "OK" if m.acknowledge() else "+CMS ERROR: 340"


@_on("AT+CFUN")
async def _cfun(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return ["+CFUN: 1"], "OK"
    return [], "OK"


@_on("AT+CNMI")
async def _cnmi(m: ModemEmulator, rest: str) -> Reply:
    st = m.state
    if rest == "?":
        return [f"+CNMI: {st.cnmi_mode},{st.cnmi_mt},{st.cnmi_bm},{st.cnmi_ds},{st.cnmi_bfr}"], "OK"
    old = [st.cnmi_mode, st.cnmi_mt, st.cnmi_bm, st.cnmi_ds, st.cnmi_bfr]
    given = _args(rest)[:5]
    # an omitted value keeps its setting (AT+CNMI=2,1 leaves <ds> alone)
    a = [int(x) if x.isdigit() else old[i] for i, x in enumerate(given)] + old[len(given) :]
    st.cnmi_mode, st.cnmi_mt, st.cnmi_bm, st.cnmi_ds, st.cnmi_bfr = a
    asyncio.get_running_loop().call_soon(m.flush_reports)
    return [], "OK"


@_on("AT+CPMS")
async def _cpms(m: ModemEmulator, rest: str) -> Reply:
    n, cap = len(m.sim), m.config.sim_slots
    if rest == "?":
        return [f'+CPMS: "SM",{n},{cap},"SM",{n},{cap},"SM",{n},{cap}'], "OK"
    return [f"+CPMS: {n},{cap},{n},{cap},{n},{cap}"], "OK"


@_on("AT+CMGL")
async def _cmgl(m: ModemEmulator, rest: str) -> Reply:
    want = _set_int(rest, 0)  # 27.005: no <stat> is 0, "received unread", in PDU mode
    lines: list[str] = []
    for i in sorted(m.sim):
        slot = m.sim[i]
        if want != 4 and slot.stat != want:
            continue
        lines += [f"+CMGL: {i},{slot.stat},,{P.tpdu_length(slot.pdu)}", slot.pdu]
        if slot.stat == 0:
            slot.stat = 1
    return lines, "OK"


@_on("AT+CMGR")
async def _cmgr(m: ModemEmulator, rest: str) -> Reply:
    slot = m.sim.get(_set_int(rest, -1))
    if slot is None:
        return [], "+CMS ERROR: 321"
    lines = [f"+CMGR: {slot.stat},,{P.tpdu_length(slot.pdu)}", slot.pdu]
    slot.stat = 1
    return lines, "OK"


@_on("AT+CMGD")
async def _cmgd(m: ModemEmulator, rest: str) -> Reply:
    a = _args(rest)
    flag = int(a[1]) if len(a) > 1 and a[1].isdigit() else 0
    if flag == 4:
        m.sim.clear()
    elif flag >= 1:
        for i in [i for i, s in m.sim.items() if s.stat == 1]:
            del m.sim[i]
    else:
        m.sim.pop(_set_int(rest, -1), None)
    return [], "OK"


@_on("AT+CMGS")
async def _cmgs(m: ModemEmulator, rest: str) -> Reply:
    if m.state.cmgf != 0:
        return [], "+CMS ERROR: 302"  # text mode: not emulated
    length = _set_int(rest, -1)
    inject = m._take_fault("AT+CMGS", "urc_in_prompt")
    late = m._take_fault("AT+CMGS", "late")
    if late is not None:
        await asyncio.sleep(late.after)
    if inject is not None:
        m._write(b"\r\n>\r\n" + inject.text.encode() + b"\r\n ")
    else:
        m._write(b"\r\n> ")
    body = await m.read_text()
    if body is None:
        return None  # ESC: nothing sent, nothing answered
    pdu = body.decode("ascii", errors="replace").strip()
    m.received_pdus.append(pdu)
    m.changed.set()
    try:
        sub = P.decode_submit(pdu)
    except P.PduError:
        return [], "+CMS ERROR: 304"
    if sub.tpdu_length != length:
        return [], "+CMS ERROR: 304"
    await asyncio.sleep(m.config.delay(m.config.send_time))
    err = m._take_fault("AT+CMGS", "error")
    if err is not None:
        return [], err.text  # refused by the network: not sent
    mr = m._record_sent(sub, pdu)
    if m._take_fault("AT+CMGS", "lost_answer"):
        return None  # sent, but the answer never reaches the DTE
    return [f"+CMGS: {mr}"], "OK"


@_on("AT+CLIP")
async def _clip(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return [f"+CLIP: {int(m.state.clip)},1"], "OK"
    m.state.clip = _set_int(rest) == 1
    return [], "OK"


@_on("ATA")
async def _ata(m: ModemEmulator, rest: str) -> Reply:
    call = m._call
    if call is None or call.ended or call.answered:
        return [], "NO CARRIER"
    call.answered = True
    if m.fam.huawei_calls:
        asyncio.get_running_loop().call_soon(m.urc, "^CONN:1,0")
    if m.fam.call_answered:
        asyncio.get_running_loop().call_soon(m.urc, m.fam.call_answered)
    return [], "OK"


@_on("ATH", "AT+CHUP")
async def _hangup(m: ModemEmulator, rest: str) -> Reply:
    call = m._call
    if call is not None and not call.ended:
        call.ended = True
        if m.fam.huawei_calls:
            asyncio.get_running_loop().call_soon(m.urc, "^CEND:1,0,104,16")
        if m.fam.call_released:
            asyncio.get_running_loop().call_soon(m.urc, m.fam.call_released)
    return [], "OK"


@_on("ATD")
async def _dial(m: ModemEmulator, rest: str) -> Reply:
    if not rest.endswith(";"):
        return [], "NO CARRIER"  # a data call: not emulated
    if m.fam.huawei_calls:
        loop = asyncio.get_running_loop()
        loop.call_soon(m.urc, "^ORIG:1,0")
        loop.call_soon(m.urc, "^CONF:1")
    return [], "OK"


def _ussd_request(raw: str) -> str:
    """Huawei sends the request as packed GSM 7-bit hex; others as text."""
    if re.fullmatch(r"(?:[0-9A-F]{2})+", raw) and not re.fullmatch(r"[*#0-9]+", raw):
        data = bytes.fromhex(raw)
        text = P.septets_text(P.unpack7(data, len(data) * 8 // 7))
        text = text.rstrip("@\r")
        if re.fullmatch(r"[*#0-9]+", text):
            return text
    return raw


def encode_ussd(text: str, encoding: str) -> tuple[str, int]:
    """The quoted string and DCS of a +CUSD reply in the family's encoding."""
    septets = P.gsm7_septets(text)
    if encoding == "ucs2" or (septets is None and encoding == "gsm7-packed"):
        return text.encode("utf-16-be").hex().upper(), 72
    if encoding == "gsm7-packed":
        assert septets is not None
        return P.pack7(septets).hex().upper(), 15
    return text.replace("\n", "\r\n"), 15


@_on("AT+CUSD")
async def _cusd(m: ModemEmulator, rest: str) -> Reply:
    if rest == "?":
        return ["+CUSD: 1"], "OK"
    a = _args(rest)
    if a[0] == "2" or len(a) < 2:
        return [], "OK"
    code = _ussd_request(a[1].upper())
    reply = m.config.ussd_replies.get(code)

    async def answer() -> None:
        await asyncio.sleep(m.config.delay(m.config.ussd_delay))
        if reply is None:
            m.urc("+CUSD: 4")
            return
        enc = m.config.ussd_encoding or m.fam.ussd_encoding
        s, dcs = encode_ussd(reply, enc)
        m.urc(f'+CUSD: 0,"{s}",{dcs}')

    m._spawn(answer())
    return [], "OK"
