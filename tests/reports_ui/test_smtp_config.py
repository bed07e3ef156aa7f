"""[smtp]: the password from the environment, never in a repr; the admin page's stored values
over the file's; the public view without the password."""

from __future__ import annotations

from callcenter.config import load_config
from callcenter.reports.scheduling import smtp_defaults


def test_password_from_env_hidden_and_merged(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[smtp]\nhost = "mail.example.com"\nfrom_address = "r@example.com"\n')
    config = load_config(path, env={"CALLCENTER_SMTP_PASSWORD": "env-secret"})
    assert config.smtp.password == "env-secret"
    assert "env-secret" not in repr(config.smtp)
    settings = smtp_defaults(config.smtp)
    assert settings.configured and "env-secret" not in repr(settings)
    merged = settings.merged({"port": 2525, "unknown": 1})
    assert (merged.host, merged.port, merged.password) == ("mail.example.com", 2525,
                                                           "env-secret")
    public = merged.public()
    assert "password" not in public and public["password_set"] is True
