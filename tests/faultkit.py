"""Helpers for tests/test_faults.py: raw asyncio SSE clients, process probes, database readers.

Raw sockets rather than a client library: the fault tests need to control exactly when a
client reads (or stops reading), how small its receive buffer is, and how it hangs up.
Requests are HTTP/1.0 so the body comes unchunked (close-delimited) and goes straight into
the lab's EventSource-exact parser (``quart_dl.lab.sse_reader.SSEParser``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from quart_dl.lab.qbittorrent_nox import free_port
from quart_dl.lab.sse_reader import SSEMessage, SSEParser

Record = dict[str, Any]


class AsyncStream:
    """An SSE client on the test's event loop, recording every event with its arrival time."""

    def __init__(self, port: int, path: str = "/api/events", last_event_id: str | None = None) -> None:
        self.port, self.path, self.last_event_id = port, path, last_event_id
        self.status: int | None = None
        self.messages: list[SSEMessage] = []
        self.ended_at: float | None = None
        self.changed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, timeout: float = 10.0) -> None:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), timeout)
        self._writer = writer
        extra = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id else ""
        head_lines = f"GET {self.path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        writer.write(f"{head_lines}{extra}\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        self.status = int(head.split(b" ", 2)[1])
        self._task = asyncio.create_task(self._pump(reader))

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        parser = SSEParser()
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                # Events only: comments (heartbeats) and the retry hint are not recorded here.
                self.messages.extend(m for m in parser.feed(chunk, time.monotonic()) if m.data is not None)
                self.changed.set()
        except (ConnectionError, OSError):
            pass
        finally:
            self.ended_at = time.monotonic()
            self.changed.set()

    @property
    def last_id(self) -> str | None:
        ids = [m.id for m in self.messages if m.id]
        return ids[-1] if ids else None

    async def wait(self, predicate: Callable[[list[SSEMessage]], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate(self.messages)
            if value:
                return value
            if self.ended_at is not None:
                raise AssertionError(f"stream ended while waiting for {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.2))
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def apply_events(messages: list[SSEMessage], view: dict[str, Record] | None = None) -> dict[str, Record]:
    """What a client shows after applying the events (a snapshot replaces the view)."""
    view = {} if view is None else view
    for m in messages:
        if m.event == "snapshot":
            view = {h: dict(r) for h, r in m.json()["torrents"].items()}
        elif m.event == "diff":
            payload = m.json()
            for h, change in payload["changed"].items():
                view.setdefault(h, {}).update(change)
            for h in payload.get("removed", []):
                view.pop(h, None)
    return view


def completions(messages: list[SSEMessage], torrent_hash: str) -> list[str | None]:
    """Ids of the diffs that announced ``torrent_hash`` as completed."""
    return [m.id for m in messages if m.event == "diff" and torrent_hash in m.json().get("completed", [])]


# -- process probes ------------------------------------------------------------------------


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def metrics(url: str) -> dict[str, float]:
    """``/metrics`` as {'name{labels}': value}."""
    import urllib.request

    with urllib.request.urlopen(url + "metrics", timeout=5) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def total(values: dict[str, float], name: str) -> float:
    """Sum of a metric over all its labels."""
    return sum(v for k, v in values.items() if k == name or k.startswith(name + "{"))


def poll_count(url: str) -> float:
    """How many polls the server has completed (``/metrics``)."""
    return total(metrics(url), "quart_dl_poll_duration_seconds_count")


# -- databases -----------------------------------------------------------------------------

#: Fields compared between the database and /api/torrents. Speeds and ETA are left out:
#: they are sampled, and the database legitimately holds the value of the last commit.
DB_FIELDS = (
    "name",
    "state",
    "phase",
    "progress",
    "complete",
    "size",
    "downloaded",
    "amount_left",
    "completed_at",
    "category",
    "save_path",
    "added_at",
)


def sqlite_rows(db_path: Path) -> dict[str, Record]:
    con = sqlite3.connect(db_path, timeout=5)
    try:
        con.row_factory = sqlite3.Row
        rows = con.execute(f"SELECT hash, {', '.join(DB_FIELDS)} FROM torrent").fetchall()
    finally:
        con.close()
    return {r["hash"]: {f: _norm(f, r[f]) for f in DB_FIELDS} for r in rows}


async def postgres_rows(dsn: str) -> dict[str, Record]:
    import asyncpg  # type: ignore[import-untyped]

    con = await asyncpg.connect(dsn)
    try:
        rows = await con.fetch(f"SELECT hash, {', '.join(DB_FIELDS)} FROM torrent")
    finally:
        await con.close()
    return {r["hash"]: {f: _norm(f, r[f]) for f in DB_FIELDS} for r in rows}


def api_rows(torrents: list[Record]) -> dict[str, Record]:
    return {t["hash"]: {f: _norm(f, t[f]) for f in DB_FIELDS} for t in torrents}


def _norm(field: str, value: Any) -> Any:
    if field == "complete":
        return bool(value)
    if field == "progress":
        return round(float(value), 4)
    return value


# -- a throwaway PostgreSQL cluster ---------------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PgCluster:
    """initdb + pg_ctl as the ``postgres`` OS user, trust auth, loopback, its own port."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="quart-dl-pg-"))
        self.port = free_port()
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(f"{PG_BIN}/initdb -A trust -U postgres -D {self.dir}/data >/dev/null")

    @property
    def dsn(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, command: str) -> None:
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", command], check=True, timeout=60)

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._as_postgres(
            f'{PG_BIN}/pg_ctl -D {self.dir}/data -l {self.dir}/log -w -o "{opts}" start >/dev/null'
        )

    def stop(self) -> None:
        self._as_postgres(f"{PG_BIN}/pg_ctl -D {self.dir}/data -m fast -w stop >/dev/null")

    def remove(self) -> None:
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.remove()


def raw_request(port: int, path: str, rcvbuf: int | None = None) -> socket.socket:
    """A blocking socket that sent ``GET path`` and read only the response head."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    sock.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock
