"""``quart_dl.lab.sse_reader``: the tests' SSE reader parses as a browser's EventSource does.

Each case is a rule of the WHATWG HTML "event stream interpretation" section. Streams are
fed whole and one byte at a time: a rule that only holds for one chunking is not kept.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Iterator

import pytest

from quart_dl.lab.sse_reader import SSEMessage, SSEParser, SSEReader


def parse(stream: bytes) -> list[SSEMessage]:
    """Blocks from ``stream`` fed whole, after checking byte-by-byte feeding agrees."""
    whole = SSEParser().feed(stream, at=1.0)
    bytewise = SSEParser()
    one_by_one = [m for i in range(len(stream)) for m in bytewise.feed(stream[i : i + 1], at=1.0)]
    assert [view(m) for m in one_by_one] == [view(m) for m in whole]
    return whole


def view(m: SSEMessage) -> tuple[str, str | None, str | None, str, str | None, int | None]:
    return (m.event, m.data, m.id, m.last_event_id, m.comment, m.retry)


def events(stream: bytes) -> list[tuple[str, str]]:
    """(type, data) of what EventSource would dispatch."""
    return [(m.event, m.data) for m in parse(stream) if m.data is not None]


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b"\r"])
def test_lf_crlf_and_cr_all_end_a_line(end: bytes) -> None:
    stream = end.join([b"event: diff", b"data: one", b"data: two", b"", b"data: three", b"", b""])
    assert events(stream) == [("diff", "one\ntwo"), ("message", "three")]


def test_a_crlf_split_across_two_reads_is_one_line_end() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r") == []
    # Were the LF a second line end, it would be a blank line and dispatch "a" alone.
    (message,) = parser.feed(b"\ndata: b\r\n\r\n")
    assert message.data == "a\nb"


def test_mixed_line_ends_in_one_stream() -> None:
    assert events(b"data: a\rdata: b\r\ndata: c\n\r\n") == [("message", "a\nb\nc")]


def test_one_leading_bom_is_dropped_and_a_later_one_is_not() -> None:
    assert events(b"\xef\xbb\xbfdata: first\n\n") == [("message", "first")]
    # A second BOM is part of the field name, which is then unknown: the line is ignored.
    assert events(b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\ndata: y\n\n") == [("message", "y")]
    parser = SSEParser()
    assert parser.feed(b"\xef") == parser.feed(b"\xbb") == []
    assert [m.data for m in parser.feed(b"\xbfdata: split\n\n")] == ["split"]


def test_data_with_and_without_the_space_after_the_colon() -> None:
    assert events(b"data:tight\n\ndata: spaced\n\ndata:  two spaces\n\n") == [
        ("message", "tight"),
        ("message", "spaced"),
        ("message", " two spaces"),
    ]


def test_a_field_without_colon_has_an_empty_value() -> None:
    assert events(b"data\ndata\n\n") == [("message", "\n")]
    assert events(b"data:\n\n") == [("message", "")]


def test_multi_line_data_keeps_inner_empty_lines_and_colons() -> None:
    assert events(b'data: {"a":\ndata:\ndata: 1}\n\n') == [("message", '{"a":\n\n1}')]


def test_comments_do_not_dispatch_but_are_kept_for_the_test() -> None:
    (beat, event) = parse(b": heartbeat\n\n:x\ndata: d\n\n")
    assert (beat.comment, beat.data) == ("heartbeat", None)
    assert (event.comment, event.data) == ("x", "d")


def test_event_type_defaults_to_message_and_resets_after_each_event() -> None:
    assert events(b"event: diff\ndata: 1\n\ndata: 2\n\nevent:\ndata: 3\n\n") == [
        ("diff", "1"),
        ("message", "2"),
        ("message", "3"),
    ]
    # An event type with no data dispatches nothing and does not leak into the next block.
    assert events(b"event: lost\n\ndata: 4\n\n") == [("message", "4")]


def test_id_carries_over_is_reset_by_an_empty_id_and_ignored_with_nul() -> None:
    messages = parse(b"id: e-1\ndata: a\n\ndata: b\n\nid: e\x00vil\ndata: c\n\nid\ndata: d\n\n")
    assert [(m.data, m.id, m.last_event_id) for m in messages] == [
        ("a", "e-1", "e-1"),
        ("b", None, "e-1"),  # EventSource reports the last id for an event without one
        ("c", None, "e-1"),  # an id containing NUL is ignored
        ("d", "", ""),  # an empty id resets it
    ]


def test_retry_is_taken_only_when_all_ascii_digits() -> None:
    parser = SSEParser()
    (hint,) = parser.feed(b"retry: 3000\n\n")
    assert (hint.retry, hint.data) == (3000, None)
    for bad in (b"retry: 3s", b"retry: -1", b"retry: 1.5", b"retry:", b"retry: \xd9\xa3"):
        assert parser.feed(bad + b"\n\n") == []
    assert parser.retry == 3000


def test_unknown_fields_are_ignored() -> None:
    assert events(b"foo: bar\nDATA: shout\ndata: x\n\n") == [("message", "x")]


def test_an_event_without_its_blank_line_is_not_dispatched() -> None:
    assert events(b"data: done\n\ndata: cut off\n") == [("message", "done")]


def test_invalid_utf8_becomes_the_replacement_character() -> None:
    assert events(b"data: \xff\xfe ok\n\n") == [("message", "\ufffd\ufffd ok")]


def test_utf8_split_across_reads() -> None:
    encoded = "data: é🎉\n\n".encode()
    parser = SSEParser()
    out = [m for b in encoded for m in parser.feed(bytes([b]))]
    assert [m.data for m in out] == ["é🎉"]


def test_blocks_are_stamped_with_their_arrival() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n", at=1.0) == []
    (message,) = parser.feed(b"\n", at=2.5)
    assert message.at == 2.5


# -------------------------------------------------------------------- the reader


class RawSSEServer:
    """An HTTP/1.0 server for one client: sends the head, then each chunk when told, then closes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.chunks: queue.Queue[bytes | None] = queue.Queue()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
            while (chunk := self.chunks.get(timeout=10)) is not None:
                conn.sendall(chunk)

    def close(self) -> None:
        self.chunks.put(None)
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def raw_server() -> Iterator[RawSSEServer]:
    server = RawSSEServer()
    yield server
    server.close()


def test_reader_reads_cr_only_streams_as_they_arrive(raw_server: RawSSEServer) -> None:
    with SSEReader(f"http://127.0.0.1:{raw_server.port}/api/events") as reader:
        assert reader.status == 200
        assert reader.response_headers["content-type"] == "text/event-stream"
        # CR line ends only: a reader that waits for LF would see none of this.
        raw_server.chunks.put(b"retry: 3000\r\r: heartbeat\r\r")
        reader.wait(lambda ms: len(ms) == 2, 10, "the retry hint and a heartbeat")
        assert reader.snapshot()[0].retry == 3000
        assert len(reader.heartbeats()) == 1
        raw_server.chunks.put(b"id: e-1\revent: snapshot\rdata: {}\r")
        raw_server.chunks.put(b"\r")
        events = reader.wait(lambda ms: reader.events("snapshot"), 10, "the snapshot")
        assert [m.json() for m in events] == [{}]
        assert reader.last_id == "e-1"
        raw_server.chunks.put(None)
        assert reader.ended.wait(10), "the reader did not see the stream end"
        assert reader.error is None
