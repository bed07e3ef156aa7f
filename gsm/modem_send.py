"""One part out through ``AT+CMGS`` in PDU mode, and what each answer means for the pool.

TP-SRR is set, so ``+CMGS: <mr>`` is the key the part's status report comes back with. The
outcome is exact: refused (SmsSendError, permanent or not by the +CMS code), unknown (the PDU
left and no clear answer came: SmsSendUnknown, never re-sent), or not tried (LineUnavailable).
"""

from __future__ import annotations

from callcenter.errors import LineUnavailable
from callcenter.sms.ports import OutboundPart, SmsSendError, SmsSendUnknown

from . import modem_parse as mp
from . import pdu as pducodec
from .at import Final
from .modem_settings import ModemSettings
from .port import AtCommandError, AtPort, PortDown


def encode_part(part: OutboundPart) -> pducodec.EncodedPdu:
    try:
        return pducodec.submit_for_part(
            part.to, part.text, part.encoding, seq=part.seq, total=part.total,
            concat_ref=part.concat_ref, status_report=part.status_report,
        )  # fmt: skip
    except pducodec.PduError as exc:
        raise SmsSendError(f"cannot encode the part: {exc}", permanent=True) from None


def _pdu_written(exc: AtCommandError) -> bool:
    """Whether the PDU of the refused AT+CMGS had been written (an answer before the "> "
    prompt refuses the command, one after it may follow a sent SMS). An AT layer that does not
    say is taken as "written": unknown is the answer that never sends twice."""
    for holder in (exc, exc.response):
        flag = getattr(holder, "pdu_written", None)
        if flag is not None:
            return bool(flag)
    return True


async def send_encoded(
    port: AtPort, enc: pducodec.EncodedPdu, config: ModemSettings, line: str
) -> int:
    """The message reference of a part the modem took, or one of the three exceptions."""
    try:
        resp = await port.command(
            f"AT+CMGS={enc.tpdu_length}", pdu=enc.hex, timeout=config.send_timeout,
            prompt_timeout=config.command_timeout, expect=("+CMGS",), wait=False,
            may_fail=True,  # a refused number is an answer: no reason to reset the modem
        )  # fmt: skip
    except AtCommandError as exc:
        r = exc.response
        written = _pdu_written(exc)
        if r.final is Final.CMS_ERROR:
            code = mp.cms_code(r.code, r.final_text)
            reason, permanent = mp.cms_error(code, r.final_text)
            if mp.cms_outcome_unknown(code, pdu_written=written):
                raise SmsSendUnknown(f"{reason}: the part may have reached the SMSC") from None
            raise SmsSendError(reason, code=code, permanent=permanent) from None
        if written:  # ERROR, +CME ERROR after the PDU: nobody says whether it went out
            raise SmsSendUnknown(
                f"the modem answered {r.final_text[:40]} after the PDU was written: "
                "the part may have reached the SMSC"
            ) from None
        raise SmsSendError(f"modem refused AT+CMGS ({r.final_text})", code=r.code) from None
    except PortDown as exc:
        if exc.pdu_written:
            raise SmsSendUnknown(f"no answer after the PDU was written ({exc.reason})") from None
        raise LineUnavailable(f"modem {line}: {exc.reason}") from None
    args = resp.first("+CMGS")
    if not args or not args[0].isdigit():
        raise SmsSendUnknown("the modem said OK without a message reference")
    return int(args[0])
