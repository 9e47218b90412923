"""The benchmark clients' stream parsing (bench/clients.py).

The clients find event ids with a plain scan instead of regular expressions (their CPU is
part of what the spread measures, since they share the server's cores). These cases pin that
the scan finds what the expressions found: ids only at a line's start, the event kind on the
next line, CRLF framing (sse-starlette's), and comment lines counted as heartbeats.
"""

from __future__ import annotations

from bench.clients import comments, frames


def test_frames_finds_each_id_with_its_event_kind() -> None:
    block = b"id: 5\nevent: diff\ndata: {}\n\nid: 6\nevent: status\ndata: {}\n\n"
    assert frames(block) == [("5", "diff"), ("6", "status")]


def test_an_id_without_an_event_line_has_no_kind() -> None:
    assert frames(b"id:7\ndata: y\n\n") == [("7", "")]


def test_id_inside_a_data_line_is_not_an_id() -> None:
    block = b'data: {"name":"Valid: id: 9","id:":1}\n\nretry: 2000\n\n'
    assert frames(block) == []


def test_crlf_framing_is_read() -> None:
    assert frames(b"id: 3\r\nevent: snapshot\r\ndata: x\r\n\r\n") == [("3", "snapshot")]


def test_comment_lines_are_heartbeats_and_ids_are_not() -> None:
    block = b": ping\n\nid: 1\nevent: heartbeat\ndata: {}\n\n: ping\n\n"
    assert comments(block) == 2
    assert frames(block) == [("1", "heartbeat")]
    assert comments(b"data: :)\n\n") == 0
