"""Inbound SMS: stored once, reassembled, matched to the client, pushed live; STOP opts out."""

from __future__ import annotations

import pytest

from callcenter.config import SmsConfig
from callcenter.models import ClientKind
from callcenter.phones import normalize
from callcenter.sms.events import Address, AddressKind, Concat, SmsEncoding, SmsPartReceived
from callcenter.sms.model import opt_out_keyword
from callcenter.store.base import ClientInput, ContactInput, PhoneInput
from callcenter.store.sqlite_sms import SmsFilter
from tests.sms.harness import FakeModem, sms_core

SENDER = "+79161234567"


def part(text: str, concat: Concat | None = None, *, sender: str = SENDER, line: str = "a",
         scts: float = 1_780_000_000.0, pdu: str | None = None) -> SmsPartReceived:
    kind = AddressKind.ALPHANUMERIC if sender.isalpha() else AddressKind.INTERNATIONAL
    return SmsPartReceived(line, Address(kind, sender), text, SmsEncoding.UCS2, scts, concat,
                           pdu or f"07{abs(hash((text, concat))):x}")


async def client_with(store, name: str, phone: str, manager_id: int | None = None) -> int:
    client = await store.create_client(ClientInput(
        name, ClientKind.PERSON, manager_id,
        contacts=[ContactInput(name, phones=[PhoneInput(phone, normalize(phone))])]))
    return client.id


async def inbound(store) -> list[dict]:
    return await store.sms_list(SmsFilter(direction="in"))


async def test_a_single_sms_lands_on_the_client_and_is_pushed(store):
    manager = await store.create_user("maria", "Maria", "manager")
    client_id = await client_with(store, "Ivan", "8 916 123-45-67", manager.id)
    core = await sms_core(store, FakeModem("a"))
    message_id = await core.service.inbox.receive(part("Привет! <b>call me</b>"))
    (message,) = await inbound(store)
    assert message["id"] == message_id
    assert message["client_id"] == client_id and message["manager_id"] == manager.id
    assert message["text"] == "Привет! <b>call me</b>" and message["state"] == "received"
    (interaction,) = await store.list_interactions(client_id)
    assert interaction.kind == "sms" and interaction.data["direction"] == "in"
    (event,) = [e for e in core.events if e.topic == "sms.received"]
    assert event.data["sms"]["client_id"] == client_id
    assert event.data["sms"]["text"] == "Привет! <b>call me</b>"


async def test_a_duplicate_delivery_is_stored_once(store):
    core = await sms_core(store)
    same = part("hello", pdu="0791AABBCC")
    await core.service.handle(same)
    await core.service.handle(same)
    long_part = part("one", Concat(5, 2, 1))
    await core.service.handle(long_part)
    await core.service.handle(long_part)
    await core.service.handle(part("two", Concat(5, 2, 2)))
    messages = await inbound(store)
    assert sorted(m["text"] for m in messages) == ["hello", "onetwo"]
    assert len([e for e in core.events if e.topic == "sms.received"]) == 2


async def test_multipart_out_of_order_is_joined_in_order(store):
    core = await sms_core(store)
    await core.service.handle(part("C", Concat(200, 3, 3)))
    await core.service.handle(part("A", Concat(200, 3, 1)))
    assert await inbound(store) == []
    # the same reference from another sender is another message
    await core.service.handle(part("X", Concat(200, 3, 2), sender="+79160000000"))
    await core.service.handle(part("B", Concat(200, 3, 2)))
    (message,) = await inbound(store)
    assert message["text"] == "ABC" and message["parts_total"] == 3


async def test_incomplete_after_the_timeout_then_completed_by_a_late_part(store):
    core = await sms_core(store, sms=SmsConfig(reassembly_timeout=60))
    await core.service.handle(part("Hello, ", Concat(9, 3, 1)))
    await core.service.handle(part("!", Concat(9, 3, 3)))
    assert await core.service.inbox.sweep() == []
    core.clock.advance(61)
    (made,) = await core.service.inbox.sweep()
    (message,) = await inbound(store)
    assert message["state"] == "incomplete" and message["text"] == "Hello, […]!"
    assert await core.service.inbox.sweep() == []
    await core.service.handle(part("world", Concat(9, 3, 2)))
    (message,) = await inbound(store)
    assert message["id"] == made
    assert message["state"] == "received" and message["text"] == "Hello, world!"


