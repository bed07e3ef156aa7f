"""Pre-framed websocket writes: one event is framed once and the same bytes go to every console.

uvicorn's ASGI path frames every message again for every connection (websockets' Frame object,
its serializer, ``data_to_send``) and each console's sender task wakes for it: at 1,000
consoles that was most of the fan-out's time (benchmarks/ws_fanout.py). ``FramingProtocol`` is
uvicorn's websockets-sansio protocol plus one ASGI scope extension, ``callcenter.frames``,
through which the hub writes a ready frame to the socket. Without it (Starlette's TestClient,
another server) the hub sends text the ASGI way, with the same result on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any, Protocol

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

FRAMES_EXTENSION = "callcenter.frames"
log = logging.getLogger(__name__)


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented server text frame (RFC 6455 5.2): FIN + opcode 1, then the
    7-bit, 16-bit or 64-bit length, then the payload."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


class FrameSink(Protocol):
    """What the hub needs of a connection to write frames itself."""

    @property
    def writable(self) -> asyncio.Event: ...  # clear while the socket's buffer is above its mark

    def write_frame(self, frame: bytes) -> bool: ...  # False: the connection is closing


class FramingProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol, offering ``write_frame`` to the application.

    Offered only when no extension was negotiated: with permessage-deflate the frames the
    library would send differ (compressed), and the hub falls back to ``send_text``.
    """

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The ASGI task was created above but has not run yet: the scope is still ours to add to.
        offer_frames(self)

    def write_frame(self, frame: bytes) -> bool:
        # Only between the accept and the close: the close frame must be the last one sent.
        if (not self.handshake_complete or self.close_sent or self.disconnected
                or self.transport.is_closing()):
            return False
        self.transport.write(frame)
        return True


# What write_frame and the hub read of uvicorn's protocol, none of it public API.
_FLAGS = ("handshake_complete", "close_sent", "disconnected")
_warned = False


def offer_frames(protocol: Any) -> bool:
    """Add the sink to a just-accepted connection's scope when uvicorn's protocol still has
    everything ``write_frame`` and the hub read; otherwise (a uvicorn whose internals moved)
    leave it out, say so once, and the hub sends the ASGI way, with the same bytes on the wire.
    Not offered either for a refused handshake or a negotiated extension (compressed frames)."""
    global _warned
    if getattr(getattr(protocol, "response", None), "status_code", 101) != 101:
        return False  # refused: no scope, no application
    try:
        scope = protocol.scope
        usable = (isinstance(protocol.writable, asyncio.Event)
                  and all(isinstance(getattr(protocol, flag), bool) for flag in _FLAGS)
                  and callable(protocol.transport.write)
                  and callable(protocol.transport.is_closing)
                  and isinstance(scope["extensions"], dict))
        extensions = protocol.conn.extensions
    except (AttributeError, KeyError, TypeError):
        usable = False
    if not usable:
        if not _warned:
            _warned = True
            log.warning("uvicorn's websockets-sansio protocol is not the one ui.ws_frames was "
                        "written for: consoles get events the ASGI way (slower fan-out)")
        return False
    if extensions:
        return False
    scope["extensions"][FRAMES_EXTENSION] = {"sink": protocol}
    return True


def frame_sink(scope: dict[str, Any]) -> FrameSink | None:
    """The connection's sink when the server offers one."""
    offered = scope.get("extensions", {}).get(FRAMES_EXTENSION)
    return offered.get("sink") if isinstance(offered, dict) else None
