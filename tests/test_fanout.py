"""quart_dl.hub.fanout on real sockets: the routes' own loop, which sends on the socket itself.

The hub's tests (test_hub.py) use fake transports, which take the sinks' ``deliver``; these use
asyncio's real TCP transport over socket pairs, which is what the socket layer holds and what
``FanOut.deliver`` sends to directly (``selector_transport.py``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator

import pytest
from fakes import H1, parse_frames, raw_torrent

from quart_dl.hub import CLIENT_CLOSED, OVERFLOW, Hub, TransportSink
from quart_dl.hub.frames import HEARTBEAT_COMMENT, chunk
from quart_dl.lab.wait import wait_for_async
from quart_dl.torrents import ChangeSet, project

EPOCH = "f00d0001"

#: A stream held on a real transport: its sink, the client's end of the socket, the transport.
Held = tuple[TransportSink, socket.socket, asyncio.Transport]
Streams = tuple[Hub, list[Held]]


class StreamProtocol(asyncio.Protocol):
    """What the socket layer's protocol does for a held stream: flow control to its sink."""

    sink: TransportSink | None = None

    def pause_writing(self) -> None:
        if self.sink is not None:
            self.sink.paused(asyncio.get_running_loop().time())

    def resume_writing(self) -> None:
        if self.sink is not None:
            self.sink.resumed()


@pytest.fixture
async def streams() -> AsyncIterator[Streams]:
    hub = Hub(epoch=EPOCH, queue_size=3)
    hub.seed({H1: project(H1, raw_torrent("one"))})
    opened: list[Held] = []
    yield hub, opened
    for _, theirs, transport in opened:
        transport.abort()
        theirs.close()


async def hold(
    hub: Hub,
    opened: list[Held],
    *,
    chunked: bool = True,
    sndbuf: int = 0,
    **subscription: object,
) -> Held:
    """A stream the hub holds on a real transport, and the client's end of its socket."""
    ours, theirs = socket.socketpair()
    if sndbuf:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    ours.setblocking(False)
    theirs.setblocking(False)
    transport, protocol = await asyncio.get_running_loop().connect_accepted_socket(StreamProtocol, ours)
    assert isinstance(transport, asyncio.Transport)
    sink, _, _ = hub.subscribe(transport=transport, chunked=chunked, **subscription)  # type: ignore[call-overload]
    assert sink.send is not None  # the fan-out's own loop sends to it
    protocol.sink = sink
    opened.append((sink, theirs, transport))
    return sink, theirs, transport


def received(theirs: socket.socket) -> bytes:
    """Everything the client's end has been sent so far."""
    out = b""
    while True:
        try:
            data = theirs.recv(1 << 20)
        except BlockingIOError:
            return out
        if not data:
            return out
        out += data


def progress(value: float) -> ChangeSet:
    return ChangeSet(changed={H1: {"progress": value}})


async def test_each_route_gets_its_own_frame(
    streams: Streams,
) -> None:
    hub, opened = streams
    hub.add_instance("box", "Box")
    _, chunked_v1, _ = await hold(hub, opened)
    _, plain_v1, _ = await hold(hub, opened, chunked=False)
    _, every_v2, _ = await hold(hub, opened, v2=True)
    _, box_v1, _ = await hold(hub, opened, instance="box")
    event = hub.publish_changes(progress(0.5))
    assert event is not None
    assert received(chunked_v1) == event.chunk
    assert received(plain_v1) == event.data
    assert received(every_v2) == event.chunk_v2
    assert b'"instance":"default"' in event.chunk_v2
    assert received(box_v1) == b""  # another instance's event
    box_event = hub.publish_changes(progress(0.6), instance="box")
    assert box_event is not None
    assert received(box_v1) == box_event.chunk
    assert received(chunked_v1) == b""
    assert received(every_v2) == box_event.chunk_v2


async def test_regression_an_event_waits_behind_the_bytes_its_transport_still_holds(
    streams: Streams,
) -> None:
    """An opening bigger than the socket takes is partly left in the transport; the client then
    reads some, so the socket has room before asyncio's writer runs again. An event sent on the
    socket then would land in the middle of the opening."""
    hub, opened = streams
    sink, theirs, transport = await hold(hub, opened, sndbuf=4096)
    transport.set_write_buffer_limits(high=1 << 30)  # not paused: the route's loop takes it
    opening = bytes(range(256)) * 4096  # 1 MiB
    transport.write(opening)
    assert transport.get_write_buffer_size() > 0
    first = received(theirs)  # the client drains the socket; the loop has not run since
    assert first
    event = hub.publish_changes(progress(0.7))
    assert event is not None
    assert sink.sending_since is None
    stream = bytearray(first)

    def all_arrived() -> bool:  # asyncio's writer sends what the transport holds as the loop runs
        stream.extend(received(theirs))
        return len(stream) >= len(opening) + len(event.chunk)

    await wait_for_async(all_arrived, 5, "the opening and the event to arrive")
    assert stream == opening + event.chunk


async def test_a_stream_that_stops_reading_is_paused_then_dropped_for_overflow(
    streams: Streams,
) -> None:
    hub, opened = streams
    sink, _, transport = await hold(hub, opened, sndbuf=4096)
    transport.set_write_buffer_limits(high=8192)
    for i in range(1000):
        hub.publish_changes(progress(i / 1000))
        if sink.close_reason is not None:
            break
    assert sink.close_reason == OVERFLOW
    assert transport.is_closing()


async def test_regression_nothing_is_sent_once_the_client_ended_its_side(
    streams: Streams,
) -> None:
    """asyncio closes a transport whose client sent EOF and drops what is written to it; the
    route's loop, which sends on the socket itself, must stop as well."""
    hub, opened = streams
    sink, theirs, _ = await hold(hub, opened)
    first = hub.publish_changes(progress(0.1))
    assert first is not None
    assert received(theirs) == first.chunk
    sink.lost()
    assert sink.close_reason == CLIENT_CLOSED
    hub.publish_changes(progress(0.2))
    assert received(theirs) == b""


async def test_a_torrents_stream_on_a_real_socket_gets_only_its_torrent(
    streams: Streams,
) -> None:
    hub, opened = streams
    _, theirs, _ = await hold(hub, opened, torrent_hash=H1)
    hub.publish_changes(ChangeSet(changed={"f" * 40: {"progress": 0.3}}))
    assert received(theirs) == b""
    hub.publish_changes(progress(0.4))
    body = received(theirs)
    size, _, rest = body.partition(b"\r\n")
    assert int(size, 16) == len(rest) - 2
    (frame,) = parse_frames(rest[:-2])
    assert json.loads(frame["data"])["changed"] == {H1: {"progress": 0.4}}


async def test_a_heartbeat_round_writes_each_kind_once_encoded_and_counts_every_stream(
    streams: Streams,
) -> None:
    hub, opened = streams
    browsers = [await hold(hub, opened, heartbeat_as_event=True) for _ in range(2)]
    _, comments, _ = await hold(hub, opened)
    now = time.monotonic() + 10 * hub.heartbeat
    assert hub.beat(now) == 3
    assert hub.metrics.value("heartbeats_sent_total") == 3
    first, second = (received(theirs) for _, theirs, _ in browsers)
    assert first == second  # one heartbeat event for the round
    (frame,) = parse_frames(first.partition(b"\r\n")[2][:-2])
    assert frame["event"] == "heartbeat"
    assert received(comments) == chunk(HEARTBEAT_COMMENT)
    assert hub.beat(now) == 0
    assert hub.metrics.value("heartbeats_sent_total") == 3
