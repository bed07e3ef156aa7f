from __future__ import annotations

import json
from pathlib import Path

import pytest

from callcenter.config import ConfigError, PbxLineConfig, load_config

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cc.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None, env={})
    assert config.server.port == 8080
    assert config.phones.default_region == "RU"
    assert config.phones.match_digits == 10
    assert config.pbx == []


def test_shipped_example_is_valid_and_documents_every_section() -> None:
    example = REPO / "callcenter.example.toml"
    config = load_config(example, env={})
    text = example.read_text(encoding="utf-8")
    for section in ("[server]", "[store]", "[phones]", "[console]", "[recordings]", "[demo]",
                    "[[pbx]]"):
        assert section in text
    assert config.pbx and config.pbx[0].name


def test_values_from_file_and_relative_data_dir(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nport = 9000\n[store]\ndata_dir = "d"\n'
                           '[[pbx]]\nname = "office"\nhost = "10.0.0.5"\n')
    config = load_config(path, env={})
    assert config.server.port == 9000
    assert config.database_path == tmp_path / "d" / "callcenter.db"
    assert config.pbx[0].host == "10.0.0.5"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nport = 'x'\n", "server.port must be a whole number"),
        ("[server]\nprot = 1\n", "unknown key server.prot"),
        ("[srever]\n", "unknown section [srever]"),
        ("[phones]\nmatch_digits = 3\n", "phones.match_digits must be between 7 and 15"),
        ("[phones]\ndefault_region = 'Russia'\n", "phones.default_region"),
        ("[[pbx]]\nport = true\n", "pbx[0].port must be a whole number"),
        ("[[pbx]]\nname='a'\n[[pbx]]\nname='a'\n", "pbx line names must be unique"),
        ("[server\n", "not valid TOML"),
        ("pbx = 1\n", "[pbx] must be a list"),
    ],
)
def test_bad_values_name_the_key_and_the_file(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert expected in str(err.value)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[[pbx]]\nname = "Office 1"\nsecret = "in-file"\n')
    config = load_config(path, env={
        "CALLCENTER_PBX_OFFICE_1_SECRET": "from-env",
        "CALLCENTER_SERVER_SECRET_KEY": "k" * 40,
        "CALLCENTER_SERVER_PORT": "8099",
        "CALLCENTER_CONSOLE_MANAGERS_SEE_ALL_CLIENTS": "yes",
    })
    assert config.pbx[0].secret == "from-env"
    assert config.server.secret_key == "k" * 40
    assert config.server.port == 8099
    assert config.console.managers_see_all_clients is True


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError, match="CALLCENTER_SERVER_PORT"):
        load_config(None, env={"CALLCENTER_SERVER_PORT": "eighty"})


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, "[[pbx]]\nsecret = 73194242\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert "pbx[0].secret must be a string" in str(err.value)
    assert "73194242" not in str(err.value)


@pytest.mark.parametrize(("key", "value", "words"), [
    ("callback_on", "sometimes", "callback_on must be one of"),
    ("dial_format", "local", "dial_format must be one of"),
    ("dial_prefix", "9;", "dial_prefix must be"),
    ("international_prefix", "00x", "international_prefix must be"),
    ("originate_channel", "Local/101@from-internal", "originate_channel must be"),
    ("originate_channel", "PJSIP/{ext}\r\nAction: Hangup", "originate_channel must be"),
    ("withheld_timeout", 0.0, "withheld_timeout must be"),
])
def test_bad_line_call_handling_values_are_refused(tmp_path: Path, key: str, value: object,
                                                   words: str) -> None:
    path = write(tmp_path, f'[[pbx]]\nname = "office"\n{key} = {json.dumps(value)}\n')
    with pytest.raises(ConfigError, match=words):
        load_config(path, env={})


def test_line_call_handling_defaults() -> None:
    line = PbxLineConfig()
    assert (line.callback_on, line.withheld_getvar, line.withheld_timeout, line.dial_format,
            line.dial_prefix, line.originate_channel) == (
        "waited_or_voicemail", True, 0.3, "as_entered", "", "")