def test_opt_out_keywords():
    for text in ("STOP", "stop", " Stop. ", "СТОП", "стоп!", "ОТПИСКА", "Stopp", "«STOP»"):
        assert opt_out_keyword(text), text
    for text in ("stop sending me offers", "stopper", "не стоп", "", "STOP" * 20):
        assert opt_out_keyword(text) is None, text


async def test_stop_puts_the_number_on_the_do_not_send_list_and_confirms(store):
    core = await sms_core(store, FakeModem("a"),
                          sms=SmsConfig(optout_confirmation="You will get no more SMS."))
    await core.service.handle(part("Стоп."))
    assert core.service.is_opted_out("89161234567")
    (row,) = await core.service.opt_out_list()
    assert row["number"] == SENDER and row["keyword"] == "стоп"
    await core.drain()
    (sent,) = core.modems["a"].sent
    assert sent.text == "You will get no more SMS." and sent.to.value == SENDER
    # a second STOP changes nothing and sends nothing
    await core.service.handle(part("STOP", scts=1_780_000_100.0))
    await core.drain()
    assert len(core.modems["a"].sent) == 1


async def test_an_alphanumeric_sender_is_stored_unmatched(store):
    core = await sms_core(store)
    await core.service.handle(part("Your balance is 5 RUB", sender="MTS"))
    (message,) = await inbound(store)
    assert message["number"] == "MTS" and message["client_id"] is None


async def test_a_part_whose_message_failed_to_be_made_is_made_on_redelivery(store):
    core = await sms_core(store)
    broken = core.service.inbox._make

    async def fail(*args, **kw):
        raise RuntimeError("disk full")

    core.service.inbox._make = fail  # type: ignore[method-assign]
    same = part("hello again", pdu="0791FFEE")
    with pytest.raises(RuntimeError):  # the modem keeps the SMS on the SIM, tries again
        await core.service.handle(same)
    assert await inbound(store) == []
    core.service.inbox._make = broken  # type: ignore[method-assign]
    await core.service.handle(same)
    await core.service.handle(same)
    assert [m["text"] for m in await inbound(store)] == ["hello again"]


async def test_parts_handed_over_at_the_same_time_make_one_message(store):
    import asyncio

    core = await sms_core(store)
    await asyncio.gather(*(core.service.handle(part(t, Concat(77, 3, i)))
                           for i, t in enumerate(("a", "b", "c"), start=1)))
    assert [m["text"] for m in await inbound(store)] == ["abc"]


async def test_a_redelivery_with_another_first_octet_is_the_same_sms(store):
    core = await sms_core(store)
    # TP-MMS / TP-RP differ in the first octet of the SMS-DELIVER: same SMS all the same
    await core.service.handle(part("hello", pdu="0791AABBCC040B91"))
    await core.service.handle(part("hello", pdu="0791AABBCC440B91"))
    long_a = part("one", Concat(5, 2, 1), pdu="0791AA40")
    await core.service.handle(long_a)
    await core.service.handle(part("one", Concat(5, 2, 1), pdu="0791AA44"))
    await core.service.handle(part("two", Concat(5, 2, 2)))
    assert sorted(m["text"] for m in await inbound(store)) == ["hello", "onetwo"]
    # the same header and time with another text is another SMS
    await core.service.handle(part("hullo", pdu="0791AABBCC040B91"))
    assert len(await inbound(store)) == 3


@pytest.mark.parametrize("failing", ["add_interaction", "sms_optout_add"])
async def test_a_crash_while_storing_an_inbound_sms_leaves_nothing_half_done(store, failing):
    await client_with(store, "Ivan", "8 916 123-45-67")
    core = await sms_core(store)
    real = getattr(store, failing)

    async def crash(*args, **kw):
        raise RuntimeError("killed here")

    setattr(store, failing, crash)
    stop = part("STOP", pdu="0791ABCD")
    with pytest.raises(RuntimeError):  # the SMS stays on the SIM: delivered again
        await core.service.handle(stop)
    assert await inbound(store) == [] and await store.sms_optout_list() == []
    assert not core.service.is_opted_out(SENDER)
    setattr(store, failing, real)
    await core.service.handle(stop)
    await core.service.handle(stop)
    (message,) = await inbound(store)
    assert message["text"] == "STOP"
    assert [o["number"] for o in await store.sms_optout_list()] == [SENDER]
    assert core.service.is_opted_out(SENDER)
    assert len(await store.list_interactions(message["client_id"])) == 1


