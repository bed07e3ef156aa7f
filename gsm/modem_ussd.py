"""USSD on a modem: one request at a time, ``AT+CUSD=1,…`` then the ``+CUSD`` URC with the
reply (which may also come unasked: a network notice), decoded whatever its encoding."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from callcenter.errors import LineUnavailable
from callcenter.sms.events import UssdReply
from callcenter.sms.ports import UssdError

from . import modem_parse as mp
from .at import Urc
from .port import AtCommandError, AtPort, AtPortError, PortDown
from .ussd import UssdMode, decode_reply, encode_request


class UssdClient:
    def __init__(
        self,
        line: str,
        *,
        mode: UssdMode,
        command_timeout: float,
        on_reply: Callable[[UssdReply], None],
    ) -> None:
        self.line = line
        self.mode = mode
        self.command_timeout = command_timeout
        self._on_reply = on_reply  # every +CUSD, asked for or not
        self._lock = asyncio.Lock()
        self._waiter: asyncio.Future[UssdReply] | None = None

    async def request(self, port: AtPort, code: str, timeout: float) -> UssdReply:
        mode = self.mode
        try:
            request, dcs = encode_request(code, UssdMode.PACKED if mode is UssdMode.AUTO else mode)
        except ValueError as exc:
            raise UssdError(str(exc)) from None
        async with self._lock:
            fut: asyncio.Future[UssdReply] = asyncio.get_running_loop().create_future()
            self._waiter = fut
            try:
                await port.command(f'AT+CUSD=1,"{request}",{dcs}', expect=("+CUSD",),
                                   timeout=self.command_timeout, wait=False,
                                   may_fail=True)  # fmt: skip
                reply = await asyncio.wait_for(fut, timeout)
            except AtCommandError as exc:
                reason = exc.response.final_text
                raise UssdError(f"the modem refused the USSD request ({reason})") from None
            except PortDown as exc:
                raise LineUnavailable(f"modem {self.line}: {exc.reason}") from None
            except TimeoutError:
                await self._end_session(port)
                raise UssdError(f"no USSD reply within {timeout:g} s") from None
            finally:
                self._waiter = None
            if reply.status == 1:
                # a menu waiting for our choice: we do not navigate menus, and an open session
                # blocks the next request on many networks
                await self._end_session(port)
        if reply.status == 4:
            raise UssdError("the network does not support this USSD request")
        if reply.status == 5 or (reply.status == 2 and not reply.text):
            raise UssdError("the network ended the USSD session without an answer")
        return reply

    async def _end_session(self, port: AtPort) -> None:
        with contextlib.suppress(AtPortError):
            await port.command("AT+CUSD=2", timeout=self.command_timeout, check=False,
                               may_fail=True, wait=False)  # fmt: skip

    def on_cusd(self, urc: Urc) -> None:
        c = mp.cusd(urc.args)
        text = decode_reply(c.text, c.dcs, self.mode) if c.text else ""
        reply = UssdReply(line=self.line, text=text, status=c.status, dcs=c.dcs)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
        self._on_reply(reply)
