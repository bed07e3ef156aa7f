"""[sms] and [[gsm]] in the configuration file."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.config import ConfigError, load_config
from callcenter.sms.runtime import limits_of


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callcenter.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_gsm_tables_and_the_pin_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, """
[sms]
timezone = "Europe/Moscow"
templates = ["Hello {contact.first_name}"]

[[gsm]]
name = "gsm1"
device = "/dev/ttyUSB2"
per_minute = 4
window_start = "08:00"
window_end = "21:00"

[[gsm]]
name = "gsm2"
device = "/dev/ttyUSB5"
""")
    config = load_config(path, env={"CALLCENTER_GSM_GSM1_PIN": "1234"})
    assert [m.name for m in config.gsm] == ["gsm1", "gsm2"]
    assert config.gsm[0].pin == "1234" and config.gsm[1].pin == ""
    limits = limits_of(config.gsm[0])
    assert limits.per_minute == 4 and limits.window is not None
    assert limits_of(config.gsm[1]).window is None
    assert config.sms.templates == ["Hello {contact.first_name}"]
    assert "1234" not in repr(config)


@pytest.mark.parametrize("body,needle", [
    ('[[gsm]]\nname = "a"\ndevice = "/dev/x"\nwindow_start = "08:00"', "window_start"),
    ('[[gsm]]\nname = "a"\ndevice = "/dev/x"\nwindow_start = "8am"\nwindow_end = "9pm"',
     "08:00"),
    ('[[gsm]]\nname = "a"\ndevice = ""', "device"),
    ('[[gsm]]\nname = "a"\ndevice = "/x"\n[[gsm]]\nname = "a"\ndevice = "/y"', "unique"),
    ('[sms]\ntimezone = "Mars/Olympus"', "time zone"),
    ('[[gsm]]\nname = "a"\ndevice = "/x"\npin = "12"', "4 to 8 digits"),
    ('[gsm]\nname = "a"', "[[gsm]]"),
])
def test_bad_sms_settings_are_named(tmp_path: Path, body: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, body), env={})
    assert needle in str(caught.value)


def test_a_pin_of_the_wrong_type_is_not_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, '[[gsm]]\nname = "a"\ndevice = "/x"\npin = 98765'),
                    env={})
    assert "98765" not in str(caught.value) and "hidden" in str(caught.value)
