"""Demo client base: users and clients whose numbers match the recorded demo calls."""

from __future__ import annotations

import logging

from callcenter.models import ClientKind, FieldType, Role
from callcenter.phones import normalize
from callcenter.store.base import ClientInput, ContactInput, PhoneInput, Store

log = logging.getLogger(__name__)

DEMO_PASSWORD = "demo-password"

# login, name, role, extension, language
DEMO_USERS = [
    ("admin", "Admin", Role.ADMIN, None, "en"),
    ("secretary", "Svetlana Orlova", Role.SECRETARY, "101", "ru"),
    ("maria", "Maria Ivanova", Role.MANAGER, "102", "en"),
    ("dmitry", "Dmitry Volkov", Role.MANAGER, "103", "ru"),
]

# client, kind, manager login, contact, position, phones
DEMO_CLIENTS = [
    ("ООО «Ромашка»", ClientKind.COMPANY, "maria", "Ivan Petrov", "Director",
     ["+7 916 123-45-67"]),
    ("Olga Sokolova", ClientKind.PERSON, "dmitry", "Olga Sokolova", "", ["8 903 555-66-77"]),
    ("Smirnova & Partners", ClientKind.COMPANY, "maria", "Anna Smirnova", "Partner",
     ["+79161111111"]),
    ("Boris Kozlov", ClientKind.PERSON, "dmitry", "Boris Kozlov", "", ["89162222222"]),
    ("Kuznetsov Logistics", ClientKind.COMPANY, "maria", "Sergey Kuznetsov", "Head of sales",
     ["+7 (916) 777-88-99"]),
    ("Sidorov Build", ClientKind.COMPANY, "dmitry", "Pavel Sidorov", "Owner", ["89165554433"]),
    ("Vector Trade", ClientKind.COMPANY, "maria", "Elena Popova", "Buyer", ["8 (903) 123-45-67"]),
]

# Numbers the demo PBX calls from: the phones above plus a stranger and an HTML-laden name.
DEMO_CALLERS = [
    ("+79161234567", "Ivan Petrov"),
    ("89035556677", "Olga"),
    ("+79161111111", "Anna Smirnova"),
    ("89162222222", "Boris"),
    ("+79167778899", "Sergey Kuznetsov"),
    ("+79165554433", "Pavel Sidorov"),
    ("+74997770000", "Unknown Caller"),
    ("89261230000", "<b>Spam</b> & Co"),
]


async def seed_demo(store: Store, password_hash: str) -> bool:
    """Fill an empty database with the demo base; returns False when it already has users."""
    if await store.list_users():
        return False
    users = {}
    for login, name, role, extension, language in DEMO_USERS:
        user = await store.create_user(login, name, role, extension, password_hash, language)
        users[login] = user.id
    await store.create_custom_field("inn", "INN", FieldType.TEXT)
    await store.create_custom_field("segment", "Segment", FieldType.TEXT)
    drafts = [
        ClientInput(
            name, kind, users[manager], custom={"segment": "demo"},
            contacts=[ContactInput(contact, position, phones=[
                PhoneInput(raw, normalize(raw)) for raw in phones])],
        )
        for name, kind, manager, contact, position, phones in DEMO_CLIENTS
    ]
    await store.import_clients(drafts)
    log.info("demo client base created: %d users, %d clients", len(users), len(drafts))
    return True


# Inbound SMS the demo's emulated modems receive now and then, from the demo clients' numbers
# (and a stranger): short, long (several parts), Cyrillic, an emoji, and a name full of HTML.
DEMO_SMS = [
    ("+79161234567", "Добрый день! Подтверждаю встречу завтра в 11:00."),
    ("89035556677", "Hi, could you call me back about the invoice? Thanks 🙂"),
    ("+79161111111", "Здравствуйте! Пришлите, пожалуйста, обновлённый прайс-лист и условия "
                     "доставки в Казань. Нам нужно около двухсот коробок к концу месяца, "
                     "и хотелось бы понять сроки и стоимость."),
    ("+79167778899", "Order #4411 received, the truck leaves at 18:00."),
    ("+79165554433", "Перезвоните мне, пожалуйста"),
    ("+74997770000", "<b>WIN</b> a prize & call now"),
]
