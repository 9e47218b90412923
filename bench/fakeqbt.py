"""A synthetic qBittorrent Web API over HTTP, in a process of its own, for the bench.

    python -m bench.fakeqbt --torrents 3000 [--first 0] [--changing 100] [--port 0]

Why not a real qbittorrent-nox: loading 3 × 3,000 torrents into three daemons costs minutes
and a whole core on this 2-core machine, and the daemons' own CPU would compete with the
server under test (bench/pollreal.py does the real-daemon measurement for one instance).
Why over HTTP rather than a fake session in the server: the server under test is the real
``quart-dl serve``, whose poller goes through qbittorrent-api and ``requests`` on its worker
thread, exactly as against qBittorrent; only the far end is synthetic.

It answers just enough of the Web API for quart-dl's poller: ``auth/login`` (any credentials,
a ``SID`` cookie), ``app/version`` (``v4.5.2``), ``app/webapiVersion`` and ``sync/maindata``.
The torrents are bench/synthetic.py's: ``--torrents`` small paused ones with indices from
``--first`` (distinct hashes per instance); a request with ``rid=0`` gets the full answer,
any other one a steady-state answer in which ``changing`` torrents changed a few keys (0:
"nothing changed", qBittorrent's ``{"rid": n}``): always the same ones, the first
``changing``, which download while the others stay paused (a rotating set would soon make
every torrent "downloading", and the server's history sample writes a row per active one).
Keep-alive HTTP/1.1, as qBittorrent.

Bench control, same port (never part of qBittorrent's API):
``POST /bench/mode?changing=C`` (every later answer changes C torrents),
``POST /bench/pulse?changing=C`` (only the next answer does, then back to the mode's),
``GET /bench/stats`` → ``{"maindata": answers so far, "full": rid-0 answers, "changed": answers
that changed something}``. The process prints ``port <n>`` on stdout once it listens.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .common import dumps
from .synthetic import full_maindata, partial_maindata


class FakeState:
    """What one synthetic qBittorrent holds and how it answers the next ``sync/maindata``."""

    def __init__(self, torrents: int, first: int, changing: int) -> None:
        self.torrents = torrents
        self.first = first
        self.changing = changing
        self.pulse = 0
        self.rid = 1
        self.maindata = 0
        self.full = 0
        self.changed = 0
        self.lock = threading.Lock()
        self._full = full_maindata(torrents, first)

    def answer(self, rid: int) -> bytes:
        """The body for a ``sync/maindata`` request carrying ``rid``."""
        with self.lock:
            self.rid += 1
            self.maindata += 1
            if rid == 0:
                self.full += 1
                return dumps({**self._full, "rid": self.rid}).encode()
            changing = self.pulse or self.changing
            self.pulse = 0
            if not changing:
                return dumps({"rid": self.rid}).encode()
            self.changed += 1
            # The same ``changing`` torrents (the downloading ones) change in every answer, the
            # rest stay paused: with a rotating set every torrent would soon be "downloading",
            # and the server's 5 s history sample would write a row for each of them.
            active = min(max(changing, self.changing), self.torrents)
            return dumps(partial_maindata(active, self.rid, min(changing, active), self.first)).encode()

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {"maindata": self.maindata, "full": self.full, "changed": self.changed}


def handler_for(state: FakeState) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``state``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length).decode() if length else ""
            params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            params.update({k: v[-1] for k, v in parse_qs(body).items()})
            path = parts.path
            if path.endswith("/auth/login"):
                self._answer(b"Ok.", "text/plain", cookie="SID=synthetic")
            elif path.endswith("/app/version"):
                self._answer(b"v4.5.2", "text/plain")
            elif path.endswith("/app/webapiVersion"):
                self._answer(b"2.8.19", "text/plain")
            elif path.endswith("/sync/maindata"):
                self._answer(state.answer(int(params.get("rid", "0") or 0)), "application/json")
            elif path == "/bench/mode":
                state.changing = int(params.get("changing", "0"))
                self._answer(b"ok", "text/plain")
            elif path == "/bench/pulse":
                state.pulse = int(params.get("changing", "1"))
                self._answer(b"ok", "text/plain")
            elif path == "/bench/stats":
                self._answer(json.dumps(state.stats()).encode(), "application/json")
            else:
                self._answer(b"Not Found", "text/plain", status=404)

        do_POST = do_GET

        def _answer(self, body: bytes, kind: str, cookie: str | None = None, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            if cookie:
                self.send_header("Set-Cookie", f"{cookie}; path=/")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fakeqbt", description=__doc__.splitlines()[0])
    parser.add_argument("--torrents", type=int, default=3000)
    parser.add_argument("--first", type=int, default=0, help="index of the first torrent (distinct hashes)")
    parser.add_argument("--changing", type=int, default=0, help="torrents changed per answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    state = FakeState(args.torrents, args.first, args.changing)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(state))
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
