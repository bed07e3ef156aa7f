"""``Line.check()`` of a modem: AT, identity and SIM state, disturbing nothing that runs."""

from __future__ import annotations

import asyncio
import os

from callcenter.lines.lifecycle import CheckResult

from .modem_parse import first_value
from .modem_settings import ModemSettings
from .port import AtCommandError, AtPort, AtPortError


async def check_running(port: AtPort, command_timeout: float) -> CheckResult:
    """On the modem's own port: the questions queue behind its work like any command."""
    if not port.is_up:
        st = port.status()
        return CheckResult(False, "modem not answering", {"state": st.state.value},
                           error=st.reason or "down", hint="is it plugged in?")  # fmt: skip
    return await _ask_all(port, command_timeout)


async def check_cold(c: ModemSettings) -> CheckResult:
    """A modem not started (the admin's "Test connection"): a port opened for the test only."""
    if not os.path.exists(c.path):
        return CheckResult(False, "device not found", error=f"{c.path} does not exist",
                           hint="plug the modem in, or check the device path")  # fmt: skip
    temp = AtPort(c.path, name=f"{c.name} (check)", baudrate=c.baudrate,
                  backoff_initial=c.backoff_initial, backoff_max=c.backoff_max)  # fmt: skip
    await temp.start()
    try:
        try:
            await asyncio.wait_for(temp.wait_up(), c.check_timeout)
        except TimeoutError:
            st = temp.status()
            return CheckResult(False, "modem not answering", error=st.reason or "no answer",
                               hint="check the port path and baud rate")  # fmt: skip
        return await _ask_all(temp, c.command_timeout)
    finally:
        await temp.stop()


async def _ask_all(port: AtPort, t: float) -> CheckResult:
    facts: dict[str, str] = {}

    async def ask(cmd: str, key: str) -> AtCommandError | None:
        try:
            resp = await port.command(cmd, timeout=t, may_fail=True)
        except AtCommandError as exc:
            return exc
        facts[key] = first_value(resp.lines)
        return None

    try:
        await ask("AT+CGMI", "manufacturer")
        await ask("AT+CGMM", "model")
        await ask("AT+CGSN", "IMEI")
        sim_err = await ask("AT+CPIN?", "SIM")
    except AtPortError as exc:
        return CheckResult(False, "modem stopped answering", facts, error=str(exc))
    if sim_err is not None:
        facts["SIM"] = sim_err.response.final_text
        return CheckResult(False, "modem answers, SIM not usable", facts,
                           error=sim_err.response.final_text,
                           hint="insert the SIM card, or check it in a phone")  # fmt: skip
    if facts.get("SIM") != "READY":
        return CheckResult(False, "modem answers, SIM locked", facts,
                           error=f"SIM says {facts.get('SIM')!r}",
                           hint="set the SIM PIN in the modem's settings")  # fmt: skip
    summary = " ".join(v for v in (facts.get("manufacturer"), facts.get("model")) if v)
    return CheckResult(True, summary or "modem answers", facts)
