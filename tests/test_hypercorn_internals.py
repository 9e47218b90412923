"""The fence around Hypercorn's internals: the contract check, and the guarded writer."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from hypercorn.asyncio.tcp_server import TCPServer

from quart_dl.server import hypercorn_internals
from quart_dl.server.hypercorn_internals import GuardedWriter, contract_problem


def test_the_pinned_hypercorn_meets_the_contract() -> None:
    assert contract_problem() is None


def test_a_changed_tcp_server_signature_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class Changed:
        def __init__(self, app: Any, loop: Any, config: Any, context: Any, state: Any, stream: Any) -> None:
            pass

        async def run(self) -> None:
            pass

        async def protocol_send(self, event: Any) -> None:
            pass

    monkeypatch.setattr(hypercorn_internals, "TCPServer", Changed)
    problem = contract_problem()
    assert problem is not None
    assert "TCPServer takes" in problem


def test_a_protocol_send_that_is_no_longer_a_coroutine_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    class Changed(TCPServer):
        def protocol_send(self, event: Any) -> None:  # type: ignore[override]
            pass

    monkeypatch.setattr(hypercorn_internals, "TCPServer", Changed)
    assert contract_problem() == "TCPServer.protocol_send is not a coroutine function"


def test_an_updated_event_without_idle_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    @dataclasses.dataclass
    class Updated:
        busy: bool

    monkeypatch.setattr(hypercorn_internals, "Updated", Updated)
    assert contract_problem() == "hypercorn.events.Updated has no idle field"


async def accepted() -> tuple[
    asyncio.Transport, asyncio.StreamReaderProtocol, asyncio.StreamReader, socket.socket
]:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    reader = asyncio.StreamReader()
    transport, protocol = await loop.connect_accepted_socket(
        lambda: asyncio.StreamReaderProtocol(reader), ours
    )
    return transport, protocol, reader, theirs


async def test_hypercorns_writer_writes_nothing_once_the_connection_is_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # asyncio logs "socket.send() raised exception." for each write to a lost transport past
    # the fifth: a line per failed send. An answer still being written when its client
    # leaves must not produce them.
    transport, protocol, reader, theirs = await accepted()
    writer = GuardedWriter(transport, protocol, reader, asyncio.get_running_loop())
    theirs.close()
    transport.abort()
    for _ in range(20):
        writer.write(b"an answer nobody reads")  # asyncio would log within write() itself
    assert "socket.send() raised" not in caplog.text


async def test_a_detached_writer_leaves_the_connection_to_its_new_owner() -> None:
    # When the socket layer takes a connection back from Hypercorn, Hypercorn's handler ends
    # (EOF, close, wait for the close): none of it may touch the connection.
    transport, protocol, reader, theirs = await accepted()
    writer = GuardedWriter(transport, protocol, reader, asyncio.get_running_loop())
    writer.detach()
    writer.write(b"not this")
    writer.write_eof()
    writer.close()
    await asyncio.wait_for(writer.wait_closed(), 1)  # returns at once: nothing to wait for
    await writer.drain()
    assert not transport.is_closing()
    transport.write(b"the new owner's bytes")
    theirs.settimeout(2)
    assert theirs.recv(100) == b"the new owner's bytes"
    transport.close()
    theirs.close()
