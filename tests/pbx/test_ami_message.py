"""Lazily read AMI headers give the same answers as the dict of every line, parsed eagerly."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pbx.ami.codec import parse_message
from pbx.ami.message import Message, _collect, _parse_pairs
from pbx.ami.trace import BlockKind
from tests.pbx.conftest import load, trace_names

KEYS = ["Event", "Uniqueid", "DestUniqueid", "Linkedid", "Channel", "Value", "Variable",
        "ActionID", "Response", "Output", "FileName", "", " Uniqueid", "Uniqueid ", "A\nB"]

# Lines built from pieces that make the lazy reader's corner cases likely: keys inside other
# keys, whitespace around keys (ASCII and not), lone CR/LF, colons in values, repeats.
piece = st.sampled_from(["Event", "Uniqueid", "DestUniqueid", "Value", "Variable", "ActionID",
                         ":", ": ", " ", "\t", "\x0b", "\x1f", "\u00a0", "\u3000", "\r", "\n",
                         "x", "1.2", "Ромашка", "Output"])
line = st.lists(piece, max_size=6).map("".join)
block = st.lists(line, max_size=8).map("\r\n".join)


def eager(text: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    return _collect(_parse_pairs(text))


@settings(max_examples=3000, deadline=None)
@given(block)
@example(" Uniqueid: a\r\nUniqueid: b")
@example("DestUniqueid: a\r\nUniqueid \t: b\r\nUniqueid: c")
@example("Event: X\r\n\nUniqueid: a\r\nUniqueid: b")
@example("Event: X\r\nUniqueid\u3000: a\r\nUniqueid: b")
@example("Value: v\r\nOutput: 1\r\nOutput: 2\r\nno colon here")
def test_lazy_headers_agree_with_the_eager_parse(text: str) -> None:
    headers, repeated = eager(text)
    message = parse_message(text.encode())
    for key in KEYS + list(headers):
        assert message.headers.get(key) == headers.get(key), key
        assert (key in message.headers) == (key in headers), key
    assert dict(message.headers) == headers
    assert message.repeated == repeated


@settings(max_examples=500, deadline=None)
@given(block)
def test_reading_keys_one_at_a_time_agrees_before_and_after_a_full_parse(text: str) -> None:
    headers, _ = eager(text)
    message = parse_message(text.encode())
    before = {k: message.headers.get(k) for k in KEYS}
    len(message.headers)  # forces the full parse
    assert before == {k: message.headers.get(k) for k in KEYS} == {k: headers.get(k) for k in KEYS}


def test_every_recorded_message_reads_the_same_lazily() -> None:
    checked = 0
    for trace in map(load, trace_names()):
        data = b"".join(b.data for b in trace.blocks if b.kind is BlockKind.RECV)
        for raw in data.split(b"\r\n\r\n"):
            text = raw.decode("utf-8", "replace")
            headers, repeated = eager(text)
            message = parse_message(raw)
            assert {k: message.headers.get(k) for k in headers} == headers
            assert message.repeated == repeated
            checked += 1
    assert checked > 1000


def test_the_whole_message_stays_with_it_for_logs_and_recordings() -> None:
    raw = b"Event: VarSet\r\nChannel: PJSIP/101-1\r\nVariable: X\r\nValue: a: b\r\nValue: c"
    message = parse_message(raw)
    assert message.text == raw.decode()
    assert message.get("Value") == "a: b"
    assert message.get_all("Value") == ["a: b", "c"]
    assert isinstance(message.headers, Mapping)
    assert message == Message.from_pairs([("Event", "VarSet"), ("Channel", "PJSIP/101-1"),
                                          ("Variable", "X"), ("Value", "a: b"), ("Value", "c")])
    assert Message({"Event": "X"}).text == "Event: X"
