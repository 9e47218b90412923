"""Streams through nginx with an upstream ``keepalive`` pool, the usual advice for proxies.

nginx keeps up to ``keepalive`` idle connections to quart-dl and sends the next request it
proxies on one of them, stream requests included: each such stream arrives on a connection
that already served another client's request (here: the browser-like clients' warm-up GETs).
What is measured: whether quart-dl carries those streams on the socket layer (``carriers``),
and the fan-out spread through the proxy.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from quart_dl.lab.wait import wait_for

from .clients import ClientPool
from .common import free_port
from .fanout import WARMUP_PATH, Server, pct

NGINX = "/usr/sbin/nginx"


def _nginx_config(root: Path, listen: int, upstream: int, keepalive: int) -> str:
    user = "user root;" if os.geteuid() == 0 else ""
    temp = root / "temp"
    return f"""
{user}
worker_processes 1;
worker_rlimit_nofile 65536;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {temp}/client;
    proxy_temp_path {temp}/proxy;
    upstream quartdl {{
        server 127.0.0.1:{upstream};
        keepalive {keepalive};
    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://quartdl;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_read_timeout 60s;
        }}
    }}
}}
"""


def run_proxied(
    n: int, *, workers: int, log_dir: Path, events: int = 10, keepalive: int = 32
) -> dict[str, Any]:
    """``n`` browser-like clients through nginx (upstream ``keepalive``) to quart-dl."""
    root = Path(tempfile.mkdtemp(prefix="quart-dl-bench-nginx-"))
    (root / "temp").mkdir()
    listen = free_port()
    server = Server("quart-dl", 5.0, log_dir)
    conf = root / "nginx.conf"
    conf.write_text(_nginx_config(root, listen, server.port, keepalive))
    proxy = subprocess.Popen(
        [NGINX, "-p", str(root), "-c", str(conf), "-g", "daemon off;"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pool: ClientPool | None = None
    try:
        wait_for(lambda: _listening(listen), 10, "nginx to listen", 0.05)
        pool = ClientPool("127.0.0.1", listen, "/api/events", n, workers, warmup=WARMUP_PATH)
        status, connect_s = pool.wait_live(timeout=60 + n / 100)
        time.sleep(1.0)
        carriers = server.control.ask("carriers")
        published: list[tuple[str, float]] = []
        for _ in range(events):
            event_id, t = server.control.ask("pub").split()
            published.append((event_id, float(t)))
            time.sleep(max(0.5, n / 5000))
        time.sleep(2.0)
        reports = pool.report()
        final = pool.status()
    finally:
        if pool is not None:
            pool.stop()
        proxy.terminate()
        proxy.wait(10)
        server.stop()
    by_id: dict[str, list[float]] = {}
    for r in reports:
        for key, times in r["by_id"].items():
            by_id.setdefault(key, []).extend(times)
    spreads, coverage = [], []
    for event_id, _ in published:
        times = by_id.get(event_id, [])
        coverage.append(len(times))
        if times:
            spreads.append(max(times) - min(times))
    return {
        "clients": n,
        "upstream_keepalive": keepalive,
        "connected": status["live"],
        "connect_s": round(connect_s, 2),
        "held_at_end": final["live"],
        "carriers": carriers,
        "delivered_min": min(coverage) if coverage else 0,
        "spread_p50_ms": round(pct(spreads, 50) * 1000, 1),
        "spread_p99_ms": round(pct(spreads, 99) * 1000, 1),
    }


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True
