"""Sending straight to the socket under asyncio's plain TCP transport, when that is safe.

Why: a broadcast to 10,000 streams is 10,000 ``transport.write`` calls, and asyncio's
``_SelectorSocketTransport.write`` is Python (type and state checks, a ``memoryview`` of what
was sent) around the one ``socket.send`` that does the work. Measured in-process with the
socket's send stubbed out (BENCHMARKS.md, run 8), that layer was about half of the Python
per stream. When the transport holds nothing unsent, ``write`` does exactly one
``socket.send``; the fan-out does that send itself and gives the transport only what the
socket did not take (``write`` then buffers it, starts the writer and pauses the protocol as
usual). With anything buffered, every byte goes through ``write``, so the order on the wire
is the transport's.

What this relies on of asyncio beyond its public API, all of it here: the exact class
``asyncio.selector_events._SelectorSocketTransport`` (not a subclass: TLS and other loops
such as uvloop get ``None`` and use ``write``), its socket in ``_sock`` and its unsent bytes
in ``_buffer`` (a ``bytearray`` on 3.11, a ``deque`` from 3.12: both are empty when nothing
waits). ``tests/test_selector_transport.py`` checks them on real transports; ``direct_send``
answers ``None`` when they are not there, and everything goes through ``write`` as before.
"""

from __future__ import annotations

import asyncio
import socket
from asyncio import selector_events
from collections.abc import Callable, Sized
from typing import Any

#: A socket's ``send``: bytes in, how many it took out (or ``BlockingIOError``, ``OSError``).
Send = Callable[[bytes], int]

_CLASS: Any = getattr(selector_events, "_SelectorSocketTransport", None)


def direct_send(transport: asyncio.BaseTransport) -> tuple[Send, Sized] | None:
    """The socket's ``send`` and the transport's unsent bytes, or None to use ``write``."""
    if _CLASS is None or type(transport) is not _CLASS:
        return None
    sock = getattr(transport, "_sock", None)
    buffer = getattr(transport, "_buffer", None)
    if not isinstance(sock, socket.socket) or not isinstance(buffer, Sized):
        return None
    return sock.send, buffer
