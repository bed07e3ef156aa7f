"""14_pjsip_trunk_admin as the product replays it: the recording without the actions the
product never sends (GetConfig Category=trunk, GetConfigJSON, the wrong 'pjsip reload', and
the manual PJSIPShowEndpoint/Unregister/Register round with its events), every other byte as
recorded. Optionally cut after a recorded action's answer, or with one answer replaced."""

from __future__ import annotations

from pbx.ami.codec import parse_message
from pbx.ami.emulator import Segment, action_id_of
from pbx.ami.trace import Block, BlockKind, load_trace
from tests.conftest import FIXTURES

# [first SEND, next kept SEND): the ranges of blocks the product's flow has no part in
_DROPPED = (("14-6", "14-8"), ("14-10", "14-11"), ("14-13", "14-17"))


# The product reloads res_pjsip with ModuleLoad (it answers Error when the reload fails), the
# recording with Command 'module reload res_pjsip.so': that exchange is rewritten as the
# ModuleLoad action and the answer manager.c's action_loadmodule sends (astman_send_ack).
_RELOAD_ID = "14-11"
_MODULE_LOAD = (b"Action: ModuleLoad\r\nActionID: 14-11\r\nLoadType: reload\r\n"
                b"Module: res_pjsip.so\r\n\r\n")
MODULE_RELOADED = b"Response: Success\r\nActionID: 14-11\r\nMessage: Module reloaded.\r\n\r\n"


def _send_index(blocks: list[Block], action_id: str) -> int:
    for i, block in enumerate(blocks):
        if block.kind is BlockKind.SEND and parse_message(block.data).action_id == action_id:
            return i
    raise KeyError(action_id)


def trunk_admin_segments(*, cut_after: str | None = None,
                         replace: dict[str, bytes] | None = None,
                         drop_events: tuple[bytes, ...] = ()) -> list[Segment]:
    blocks = list(load_trace(FIXTURES / "14_pjsip_trunk_admin.log").blocks)
    dropped: set[int] = set()
    for first, until in _DROPPED:
        dropped |= set(range(_send_index(blocks, first), _send_index(blocks, until)))
    kept: list[Block] = []
    last_of: dict[str, int] = {}
    for i, block in enumerate(blocks):
        if i in dropped or any(block.data.startswith(p) or p in block.data
                               for p in drop_events if block.kind is BlockKind.RECV):
            continue
        action_id = action_id_of(block.data) if block.kind is BlockKind.RECV else None
        if block.kind is BlockKind.SEND and parse_message(block.data).action_id == _RELOAD_ID:
            block = Block(block.kind, block.t, _MODULE_LOAD)
        elif action_id == _RELOAD_ID and not block.data.startswith(b"Event:"):
            block = Block(block.kind, block.t, MODULE_RELOADED)
        if action_id and replace and action_id in replace and not block.data.startswith(
                b"Event:"):
            block = Block(block.kind, block.t, replace[action_id])
        kept.append(block)
        if action_id:
            last_of[action_id] = len(kept)
    if cut_after is not None:
        kept = kept[:last_of[cut_after]]
    return [Segment(tuple(kept))]
