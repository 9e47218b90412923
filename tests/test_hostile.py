"""Hostile input against a real server process (``python -m quart_dl serve``, real qBittorrent).

What a misbehaving or malicious client can send that a browser never would: forged or absurd
``Last-Event-ID`` values, unknown and repeated query parameters, huge headers and header bytes
that are not UTF-8, torrent names built to break an SSE frame, and slow-loris connections.
Everything here must end in a clear answer (a stream, or a 4xx with a JSON body naming the
problem), never a 500, never a hang, and never harm to the other clients.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from quart_dl.lab.server_process import ServerFactory, ServerProcess, get_json
from quart_dl.lab.sse_reader import SSEReader
from quart_dl.lab.transfer import TransferPair, make_payload, make_torrent
from quart_dl.lab.wait import wait_for

#: The name the SSE frames must carry intact: line breaks of every kind, quotes, emoji, and
#: 10,000 characters (a frame is one ``data:`` line; a raw newline would split it).
HOSTILE_NAME = (
    'line one\nline two\r\nline three\rid: 666\nevent: snapshot\n\ndata: {"forged": true}\n'
    "\"double\" 'single' `back` \\ \u2028\u2029\x85 🎉🏳️‍🌈 "
)
HOSTILE_NAME += "x" * (10_000 - len(HOSTILE_NAME))


@pytest.fixture
def server(make_server: ServerFactory) -> ServerProcess:
    return make_server()


# -- helpers -----------------------------------------------------------------------------------


def raw_request(port: int, head: bytes, until: bytes | None = None, timeout: float = 10.0) -> bytes:
    """Send ``head`` as is (any bytes at all); read until ``until`` or the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(head)
        data = b""
        deadline = time.monotonic() + timeout
        while until is None or until not in data:
            assert time.monotonic() < deadline, f"no {until!r} within {timeout} s: {data[:300]!r}"
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def json_body(answer: bytes) -> Any:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


def get(path: str, extra: bytes = b"") -> bytes:
    return (
        b"GET "
        + path.encode("latin-1")
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + extra
        + b"Connection: close\r\n\r\n"
    )


