"""What the audit log keeps of each kind of record: its own fields, not its children."""

from __future__ import annotations

from typing import Any

from callcenter.models import Client, Contact, CustomField, Phone, Task


def client(c: Client) -> dict[str, Any]:
    return {"name": c.name, "kind": c.kind.value, "manager_id": c.manager_id, "notes": c.notes,
            "custom": dict(c.custom)}


def client_created(c: Client) -> dict[str, Any]:
    return {**client(c), "contacts": [contact(x) for x in c.contacts]}


def contact(c: Contact) -> dict[str, Any]:
    return {"client_id": c.client_id, "name": c.name, "position": c.position,
            "email": c.email, "phones": [p.raw for p in c.phones]}


def phone(p: Phone) -> dict[str, Any]:
    return {"contact_id": p.contact_id, "raw": p.raw, "e164": p.e164, "kind": p.kind}


def task(t: Task) -> dict[str, Any]:
    return {"kind": t.kind.value, "title": t.title,
            "due_at": t.due_at.isoformat() if t.due_at else None,
            "assignee_id": t.assignee_id, "client_id": t.client_id, "phone": t.phone,
            "done": t.done}


def custom_field(f: CustomField) -> dict[str, Any]:
    return {"name": f.name, "label": f.label, "type": f.type.value}
