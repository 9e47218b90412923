"""Where each request on a connection ends, and which request heads are refused for it.

Why it exists: the socket layer (``socket_layer.py``) passes a connection's bytes to Hypercorn one
request at a time, so it must know where every request ends, exactly as h11 (Hypercorn's
parser) will see it. A request whose length two parsers could read differently is the
request-smuggling vector of RFC 9112 §6.1 and §11.2: a proxy in front that frames by
``Content-Length`` while h11 frames by ``Transfer-Encoding`` sees one request where quart-dl
answers two. h11 0.16 itself accepts such heads (both headers: it uses chunked; a repeated
equal ``Content-Length``; ``Content-Length: 5, 5``; obsolete line folding, which it joins;
lines ending in a bare LF), so they are refused here, before Hypercorn sees them. Heads it
refuses itself for other reasons (a bad request line, a bad header name) are left to it.

Everything here mirrors h11's own rules (``h11._receivebuffer``, ``h11._readers``,
``h11._headers``): the end of a head is the first blank line (``\\n\\r?\\n``), a chunk-size
line ends in CRLF and matches h11's ``chunk_header`` pattern, a chunk's data is followed by
exactly CRLF, trailers end like a head. ``tests/test_framing.py`` checks each rule against
h11 itself.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: ``Head.body`` for a chunked body.
CHUNKED = -1
#: h11's limit on the digits of a Content-Length (``CONTENT_LENGTH_MAX_DIGITS``).
_MAX_LENGTH_DIGITS = 20
#: h11's blank line: the end of a head or of a trailer section.
_BLANK_LINE = re.compile(b"\n\r?\n")
#: h11's chunk-size line (``h11._abnf.chunk_header``): size, extensions, OWS, CRLF.
_CHUNK_HEADER = re.compile(rb"(?P<size>[0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")


class Refusal(NamedTuple):
    """A head refused by this layer: the JSON answer's status, error code and message."""

    status: int
    code: str
    message: str


class Head(NamedTuple):
    """An accepted head: its body's length (``CHUNKED`` for chunked), and whether Hypercorn
    switches the connection to another protocol after it (h2c, WebSocket, HTTP/2's preface)."""

    body: int
    switches: bool


def head_end(data: bytes | bytearray) -> int:
    """The offset just past the first head in ``data``, as h11 finds it; -1 if incomplete."""
    if data[:1] == b"\n":
        return 1
    if data[:2] == b"\r\n":
        return 2
    match = _BLANK_LINE.search(data)
    return match.end() if match else -1


def line_problem(block: bytes | bytearray) -> str | None:
    """What is wrong with the line breaks of a head or trailer block (ending in its blank
    line), or None: every line must end in CRLF, and no line may be folded."""
    crlf = block.count(b"\r\n")
    if block.count(b"\n") != crlf:
        return "a line of the request head ends in a bare LF; lines must end in CRLF"
    if block.count(b"\r") != crlf:
        return "the request head has a bare CR; lines must end in CRLF"
    if b"\r\n " in block or b"\r\n\t" in block:
        return "the request head has a folded header line (obs-fold: a line starting with a space or tab)"
    return None


def read_head(head: bytes | bytearray) -> Head | Refusal:
    """The framing of one complete head (up to and including its blank line), or why it is
    refused: ambiguous framing, line breaks other parsers read differently, a body length
    h11 would refuse or could not frame."""
    problem = line_problem(head)
    if problem is not None:
        return Refusal(400, "bad_framing", problem)
    lines = bytes(head[:-4] if head.endswith(b"\r\n\r\n") else head[:-2]).split(b"\r\n")
    lengths: list[bytes] = []
    codings: list[bytes] = []
    upgrade = connection = b""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"content-length":
            lengths.append(value.strip(b" \t"))
        elif name == b"transfer-encoding":
            codings.append(value.strip(b" \t"))
        elif name == b"upgrade":
            upgrade = value.strip(b" \t").lower()
        elif name == b"connection":
            connection = value.lower()
    request_line = lines[0].split(b" ")
    method, version = request_line[0], request_line[-1]
    if lengths and codings:
        return Refusal(400, "bad_framing", "the request has both Content-Length and Transfer-Encoding")
    if len(lengths) > 1 or (lengths and b"," in lengths[0]):
        return Refusal(400, "bad_framing", "the request has more than one Content-Length")
    if lengths and not (lengths[0].isdigit() and len(lengths[0]) <= _MAX_LENGTH_DIGITS):
        return Refusal(400, "bad_framing", "Content-Length must be a number of bytes (digits only)")
    if codings:
        if len(codings) > 1 or codings[0].lower() != b"chunked":
            return Refusal(501, "unsupported_transfer_coding", "the only Transfer-Encoding taken is chunked")
        if version == b"HTTP/1.0":
            return Refusal(400, "bad_framing", "an HTTP/1.0 request cannot have a Transfer-Encoding")
    body = CHUNKED if codings else int(lengths[0]) if lengths else 0
    # Hypercorn's rules (protocol/h11.py: _check_protocol, _create_stream), the last header
    # of a name winning as there.
    switches = (
        (upgrade == b"h2c" and not lengths and not codings)
        or (lines[0] == b"PRI * HTTP/2.0")
        or (
            upgrade == b"websocket"
            and method.upper() == b"GET"
            and any(token.strip() == b"upgrade" for token in connection.split(b","))
        )
    )
    return Head(body, switches)


class ChunkedBody:
    """Finds the end of one chunked body in the bytes that follow its head, as h11 reads it.

    ``scan`` is called with the bytes not yet taken (the same bytes again, with more at
    the end, when it took none of them): it returns how many belong to the body and sets
    ``done`` when the body (with its trailers) is complete. ``failed`` means h11 refuses
    these bytes too (a bad chunk-size line, data not followed by CRLF): the bytes taken so
    far include the bad part, so that h11 sees it and answers its own 400.
    ``close_after`` means the trailers had line breaks other parsers read differently: the
    request is answered, and the connection closed after it.
    """

    __slots__ = ("_crlf", "_left", "_trailer", "close_after", "done", "failed")

    def __init__(self) -> None:
        self._left = 0  # data bytes left in the current chunk
        self._crlf = 0  # bytes of the CRLF after a chunk's data still expected
        self._trailer = False
        self.done = False
        self.failed = False
        self.close_after = False

    def scan(self, data: bytes | bytearray, limit: int) -> int:
        """Take the body's bytes from the start of ``data``; ``limit`` bounds a line."""
        taken = 0
        size = len(data)
        while taken < size and not (self.done or self.failed):
            if self._left:
                step = min(self._left, size - taken)
                self._left -= step
                taken += step
                if not self._left:
                    self._crlf = 2
            elif self._crlf:
                expected = b"\r\n"[2 - self._crlf]
                taken += 1
                if data[taken - 1] != expected:
                    self.failed = True
                self._crlf -= 1
            elif self._trailer:
                end = head_end(data[taken:])
                if end < 0:
                    if size - taken > limit:
                        self.failed = True
                        taken = size
                    break
                if line_problem(data[taken : taken + end]) is not None:
                    self.close_after = True
                taken += end
                self.done = True
            else:
                line_end = data.find(b"\r\n", taken)
                if line_end < 0:
                    if size - taken > limit:
                        self.failed = True
                        taken = size
                    break
                match = _CHUNK_HEADER.fullmatch(data, taken, line_end + 2)
                taken = line_end + 2
                if match is None:
                    self.failed = True
                    break
                self._left = int(match["size"], 16)
                self._trailer = not self._left
        return taken
