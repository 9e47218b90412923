"""The hand-written event-stream parser, chunk boundary by chunk boundary."""

from __future__ import annotations

import pytest

from custom_components.quart_dl.sse import SseEvent, SseLineTooLong, SseParser

STREAM = (
    b"retry: 3000\n\n"
    b'id: e-1\nevent: snapshot\ndata: {"v":1}\n\n'
    b": heartbeat\n\n"
    b'id: e-2\nevent: diff\ndata: {"changed":{}}\n\n'
)
EXPECTED = [
    SseEvent(event="snapshot", data='{"v":1}', id="e-1"),
    SseEvent(event="diff", data='{"changed":{}}', id="e-2"),
]


def _feed_all(parser: SseParser, chunks: list[bytes]) -> list[SseEvent]:
    events: list[SseEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def test_whole_stream() -> None:
    """Events, the retry hint, heartbeats and the last id, from one chunk."""
    parser = SseParser()
    assert parser.feed(STREAM) == EXPECTED
    assert parser.retry_ms == 3000
    assert parser.comments == 1
    assert parser.last_event_id == "e-2"


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_any_chunking_gives_the_same_events(size: int) -> None:
    """aiohttp's ``iter_any`` cuts anywhere: inside a line, a field name or a line end."""
    chunks = [STREAM[i : i + size] for i in range(0, len(STREAM), size)]
    assert _feed_all(SseParser(), chunks) == EXPECTED


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_every_line_ending(newline: bytes) -> None:
    """CRLF, CR and LF all end lines, also when a CRLF is split across two chunks."""
    stream = STREAM.replace(b"\n", newline)
    assert SseParser().feed(stream) == EXPECTED
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    assert _feed_all(SseParser(), chunks) == EXPECTED


def test_line_over_128_kib() -> None:
    """Regression: aiohttp's line reader fails on lines over ~128 KiB; snapshots are bigger."""
    data = "x" * (3 * 1024 * 1024)
    stream = f"id: e-9\nevent: snapshot\ndata: {data}\n\n".encode()
    chunks = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]
    assert _feed_all(SseParser(), chunks) == [SseEvent("snapshot", data, "e-9")]


def test_multiline_data_and_defaults() -> None:
    """``data`` lines join with newlines; no ``event`` means ``message``; no space is fine."""
    events = SseParser().feed(b"data:a\ndata: b\ndata\n\n")
    assert events == [SseEvent(event="message", data="a\nb\n", id=None)]


def test_block_without_data_dispatches_nothing() -> None:
    """An ``id``-only block updates the last id but dispatches no event."""
    parser = SseParser()
    assert parser.feed(b"id: e-5\n\n") == []
    assert parser.last_event_id == "e-5"


def test_utf8_split_inside_a_character() -> None:
    """A multi-byte character cut between chunks is decoded whole."""
    stream = "data: Ünïcødé ✓\n\n".encode()
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    assert _feed_all(SseParser(), chunks) == [SseEvent("message", "Ünïcødé ✓", None)]


def test_unbounded_line_is_refused() -> None:
    """A line that never ends must not grow the buffer forever."""
    parser = SseParser(max_line=1024)
    with pytest.raises(SseLineTooLong):
        parser.feed(b"data: " + b"x" * 2048)


def test_cut_inside_a_block_does_not_advance_the_id() -> None:
    """Regression: an ``id:`` line whose block never completed must not become the
    Last-Event-ID, or the server would not replay that event after the reconnect."""
    parser = SseParser()
    parser.feed(b"id: e-1\nevent: diff\ndata: {}\n\n")
    assert parser.feed(b'id: e-2\nevent: diff\ndata: {"cha') == []
    assert parser.last_event_id == "e-1"
    parser.reset()
    # The next connection starts clean: no half line is glued onto its first line.
    assert parser.feed(b"id: e-2\nevent: diff\ndata: {}\n\n") == [SseEvent(event="diff", data="{}", id="e-2")]
