"""``python -m bench``: run the benchmark, print the table, write JSON.

    python -m bench            # 1,000 / 5,000 / 10,000 clients, 20 events each, poll cost, storm
                               # (fresh and browser-like reused connections, both)
    python -m bench --connections reused --skip-poll    # browser-like clients only
    python -m bench --quick    # 1,000 / 5,000 clients, 10 events each, poll cost, storm
    python -m bench --sizes 1000 --kinds quart-dl --skip-poll --storm 0
    python -m bench --skip-fanout --skip-poll --storm 0 --latency 60   # change-to-screen only
    python -m bench --skip-fanout --skip-poll --storm 0 --poll-real    # poll cost, real qBittorrent
    python -m bench --skip-fanout --skip-poll --storm 0 --instances    # 1 vs 3 qBittorrents of 3,000

``--latency`` needs more than the bench extra: playwright (the e2e extra), qbittorrent-nox and
Debian's /usr/bin/chromium, so it is not part of the default run (``--latency`` alone: 40
changes, 12 with ``--quick``). ``--poll-real [N]`` (default off; N torrents, 10,000 alone) measures
poll cost against a real qbittorrent-nox holding N paused torrents (bench/pollreal.py).
``--instances [N]`` (default off; N torrents per instance, 3,000 alone, 300 with ``--quick``)
runs a real server following one, then three synthetic qBittorrents (bench/instances.py).

Every server kind runs the same clients and the same events in the same run, one after the
other; ratios are taken within the run (the machine is shared, absolute figures are noisy).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import figure_table, raise_fd_limit
from .fanout import CONNECTIONS, KINDS, ROOT, WARMUP_PATH, run_fanout

COLUMNS = (
    ("clients", "N"),
    ("connections", "connections"),
    ("kind", "server"),
    ("connected", "live"),
    ("held_at_end", "held"),
    ("delivered_min", "min rcvd"),
    ("spread_p50_ms", "spread p50 ms"),
    ("spread_p99_ms", "spread p99 ms"),
    ("publish_to_last_p99_ms", "pub→last p99 ms"),
    ("kb_per_idle_conn", "KB/idle conn"),
    ("cpu_ms_per_broadcast", "CPU ms/bcast"),
    ("cpu_ms_per_broadcast_gross", "gross"),
    ("clients_cpu_ms_per_broadcast", "clients' CPU ms/bcast"),
    ("cpu_ms_per_heartbeat_round", "CPU ms/hb round"),
    ("idle_cpu_pct", "idle CPU %"),
    ("connect_s", "connect s"),
    ("carriers", "carriers"),
)

RATIO_KEYS = (
    "spread_p50_ms",
    "spread_p99_ms",
    "kb_per_idle_conn",
    "cpu_ms_per_broadcast",
    "cpu_ms_per_heartbeat_round",
)


def table(rows: list[dict[str, Any]]) -> str:
    head = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    sep = "|" + "|".join(" --- " for _ in COLUMNS) + "|"
    lines = [head, sep]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(key, "")) for key, _ in COLUMNS) + " |")
    return "\n".join(lines)


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """quart-dl's figure divided by each peer's, per client count and connection kind (below 1 =
    quart-dl better); and quart-dl on reused connections divided by quart-dl on fresh ones."""
    out = []
    for n, connections in sorted({(r["clients"], r.get("connections", "fresh")) for r in rows}):
        same = [r for r in rows if r["clients"] == n and r.get("connections", "fresh") == connections]
        ours = next((r for r in same if r["kind"] == "quart-dl"), None)
        if ours is None:
            continue
        fresh = next(
            (
                r
                for r in rows
                if r["clients"] == n and r["kind"] == "quart-dl" and r.get("connections") == "fresh"
            ),
            None,
        )
        peers = [r for r in same if r["kind"] != "quart-dl"]
        if connections != "fresh" and fresh is not None:
            peers.append({**fresh, "kind": "quart-dl fresh"})
        for peer in peers:
            entry: dict[str, Any] = {"clients": n, "connections": connections, "vs": peer["kind"]}
            for key in RATIO_KEYS:
                a, b = ours.get(key), peer.get(key)
                entry[key] = round(a / b, 3) if a is not None and b else None
            out.append(entry)
    return out


def ratio_table(entries: list[dict[str, Any]]) -> str:
    keys = ("clients", "connections", "vs", *RATIO_KEYS)
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join(" --- " for _ in keys) + "|"]
    for e in entries:
        lines.append("| " + " | ".join(str(e.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 5,000 clients, 10 events")
    parser.add_argument("--sizes", help="client counts, comma-separated (default 1000,5000,10000)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="servers to run, comma-separated")
    parser.add_argument("--events", type=int, help="broadcasts per run (default 20, 10 with --quick)")
    parser.add_argument(
        "--heartbeat", type=float, default=5.0, help="heartbeat interval for every server (s)"
    )
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument(
        "--connections",
        default=",".join(CONNECTIONS),
        help=f"fresh (each stream on a new connection) and/or reused (browser-like: GET {WARMUP_PATH} first)",
    )
    parser.add_argument("--skip-fanout", action="store_true")
    parser.add_argument("--profile", action="store_true", help="pyinstrument quart-dl's broadcasts")
    parser.add_argument("--skip-poll", action="store_true")
    parser.add_argument("--storm", type=int, default=5000, help="clients in the reconnect storm (0: skip)")
    parser.add_argument(
        "--storm-warmup-reconnects",
        action="store_true",
        help="also a storm whose clients GET the warm-up file before every reconnect (a reload each)",
    )
    parser.add_argument("--torrents", type=int, default=10_000, help="torrents for the poll-cost part")
    parser.add_argument(
        "--latency",
        type=int,
        nargs="?",
        const=-1,
        default=0,
        help="change-to-screen latency in Chromium: N changes (alone: 40, 12 with --quick; default: skip)",
    )
    parser.add_argument(
        "--poll-real",
        type=int,
        nargs="?",
        const=10_000,
        default=0,
        help="poll cost, real qbittorrent-nox with N paused torrents (alone: 10,000; default: skip)",
    )
    parser.add_argument(
        "--instances",
        type=int,
        nargs="?",
        const=-1,
        default=0,
        help="1 vs 3 synthetic qBittorrents, N torrents each (alone: 3,000, 300 with --quick; default skip)",
    )
    parser.add_argument(
        "--nginx",
        type=int,
        default=0,
        help="N browser-like streams through nginx, upstream keepalive 32 (0: skip)",
    )
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = parser.parse_args()
    raise_fd_limit()
    sizes = [int(s) for s in (args.sizes or ("1000,5000" if args.quick else "1000,5000,10000")).split(",")]
    events = args.events or (10 if args.quick else 20)
    kinds = args.kinds.split(",")
    log_dir = ROOT / "bench" / "results" / "logs"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip(),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
        "fanout": [],
        "ratios": [],
        "poll": None,
        "storm": None,
        "latency": None,
        "poll_real": None,
        "nginx": None,
        "instances": None,
    }
    if not args.skip_fanout:
        for n, connections, kind in (
            (n, c, k) for n in sizes for c in args.connections.split(",") for k in kinds
        ):
            started = time.monotonic()
            print(
                f"fan-out: {kind} with {n} clients on {connections} connections…",
                file=sys.stderr,
                flush=True,
            )
            try:
                row = run_fanout(
                    kind,
                    n,
                    workers=args.workers,
                    events=events,
                    heartbeat=args.heartbeat,
                    log_dir=log_dir,
                    connections=connections,
                    profile=(
                        log_dir.parent / f"profile-{kind}-{n}.txt"
                        if args.profile and kind == "quart-dl"
                        else None
                    ),
                )
            except Exception as exc:
                row = {
                    "kind": kind,
                    "clients": n,
                    "connections": connections,
                    "error": f"{exc.__class__.__name__}: {exc}",
                }
            row["wall_s"] = round(time.monotonic() - started, 1)
            print(json.dumps(row), file=sys.stderr, flush=True)
            result["fanout"].append(row)
        result["ratios"] = ratios([r for r in result["fanout"] if "error" not in r])
    if not args.skip_poll:
        from .pollcost import run_pollcost

        print(f"poll cost: {args.torrents} torrents…", file=sys.stderr, flush=True)
        result["poll"] = run_pollcost(args.torrents)
    if args.storm:
        from .storm import run_storm

        storms = {}
        variants = args.connections.split(",")
        if args.storm_warmup_reconnects:
            variants.append("reused, reconnects too")
        for connections in variants:
            print(
                f"reconnect storm: {args.storm} clients on {connections} connections…",
                file=sys.stderr,
                flush=True,
            )
            warmup = WARMUP_PATH if connections.startswith("reused") else None
            try:
                storms[connections] = run_storm(
                    args.storm,
                    workers=args.workers,
                    log_dir=log_dir,
                    warmup=warmup,
                    warmup_reconnects=connections != "reused",
                )
            except Exception as exc:
                storms[connections] = {"error": f"{exc.__class__.__name__}: {exc}"}
        result["storm"] = storms
    if args.nginx:
        from .proxied import run_proxied

        print(f"through nginx (upstream keepalive 32): {args.nginx} clients…", file=sys.stderr, flush=True)
        try:
            result["nginx"] = run_proxied(args.nginx, workers=args.workers, log_dir=log_dir)
        except Exception as exc:
            result["nginx"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    if args.latency:
        from .latency import run_latency

        changes = args.latency if args.latency > 0 else (12 if args.quick else 40)
        print(f"change-to-screen latency: {changes} changes…", file=sys.stderr, flush=True)
        try:
            result["latency"] = run_latency(changes, log_dir=log_dir)
        except Exception as exc:
            result["latency"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    if args.poll_real:
        from .pollreal import run_pollreal

        print(
            f"poll cost against a real qbittorrent-nox: {args.poll_real} torrents…",
            file=sys.stderr,
            flush=True,
        )
        try:
            result["poll_real"] = run_pollreal(args.poll_real, log_dir=log_dir)
        except Exception as exc:
            result["poll_real"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    if args.instances:
        from .instances import Params, run_instances

        params = Params.quick() if args.quick else Params()
        if args.instances > 0:
            params = Params(**{**params.__dict__, "torrents": args.instances})
        print(
            f"several instances: 1 then {params.instances} × {params.torrents} torrents…",
            file=sys.stderr,
            flush=True,
        )
        try:
            result["instances"] = run_instances(params, log_dir=log_dir)
        except Exception as exc:
            result["instances"] = {"error": f"{exc.__class__.__name__}: {exc}"}
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(render(result))
    print(f"\nJSON: {out}")
    return 0


def render(result: dict[str, Any]) -> str:
    parts = []
    if result["fanout"]:
        parts.append(f"Fan-out (heartbeat {result['fanout'][0].get('heartbeat_s', 0):g}s):\n")
        parts.append(table(result["fanout"]))
        parts.append("\nRatios, quart-dl ÷ peer (below 1 = quart-dl better):\n")
        parts.append(ratio_table(result["ratios"]))
    poll = result.get("poll")
    if poll:
        parts.append(figure_table("Poll cost:", poll))
    storm = result.get("storm")
    if storm:
        for connections, figures in storm.items():
            parts.append(figure_table(f"Reconnect storm (quart-dl, {connections} connections):", figures))
    if result.get("nginx"):
        parts.append(
            figure_table("Through nginx, upstream keepalive 32 (browser-like clients):", result["nginx"])
        )
    latency = result.get("latency")
    if latency:
        parts.append(latency_table(latency))
    if result.get("poll_real"):
        from .pollreal import table as poll_real_table

        parts.append(poll_real_table(result["poll_real"]))
    if result.get("instances"):
        from .instances import table as instances_table

        parts.append(instances_table(result["instances"]))
    return "\n".join(parts)


def latency_table(latency: dict[str, Any]) -> str:
    """Change-to-screen: median / p95 per leg, overall and per kind of change, and the verdict."""
    if "error" in latency:
        return f"\nChange-to-screen latency: {latency['error']}"
    lines = [
        f"\nChange-to-screen latency (poll interval {latency['poll_interval_s']:g} s, "
        f"{latency['changes']} changes, {latency['missed']} never shown):\n",
        "| change | leg | n | median ms | p95 ms | min ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    legs = (
        ("api_to_dom", "API call → DOM"),
        ("qbt_to_dom", "qBittorrent shows it → DOM"),
        ("api_to_qbt", "API call → qBittorrent shows it"),
        ("qbt_to_wire", "qBittorrent → SSE on the wire"),
        ("wire_to_dom", "SSE on the wire → DOM"),
    )
    groups = [("all", latency), *latency.get("by_kind", {}).items()]
    for group, figures in groups:
        for key, title in legs:
            s = figures.get(key)
            if not s or not s.get("n"):
                continue
            lines.append(
                f"| {group} | {title} | {s['n']} | {s['median_ms']} | {s['p95_ms']} | {s['min_ms']} "
                f"| {s['max_ms']} |"
            )
    verdict = "met" if latency["target_met_api"] and latency["target_met_qbt"] else "MISSED"
    lines.append(
        f"\ntarget: median ≤ {latency['target_median_ms']:g} ms (poll/2 + 150): {verdict}; "
        f"qBittorrent sampled every {latency['qbt_sample_interval_ms']} ms "
        f"(±{latency['qbt_uncertainty_ms_median']} ms); server poll period "
        f"{latency.get('poll_period_ms')} ms (poll itself {latency.get('poll_duration_ms_mean')} ms); "
        f"browser clock offset {latency['clock_offset_ms']}"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
