"""What every benchmark process shares: the fd limit, the control socket, the event payload,
a process's CPU and a server's ``/metrics``.

Every server under test (quart-dl and both peers) runs in its own process with a small
line-based control socket beside its HTTP port, on the same event loop. The orchestrator
sends ``pub`` and gets back ``<event id> <monotonic time of publish>``; clients record
``time.monotonic()`` when the frame with that id arrives (same machine, same clock).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import time
import urllib.request
from collections.abc import Callable
from typing import Any

#: How many torrents an event changes, and how (a few fields, like a real poll's diff).
EVENT_TORRENTS = 20


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def fake_hash(i: int) -> str:
    """A realistic 40-hex info-hash, distinct per index."""
    return f"{i:08x}".rjust(40, "a")


def event_changes(seq: int) -> dict[str, dict[str, Any]]:
    """The ``changed`` part of the n-th benchmark event (same for every server)."""
    return {
        fake_hash(i): {
            "progress": round((seq % 100) / 100 + i / 10_000, 4),
            "downloaded": seq * 1_048_576 + i,
            "amount_left": 1_000_000_000 - seq * 1_048_576,
            "dl_speed": 100_000 + seq * 7 + i,
            "eta": 3600 - seq,
        }
        for i in range(EVENT_TORRENTS)
    }


def event_payload(seq: int) -> dict[str, Any]:
    """The whole ``diff`` payload the peers send (quart-dl builds the same from a ChangeSet)."""
    return {"changed": event_changes(seq)}


def dumps(payload: Any) -> str:
    """Compact JSON, as quart-dl encodes it."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


async def serve_control(port: int, handlers: dict[str, Callable[[], str]]) -> asyncio.Server:
    """A line protocol on 127.0.0.1:port: a command per line, one line back."""

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                command = line.decode().strip()
                handler = handlers.get(command)
                answer = handler() if handler else f"error unknown command {command!r}"
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(session, "127.0.0.1", port)


def now() -> float:
    """The clock every process records with."""
    return time.monotonic()


def content_length(head: bytes) -> int:
    """The Content-Length of a response head (its status line first), 0 if it has none."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Control:
    """The orchestrator's end of a server's control socket."""

    def __init__(self, port: int, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rwb")

    def ask(self, command: str) -> str:
        self.file.write(command.encode() + b"\n")
        self.file.flush()
        return self.file.readline().decode().strip()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def figure_table(title: str, figures: dict[str, Any]) -> str:
    """A titled two-column markdown table of named figures (poll cost, storm, real poll)."""
    rows = "\n".join(f"| {name} | {value} |" for name, value in figures.items())
    return f"\n{title}\n\n| figure | value |\n| --- | --- |\n{rows}"


def cpu_ns(pid: int) -> int:
    """CPU time of every live thread of ``pid``, in ns (schedstat), or psutil's 10 ms ticks."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as handle:
                    total += int(handle.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                continue  # the thread ended meanwhile
        return total
    except FileNotFoundError:
        # The bench extra's, needed only off Linux (the test extra has no psutil).
        import psutil  # type: ignore[import-untyped, import-not-found, unused-ignore]

        times = psutil.Process(pid).cpu_times()
        return int((times.user + times.system) * 1e9)


def scrape_metrics(base_url: str, prefix: str = "quart_dl_poll") -> dict[str, float]:
    """``/metrics`` lines starting with ``prefix``: name (labels kept, ``quart_dl_`` dropped) → value."""
    with urllib.request.urlopen(base_url + "metrics", timeout=10) as reply:
        text = reply.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(prefix):
            name, _, value = line.rpartition(" ")
            out[name.removeprefix("quart_dl_")] = float(value)
    return out