async def test_a_crash_while_completing_a_long_sms_loses_no_stop(store):
    core = await sms_core(store, sms=SmsConfig(reassembly_timeout=60))
    await core.service.handle(part("ST", Concat(9, 2, 1)))
    core.clock.advance(61)
    await core.service.inbox.sweep()
    real = store.sms_optout_add

    async def crash(*args, **kw):
        raise RuntimeError("killed here")

    store.sms_optout_add = crash
    late = part("OP", Concat(9, 2, 2))
    with pytest.raises(RuntimeError):
        await core.service.handle(late)
    (message,) = await inbound(store)
    assert message["state"] == "incomplete"
    store.sms_optout_add = real
    await core.service.handle(late)
    (message,) = await inbound(store)
    assert message["state"] == "received" and message["text"] == "STOP"
    assert core.service.is_opted_out(SENDER)


async def test_after_a_client_is_reassigned_only_the_new_manager_sees_its_sms(store):
    from callcenter.calls.visibility import can_see_event
    from callcenter.errors import PermissionDenied

    maria = await store.create_user("maria", "Maria", "manager")
    dmitry = await store.create_user("dmitry", "Dmitry", "manager")
    client_id = await client_with(store, "Ivan", "8 916 123-45-67", maria.id)
    core = await sms_core(store)
    message_id = await core.service.inbox.receive(part("hello"))
    assert [m["id"] for m in await core.service.list(maria, SmsFilter())] == [message_id]
    await store.update_client(client_id, manager_id=dmitry.id)
    assert await core.service.list(maria, SmsFilter()) == []
    assert [m["id"] for m in await core.service.list(dmitry, SmsFilter())] == [message_id]
    with pytest.raises(PermissionDenied):
        await core.service.get(maria, message_id)
    assert (await core.service.get(dmitry, message_id))["manager_id"] == dmitry.id
    await core.service.publish_status(message_id)
    event = core.events[-1].data
    assert event["sms"]["manager_id"] == dmitry.id
    assert can_see_event(dmitry, event, False) and not can_see_event(maria, event, False)


async def test_parts_with_the_same_reference_days_apart_are_not_joined(store):
    core = await sms_core(store, sms=SmsConfig(reassembly_timeout=60))
    day = 86400.0
    await core.service.handle(part("Monday ", Concat(42, 2, 1), scts=1_780_000_000.0))
    # two days later the one-octet reference comes round again for another message
    later = 1_780_000_000.0 + 2 * day
    await core.service.handle(part("Wednesday", Concat(42, 2, 2), scts=later))
    assert await inbound(store) == []
    await core.service.handle(part("Hello ", Concat(42, 2, 1), scts=later - 5))
    assert [m["text"] for m in await inbound(store)] == ["Hello Wednesday"]
    core.clock.advance(61)
    await core.service.inbox.sweep()
    texts = sorted(m["text"] for m in await inbound(store))
    assert texts == ["Hello Wednesday", "Monday […]"]


@pytest.mark.sqlite_only("reads SQLite's EXPLAIN QUERY PLAN output")
async def test_reassembly_looks_parts_up_by_index(store):
    from callcenter.store.sqlite_sms import INBOUND_GROUP_SQL

    plan = await store._db.rows("EXPLAIN QUERY PLAN " + INBOUND_GROUP_SQL,
                                ("a", SENDER, 1, 2, 0.0, 1.0))
    details = " ".join(str(r[-1]) for r in plan)
    assert "USING INDEX sms_inbound_parts_group" in details, details



async def test_the_sweep_keeps_the_senders_kind(store):
    core = await sms_core(store, sms=SmsConfig(reassembly_timeout=60))
    real = store.sms_make_inbound

    async def crash(*args, **kw):
        raise RuntimeError("killed here")

    bank = Address(AddressKind.ALPHANUMERIC, "Bank24")  # letters and digits: still a name
    store.sms_make_inbound = crash  # both parts stored, the message never made
    await core.service.handle(SmsPartReceived("a", bank, "ST", SmsEncoding.UCS2,
                                              1_780_000_000.0, Concat(4, 2, 1), "07BB"))
    with pytest.raises(RuntimeError):
        await core.service.handle(SmsPartReceived("a", bank, "OP", SmsEncoding.UCS2,
                                                  1_780_000_000.0, Concat(4, 2, 2), "07BC"))
    store.sms_make_inbound = real
    core.clock.advance(61)
    await core.service.inbox.sweep()  # made by the sweep: a sender name opts nothing out
    (message,) = await inbound(store)
    assert message["text"] == "STOP" and message["e164"] is None
    assert await store.sms_optout_list() == []
