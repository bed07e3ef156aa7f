"""The AMI exception tree. Everything the AMI client raises is an ``AmiError``::

    AmiError
    ├── AmiUnreachable      TCP connect to host:port failed or timed out
    ├── AmiAuthError        Login answered ``Response: Error`` (final for ``start()``)
    ├── AmiConnectionLost   the socket dropped (or the client closed) while an action was in flight
    ├── AmiTimeout          no answer within the action's timeout
    └── AmiActionError      the PBX answered ``Response: Error``; ``.response`` holds the message

Socket and asyncio errors are translated at the boundary (``connection.py``), ``raise … from``.
"""

from __future__ import annotations

from pbx.ami.message import Message


class AmiError(Exception):
    """Base of every AMI client error."""


class AmiUnreachable(AmiError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"AMI at {host}:{port} is unreachable: {reason}")
        self.host = host
        self.port = port


class AmiAuthError(AmiError):
    """The PBX refused our credentials. Retrying at once would only hammer it (and lock us out
    if fail2ban watches the AMI port), so ``start()`` raises this instead of looping."""


class AmiConnectionLost(AmiError):
    """The connection went away before the answer came. The action may or may not have been
    executed by the PBX: it is never re-sent automatically."""


class AmiTimeout(AmiError):
    pass


class AmiActionError(AmiError):
    def __init__(self, response: Message) -> None:
        name = response.get("Message") or response.response or "error"
        super().__init__(f"AMI action {response.action_id} failed: {name}")
        self.response = response
