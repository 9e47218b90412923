"""Reconnect storm: N clients on quart-dl, the server restarted, everyone back with Last-Event-ID.

The clients behave like EventSource: a lost stream is reopened after the ``retry:`` delay
quart-dl sends (3 s by default), with ``Last-Event-ID`` set to the last id it saw, and
again after the same delay while the server is down. The new process has a new epoch, so a
replay is impossible: every client must open with a fresh ``snapshot`` of the new epoch
(not a replay of, or a continuation from, the old view), and must then receive the first
event published after the restart. A client that does not is counted as stale.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from quart_dl.lab.wait import wait_for

from .clients import ClientPool
from .fanout import Server


def _wait_torrents(server: Server, n: int, timeout: float = 60.0) -> None:
    def loaded() -> bool:
        return int(server.control.ask("count").split()[1]) >= n

    wait_for(loaded, timeout, "the server to load its torrents", 0.1)


def run_storm(
    n: int,
    *,
    workers: int,
    log_dir: Path,
    torrents: int = 100,
    retry: float = 3.0,
    warmup: str | None = None,
    warmup_reconnects: bool = False,
) -> dict[str, Any]:
    """``warmup``: browser-like clients (a GET of that path before the first stream, on the same
    connection); ``warmup_reconnects``: before every reconnect too (bench/clients.py)."""
    server = Server("quart-dl", 5.0, log_dir, torrents=torrents)
    port = server.port
    pool: ClientPool | None = None
    try:
        _wait_torrents(server, torrents)
        pool = ClientPool(
            "127.0.0.1",
            port,
            "/api/events",
            n,
            workers,
            reconnect=retry,
            warmup=warmup,
            warmup_reconnects=warmup_reconnects,
        )
        status, _ = pool.wait_live(timeout=120)
        if status["live"] < n:
            raise RuntimeError(f"only {status['live']} of {n} clients connected before the restart")
        old_id = server.control.ask("pub").split()[0]
        time.sleep(1.0)
        down = time.monotonic()
        server.stop()
        stopped = time.monotonic()
        server = Server("quart-dl", 5.0, log_dir, torrents=torrents, port=port)
        up = time.monotonic()
        new_epoch = server.control.ask("count").split()[2].rpartition("-")[0]
        while True:
            live = pool.status()["live"]
            if live >= n or time.monotonic() - down > 60:
                break
            time.sleep(0.05)
        all_live = time.monotonic()
        probe = server.control.ask("pub").split()[0]
        time.sleep(2.0)
        carriers = server.control.ask("carriers")
        reports = pool.report()
    finally:
        if pool is not None:
            pool.stop()
        server.stop()

    stale = missed_probe = wrong_opening = 0
    openings_seen = 0
    got_probe = 0
    by_probe = []
    for r in reports:
        times = r["by_id"].get(probe, [])
        got_probe += len(times)
        by_probe.extend(times)
        for openings in r["openings"]:
            openings_seen += len(openings)
            last = openings[-1] if openings else None
            fresh = last is not None and last[0].startswith(new_epoch + "-") and last[1] == "snapshot"
            if not fresh:
                wrong_opening += 1
    missed_probe = n - got_probe
    stale = wrong_opening + missed_probe
    return {
        "clients": n,
        "connections": ("reused, reconnects too" if warmup_reconnects else "reused") if warmup else "fresh",
        "carriers_after": carriers,
        "retry_s": retry,
        "old_last_id": old_id,
        "server_stop_s": round(stopped - down, 2),
        "server_restart_s": round(up - stopped, 2),
        "all_live_after_down_s": round(all_live - down, 2),
        "all_live_after_up_s": round(all_live - up, 2),
        "live_at_end": sum(r["live"] for r in reports),
        "openings_seen": openings_seen,
        "not_opened_with_new_snapshot": wrong_opening,
        "missed_first_event_after_restart": missed_probe,
        "stale_views": stale,
        "probe_spread_ms": round((max(by_probe) - min(by_probe)) * 1000, 1) if by_probe else None,
    }
