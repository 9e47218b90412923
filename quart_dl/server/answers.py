"""What the socket layer writes itself: response heads, its JSON refusals, and the cheap
look at a request line that decides whether a request may be a stream."""

from __future__ import annotations

import asyncio
import json
import logging
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ..web.limits import RETRY_AFTER
from . import framing

if TYPE_CHECKING:
    from .socket_layer import FrontDoor

log = logging.getLogger("quart_dl.server.socket_layer")

#: Response headers this layer sets itself (framing is the server's business, not the app's).
_FRAMING = {b"content-length", b"transfer-encoding", b"connection"}

#: errors.py's answer to an unexpected exception, for the one the app itself did not catch.
INTERNAL_ERROR = b'{"error":"internal_error","message":"the server hit an unexpected error; see its log"}'

#: The answer to a connection over ``max_connections_per_client``.
TOO_MANY_CONNECTIONS = framing.Refusal(
    503, "too_many_connections", "this address has too many open connections; close some first"
)


def refuse(door: FrontDoor, transport: asyncio.Transport, refusal: framing.Refusal, reason: str) -> None:
    """Write ``refusal`` as the app's JSON error (``Connection: close``) and close."""
    log.debug("refused a request (%s): %s", reason, refusal.message)
    door.metrics.inc("connections_refused_total", reason=reason)
    body = json.dumps({"error": refusal.code, "message": refusal.message}, separators=(",", ":")).encode()
    extra = b"content-length: %d\r\nconnection: close\r\n" % len(body)
    if refusal.status == 503:
        extra += b"retry-after: %d\r\n" % RETRY_AFTER
    transport.write(head(refusal.status, [(b"content-type", b"application/json")], extra) + body)
    transport.close()


def looks_like_stream(request: bytes | bytearray) -> bool:
    """A cheap look at the request line: ``GET <path ending in /events>[?query] HTTP/1.x``."""
    line_end = request.find(b"\r\n")
    parts = bytes(request[:line_end]).split(b" ")
    return (
        len(parts) == 3
        and parts[0] == b"GET"
        and parts[1].partition(b"?")[0].endswith(b"/events")
        and parts[2] in (b"HTTP/1.1", b"HTTP/1.0")
    )


def address(value: Any) -> tuple[str, int] | None:
    """A peer or socket name as ASGI wants it (host, port), or None."""
    if isinstance(value, tuple) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


def head(status: int, headers: Any, extra: bytes) -> bytes:
    """A response head with the app's headers (its framing ones left out) and ``extra``."""
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    lines = [b"HTTP/1.1 %d %b\r\n" % (status, reason)]
    lines.extend(
        b"%b: %b\r\n" % (bytes(name), bytes(value))
        for name, value in headers
        if bytes(name).lower() not in _FRAMING
    )
    lines.append(b"date: %b\r\n" % formatdate(usegmt=True).encode())
    lines.append(extra)
    lines.append(b"\r\n")
    return b"".join(lines)
