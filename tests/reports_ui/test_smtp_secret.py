"""The SMTP password is kept like a line's secrets: in a table apart from the settings (so no
listing of settings can return it), and dropped when the server it was for changes."""

from __future__ import annotations

from callcenter.audit.model import CLI
from callcenter.reports.mailer import SmtpSettings
from callcenter.reports.scheduling import SMTP_SETTING, ReportSchedules


class Audit:
    def __init__(self) -> None:
        self.entries: list[tuple] = []

    async def record_by(self, who, action, kind, target, before, after):
        self.entries.append((action, kind, before, after))


async def test_password_kept_apart_from_settings_and_bound_to_the_server(store) -> None:
    schedules = ReportSchedules(store, Audit(), SmtpSettings(port=25))
    await schedules.update_smtp(CLI, {"host": "mail.example.com", "user": "reports",
                                      "password": "s3cret-pw",
                                      "from_address": "reports@example.com"})
    settings = await store.get_settings()
    assert "s3cret-pw" not in repr(settings) and "password" not in settings[SMTP_SETTING]
    assert (await schedules.smtp()).password == "s3cret-pw"
    # another field, no password sent: the stored one is kept
    await schedules.update_smtp(CLI, {"starttls": False})
    assert (await schedules.smtp()).password == "s3cret-pw"
    # another server, no new password: the old one is not sent to it
    await schedules.update_smtp(CLI, {"host": "elsewhere.example.net"})
    assert (await schedules.smtp()).password == ""
    await schedules.update_smtp(CLI, {"password": "n3w-pw"})
    assert (await schedules.smtp()).password == "n3w-pw"


async def test_a_password_left_in_the_settings_by_an_older_build_moves_apart(store) -> None:
    await store.set_setting(SMTP_SETTING, {"host": "mail.example.com", "password": "old-pw"})
    schedules = ReportSchedules(store, Audit(), SmtpSettings())
    assert (await schedules.smtp()).password == "old-pw"
    await schedules.update_smtp(CLI, {"starttls": False})
    assert "old-pw" not in repr(await store.get_settings())
    assert (await schedules.smtp()).password == "old-pw"
