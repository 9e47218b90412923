"""SSE clients in separate processes: raw non-blocking sockets on one epoll per process.

Each worker opens its share of the connections (in batches, so the listen backlog is never
the thing measured), parses just enough of the stream to find ``id:`` lines and comment
heartbeats, and records ``time.monotonic()`` when each event id arrives on each connection.
With ``warmup`` (a path), each client behaves like a browser opening the panel or Home
Assistant's shared session: one ordinary GET on its connection first (the answer read whole,
by its Content-Length), then the stream on the same keep-alive connection. A reconnect is
EventSource's own: the stream alone, on a new connection (the old one died with the server,
and nothing else is pooled). ``warmup_reconnects`` makes every reconnect warm up too (a
harsher case: a page reloaded by each client). Without ``warmup``, each stream opens a fresh
connection.
The orchestrator talks to a worker over a pipe: ``status`` (how many are live), ``mark``
(reset the heartbeat counters), ``report`` (the receive times), ``stop``.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import select
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from .common import content_length, cpu_ns, raise_fd_limit

BATCH = 250
#: One recv per readable socket per wakeup: an event frame is ~2.3 KB, a snapshot more (read on).
RECV = 65536


@dataclass(slots=True)
class Conn:
    sock: socket.socket
    headers: bytes = b""
    live: bool = False
    status: int = 0
    rest: bytes = b""
    last_id: str | None = None
    first_byte: float = 0.0
    started: float = 0.0
    ids: dict[str, float] = field(default_factory=dict)
    #: Reconnects only: the first (id, event kind) each new connection got, and when it was live.
    openings: list[tuple[str, str, float]] = field(default_factory=list)
    opened: bool = False
    #: Waiting for the answer to the warm-up GET (browser-like clients only).
    warming: bool = False
    #: Streams opened so far (a reconnect is the second and later).
    opens: int = 0


def frames(block: bytes) -> list[tuple[str, str]]:
    """The (id, event kind) of every ``id:`` line in a block of whole lines, in order.

    A plain scan rather than a regular expression: this runs once per stream per event, and
    the clients share the server's two cores, so their own CPU is part of what the spread
    measures. An ``id:`` counts only at the start of a line; a data line holds no newline, so
    ``id:`` inside JSON or a torrent's name never starts one.
    """
    starts = [0] if block.startswith(b"id:") else []
    at = block.find(b"\nid:")
    while at >= 0:
        starts.append(at + 1)
        at = block.find(b"\nid:", at + 1)
    found: list[tuple[str, str]] = []
    for i in starts:
        end = block.find(b"\n", i)
        kind = b""
        if block.startswith(b"event:", end + 1):
            kind = block[end + 7 : block.find(b"\n", end + 1)]
        found.append((block[i + 3 : end].strip().decode(), kind.strip().decode()))
    return found


def comments(block: bytes) -> int:
    """How many comment lines (heartbeats) a block of whole lines holds."""
    return block.count(b"\n:") + (1 if block.startswith(b":") else 0)


def worker(
    host: str,
    port: int,
    path: str,
    n: int,
    pipe: Connection,
    reconnect: float | None = None,
    warmup: str | None = None,
    warmup_reconnects: bool = False,
) -> None:
    """``reconnect``: like EventSource, reopen a lost stream after that many seconds, with Last-Event-ID.

    ``warmup``: a path to GET on each connection before the stream (see the module docstring).
    A receive time is read just before each socket's ``recv``, as in runs 1-9. The loop is
    epoll itself and a plain scan for ``id:`` lines (since run 10): these processes share the
    server's two cores, and their own CPU per event (600 ms per broadcast at 10,000 with
    ``selectors`` and regular expressions, ~190 ms now) was most of what the spread measured.
    """
    raise_fd_limit()
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
    warmup_request = (
        f"GET {warmup} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: */*\r\n\r\n".encode() if warmup else b""
    )

    def request_bytes(c: Conn) -> bytes:
        extra = f"Last-Event-ID: {c.last_id}\r\n" if c.last_id else ""
        return (request + extra + "\r\n").encode()

    retry_at: list[tuple[float, Conn]] = []
    ep = select.epoll()
    by_fd: dict[int, Conn] = {}
    conns: dict[int, Conn] = {}
    pending = n
    failed = 0
    closed = 0
    heartbeats = 0
    bytes_in = 0

    def open_one(c: Conn | None) -> None:
        nonlocal failed
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            if c is not None and reconnect is not None:
                retry_at.append((time.monotonic() + reconnect, c))
            else:
                failed += 1
            return
        if c is None:
            c = Conn(s, started=time.monotonic())
        else:
            c.sock, c.headers, c.rest, c.live, c.opened, c.warming = s, b"", b"", False, False, False
        conns[id(c)] = c
        by_fd[s.fileno()] = c
        ep.register(s.fileno(), select.EPOLLOUT)

    def lost(c: Conn) -> None:
        nonlocal closed
        c.live = False
        fd = c.sock.fileno()
        if fd >= 0:
            by_fd.pop(fd, None)
            try:
                ep.unregister(fd)
            except (KeyError, ValueError, OSError):
                pass
        c.sock.close()
        if reconnect is not None:
            retry_at.append((time.monotonic() + reconnect, c))
        else:
            closed += 1

    def open_batch(k: int) -> None:
        for _ in range(k):
            open_one(None)

    def warmed(c: Conn, data: bytes) -> bytes | None:
        """Collect the warm-up answer; once whole, send the stream request. What is left, or None."""
        c.headers += data
        head, sep, body = c.headers.partition(b"\r\n\r\n")
        if not sep:
            return None
        length = content_length(head)
        if len(body) < length:
            return None
        c.warming = False
        c.headers = b""
        try:
            c.sock.send(request_bytes(c))  # a few hundred bytes on an idle socket: no partial send
        except OSError:
            lost(c)
            return None
        return body[length:]

    def on_data(c: Conn, data: bytes, t: float) -> None:
        nonlocal heartbeats
        if c.warming:
            left = warmed(c, data)
            if not left:
                return
            data = left
        if not c.live:
            c.headers += data
            head, sep, body = c.headers.partition(b"\r\n\r\n")
            if not sep:
                return
            c.status = int(head.split(b" ", 2)[1])
            c.live = c.status == 200
            c.first_byte = t
            c.headers = b""
            data = body
        buf = c.rest + data if c.rest else data
        cut = buf.rfind(b"\n")
        if cut < 0:
            c.rest = buf
            return
        c.rest = buf[cut + 1 :]
        block = buf[: cut + 1] if c.rest else buf
        for key, kind in frames(block):
            c.ids.setdefault(key, t)
            c.last_id = key
            if not c.opened:
                c.opened = True
                c.openings.append((key, kind, t))
        heartbeats += comments(block)

    deadline_next_batch = 0.0
    running = True
    while running:
        now = time.monotonic()
        if pending and now >= deadline_next_batch:
            k = min(BATCH, pending)
            open_batch(k)
            pending -= k
            deadline_next_batch = now + 0.02
        if retry_at:
            due = [c for at, c in retry_at if at <= now]
            retry_at[:] = [(at, c) for at, c in retry_at if at > now]
            for c in due:
                open_one(c)
        ready = ep.poll(0.02, max(1, len(by_fd)))
        for fd, mask in ready:
            found = by_fd.get(fd)
            if found is None:
                continue
            c, s = found, found.sock
            if mask & select.EPOLLOUT:
                try:
                    c.opens += 1
                    if warmup_request and (c.opens == 1 or warmup_reconnects):
                        c.warming = True
                        s.send(warmup_request)
                    else:
                        s.send(request_bytes(c))
                except OSError:
                    lost(c)
                    continue
                ep.modify(fd, select.EPOLLIN)
                continue
            t = time.monotonic()
            try:
                data = s.recv(RECV)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                lost(c)
                continue
            bytes_in += len(data)
            on_data(c, data, t)
        while pipe.poll():
            command = pipe.recv()
            if command == "status":
                live = sum(1 for c in conns.values() if c.live)
                pipe.send({"live": live, "failed": failed, "closed": closed, "pending": pending})
            elif command == "mark":
                heartbeats = 0
                pipe.send({"ok": True})
            elif command == "report":
                pipe.send(_report(conns, heartbeats, bytes_in, failed, closed, len(retry_at)))
            elif command == "stop":
                running = False
    for c in conns.values():
        if c.sock.fileno() >= 0:
            c.sock.close()
    ep.close()
    pipe.send({"stopped": True})


def _report(
    conns: dict[int, Conn], heartbeats: int, bytes_in: int, failed: int, closed: int, waiting: int
) -> dict[str, Any]:
    by_id: dict[str, list[float]] = {}
    for c in conns.values():
        for key, t in c.ids.items():
            by_id.setdefault(key, []).append(t)
    live = [c for c in conns.values() if c.live]
    return {
        "by_id": by_id,
        "heartbeats": heartbeats,
        "bytes_in": bytes_in,
        "failed": failed,
        "closed": closed,
        "live": len(live),
        "connect_times": [c.first_byte - c.started for c in live if c.first_byte],
        "last_ids": [c.last_id for c in conns.values()],
        "openings": [c.openings for c in conns.values()],
        "waiting": waiting,
    }


class ClientPool:
    """``workers`` processes holding ``n`` connections between them."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        n: int,
        workers: int,
        reconnect: float | None = None,
        warmup: str | None = None,
        warmup_reconnects: bool = False,
    ) -> None:
        ctx = mp.get_context("fork")
        self.pipes: list[Connection] = []
        self.procs: list[mp.process.BaseProcess] = []
        share = [n // workers + (1 if i < n % workers else 0) for i in range(workers)]
        for k in share:
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=worker,
                args=(host, port, path, k, child, reconnect, warmup, warmup_reconnects),
                daemon=True,
            )
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)
        self.n = n

    def ask(self, command: str) -> list[Any]:
        for pipe in self.pipes:
            pipe.send(command)
        return [pipe.recv() for pipe in self.pipes]

    def status(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for answer in self.ask("status"):
            for k, v in answer.items():
                total[k] = total.get(k, 0) + v
        return total

    def wait_live(self, timeout: float) -> tuple[dict[str, int], float]:
        """Wait until every connection is live (or failed); returns the status and the time taken."""
        started = time.monotonic()
        while True:
            st = self.status()
            if st["live"] + st["failed"] + st["closed"] >= self.n and st["pending"] == 0:
                return st, time.monotonic() - started
            if time.monotonic() - started > timeout:
                return st, time.monotonic() - started
            time.sleep(0.1)

    def cpu(self) -> float:
        """The client processes' CPU (user + system) so far, in seconds: what the harness takes."""
        return sum(cpu_ns(p.pid) for p in self.procs if p.pid is not None) / 1e9

    def report(self) -> list[dict[str, Any]]:
        return self.ask("report")

    def stop(self) -> None:
        try:
            self.ask("stop")
        except (OSError, EOFError):
            pass
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
