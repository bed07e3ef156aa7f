"""``callcenter user ...``: the command-line twins of the users page, with the API's
validation (an enabled admin always remains) and audit entries (actor "cli")."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from callcenter.audit import AuditService
from callcenter.audit.model import cli_actor
from callcenter.config import Config
from callcenter.errors import CallcenterError
from callcenter.models import Role, User
from callcenter.store.base import Conflict, NotFound, Store
from callcenter.users.service import LANGUAGES, UserService

PASSWORD_ENV = "CALLCENTER_NEW_PASSWORD"


def _password(login: str) -> str:
    return os.environ.get(PASSWORD_ENV) or getpass.getpass(f"password for {login}: ")


async def _user(store: Store, login: str) -> User:
    found = await store.user_by_login(login)
    if found is None:
        raise NotFound("user", login)
    return found[0]


def _row(user: User) -> str:
    return (f"{user.id:>4}  {user.login:<16} {user.role.value:<10} {user.extension or '-':<7}"
            f" {'enabled' if user.active else 'disabled':<9} {user.name}")


async def _list(svc: UserService, store: Store, args: argparse.Namespace) -> str:
    return "\n".join(["  id  login            role       ext     state     name",
                      *(_row(u) for u in await store.list_users())])


async def _add(svc: UserService, store: Store, args: argparse.Namespace) -> str:
    user = await svc.create(cli_actor(), args.login, args.name or args.login, args.role,
                            args.extension, _password(args.login),
                            args.language or args.default_language)
    return f"user {user.login} ({user.role}) created with id {user.id}"


async def _edit(svc: UserService, store: Store, args: argparse.Namespace) -> str:
    user = await _user(store, args.login)
    changes: dict[str, Any] = {k: getattr(args, k) for k in ("name", "role", "extension",
                                                              "language")
                               if getattr(args, k) is not None}
    if not changes:
        raise CallcenterError("nothing to change: give --name, --role, --extension or"
                              " --language")
    user = await svc.update(cli_actor(), user.id, changes)
    return _row(user)


def _active(value: bool) -> Callable[..., Awaitable[str]]:
    async def run(svc: UserService, store: Store, args: argparse.Namespace) -> str:
        user = await svc.update(cli_actor(), (await _user(store, args.login)).id, {"active": value})
        return f"user {user.login} {'enabled' if value else 'disabled'}"

    return run


async def _reset(svc: UserService, store: Store, args: argparse.Namespace) -> str:
    user = await _user(store, args.login)
    await svc.set_password(cli_actor(), user.id, _password(user.login),
                           one_time=args.one_time)
    return f"password of {user.login} reset; their sessions have ended"


async def _handover(svc: UserService, store: Store, args: argparse.Namespace) -> str:
    source, target = await _user(store, args.login), await _user(store, args.to)
    done = await svc.hand_over(cli_actor(), source.id, target.id)
    return (f"{len(done.task_ids)} open task(s) and {len(done.client_ids)} client(s) of"
            f" {source.login} handed to {target.login}")


ACTIONS: dict[str, Callable[..., Awaitable[str]]] = {
    "list": _list, "add": _add, "edit": _edit, "disable": _active(False),
    "enable": _active(True), "reset-password": _reset, "handover": _handover,
}


def run(config: Config, args: argparse.Namespace) -> int:
    from callcenter.store.open import open_store

    args.default_language = config.console.default_language

    async def main() -> int:
        store = await open_store(config)
        try:
            svc = UserService(store, AuditService(store))
            print(await ACTIONS[args.what](svc, store, args))
            return 0
        except CallcenterError as exc:
            print(f"error: {exc.message}", file=sys.stderr)
        except NotFound as exc:
            print(f"error: {exc}", file=sys.stderr)
        except Conflict as exc:
            text = str(exc)
            if "UNIQUE" in text:
                text = f"{text.rsplit('.', 1)[-1]} is already taken"
            print(f"error: {text}", file=sys.stderr)
        finally:
            await store.close()
        return 1

    return asyncio.run(main())


def add_parsers(user_sub: Any, with_config: Callable[[argparse.ArgumentParser],
                                                      argparse.ArgumentParser],
                func: Callable[[argparse.Namespace], int]) -> None:
    """The subcommands of ``callcenter user``."""
    roles = [r.value for r in Role]
    with_config(user_sub.add_parser("list", help="list users")).set_defaults(func=func)
    add = with_config(user_sub.add_parser(
        "add", help=f"create a user (password from ${PASSWORD_ENV} or a prompt)"))
    add.add_argument("login")
    add.add_argument("--name")
    add.add_argument("--role", choices=roles, default="secretary")
    add.add_argument("--extension")
    add.add_argument("--language", choices=LANGUAGES,
                     help="default: console.default_language")
    add.set_defaults(func=func)
    edit = with_config(user_sub.add_parser("edit", help="change a user's name, role, "
                                                         "extension or language"))
    edit.add_argument("login")
    edit.add_argument("--name")
    edit.add_argument("--role", choices=roles)
    edit.add_argument("--extension", help='digits, or "" to remove it')
    edit.add_argument("--language", choices=LANGUAGES)
    edit.set_defaults(func=func)
    for name, text in (("disable", "disable a user (their sessions end)"),
                       ("enable", "enable a disabled user")):
        p = with_config(user_sub.add_parser(name, help=text))
        p.add_argument("login")
        p.set_defaults(func=func)
    reset = with_config(user_sub.add_parser(
        "reset-password", help=f"set a new password (from ${PASSWORD_ENV} or a prompt);"
                               " the user's sessions end"))
    reset.add_argument("login")
    reset.add_argument("--one-time", action="store_true",
                       help="the user must choose their own password at the next login")
    reset.set_defaults(func=func)
    hand = with_config(user_sub.add_parser(
        "handover", help="give a user's open tasks and clients to another user"))
    hand.add_argument("login")
    hand.add_argument("--to", required=True, metavar="LOGIN")
    hand.set_defaults(func=func)
