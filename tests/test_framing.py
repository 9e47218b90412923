"""quart_dl.server.framing: where a request ends, and which heads are refused, checked against h11.

The socket layer passes requests to Hypercorn one at a time by these rules, so they must
agree with h11 (Hypercorn's parser) on every request h11 accepts: a request this module
thinks longer than h11 would hang, one it thinks shorter would let h11 read unchecked bytes
as the next request. Each accepted case here is fed to h11 itself and its end compared.
"""

from __future__ import annotations

import h11
import pytest

from quart_dl.server.framing import CHUNKED, ChunkedBody, Head, Refusal, head_end, read_head

LIMIT = 16 * 1024
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: x\r\n"
GET = b"GET / HTTP/1.1\r\nHost: x\r\n"


def h11_request_end(data: bytes) -> int | None:
    """How many bytes of ``data`` h11 takes for its first request (None: it refuses it)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.EndOfMessage):
                return len(data) - len(conn.trailing_data[0])
            if event is h11.NEED_DATA:
                raise AssertionError("h11 wants more data")
    except h11.RemoteProtocolError:
        return None


def our_request_end(data: bytes) -> int | Refusal:
    """How many bytes of ``data`` this module takes for its first request, or its refusal."""
    end = head_end(data)
    assert end > 0
    head = read_head(data[:end])
    if isinstance(head, Refusal):
        return head
    if head.body == CHUNKED:
        body = ChunkedBody()
        taken = body.scan(data[end:], LIMIT)
        assert body.done
        assert not body.failed
        return end + taken
    return end + head.body


ACCEPTED = [
    GET + b"\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    POST + b"Content-Length: 5\r\n\r\nhello",
    POST + b"content-LENGTH:   5  \r\n\r\nhello",
    POST + b"Content-Length: 05\r\n\r\nhello",
    POST + b"Content-Length: 0\r\n\r\n",
    POST + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    POST + b"Transfer-Encoding: Chunked \r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    POST + b"Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\nA  \r\n0123456789\r\n0\r\n\r\n",
    POST + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n",
    POST + b"Transfer-Encoding: chunked\r\n\r\n00000005\r\nhello\r\n000\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", ACCEPTED)
def test_the_end_of_an_accepted_request_is_where_h11_sees_it(request_bytes: bytes) -> None:
    data = request_bytes + NEXT
    assert h11_request_end(data) == len(request_bytes)
    assert our_request_end(data) == len(request_bytes)


# What h11 0.16 accepts although two parsers can frame it differently: refused here.
SMUGGLING = [
    ("both headers", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("both, other order", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"),
    ("equal duplicate length", POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
    ("length list", POST + b"Content-Length: 5, 5\r\n\r\n"),
    ("obs-fold", GET + b"X-A: a\r\n b\r\n\r\n"),
    ("obs-fold with a tab", GET + b"X-A: a\r\n\tb\r\n\r\n"),
    ("folded length", POST + b"X-A: a\r\n Content-Length: 5\r\n\r\n"),
    ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n"),
    ("bare LF in one line", b"GET / HTTP/1.1\r\nHost: x\nContent-Length: 5\r\n\r\n"),
    ("bare LF at the end", GET + b"\n"),
    ("chunked HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
]


@pytest.mark.parametrize(("case", "head"), SMUGGLING)
def test_ambiguous_framing_h11_accepts_is_refused_with_400(case: str, head: bytes) -> None:
    assert h11_request_end(head + b"0\r\n\r\n" + NEXT) is not None, f"h11 refuses {case} itself now"
    verdict = read_head(head[: head_end(head)])
    assert isinstance(verdict, Refusal), case
    assert verdict.status == 400
    assert verdict.code == "bad_framing"
    assert verdict.message


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (POST + b"Content-Length: +5\r\n\r\n", 400),
        (POST + b"Content-Length: -5\r\n\r\n", 400),
        (POST + b"Content-Length: 0x5\r\n\r\n", 400),
        (POST + b"Content-Length: \r\n\r\n", 400),
        (POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400),
        (POST + b"Content-Length: " + b"9" * 21 + b"\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n", 400),
        (POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
    ],
)
def test_lengths_h11_refuses_are_refused_here_too_as_json(head: bytes, status: int) -> None:
    # This layer needs each request's length: one it cannot read is refused here (a JSON
    # answer like the app's) rather than left to h11 (a bodiless 400 or 501).
    assert h11_request_end(head + b"hello") is None
    verdict = read_head(head)
    assert isinstance(verdict, Refusal)
    assert verdict.status == status


def test_head_end_follows_h11_blank_line_rule() -> None:
    assert head_end(GET + b"\r\nrest") == 27
    assert head_end(b"GET / HTTP/1.1\nHost: x\n\nrest") == 24
    assert head_end(GET) == -1
    assert head_end(b"\r\nGET") == 2  # h11: "no request line received"
    assert head_end(b"\nGET") == 1


def test_switching_heads_are_marked_as_hypercorn_switches() -> None:
    def switches(head: bytes) -> bool:
        verdict = read_head(head)
        assert isinstance(verdict, Head)
        return verdict.switches

    assert switches(b"PRI * HTTP/2.0\r\n\r\n")
    assert switches(GET + b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
    lower_get = b"get / HTTP/1.1\r\nHost: x\r\n"
    assert switches(lower_get + b"Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\r\n")
    # Hypercorn keeps HTTP/1.1 for these: so does the check of the next request.
    assert not switches(POST + b"Upgrade: h2c\r\nContent-Length: 0\r\n\r\n")
    assert not switches(GET + b"Upgrade: websocket\r\n\r\n")
    assert not switches(POST + b"Upgrade: websocket\r\nConnection: upgrade\r\n\r\n")
    assert not switches(GET + b"Upgrade: foo\r\nConnection: upgrade\r\n\r\n")


def test_a_chunked_body_is_found_across_any_split() -> None:
    body = b"5;ext\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: y\r\n\r\n"
    for split in range(1, len(body)):
        scanner = ChunkedBody()
        held = body[:split]
        taken = scanner.scan(held, LIMIT)
        held = held[taken:] + body[split:] + NEXT
        taken = scanner.scan(held, LIMIT)
        assert scanner.done, split
        assert held[taken:] == NEXT, split


@pytest.mark.parametrize(
    "body",
    [
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"0x5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5 x\r\nhello\r\n0\r\n\r\n",
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",
        b"f" * 21 + b"\r\n",
    ],
)
def test_chunks_h11_refuses_fail_here_with_the_bad_bytes_taken(body: bytes) -> None:
    head = POST + b"Transfer-Encoding: chunked\r\n\r\n"
    assert h11_request_end(head + body + NEXT) is None
    scanner = ChunkedBody()
    taken = scanner.scan(body, LIMIT)
    assert scanner.failed
    assert h11_request_end(head + body[:taken]) is None  # h11 sees the bad part and refuses


def test_an_endless_chunk_size_line_fails_past_the_limit() -> None:
    scanner = ChunkedBody()
    assert scanner.scan(b"5" * 100, LIMIT) == 0
    assert not scanner.failed
    assert scanner.scan(b"5;" + b"x" * LIMIT, LIMIT) == LIMIT + 2
    assert scanner.failed


def test_trailers_with_a_bare_lf_close_the_connection_after_the_request() -> None:
    body = b"0\r\nX-T: a\nX-U: b\r\n\r\n"
    head = POST + b"Transfer-Encoding: chunked\r\n\r\n"
    assert h11_request_end(head + body + NEXT) == len(head + body)
    scanner = ChunkedBody()
    assert scanner.scan(body + NEXT, LIMIT) == len(body)
    assert scanner.done
    assert scanner.close_after
