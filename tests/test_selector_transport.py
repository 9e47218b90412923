"""quart_dl.hub.selector_transport: what the fan-out relies on of asyncio's TCP transport.

These are the contract checks: if a Python release changes the transport's internals, they
fail here first (and ``direct_send`` answering None keeps the server on ``write``).
"""

from __future__ import annotations

import asyncio
import socket
from asyncio import selector_events
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import FakeTransport

from quart_dl.hub.selector_transport import direct_send


@pytest.fixture
async def pair() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """A real asyncio transport on one end of a socket pair, the plain socket on the other."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(asyncio.Protocol, ours)
    try:
        yield transport, theirs
    finally:
        transport.abort()
        theirs.close()


async def test_direct_send_finds_the_socket_and_an_empty_buffer(
    pair: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, theirs = pair
    found = direct_send(transport)
    assert found is not None
    send, unsent = found
    assert not unsent
    assert send(b"hello") == 5
    assert theirs.recv(16) == b"hello"


async def test_the_buffer_holds_what_the_socket_did_not_take(
    pair: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, _ = pair
    found = direct_send(transport)
    assert found is not None
    _, unsent = found
    transport.write(b"x" * (16 << 20))  # far more than the socket buffers take, nobody reads
    assert unsent  # the same object the transport keeps its unsent bytes in
    assert transport.get_write_buffer_size() > 0


#: asyncio's TCP transport class (private, hence looked up by name).
PLAIN: Any = getattr(selector_events, "_SelectorSocketTransport")  # noqa: B009


async def test_other_transports_use_write() -> None:
    class Subclass(PLAIN):  # type: ignore[misc]  # e.g. another library's, or TLS's own
        pass

    assert direct_send(FakeTransport()) is None
    assert direct_send(Subclass.__new__(Subclass)) is None
