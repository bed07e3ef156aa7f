"""Presence merges what watching lines know (offline phones, a manager's own call) under the
registry's view of its calls; a line without presence, or one that fails, changes nothing."""

from __future__ import annotations

from callcenter.lines.presence import merged_presence


class Watching:
    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    def presence(self) -> dict[str, str]:
        return self.states


class Broken:
    def presence(self) -> dict[str, str]:
        raise RuntimeError("boom")


def test_lines_fill_in_and_calls_win() -> None:
    lines = [Watching({"101": "offline", "102": "busy", "103": "free", "104": "weird"}),
             object(), Broken()]
    assert merged_presence({"102": "ringing", "105": "busy"}, lines) == {
        "101": "offline", "102": "ringing", "105": "busy"}


def test_no_lines() -> None:
    assert merged_presence({"101": "busy"}, []) == {"101": "busy"}