def read_stream(server: ServerProcess, path: str, until: Any, timeout: float = 15.0) -> bytes:
    """The raw (de-chunked) bytes of a stream until ``until(bytes)`` is true."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        assert response.status == 200, response.read()
        data = b""
        deadline = time.monotonic() + timeout
        while not until(data):
            assert time.monotonic() < deadline, f"stream did not deliver in {timeout} s: {data[-500:]!r}"
            chunk = response.read1(65536)
            assert chunk, "the stream ended"
            data += chunk
        return data
    finally:
        conn.close()


def strict_frames(data: bytes) -> list[dict[str, Any]]:
    """Parse SSE bytes strictly: every line a known field, one ``data:`` line per event."""
    assert b"\r" not in data, "a bare CR ends a line for EventSource"
    text = data.decode("utf-8")
    blocks = text.split("\n\n")
    assert blocks[-1] == "" or not blocks[-1].strip(), "the last frame is incomplete"
    frames = []
    for block in blocks[:-1]:
        frame: dict[str, Any] = {}
        for line in block.split("\n"):
            field, sep, value = line.partition(": ")
            assert sep or line.startswith(":"), f"not an SSE line: {line[:100]!r}"
            if line.startswith(":"):
                frame.setdefault("comments", []).append(line)
                continue
            assert field in ("id", "event", "data", "retry"), f"unexpected field {field!r}"
            assert field not in frame, f"{field} twice in one frame: {block[:200]!r}"
            frame[field] = value
        if "data" in frame:
            frame["json"] = json.loads(frame["data"])
        frames.append(frame)
    return frames


# -- Last-Event-ID -----------------------------------------------------------------------------


def forged_ids(epoch: str) -> list[bytes]:
    other = "0badc0de" if epoch != "0badc0de" else "deadbeef"
    return [
        b"",
        b" ",
        b"7" * 10_240,
        b"-1",
        f"{epoch}--5".encode(),
        f"{epoch}-".encode(),
        f"{other}-1".encode(),
        f"{epoch}-99999999999999999999999".encode(),
        f"{epoch}-1e3".encode(),
        f"{epoch}-\u00b2".encode(),
        f"{epoch}-1".encode() + b"\xff\xfe\x80",
        b"\xff\xfe\x80\x81",
        "🎉-1".encode(),
        f"{epoch}-🎉".encode(),
    ]


def test_forged_last_event_ids_open_with_a_snapshot(server: ServerProcess) -> None:
    epoch = server.status()["epoch"]
    for value in forged_ids(epoch):
        answer = raw_request(
            server.port, get("/api/events", b"Last-Event-ID: " + value + b"\r\n"), b"event: snapshot"
        )
        assert status_of(answer) == 200, (value[:50], answer[:300])
        assert b"event: snapshot" in answer, value[:50]
        # and the same through the query string (EventSource polyfills)
        query = quote(value.decode("latin-1"), safe="")
        answer = raw_request(server.port, get(f"/api/events?lastEventId={query}"), b"event: snapshot")
        assert status_of(answer) == 200, (value[:50], answer[:300])
    assert "Traceback" not in server.log_text()


def test_nul_in_last_event_id_is_refused_by_the_http_layer(server: ServerProcess) -> None:
    # h11 refuses a NUL in a header value before the app sees it: a 400, no hang, no 500.
    epoch = server.status()["epoch"]
    for value in (b"\x00", f"{epoch}-1\x00".encode()):
        answer = raw_request(server.port, get("/api/events", b"Last-Event-ID: " + value + b"\r\n"))
        assert status_of(answer) == 400, answer[:300]
    # through the query string it reaches the app, which opens with a snapshot
    answer = raw_request(server.port, get(f"/api/events?lastEventId={epoch}-1%00"), b"event: snapshot")
    assert status_of(answer) == 200


# -- query parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/torrents?bogus=1&_=1712345678",
        "/api/status?x=y",
        "/api/history?nonsense=%FF%00",
        "/healthz?probe=1",
        "/api/torrents/" + "a" * 40 + "?what=ever",
    ],
)
def test_unknown_query_parameters_are_ignored(server: ServerProcess, path: str) -> None:
    answer = raw_request(server.port, get(path))
    expected = 404 if "/api/torrents/aaaa" in path else 200
    assert status_of(answer) == expected, answer[:300]
    json_body(answer)


def test_unknown_query_parameters_are_ignored_on_streams(server: ServerProcess) -> None:
    answer = raw_request(server.port, get("/api/events?bogus=1&retry=0&_=1"), b"event: snapshot")
    assert status_of(answer) == 200


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/torrents?sort=name&sort=size", "sort"),
        ("/api/torrents?order=asc&order=desc", "order"),
        ("/api/torrents?phase=seeding&phase=paused", "phase"),
        ("/api/history?minutes=5&minutes=6", "minutes"),
        ("/api/history?hash=" + "a" * 40 + "&hash=" + "b" * 40, "hash"),
        ("/api/events?heartbeat=event&heartbeat=comment", "heartbeat"),
        ("/api/events?lastEventId=a&lastEventId=b", "lastEventId"),
    ],
)
def test_regression_repeated_parameter_is_a_400(server: ServerProcess, path: str, field: str) -> None:
    # quart-schema hands a repeated parameter over as a list; the hash validator called
    # .lower() on it: a 500 (found by schemathesis, negative mode).
    answer = raw_request(server.port, get(path))
    assert status_of(answer) == 400, answer[:300]
    body = json_body(answer)
    assert body == {
        "error": "invalid_parameter",
        "message": f"{field} was given more than once",
        "field": field,
    }


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/torrents?sort=%FF%FE", "sort"),
        ("/api/torrents?phase=%00", "phase"),
        ("/api/torrents?order=%C3%28", "order"),
        ("/api/history?minutes=%F0%9F%8E%89", "minutes"),
        ("/api/history?hash=%FF" + "a" * 39, "hash"),
        ("/api/events?heartbeat=%FF", "heartbeat"),
    ],
)
def test_non_utf8_and_nul_in_query_values_are_a_400(server: ServerProcess, path: str, field: str) -> None:
    answer = raw_request(server.port, get(path))
    assert status_of(answer) == 400, answer[:300]
    body = json_body(answer)
    assert body["error"] == "invalid_parameter"
    assert body["field"] == field
    assert body["message"]


# -- headers -----------------------------------------------------------------------------------


def test_regression_huge_headers_in_one_packet_are_a_431(server: ServerProcess) -> None:
    # Hypercorn's 16 KiB cap (h11_max_incomplete_size) counts only a head still incomplete:
    # 20 KB or 60 KB of headers arriving in one read were served with a 200.
    for extra in (b"X-Big: " + b"a" * 20_000 + b"\r\n", b"X-Big: " + b"a" * 60_000 + b"\r\n"):
        for path in ("/api/status", "/api/events", "/healthz", "/"):
            answer = raw_request(server.port, get(path, extra))
            assert status_of(answer) == 431, answer[:300]
            assert json_body(answer)["error"] == "headers_too_large"


def test_huge_headers_are_a_431_and_other_streams_carry_on(server: ServerProcess) -> None:
    with SSEReader(server.url + "api/events") as reader:
        reader.wait(lambda m: any(x.event == "snapshot" for x in m), 10, "the snapshot")
        one_big = b"X-Big: " + b"a" * 20_000 + b"\r\n"
        many = b"".join(b"X-H-%d: %s\r\n" % (i, b"v" * 20) for i in range(1000))
        big_cookie = b"Cookie: quart_dl_session=" + b"c" * 30_000 + b"\r\n"
        dribbled = b"X-Big: " + b"a" * 200_000 + b"\r\n"  # more than one read: Hypercorn's own 431
        for extra in (one_big, many, big_cookie, dribbled):
            for path in ("/api/status", "/api/events"):
                answer = raw_request(server.port, get(path, extra))
                assert status_of(answer) == 431, answer[:300]
        # just under the limit is fine
        answer = raw_request(server.port, get("/api/status", b"X-Big: " + b"a" * 12_000 + b"\r\n"))
        assert status_of(answer) == 200
        # the stream opened before still beats (heartbeat 1 s)
        before = time.monotonic()
        reader.wait(lambda m: any(x.comment == "heartbeat" and x.at > before for x in m), 5, "a heartbeat")
        assert not reader.ended.is_set()
    assert "Traceback" not in server.log_text()


@pytest.mark.parametrize(
    "header",
    [
        b"X-Junk: \xff\xfe\xc3\x28\r\n",
        b"Authorization: Bearer \xff\xfe\r\n",
        b"Cookie: quart_dl_session=\xff\xfe; other=\x80\r\n",
        b"Origin: http://\xff.example\r\n",
        b"Accept: text/event-stream\xff\r\n",
        b"User-Agent: \xf0\x9f\x8e\x89\r\n",
    ],
)
def test_non_utf8_header_bytes(server: ServerProcess, header: bytes) -> None:
    answer = raw_request(server.port, get("/api/status", header))
    assert status_of(answer) == 200, answer[:300]
    json_body(answer)
    answer = raw_request(server.port, get("/api/events", header), b"event: snapshot")
    assert status_of(answer) == 200, answer[:300]


def test_garbage_request_lines_are_refused_without_a_500(server: ServerProcess) -> None:
    for head in (
        b"GET /api/torrents/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # a TLS hello
        b"GET / HTTP/9.9\r\n\r\n",
        b"BREW /api/status HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        answer = raw_request(server.port, head)
        if answer:  # closing without an answer is fine too
            assert status_of(answer) < 500, (head[:40], answer[:300])
    assert server.status()["clients"] == 0
    assert "Traceback" not in server.log_text()


# -- request framing (smuggling), pipelines, clients that leave or stop reading ----------------

SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 43\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n" + SMUGGLED,
        b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n" + SMUGGLED,
        b"Content-Length: -0\r\n\r\n" + SMUGGLED,
        b"X-Folded: a\r\n\tContent-Length: 0\r\n\r\n" + SMUGGLED,
    ],
)
def test_regression_ambiguous_framing_is_refused_once_on_fresh_and_keep_alive_connections(
    server: ServerProcess, framing: bytes
) -> None:
    # h11 framed both headers by chunked and answered the request hidden behind them too: two
    # answers on one connection, where a proxy framing by Content-Length sees one.
    for path in ("/api/torrents", "/api/events"):
        head = b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + framing
        for warm_up in (b"", SMUGGLED):
            answer = raw_request(server.port, warm_up + head, timeout=3)
            assert answer.count(b"HTTP/1.1 ") == (2 if warm_up else 1), answer[:600]
            refused = answer[answer.rfind(b"HTTP/1.1 ") :]
            assert status_of(refused) == 400, refused[:300]
            assert b"connection: close" in refused.lower()
            assert json_body(refused)["error"] == "bad_framing"


def test_regression_a_head_ending_in_bare_lf_is_answered_at_once(server: ServerProcess) -> None:
    # It waited out the 5 s head timeout: the socket layer looked for CRLF CRLF only.
    for head in (b"GET /api/status HTTP/1.1\nHost: 127.0.0.1\n\n", b"GET /api/events HTTP/1.1\nHost: x\n\n"):
        started = time.monotonic()
        answer = raw_request(server.port, head, timeout=4)
        assert time.monotonic() - started < 2.5  # not the 5 s head timeout
        assert status_of(answer) == 400
        assert "bare LF" in json_body(answer)["message"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_regression_clients_that_pipeline_hundreds_and_leave_cost_nothing(server: ServerProcess) -> None:
    # Measured before: 100 clients x 300 pipelined /api/torrents, then gone, cost 20 s of
    # CPU, RSS 68 -> 327 MB and 44,691 log lines of "socket.send() raised exception."
    assert server.proc is not None
    pid = server.proc.pid
    before = cpu_seconds(pid)
    pipelined = b"GET /api/torrents HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 300
    for _ in range(100):
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(pipelined)  # and gone (a plain close: the server sees EOF first)
    samples = [cpu_seconds(pid)]

    def quiet() -> bool:
        samples.append(cpu_seconds(pid))
        return samples[-1] - samples[-2] < 0.1  # under 0.1 s of CPU in one interval

    # The interval is the sampling window: the CPU used between two samples 0.5 s apart.
    wait_for(quiet, 60, "the server to go quiet", interval=0.5)
    assert samples[-1] - before < 3.0, f"{samples[-1] - before:.1f} s of CPU for clients that had left"
    assert "socket.send() raised" not in server.log_text()
    assert get_json(server.url + "healthz")["ok"]


def test_regression_a_client_that_pipelines_and_never_reads_is_dropped(make_server: ServerFactory) -> None:
    # Only streams had a send timeout: this one kept its connection, and the answers queued
    # for it, forever.
    server = make_server(extra_args=("--send-timeout", "1"))
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /dashboard.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 400)
        wait_for(
            lambda: (
                'quart_dl_connections_dropped_total{reason="send_timeout"} 1'
                in urllib.request.urlopen(server.url + "metrics", timeout=2).read().decode()
            ),
            15,
            "the connection to be dropped",
        )
    assert "Traceback" not in server.log_text()


def test_connections_from_one_address_are_capped(make_server: ServerFactory) -> None:
    server = make_server(extra_args=("--max-connections-per-client", "4"))
    held = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            sock.recv(4096)  # its stream is open
        answer = raw_request(server.port, get("/api/status"))
        assert status_of(answer) == 503
        assert json_body(answer)["error"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: status_of(raw_request(server.port, get("/api/status"))) == 200, 5, "the places back")


# -- torrent names that try to break a frame ---------------------------------------------------


def test_hostile_torrent_name_round_trips_through_the_stream(
    pair: TransferPair, server: ServerProcess, tmp_path: Path
) -> None:
    data = make_torrent(make_payload(tmp_path / "payload", "plain.bin", 32 * 1024))
    client = pair.leecher_client
    client.torrents_add(
        torrent_files=data, save_path=str(tmp_path / "dl"), is_paused=True, rename=HOSTILE_NAME
    )
    torrent = wait_for(
        lambda: [t for t in client.torrents_info() if t.name == HOSTILE_NAME], 10, "the torrent"
    )[0]
    info_hash = str(torrent.hash)
    assert len(HOSTILE_NAME) == 10_000

    def has_torrent(data: bytes) -> bool:
        return info_hash.encode() in data and data.endswith(b"\n\n")

    raw = read_stream(server, "/api/events", has_torrent)
    frames = strict_frames(raw)
    snapshot = next(f for f in frames if f.get("event") == "snapshot")
    # it arrives in the snapshot, or in a diff if the poller had not seen it yet
    names = [
        t["name"]
        for f in frames
        if "json" in f
        for t in ([f["json"]["torrents"].get(info_hash)] if f["event"] == "snapshot" else [])
        + ([f["json"].get("changed", {}).get(info_hash)] if f["event"] == "diff" else [])
        if t and "name" in t
    ]
    assert names, snapshot["data"][:200]
    assert names[-1] == HOSTILE_NAME

    # the per-torrent stream, a REST answer, and a rename while a client is streaming
    raw = read_stream(server, f"/api/torrents/{info_hash}/events", lambda d: d.count(b"\n\n") >= 2)
    one = next(f for f in strict_frames(raw) if f.get("event") == "snapshot")
    assert one["json"]["torrents"][info_hash]["name"] == HOSTILE_NAME
    assert get_json(server.url + f"api/torrents/{info_hash}")["name"] == HOSTILE_NAME

    # A rename while a client streams arrives as a diff. qBittorrent's rename turns line
    # breaks into spaces (adding with ``rename`` keeps them), so the truth is what it reports.
    renamed = '🎉\n"renamed"\r\n' + HOSTILE_NAME[::-1][:9_000]
    got: dict[str, Any] = {}

    def renamed_diff(data: bytes) -> str | None:
        complete = data[: data.rfind(b"\n\n") + 2] if b"\n\n" in data else b""
        for frame in strict_frames(complete):
            if frame.get("event") == "diff":
                name = frame["json"]["changed"].get(info_hash, {}).get("name")
                if name is not None:
                    return str(name)
        return None

    def follow() -> None:
        try:
            got["raw"] = read_stream(server, "/api/events", renamed_diff, 20)
        except BaseException as exc:
            got["error"] = exc

    thread = threading.Thread(target=follow)
    before = server.status()["clients"]
    thread.start()
    wait_for(lambda: server.status()["clients"] > before, 10, "the stream to open")
    client.torrents_rename(torrent_hash=info_hash, new_torrent_name=renamed)
    thread.join(25)
    assert "error" not in got, got.get("error")
    reported = str(client.torrents_info(torrent_hashes=info_hash)[0].name)
    assert reported.startswith('🎉 "renamed"')
    assert renamed_diff(got["raw"]) == reported
    client.torrents_delete(delete_files=True, torrent_hashes=info_hash)


# -- slow clients ------------------------------------------------------------------------------


def test_slow_loris_is_cut_and_harms_nobody_but_a_silent_stream_lives(server: ServerProcess) -> None:
    """A client dribbling its headers (one byte a second) is closed by Hypercorn's
    keep-alive timeout (5 s: it runs from the connection's start until a whole request
    head has arrived, and bytes do not reset it), while an open stream whose client sends
    nothing for 60 s is never cut (no read timeout)."""
    with SSEReader(server.url + "api/events") as stream:
        stream.wait(lambda m: any(x.event == "snapshot" for x in m), 10, "the snapshot")
        opened = time.monotonic()
        cut_after: list[float] = []
        loris_count = 20

        def loris() -> None:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=40)
            started = time.monotonic()
            try:
                sock.sendall(b"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                for byte in b"X-Slow: " + b"z" * 100:
                    if time.monotonic() - started > 30:
                        return
                    sock.sendall(bytes([byte]))
                    sock.settimeout(1.0)
                    try:
                        if sock.recv(1024) == b"":
                            cut_after.append(time.monotonic() - started)
                            return
                    except TimeoutError:
                        pass
            except OSError:
                cut_after.append(time.monotonic() - started)
            finally:
                sock.close()

        lorises = [threading.Thread(target=loris) for _ in range(loris_count)]
        for thread in lorises:
            thread.start()
        # meanwhile everybody else is served at once
        for _ in range(10):
            started = time.monotonic()
            assert get_json(server.url + "api/status", timeout=2)["clients"] >= 1
            assert time.monotonic() - started < 1.0
            time.sleep(0.5)
        for thread in lorises:
            thread.join(40)
        assert len(cut_after) == loris_count, cut_after
        assert max(cut_after) < 15, cut_after
        # the stream has had no byte from its client since it opened, and lives on
        while time.monotonic() - opened < 60:
            time.sleep(1)
        before = time.monotonic()
        stream.wait(lambda m: any(x.comment == "heartbeat" and x.at > before for x in m), 5, "a heartbeat")
        assert not stream.ended.is_set()
        assert stream.error is None
