"""Dialog-info (RFC 4235) full and partial state, as kamailio's pua_dialoginfo and Asterisk send
it, into one extension's presence; hostile XML refused."""

from __future__ import annotations

import pytest

from sip.dialog_info import (
    MAX_BODY,
    MAX_DIALOGS,
    DialogInfoError,
    DialogState,
    DialogTracker,
    Presence,
    parse,
    parse_sipfrag,
)


def doc(version: int, state: str, *dialogs: str, entity: str = "sip:101@office") -> bytes:
    return (f'<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
            f'version="{version}" state="{state}" entity="{entity}">'
            + "".join(dialogs) + "</dialog-info>").encode()


def dialog(did: str, state: str, direction: str = "recipient", remote: str = "sip:+79161234567@c",
           call_id: str = "abc") -> str:
    return (f'<dialog id="{did}" call-id="{call_id}" direction="{direction}">'
            f"<state>{state}</state>"
            f'<local><identity display="Anna">sip:101@office</identity></local>'
            f'<remote><identity display="Client">{remote}</identity></remote></dialog>')


def test_full_then_partial_drive_presence() -> None:
    t = DialogTracker()
    assert t.apply(parse(doc(0, "full"))) == []
    assert t.presence() is Presence.FREE
    changes = t.apply(parse(doc(1, "partial", dialog("d1", "early"))))
    assert [c.after.state for c in changes] == [DialogState.EARLY]
    assert changes[0].after.remote_user == "+79161234567"
    assert changes[0].after.call_id == "abc"
    assert t.presence() is Presence.RINGING
    t.apply(parse(doc(2, "partial", dialog("d1", "confirmed"))))
    assert t.presence() is Presence.ON_CALL
    changes = t.apply(parse(doc(3, "partial", dialog("d1", "terminated"))))
    assert changes[0].before.state is DialogState.CONFIRMED
    assert t.presence() is Presence.FREE


def test_overtaken_notifies_ignored_new_subscription_starts_again() -> None:
    t = DialogTracker()
    t.apply(parse(doc(5, "full", dialog("d1", "confirmed"))))
    assert t.apply(parse(doc(4, "partial", dialog("d1", "terminated")))) == []
    assert t.apply(parse(doc(3, "full", dialog("d1", "early")))) == []  # overtaken
    assert t.presence() is Presence.ON_CALL
    # the PBX restarted, we subscribed again: version 0, full state without the dialog
    assert t.apply(parse(doc(0, "full"))) == []
    t.new_subscription()
    changes = t.apply(parse(doc(0, "full")))
    assert [c.after.state for c in changes] == [DialogState.TERMINATED]
    assert t.presence() is Presence.FREE


def test_dialling_out_is_busy_and_offline_is_not_free() -> None:
    t = DialogTracker()
    t.apply(parse(doc(1, "full", dialog("d9", "trying", direction="initiator"))))
    assert t.presence() is Presence.ON_CALL
    t.go_offline()
    assert t.presence() is Presence.OFFLINE
    t.apply(parse(doc(0, "full")))
    assert t.presence() is Presence.FREE


@pytest.mark.parametrize("body", [
    b"", b"<dialog-info", b"not xml", b"<presence/>",
    b'<dialog-info version="x" state="full"/>',
    b'<dialog-info version="1" state="half"/>',
    doc(1, "full", dialog("d", "ringing-ish")),
    b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaaaaaaaa">]>'
    b'<dialog-info version="1" state="full" entity="&a;"/>',
    b" " * (MAX_BODY + 1),
])
def test_bad_bodies_are_refused_in_words(body: bytes) -> None:
    with pytest.raises(DialogInfoError):
        parse(body)


def test_dialogs_per_document_are_bounded() -> None:
    info = parse(doc(1, "full", *(dialog(f"d{i}", "early") for i in range(MAX_DIALOGS + 10))))
    assert len(info.dialogs) == MAX_DIALOGS


def test_sipfrag() -> None:
    assert parse_sipfrag(b"SIP/2.0 200 OK\r\n") == (200, "OK")
    assert parse_sipfrag(b"SIP/2.0 486 Busy Here") == (486, "Busy Here")
    for bad in (b"", b"HTTP/1.1 200 OK", b"SIP/2.0 2000 x", b"\xff\xfe"):
        with pytest.raises(ValueError):
            parse_sipfrag(bad)


def test_a_display_name_loses_control_characters_and_is_bounded() -> None:
    hostile = "Ivan&#13;&#10;Set-Cookie: x&#9;y" + "A" * 2000  # XML 1.0 allows CR, LF, tab
    body = doc(1, "full", dialog("d1", "early").replace('display="Client"',
                                                         f'display="{hostile}"'))
    (got,) = parse(body).dialogs
    assert not any(c in got.remote_display for c in "\r\n\t")
    assert got.remote_display.startswith("IvanSet-Cookie: xy")
    assert len(got.remote_display) <= 256
