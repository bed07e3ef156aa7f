"""Audit entries and the masking of secrets (pure code, no I/O)."""

from __future__ import annotations

import getpass
import itertools
import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

# A field is secret when one of the words of its name (split at "_", "-", "." and case
# changes) is here: "secret", "ami_secret", "sftp_password", "password_hash", "pin",
# "api_token" - but not "mapping" or "spinner". The one place to add a word.
SECRET_WORDS = frozenset({"secret", "password", "passwd", "pass", "pin", "token", "apikey",
                          "authkey", "passphrase", "credentials", "cred"})
HIDDEN = "••••"  # a secret that is set (before, or unchanged)
CHANGED = "(changed)"  # a secret that changed: the entry shows that it did, never what to

_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret(key: str) -> bool:
    words = [w.lower() for part in re.split(r"[_\-.\s]+", key) for w in _WORD.findall(part)]
    # "api_key", "apiKey": two words that make one of the set
    pairs = [a + b for a, b in itertools.pairwise(words)]
    return any(w in SECRET_WORDS for w in (*words, *pairs))


def _hide(value: Any) -> Any:
    return "" if value in (None, "") else HIDDEN


def mask(before: dict[str, Any] | None, after: dict[str, Any] | None
         ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``before`` and ``after`` with every secret value replaced, in nested dicts and lists
    (a line's trunks) too: a set secret reads ``••••``; one that changed reads ``(changed)``
    after, so the entry still shows a change without holding either value. An empty secret
    stays empty (not set). List items are compared by position."""
    b = dict(before) if before is not None else None
    a = dict(after) if after is not None else None
    for key in {*(b or ()), *(a or ())}:
        in_b, in_a = b is not None and key in b, a is not None and key in a
        old = b.get(key) if b is not None else None
        new = a.get(key) if a is not None else None
        if is_secret(str(key)):
            if b is not None and in_b:
                b[key] = _hide(old)
            if a is not None and in_a:
                a[key] = CHANGED if in_b and old != new and new not in (None, "") else _hide(new)
        else:
            sub_b, sub_a = _mask_values(old, new)
            if b is not None and in_b:
                b[key] = sub_b
            if a is not None and in_a:
                a[key] = sub_a
    return b, a


def _mask_values(old: Any, new: Any) -> tuple[Any, Any]:
    """Two values under a key that is not secret itself: containers are masked inside
    (dicts by key, lists and tuples by position), anything else is kept."""
    old_dict, new_dict = isinstance(old, dict), isinstance(new, dict)
    if old_dict or new_dict:
        sub_b, sub_a = mask(old if old_dict else None, new if new_dict else None)
        return (sub_b if old_dict else old), (sub_a if new_dict else new)
    old_seq, new_seq = isinstance(old, list | tuple), isinstance(new, list | tuple)
    if old_seq or new_seq:
        olds = list(old) if old_seq else []
        news = list(new) if new_seq else []
        out_b: list[Any] = []
        out_a: list[Any] = []
        for i in range(max(len(olds), len(news))):
            o = olds[i] if i < len(olds) else None
            n = news[i] if i < len(news) else None
            mo, mn = _mask_values(o, n)
            if i < len(olds):
                out_b.append(mo)
            if i < len(news):
                out_a.append(mn)
        return (out_b if old_seq else old), (out_a if new_seq else new)
    return old, new


def changed_only(before: dict[str, Any], after: dict[str, Any]
                 ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys whose values differ, from both sides (an update's entry stays small)."""
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k)]
    return ({k: before.get(k) for k in keys if k in before},
            {k: after.get(k) for k in keys if k in after})


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change: a user (id, login) from an address, or the command line."""

    user_id: int | None
    label: str
    address: str = ""


CLI = Actor(None, "cli")


def cli_actor() -> Actor:
    """The command line, from which account on which machine (the entry's address)."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        who = str(os.getuid())
    return Actor(None, "cli", f"{who}@{socket.gethostname()}")
SYSTEM = Actor(None, "system")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor_id: int | None
    actor_label: str
    address: str
    action: str  # "create", "update", "delete", "disable", "reset-password", "handover", ...
    target_kind: str  # "user", "client", "contact", "phone", "task", "custom_field", "line"...
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(slots=True)
class AuditFilter:
    actor_id: int | None = None
    actor_label: str | None = None
    target_kind: str | None = None
    target_id: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0
