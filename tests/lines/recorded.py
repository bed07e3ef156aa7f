"""Pieces of the recorded traces the line tests replay."""

from __future__ import annotations

from pbx.ami.codec import parse_message
from pbx.ami.emulator import action_id_of, rewrite_action_id
from pbx.ami.message import Message
from pbx.ami.trace import BlockKind, Trace


def list_answer(trace: Trace, action: str) -> tuple[str, list[bytes], int]:
    """The recorded ActionID, answer blocks and index of the last answer block of the first
    ``action`` of ``trace`` (a list action: response, its events, the Complete event)."""
    recorded = next(parse_message(b.data).action_id for b in trace.blocks
                    if b.kind is BlockKind.SEND
                    and parse_message(b.data).get("Action") == action)
    blocks = [(i, b.data) for i, b in enumerate(trace.blocks)
              if b.kind is BlockKind.RECV and action_id_of(b.data) == recorded]
    return str(recorded), [d for _, d in blocks], blocks[-1][0]


def replaying(recorded_id: str, blocks: list[bytes]):
    """A responder answering a later ``action`` with the recorded list (as the PBX would
    answer the same question again while nothing changed)."""

    def respond(message: Message) -> list[bytes]:
        return [rewrite_action_id(b, recorded_id, message.action_id or "") for b in blocks]

    return respond


def answer_of(trace: Trace, action_id: str) -> list[bytes]:
    """The recorded answer blocks (response and list events) of one recorded action."""
    return [b.data for b in trace.blocks
            if b.kind is BlockKind.RECV and action_id_of(b.data) == action_id]
