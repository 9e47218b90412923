"""Fan-out, memory per idle connection, heartbeat cost: one server kind, one client count."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from .clients import ClientPool
from .common import Control, free_port

KINDS = {
    "quart-dl": "bench.target_quartdl",
    "straightforward": "bench.peers.straightforward_quart",
    "sse-starlette": "bench.peers.sse_starlette_app",
}

ROOT = Path(__file__).resolve().parent.parent

#: What browser-like clients GET on each connection before the stream: a panel module of
#: ~10 KB, as Chromium fetches detail.js and chart.js on the connection its EventSource then
#: reuses. The peers have no such file: they answer 404, which costs them less than a file.
WARMUP_PATH = "/detail.js"
#: ``connections`` of a run: each stream on a fresh connection, or on one that served a GET.
CONNECTIONS = ("fresh", "reused")


class Server:
    """A server under test in its own process, with its control socket."""

    def __init__(
        self,
        kind: str,
        heartbeat: float,
        log_dir: Path,
        torrents: int = 0,
        port: int = 0,
        profile: Path | None = None,
    ) -> None:
        self.kind = kind
        self.port = port or free_port()
        self.control_port = free_port()
        args = [
            sys.executable,
            "-m",
            KINDS[kind],
            "--port",
            str(self.port),
            "--control",
            str(self.control_port),
        ]
        args += ["--heartbeat", f"{heartbeat:g}"]
        if torrents:
            args += ["--torrents", str(torrents)]
        if profile is not None:
            profile.parent.mkdir(parents=True, exist_ok=True)
            args += ["--profile-out", str(profile)]
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log = (log_dir / f"{kind}-{self.port}.log").open("ab")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            args, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL, env=env
        )
        self.ps = psutil.Process(self.proc.pid)
        self.control = self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> Control:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    pass
                control = Control(self.control_port)
                if control.ask("ping") == "ok":
                    return control
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def cpu(self) -> float:
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def stop(self) -> None:
        try:
            self.control.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), or nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def run_fanout(
    kind: str,
    n: int,
    *,
    workers: int,
    events: int,
    heartbeat: float,
    log_dir: Path,
    profile: Path | None = None,
    connections: str = "fresh",
) -> dict[str, Any]:
    """One server kind with n idle clients: connect, idle (heartbeats), broadcast, report.

    ``connections``: ``fresh`` (each stream the first request on its connection) or
    ``reused`` (browser-like: a GET of ``WARMUP_PATH`` first, then the stream on the same
    connection).
    """
    server = Server(kind, heartbeat, log_dir, profile=profile)
    pool: ClientPool | None = None
    warmup = WARMUP_PATH if connections == "reused" else None
    carriers = ""
    try:
        time.sleep(1.5)  # quart-dl: its first poll and commit; the others: nothing
        rss0 = server.rss()
        pool = ClientPool("127.0.0.1", server.port, "/api/events", n, workers, warmup=warmup)
        status, connect_s = pool.wait_live(timeout=60 + n / 100)
        time.sleep(1.0)
        rss1 = server.rss()
        server_count = server.control.ask("count").split()[0]
        if kind == "quart-dl":
            carriers = server.control.ask("carriers")

        # All idle for two heartbeat intervals: what heartbeats (and nothing else) cost.
        pool.ask("mark")
        window = 2 * heartbeat
        cpu0, t0 = server.cpu(), time.monotonic()
        time.sleep(window)
        idle_cpu, idle_wall = server.cpu() - cpu0, time.monotonic() - t0
        heartbeats = sum(r["heartbeats"] for r in pool.report())

        # Broadcasts, spaced so that each normally reaches everybody before the next.
        spacing = max(0.5, n / 5000)
        if profile is not None:
            server.control.ask("profile-start")
        published: list[tuple[str, float]] = []
        clients_cpu0 = pool.cpu()
        cpu0, t0 = server.cpu(), time.monotonic()
        for _ in range(events):
            event_id, t = server.control.ask("pub").split()
            published.append((event_id, float(t)))
            time.sleep(spacing)
        time.sleep(2.0)
        bcast_cpu, bcast_wall = server.cpu() - cpu0, time.monotonic() - t0
        clients_cpu = pool.cpu() - clients_cpu0
        if profile is not None:
            server.control.ask("profile-stop")
        final = pool.status()
        reports = pool.report()
    finally:
        if pool is not None:
            pool.stop()
        server.stop()

    by_id: dict[str, list[float]] = {}
    for r in reports:
        for key, times in r["by_id"].items():
            by_id.setdefault(key, []).extend(times)
    spreads: list[float] = []
    last_latency: list[float] = []
    all_latency: list[float] = []
    coverage: list[int] = []
    for event_id, t_pub in published:
        times = by_id.get(event_id, [])
        coverage.append(len(times))
        if not times:
            continue
        spreads.append(max(times) - min(times))
        last_latency.append(max(times) - t_pub)
        all_latency.extend(t - t_pub for t in times)
    idle_rate = idle_cpu / idle_wall
    net_bcast = max(0.0, bcast_cpu - idle_rate * bcast_wall)
    live = status["live"]
    connect_times = [t for r in reports for t in r["connect_times"]]
    return {
        "kind": kind,
        "clients": n,
        "connections": connections,
        "carriers": carriers,
        "connected": live,
        "connect_failed": status["failed"],
        "connect_s": round(connect_s, 2),
        "connect_p99_ms": round(pct(connect_times, 99) * 1000, 1),
        "held_at_end": final["live"],
        "server_count": int(server_count),
        "events": events,
        "delivered_min": min(coverage) if coverage else 0,
        "spread_p50_ms": round(pct(spreads, 50) * 1000, 1),
        "spread_p99_ms": round(pct(spreads, 99) * 1000, 1),
        "publish_to_last_p50_ms": round(pct(last_latency, 50) * 1000, 1),
        "publish_to_last_p99_ms": round(pct(last_latency, 99) * 1000, 1),
        "delivery_p50_ms": round(pct(all_latency, 50) * 1000, 1),
        "delivery_p99_ms": round(pct(all_latency, 99) * 1000, 1),
        "rss_baseline_mb": round(rss0 / 2**20, 1),
        "rss_idle_mb": round(rss1 / 2**20, 1),
        "kb_per_idle_conn": round((rss1 - rss0) / max(1, live) / 1024, 2),
        "cpu_ms_per_broadcast": round(net_bcast / events * 1000, 1),
        "cpu_ms_per_broadcast_gross": round(bcast_cpu / events * 1000, 1),
        "clients_cpu_ms_per_broadcast": round(clients_cpu / events * 1000, 1),
        "idle_cpu_pct": round(idle_rate * 100, 2),
        "heartbeat_s": heartbeat,
        "heartbeats_in_window": heartbeats,
        "cpu_ms_per_heartbeat_round": round(idle_cpu / (window / heartbeat) * 1000, 1),
        "spacing_s": spacing,
        "median_spread_ms_all": round(statistics.median(spreads) * 1000, 1) if spreads else None,
    }
