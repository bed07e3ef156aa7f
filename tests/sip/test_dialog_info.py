"""Dialog-info (RFC 4235) full and partial state, as kamailio's pua_dialoginfo and Asterisk send
it, into one extension's presence; hostile XML refused."""

from __future__ import annotations

import pytest

from sip.dialog_info import (
    MAX_BODY,
    MAX_DIALOGS,
    MAX_ENDED,
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


def kamailio_doc(version: int, state: str) -> bytes:
    """A NOTIFY body exactly as kamailio 5.6's presence_dialoginfo built it in the failing runs
    of tests/sip/test_kamailio_observer.py (one dialog of 101, rung directly, Call-ID dir1)."""
    return (f'<?xml version="1.0"?>\n<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" '
            f'version="{version}" state="full" entity="sip:101@127.0.0.1">\n'
            '  <dialog id="padi-6b0f7971-6d8e-1" call-id="dir1" direction="recipient">\n'
            f"    <state>{state}</state>\n"
            "    <remote>\n      <identity>sip:89161234567@127.0.0.1:33388</identity>\n"
            '      <target uri="sip:pbx@127.0.0.1:33388"/>\n    </remote>\n'
            "    <local>\n      <identity>sip:101@127.0.0.1:42387</identity>\n"
            '      <target uri="sip:101@127.0.0.1:42387"/>\n    </local>\n'
            "  </dialog>\n</dialog-info>\n").encode()


def test_an_early_published_after_the_answer_does_not_take_the_call_back() -> None:
    """kamailio's workers raced the phone's 180 and 200: "early" was PUBLISHed after
    "confirmed", so the presence server NOTIFYed confirmed (v2) then early (v3), versions in
    order, and said early until the hang-up. A dialog never goes back (RFC 4235 3.7.1)."""
    t = DialogTracker()
    changes = t.apply(parse(kamailio_doc(2, "confirmed")))
    assert [c.after.state for c in changes] == [DialogState.CONFIRMED]
    assert t.presence() is Presence.ON_CALL
    assert t.apply(parse(kamailio_doc(3, "early"))) == []
    assert t.presence() is Presence.ON_CALL and t.stale == 1
    changes = t.apply(parse(kamailio_doc(4, "terminated")))
    assert [(c.before.state, c.after.state) for c in changes] == [
        (DialogState.CONFIRMED, DialogState.TERMINATED)]
    assert t.presence() is Presence.FREE


def test_a_dialog_published_after_its_end_stays_ended() -> None:
    """The same race at the hang-up: "terminated" overtaken by "confirmed" would leave the
    phone busy for as long as the notifier keeps the stale copy (kamailio: 12 hours)."""
    t = DialogTracker()
    t.apply(parse(kamailio_doc(2, "early")))
    t.apply(parse(kamailio_doc(3, "confirmed")))
    t.apply(parse(kamailio_doc(4, "terminated")))
    assert t.apply(parse(kamailio_doc(5, "confirmed"))) == []
    assert t.presence() is Presence.FREE
    # a new subscription's full state still carries the stale copy: still over
    t.new_subscription()
    assert t.apply(parse(kamailio_doc(1, "confirmed"))) == []
    assert t.presence() is Presence.FREE
    # the next call (another Call-ID) rings as usual, even under the same dialog id
    changes = t.apply(parse(kamailio_doc(2, "early").replace(b"dir1", b"dir2")))
    assert [c.after.state for c in changes] == [DialogState.EARLY]
    assert t.presence() is Presence.RINGING


def test_a_dialog_left_out_of_a_full_document_may_be_named_again() -> None:
    """Only a "terminated" state ends a dialog for good: a full document that leaves it out
    says nothing of it (the notifier stopped naming it), and it may come back."""
    t = DialogTracker()
    t.apply(parse(kamailio_doc(1, "early")))
    changes = t.apply(parse(doc(2, "full", entity="sip:101@127.0.0.1")))
    assert [c.after.event for c in changes] == ["vanished"]
    t.apply(parse(kamailio_doc(3, "confirmed")))
    assert t.presence() is Presence.ON_CALL


def test_stale_copies_remembered_are_bounded_and_kept_while_named() -> None:
    t = DialogTracker()
    t.apply(parse(doc(1, "full", dialog("stale", "terminated", call_id="s"))))
    for i in range(MAX_ENDED + 50):
        calls = [dialog(f"c{i}", "terminated", call_id=f"x{i}"),
                 dialog("stale", "confirmed", call_id="s")]  # the notifier keeps naming it
        t.apply(parse(doc(2 + i, "full", *calls)))
        assert t.presence() is Presence.FREE
    assert len(t._ended) == MAX_ENDED


def test_asterisk_reuses_one_dialog_id_for_the_extension_and_may_go_back() -> None:
    """Asterisk's dialog is the extension (id = its number, no call-id): after a call ends
    the same id rings again, and a call waiting while on the phone is "early"."""
    t = DialogTracker()
    for version, state, presence in [(0, "terminated", Presence.FREE),
                                     (1, "early", Presence.RINGING),
                                     (2, "confirmed", Presence.ON_CALL),
                                     (3, "early", Presence.RINGING),
                                     (4, "terminated", Presence.FREE),
                                     (5, "early", Presence.RINGING)]:
        t.apply(parse(doc(version, "full", f'<dialog id="101"><state>{state}</state></dialog>')))
        assert t.presence() is presence, (version, state)


def test_a_partial_document_after_a_lost_notify_asks_for_the_full_state() -> None:
    """RFC 4235 4.1: a version gap means a NOTIFY was lost; a partial document is a change to
    state we no longer know -- not applied; the full state (after a refresh) is."""
    t = DialogTracker()
    t.apply(parse(doc(0, "full")))
    t.apply(parse(doc(1, "partial", dialog("d1", "early"))))
    assert t.presence() is Presence.RINGING and not t.needs_full
    # version 2 (d1 confirmed) lost; version 3 says a second dialog rings
    assert t.apply(parse(doc(3, "partial", dialog("d2", "early", call_id="y")))) == []
    assert t.needs_full and set(t.dialogs) == {"d1"}
    # further partials still change unknown state
    assert t.apply(parse(doc(4, "partial", dialog("d2", "terminated", call_id="y")))) == []
    assert t.needs_full
    assert t.apply(parse(doc(3, "full"))) == []  # an overtaken full document is still old
    changes = t.apply(parse(doc(5, "full", dialog("d1", "confirmed"))))
    assert [c.after.state for c in changes] == [DialogState.CONFIRMED]
    assert not t.needs_full and t.presence() is Presence.ON_CALL
    t.apply(parse(doc(6, "partial", dialog("d1", "terminated"))))
    assert t.presence() is Presence.FREE


def test_a_first_document_that_is_partial_asks_for_the_full_state() -> None:
    t = DialogTracker()
    assert t.apply(parse(doc(7, "partial", dialog("d1", "early")))) == []
    assert t.needs_full
    t.new_subscription()
    assert not t.needs_full


def test_partial_documents_cannot_grow_the_dialogs_held_without_bound() -> None:
    """Each document is bounded (MAX_DIALOGS), but partial ones add up: a buggy or hostile
    notifier naming new dialogs in every NOTIFY must not grow one extension's memory (and the
    presence scan of every NOTIFY) for ever. Past the bound we ask for the full state."""
    t = DialogTracker()
    t.apply(parse(doc(0, "full")))
    for version in range(1, 40):
        calls = [dialog(f"d{version}-{i}", "early", call_id=f"c{version}-{i}")
                 for i in range(MAX_DIALOGS)]
        t.apply(parse(doc(version, "partial", *calls)))
    assert len(t.dialogs) <= MAX_DIALOGS
    assert t.needs_full
    # the full state the refresh brings replaces it all
    t.apply(parse(doc(40, "full", dialog("d1", "confirmed"))))
    assert set(t.dialogs) == {"d1"} and not t.needs_full and t.presence() is Presence.ON_CALL


def test_a_notifier_that_restarts_its_count_in_the_same_subscription_is_followed_again() -> None:
    """A notifier restarted with its subscriptions kept (persisted) but not their versions
    numbers from 0 again in the same dialog: every document would be "old" until the count
    passed ours -- the phone shown as it was, for hundreds of calls. An old full document asks
    for the full state; the NOTIFY a refresh brings is taken whatever its version."""
    t = DialogTracker()
    t.apply(parse(doc(40, "full", dialog("d1", "confirmed"))))
    assert t.presence() is Presence.ON_CALL
    assert t.apply(parse(doc(0, "full"))) == []  # restarted: 101 hung up meanwhile
    assert t.needs_full
    t.refreshing()  # the watcher refreshed the subscription in its dialog
    changes = t.apply(parse(doc(1, "full")))
    assert [c.after.event for c in changes] == ["vanished"]
    assert t.presence() is Presence.FREE and not t.needs_full
    t.apply(parse(doc(2, "partial", dialog("d2", "early", call_id="y"))))
    assert t.presence() is Presence.RINGING
    # once taken, the order holds again: an overtaken document is still ignored
    assert t.apply(parse(doc(1, "full"))) == [] and t.presence() is Presence.RINGING


def test_a_notifier_that_answers_a_refresh_with_partial_state_is_followed_again() -> None:
    """After a gap we refresh for the full state; a notifier that answers with a partial
    document instead would leave every later one refused, the phone frozen for good. Its
    answer is the newest word on the dialogs it names: taken (as before the gap rule)."""
    t = DialogTracker()
    t.apply(parse(doc(0, "full")))
    t.apply(parse(doc(1, "partial", dialog("d1", "early"))))
    assert t.apply(parse(doc(3, "partial", dialog("d1", "confirmed")))) == []  # v2 lost
    assert t.needs_full
    t.refreshing()
    t.apply(parse(doc(4, "partial", dialog("d1", "confirmed"))))  # the refresh's NOTIFY
    assert t.presence() is Presence.ON_CALL and not t.needs_full
    t.apply(parse(doc(5, "partial", dialog("d1", "terminated"))))
    assert t.presence() is Presence.FREE
