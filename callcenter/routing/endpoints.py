"""The PBX's endpoint list, for mapping extensions to users with one click.

A line that can list its endpoints implements :class:`EndpointSource` (the Asterisk line with
``PJSIPShowEndpoints``); the core never asks which kind of line it is.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from callcenter.users.service import EXTENSION


@runtime_checkable
class EndpointSource(Protocol):
    async def endpoints(self) -> list[tuple[str, str]]:
        """(name, state) of every endpoint, e.g. ("101", "Not in use"), ("trunk", "...")."""
        ...


def is_extension(name: str) -> bool:
    """Office phones are named by their extension; trunks and the rest are not."""
    return EXTENSION.fullmatch(name) is not None
