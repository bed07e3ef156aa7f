"""Every fax backend is a line of the common lifecycle and a FaxBackend; the app builds the
configured kind for each [[fax]] table."""

from __future__ import annotations

from pathlib import Path

import pytest

from callcenter.app import _fax_line
from callcenter.config import ConfigError, FaxLineConfig, load_config
from callcenter.lines.lifecycle import Line


@pytest.mark.parametrize(("kind", "line_kind"), [
    ("asterisk", "fax-asterisk"), ("hylafax", "fax-hylafax"), ("loopback", "fax-loopback"),
    ("spandsp", "fax-spandsp")])
def test_each_kind_is_a_line(kind: str, line_kind: str, tmp_path: Path) -> None:
    line = _fax_line(FaxLineConfig(name="f", kind=kind), lambda event: None, tmp_path)
    assert isinstance(line, Line) and line.kind == line_kind
    assert callable(line.submit) and callable(line.cancel)


def test_fax_tables_in_the_config(tmp_path: Path) -> None:
    path = tmp_path / "callcenter.toml"
    path.write_text('[[fax]]\nname = "office-fax"\nkind = "hylafax"\nport = 4559\n'
                    'max_attempts = 5\n')
    config = load_config(path, env={"CALLCENTER_FAX_OFFICE_FAX_PASSWORD": "pw"})
    [fax] = config.fax
    assert (fax.kind, fax.max_attempts, fax.password) == ("hylafax", 5, "pw")
    path.write_text('[[fax]]\nname = "x"\nkind = "modem"\n')
    with pytest.raises(ConfigError, match=r"fax\[0\]\.kind"):
        load_config(path, env={})
    path.write_text('[[fax]]\nname = "x"\nsendfax_options = "f"\n')  # no status events
    with pytest.raises(ConfigError, match="sendfax_options"):
        load_config(path, env={})
    path.write_text('[[fax]]\nname = "x"\nchannel = "PJSIP/trunk"\n')
    with pytest.raises(ConfigError, match="channel"):
        load_config(path, env={})
    for bad, match in (('name = "../x"', "name"), ('name = "a b"', "name"),
                       ('name = "x"\nchannel = "PJSIP/{number}@t;rm"', "channel"),
                       ('name = "x"\nchannel = "PJSIP/{number}@t\\nAction: Hangup"',
                        "channel"),
                       ('name = "x"\ncaller_id = "Office\\r\\nAction: Hangup"', "caller_id"),
                       ('name = "x"\nheader = "A\\nB"', "header")):
        path.write_text(f"[[fax]]\n{bad}\n")
        with pytest.raises(ConfigError, match=match):
            load_config(path, env={})
