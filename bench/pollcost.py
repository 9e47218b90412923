"""Poll cost with 10,000 torrents, through the real TorrentTable, Store (SQLite) and Hub.

Synthetic ``sync/maindata`` answers (bench/synthetic.py) stand in for a real qbittorrent-nox:
a full answer for the first poll, then steady-state answers in which ``changing`` torrents
changed a few keys each. Each stage of a poll is timed in CPU (``time.process_time``, which
counts every thread of the process, so aiosqlite's writer thread is included) and wall time:

- decode: ``json.loads`` of the answer (what qbittorrent-api does on the worker thread: the
  client asks it for plain JSON, ``SIMPLE_RESPONSES``)
- merge: ``TorrentTable.apply`` (merge, project, change set)
- commit: ``Store.commit`` (one transaction, batched upsert)
- publish: ``Hub.publish_changes`` + ``publish_status`` (the event is encoded once here)

The snapshot is measured twice: encoding it in-process (``Hub.snapshot_frame`` after a change,
so the cache is cold), and end to end from a real quart-dl server process seeded with the same
torrents: a raw socket opens ``/api/events`` and the clock stops when the snapshot frame is in.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from quart_dl.hub import Hub
from quart_dl.status import InstanceStatus
from quart_dl.store.store import Store, close_database, open_database
from quart_dl.torrents import TorrentTable

from .common import dumps
from .synthetic import full_maindata, partial_maindata

DB_OK = {"ok": True, "last_error": None}

STAGES = ("decode", "merge", "commit", "publish")


async def _in_process(n: int, changing: int, polls: int) -> dict[str, Any]:
    data = Path(tempfile.mkdtemp(prefix="quart-dl-pollcost-"))
    await open_database(f"sqlite://{data / 'bench.sqlite3'}")
    try:
        store = Store("default", "http://127.0.0.1:8080")
        known = await store.open_instance()
        table = TorrentTable(known, first_run=store.created)
        hub = Hub()
        status = InstanceStatus()
        hub.watch_status(status.record)
        hub.seed(table.records)

        async def poll(raw: bytes) -> dict[str, tuple[float, float]]:
            out: dict[str, tuple[float, float]] = {}
            c, w = time.process_time(), time.perf_counter()
            answer = json.loads(raw)

            def lap(stage: str) -> None:
                nonlocal c, w
                c2, w2 = time.process_time(), time.perf_counter()
                out[stage] = (c2 - c, w2 - w)
                c, w = c2, w2

            lap("decode")
            changes = table.apply(answer)
            lap("merge")
            if changes:
                await store.commit(changes, table.records)
            lap("commit")
            if changes:
                hub.publish_changes(changes)
            visible, _ = status.connected(version="v4.5.2", database=DB_OK, now=time.time())
            if visible:
                hub.publish_status(status.record)
            lap("publish")
            return out

        first_raw = dumps(full_maindata(n)).encode()
        first = await poll(first_raw)
        steady: list[dict[str, tuple[float, float]]] = []
        sizes: list[int] = []
        for rid in range(2, 2 + polls):
            raw = dumps(partial_maindata(n, rid, changing)).encode()
            sizes.append(len(raw))
            steady.append(await poll(raw))
        warm = steady[2:]  # the first steady polls still warm caches

        hub.publish_changes(table.apply(json.loads(dumps(partial_maindata(n, 10_000, changing)))))
        c, w = time.process_time(), time.perf_counter()
        snapshot = hub.snapshot_frame()
        snap_cpu, snap_wall = time.process_time() - c, time.perf_counter() - w
        w = time.perf_counter()
        hub.snapshot_frame()
        cached_wall = time.perf_counter() - w
    finally:
        await close_database()

    def total(p: dict[str, tuple[float, float]], k: int) -> float:
        return sum(v[k] for v in p.values())

    cpu = [total(p, 0) for p in warm]
    out: dict[str, Any] = {
        "torrents": n,
        "changing_per_poll": changing,
        "steady_polls_measured": len(warm),
        "first_poll_bytes": len(first_raw),
        "first_poll_wall_ms": round(total(first, 1) * 1000, 1),
        "first_poll_cpu_ms": round(total(first, 0) * 1000, 1),
        **{f"first_poll_{s}_wall_ms": round(first[s][1] * 1000, 1) for s in STAGES},
        "steady_bytes_per_poll": int(statistics.median(sizes)),
        "steady_cpu_ms_p50": round(statistics.median(cpu) * 1000, 2),
        "steady_cpu_ms_max": round(max(cpu) * 1000, 2),
        "steady_wall_ms_p50": round(statistics.median(total(p, 1) for p in warm) * 1000, 2),
        **{
            f"steady_{s}_cpu_ms_p50": round(statistics.median(p[s][0] for p in warm) * 1000, 2)
            for s in STAGES
        },
        "snapshot_bytes": len(snapshot),
        "snapshot_encode_cold_ms": round(snap_wall * 1000, 1),
        "snapshot_encode_cold_cpu_ms": round(snap_cpu * 1000, 1),
        "snapshot_cached_ms": round(cached_wall * 1000, 3),
    }
    return out


def fetch_snapshot(port: int, path: str = "/api/events", timeout: float = 30.0) -> tuple[float, float, bytes]:
    """Open the stream at ``path``; (time to the first byte, time to the whole snapshot frame,
    everything received until then: response head included)."""
    started = time.monotonic()
    first = 0.0
    buf = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError("stream closed before the snapshot")
            if not first:
                first = time.monotonic() - started
            buf += chunk
            at = buf.find(b"event: snapshot\n")
            if at >= 0 and buf.find(b"\n\n", at) >= 0:
                return first, time.monotonic() - started, buf


def _fetch_snapshot(port: int, timeout: float = 30.0) -> tuple[float, float, int]:
    """Open /api/events; (time to the first body byte, time to the whole snapshot, its bytes)."""
    first, took, buf = fetch_snapshot(port, timeout=timeout)
    return first, took, len(buf)


def _end_to_end(n: int, samples: int) -> dict[str, Any]:
    from .fanout import ROOT, Server

    server = Server("quart-dl", 15.0, ROOT / "bench" / "results" / "logs", torrents=n)
    try:
        from quart_dl.lab.wait import wait_for

        loaded = lambda: int(server.control.ask("count").split()[1]) >= n  # noqa: E731
        wait_for(loaded, 120, "the server to load its torrents", 0.2)
        time.sleep(1.0)
        cold, cached = [], []
        for _ in range(samples):
            server.control.ask("pub")  # a new event: the next snapshot is encoded afresh
            cold.append(_fetch_snapshot(server.port)[1])
            cached.append(_fetch_snapshot(server.port)[1])
        size = _fetch_snapshot(server.port)[2]
    finally:
        server.stop()
    return {
        "snapshot_to_new_client_cold_ms_p50": round(statistics.median(cold) * 1000, 1),
        "snapshot_to_new_client_cold_ms_max": round(max(cold) * 1000, 1),
        "snapshot_to_new_client_cached_ms_p50": round(statistics.median(cached) * 1000, 1),
        "snapshot_response_bytes": size,
    }


def run_pollcost(n: int = 10_000, changing: int = 300, polls: int = 20, samples: int = 5) -> dict[str, Any]:
    result = asyncio.run(_in_process(n, changing, polls))
    try:
        result.update(_end_to_end(n, samples))
    except Exception as exc:
        result["snapshot_to_new_client_error"] = f"{exc.__class__.__name__}: {exc}"
    return result


if __name__ == "__main__":
    print(json.dumps(run_pollcost(), indent=2))
