"""Decoding one complete AMI message and encoding actions: pure functions, no buffering."""

from __future__ import annotations

from collections.abc import Iterable

from pbx.ami.message import Message


class ActionEncodingError(ValueError):
    """An action value would break AMI framing (CR or LF inside a header)."""


def parse_message(block: bytes) -> Message:
    """Decode one message (the bytes up to and including its blank line).

    Decoding happens only on whole messages, so a UTF-8 character split across TCP reads is
    intact here. Invalid UTF-8 is replaced, never fatal. Lines without a colon are kept under the
    empty key (old ``Response: Follows`` bodies) rather than dropped. Headers are read from the
    text when asked for (``message.Headers``); the text itself stays with the message.
    """
    return Message.from_text(block.decode("utf-8", "replace"))


def encode_action(name: str, action_id: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """Serialize an action. Refuses CR/LF in any key or value: caller-supplied data (a number
    typed into the console) must never be able to smuggle a second header or action."""
    lines = [f"Action: {name}", f"ActionID: {action_id}"]
    for key, value in headers:
        value = str(value)
        for part in (key, value):
            if "\r" in part or "\n" in part:
                raise ActionEncodingError(f"line break in AMI header {key!r}")
        if not key or ":" in key:
            raise ActionEncodingError(f"bad AMI header name {key!r}")
        lines.append(f"{key}: {value}")
    for part in (name, action_id):
        if "\r" in part or "\n" in part:
            raise ActionEncodingError("line break in action name or id")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
