"""quart_dl.hub.sinks: each carrier's sink delivers, heartbeats and ends itself."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes import FakeTransport

from quart_dl.hub.frames import HEARTBEAT_COMMENT, LAST_CHUNK, Event, chunk
from quart_dl.hub.sinks import (
    CLIENT_CLOSED,
    OVERFLOW,
    SEND_TIMEOUT,
    SERVER_SHUTDOWN,
    QueueSink,
    TransportSink,
)

H1 = "5a1b" + "0" * 36


def event(seq: int = 1) -> Event:
    return Event(seq, "feed0001", "diff", {"changed": {H1: {"progress": seq / 10}}})


def transport_sink(transport: FakeTransport, queue_size: int = 3, chunked: bool = True) -> TransportSink:
    return TransportSink("c1", "127.0.0.1", None, False, time.monotonic(), queue_size, transport, chunked)


def queue_sink(queue_size: int = 3) -> QueueSink:
    return QueueSink("c2", "127.0.0.1", None, False, time.monotonic(), queue_size)


def test_transport_sink_writes_the_shared_chunk() -> None:
    transport = FakeTransport()
    sink = transport_sink(transport)
    e = event()
    sink.deliver(e, time.monotonic())
    assert transport.written == [e.chunk]
    assert transport.written[0] is e.chunk


def test_paused_transport_sink_overflows_and_aborts_itself() -> None:
    transport = FakeTransport()
    sink = transport_sink(transport, queue_size=2)
    sink.paused(time.monotonic())
    for seq in (1, 2, 3):
        sink.deliver(event(seq), time.monotonic())
    assert sink.close_reason == OVERFLOW
    assert transport.closed == "abort"
    assert len(transport.written) == 2


def test_resumed_transport_sink_starts_its_backlog_again() -> None:
    transport = FakeTransport()
    sink = transport_sink(transport, queue_size=1)
    sink.paused(time.monotonic())
    sink.deliver(event(1), time.monotonic())
    sink.resumed()
    sink.paused(time.monotonic())
    sink.deliver(event(2), time.monotonic())
    assert sink.close_reason is None


def test_transport_sink_ends_cleanly_with_the_last_chunk_once() -> None:
    transport = FakeTransport()
    sink = transport_sink(transport)
    sink.close(SERVER_SHUTDOWN)
    sink.close(SERVER_SHUTDOWN)
    assert transport.written == [LAST_CHUNK]
    assert transport.closed == "close"
    sink.deliver(event(), time.monotonic())
    assert transport.written == [LAST_CHUNK]  # nothing after the end


def test_transport_sink_cuts_a_client_that_does_not_read() -> None:
    stuck = FakeTransport(buffered=1 << 20)
    transport_sink(stuck).close(SERVER_SHUTDOWN)
    assert stuck.closed == "abort"
    timed_out = FakeTransport()
    transport_sink(timed_out).close(SEND_TIMEOUT)
    assert (timed_out.closed, timed_out.written) == ("abort", [])


def test_http10_transport_sink_writes_frames_as_they_are_and_ends_by_closing() -> None:
    transport = FakeTransport()
    sink = transport_sink(transport, chunked=False)
    e = event()
    sink.deliver(e, time.monotonic())
    sink.close(CLIENT_CLOSED)
    assert transport.written == [e.data]
    assert transport.closed == "close"


def test_transport_sink_heartbeats_when_silent_and_not_while_paused() -> None:
    transport = FakeTransport()
    sink = transport_sink(transport)
    now = time.monotonic()
    assert not sink.heartbeat(now, 15.0, lambda s: HEARTBEAT_COMMENT)
    assert sink.heartbeat(now + 16, 15.0, lambda s: HEARTBEAT_COMMENT)
    assert transport.written == [chunk(HEARTBEAT_COMMENT)]
    sink.paused(now + 40)
    assert not sink.heartbeat(now + 40, 15.0, lambda s: HEARTBEAT_COMMENT)


def test_queue_sink_queues_wakes_and_overflows() -> None:
    sink = queue_sink(queue_size=2)
    sink.deliver(event(1), time.monotonic())
    assert sink.wake.is_set()
    sink.deliver(event(2), time.monotonic())
    sink.deliver(event(3), time.monotonic())
    assert sink.close_reason == OVERFLOW
    assert sink.drain() == []


def test_queue_sink_drops_what_its_opening_covered() -> None:
    sink = queue_sink()
    sink.since_seq = 1
    sink.deliver(event(1), time.monotonic())
    sink.deliver(event(2), time.monotonic())
    assert sink.drain() == [event(2).data]


def stuck_handler() -> asyncio.Task[bool]:
    """A stand-in for a stream handler blocked in a send that never completes."""
    return asyncio.create_task(asyncio.Event().wait())


async def test_queue_sink_cancels_a_handler_stuck_in_a_send() -> None:
    sink = queue_sink()
    task = sink.task = stuck_handler()
    sink.close(SEND_TIMEOUT)
    assert sink.close_reason == SEND_TIMEOUT
    assert task.cancelling() == 1
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_queue_sink_ends_a_healthy_handler_by_waking_it() -> None:
    sink = queue_sink()
    task = sink.task = stuck_handler()
    sink.close(SERVER_SHUTDOWN)
    assert sink.wake.is_set()
    assert task.cancelling() == 0  # woken to return by itself, not cancelled
    task.cancel()
