"""The e-mail of a scheduled report: an HTML and text body listing each report's totals, the
reports attached as XLSX and CSV, sent over SMTP with aiosmtplib (asyncio-native, so the loop
never blocks on a slow mail server)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib

from callcenter.reports import export
from callcenter.reports.export import Translate


@dataclass(frozen=True)
class SmtpSettings:
    host: str = ""
    port: int = 587
    user: str = ""
    password: str = field(default="", repr=False)
    starttls: bool = True
    ssl: bool = False
    from_address: str = ""
    timeout: float = 30.0

    @property
    def configured(self) -> bool:
        return bool(self.host and self.from_address)

    def public(self) -> dict[str, Any]:
        """What the admin page shows: never the password, only whether one is set."""
        data = asdict(self)
        data.pop("password")
        data["password_set"] = bool(self.password)
        return data

    def merged(self, stored: Mapping[str, Any] | None) -> SmtpSettings:
        """The TOML's values with the admin page's (stored) ones over them."""
        if not stored:
            return self
        known = {k: v for k, v in stored.items() if k in asdict(self)}
        return replace(self, **known)


class MailError(Exception):
    """The mail server refused or could not be reached; the text is safe to show."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


def build_message(*, settings: SmtpSettings, recipients: Sequence[str], subject: str,
                  reports: Sequence[Mapping[str, Any]], translate: Translate,
                  message_id: str, intro: str) -> EmailMessage:
    """``reports``: each a ``ReportResult.to_json()``; each attached as XLSX and CSV."""
    msg = EmailMessage()
    msg["From"] = settings.from_address
    msg["To"] = ", ".join(recipients)
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    # The same id for the same schedule and period: a mail sent again after a crash is
    # recognisably the same one.
    msg["Message-ID"] = message_id
    text_lines = [intro, ""]
    html_parts = [f"<p>{html.escape(intro)}</p>"]
    for report in reports:
        title = translate(f"report.name.{report['name']}")
        period = export.period_text(report)
        text_lines.append(f"{title} ({period})")
        html_parts.append(f"<h2>{html.escape(title)} <small>({html.escape(period)})</small></h2>")
        rows = export.summary_lines(report, translate)
        html_parts.append("<table>")
        for label, value in rows:
            text_lines.append(f"  {label}: {value}")
            html_parts.append(f"<tr><th align=\"left\">{html.escape(label)}</th>"
                              f"<td align=\"right\">{html.escape(value)}</td></tr>")
        html_parts.append("</table>")
        text_lines.append("")
    msg.set_content("\n".join(text_lines))
    msg.add_alternative("<!doctype html><html><body>" + "".join(html_parts) + "</body></html>",
                        subtype="html")
    for report in reports:
        for attachment in attachments(report, translate):
            maintype, _, subtype = attachment.content_type.partition(";")[0].partition("/")
            params = {"charset": "utf-8"} if maintype == "text" else {}
            msg.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                               filename=attachment.filename, params=params)
    return msg


def attachments(report: Mapping[str, Any], translate: Translate) -> list[Attachment]:
    return [Attachment(export.filename(report, "xlsx"), export.XLSX_TYPE,
                       export.to_xlsx(report, translate)),
            Attachment(export.filename(report, "csv"), "text/csv",
                       export.to_csv(report, translate))]


async def send(settings: SmtpSettings, message: EmailMessage) -> None:
    if not settings.configured:
        raise MailError("no mail server is set up: fill in the SMTP settings on the "
                        "scheduled reports page (or [smtp] in the configuration file)")
    try:
        await aiosmtplib.send(
            message, hostname=settings.host, port=settings.port,
            username=settings.user or None, password=settings.password or None,
            use_tls=settings.ssl, start_tls=settings.starttls and not settings.ssl,
            timeout=settings.timeout)
    except (aiosmtplib.SMTPConnectError, aiosmtplib.SMTPConnectTimeoutError,
            aiosmtplib.SMTPServerDisconnected) as exc:
        raise MailError(f"cannot reach the mail server {settings.host}:{settings.port}: "
                        f"{str(exc)[:300]}") from exc
    except aiosmtplib.SMTPException as exc:
        # aiosmtplib's messages hold the server's reply, never our password.
        raise MailError(f"the mail server {settings.host}:{settings.port} refused: "
                        f"{str(exc)[:300]}") from exc
    except OSError as exc:
        raise MailError(f"cannot reach the mail server {settings.host}:{settings.port}: "
                        f"{exc.strerror or exc}") from exc
