"""Several qBittorrent instances (issue #13, item 8): poll CPU, poll cadence and the v2 snapshot.

One run, ``rounds`` × two phases (full mode: 2 rounds, quick: 1), each a real
``python -m quart_dl serve`` process (:class:`~quart_dl.lab.server_process.ServerProcess`,
this checkout's ``quart_dl``, fresh SQLite, 1 s poll interval, 30 s idle interval, log level
INFO):

1. **baseline**: the server follows one instance (``default``, the flat ``--qbt-url``) of
   ``torrents`` torrents;
2. **several**: the server follows ``instances`` instances of ``torrents`` each (``default``
   plus ``[[instances]]`` tables in a TOML file, as a user adds them).

Alternating the two (baseline, several, baseline, several) spreads the machine's drift
over both instead of charging it to one.

The qBittorrents are synthetic (bench/fakeqbt.py: an HTTP server per instance, in its own
process, answering ``sync/maindata`` with bench/synthetic.py's torrents; distinct hashes per
instance). In every steady-state answer the same ``changing`` torrents (the downloading
ones; the rest stay paused) changed a few keys, so each poll merges, commits and publishes a
diff: the poll's real work, not an empty ``{"rid": n}``; and the server's 5 s history sample
writes ``changing`` rows per instance, as it would for that many active downloads.

Per phase:

- **Server CPU per poll**: the server's CPU (all threads, ``/proc/<pid>/task/*/schedstat``)
  over a window of ``window`` seconds ÷ the polls ``/metrics`` counted in it, summed over
  instances. Everything the process did in the window counts (heartbeats, the 5 s samples,
  the fan-out to the viewers, two ``/metrics`` scrapes), so fixed costs are shared by more
  polls with more instances. Measured twice: with one viewer (a protocol 2 stream), then with
  ``viewers`` protocol 2 streams open (raw sockets, read and thrown away on one thread).
- **Polls per interval**, per instance: ``quart_dl_polls_total{instance}``'s increase over the
  window ÷ (window ÷ poll interval). The poller sleeps the interval *after* each poll, so the
  figure is interval ÷ (interval + poll time), a little under 1; what must not happen is a
  poll per viewer. The window's bounds for "one per interval": at most ⌊window/interval⌋ + 1
  polls, at least ⌊window/(interval + mean poll time + 50 ms)⌋ − 1. ``diffs_per_poll`` is the
  diffs the one viewer received per instance ÷ that instance's polls (each poll changes
  torrents, so it should be 1: the polls really became events); ``maindata_requests`` the
  ``sync/maindata`` requests each synthetic qBittorrent received in the window (the other
  end's count, read a moment apart from ``/metrics``: ±1).
- **Snapshot to a new client**: with the qBittorrents quiet and the viewers still connected,
  ``samples`` times: one torrent of ``default`` changes (the next snapshot is built afresh,
  "after a change"), a raw socket opens the stream, and the clock runs from the request to
  the whole ``snapshot`` frame received (``bench.pollcost.fetch_snapshot``); then once more
  at once ("cached", same sequence number). For ``/api/events?v=2`` (every instance) and
  ``/api/events`` (v1, the primary's torrents only). Bytes = the snapshot frame
  (``event:``/``id:``/``data:`` lines), each frame checked for the torrents it must hold.

``summary`` takes the ratios within the run: several ÷ baseline (means over the rounds).
The machine has 2 cores shared with other engineers' runs: compare ratios, and rerun when
the load average (recorded per phase) was high.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quart_dl.lab.server_process import ServerProcess, get_json
from quart_dl.lab.sse_reader import SSEReader
from quart_dl.lab.wait import wait_for

from .common import cpu_ns, figure_table
from .common import scrape_metrics as _metrics
from .pollcost import fetch_snapshot

ROOT = Path(__file__).resolve().parent.parent
POLL_INTERVAL = 1.0
IDLE_POLL_INTERVAL = 30.0
#: Instance ids after the flat ``default`` one.
EXTRA_IDS = ("second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")
#: The two measuring windows of a phase.
WINDOWS = ("one_viewer", "many_viewers")
#: Slack for "one per interval": the event loop wakes a poller a little late.
LATENESS = 0.05


@dataclass(frozen=True)
class Params:
    """One run's sizes: the full run (issue #13's figures) or the quick one (the smoke test)."""

    torrents: int = 3000
    instances: int = 3
    changing: int = 100
    viewers: int = 10
    samples: int = 7
    window: float = 30.0
    rounds: int = 2
    #: pyinstrument in the server (bench/results/logs/instances-<phase>.pyisession): no figures.
    profile: bool = False

    @classmethod
    def quick(cls, torrents: int = 300) -> Params:
        return cls(torrents=torrents, changing=10, window=4.0, viewers=3, samples=3, rounds=1)


def _log(message: str) -> None:
    print(f"instances: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------- synthetic qBittorrents


class SyntheticQbt:
    """bench/fakeqbt.py in its own process: one synthetic qBittorrent Web API on loopback."""

    def __init__(self, torrents: int, first: int, changing: int = 0) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.fakeqbt",
                "--torrents",
                str(torrents),
                "--first",
                str(first),
                "--changing",
                str(changing),
            ],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().split()  # "port <n>", or "" if it died
        if len(line) != 2 or line[0] != "port":
            self.stop()
            raise RuntimeError(f"bench.fakeqbt did not start (said {line!r})")
        self.port = int(line[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def _post(self, path: str) -> bytes:
        request = urllib.request.Request(self.url + path, data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as reply:
            return bytes(reply.read())

    def mode(self, changing: int) -> None:
        """Every later ``sync/maindata`` answer changes ``changing`` torrents (0: nothing)."""
        self._post(f"/bench/mode?changing={changing}")

    def pulse(self, changing: int = 1) -> None:
        """Only the next answer changes ``changing`` torrents."""
        self._post(f"/bench/pulse?changing={changing}")

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/bench/stats", timeout=10) as reply:
            return dict(json.loads(reply.read()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# ------------------------------------------------------------------------------- viewers


class Viewers:
    """``n`` open streams, read and thrown away on one thread: what a viewer costs the server
    is its stream, not what the viewer does with the bytes."""

    def __init__(self, port: int, path: str, n: int) -> None:
        self.selector = selectors.DefaultSelector()
        self.received = [0] * n
        self.sockets: list[socket.socket] = []
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            s.setblocking(False)
            self.selector.register(s, selectors.EVENT_READ, i)
            self.sockets.append(s)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True, name="bench viewers")
        self._thread.start()

    def _drain(self) -> None:
        while not self._closed.is_set():
            for key, _ in self.selector.select(0.2):
                try:
                    data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.selector.unregister(key.fileobj)
                    continue
                self.received[key.data] += len(data)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.close()
        self.selector.close()


# ------------------------------------------------------------------------------- figures


def one_per_interval_bounds(seconds: float, interval: float, poll_s: float) -> tuple[int, int]:
    """(least, most) polls of one instance in a window of ``seconds`` at one poll per interval.

    The poller sleeps ``interval`` after each poll of ``poll_s``, and a window can cut a
    period at both ends: most = ⌊seconds/interval⌋ + 1; least = ⌊seconds/period⌋ − 1 with the
    period stretched by ``LATENESS`` for the event loop's late wake-ups.
    """
    most = math.floor(seconds / interval) + 1
    least = max(0, math.floor(seconds / (interval + poll_s + LATENESS)) - 1)
    return least, most


def window_figures(
    before: dict[str, float],
    after: dict[str, float],
    cpu_s: float,
    seconds: float,
    ids: tuple[str, ...],
    interval: float = POLL_INTERVAL,
) -> dict[str, Any]:
    """The figures of one measuring window from two ``/metrics`` readings and the CPU spent."""
    polls = {
        i: int(after[f'polls_total{{instance="{i}"}}'] - before[f'polls_total{{instance="{i}"}}'])
        for i in ids
    }
    total = sum(polls.values())
    count = after["poll_duration_seconds_count"] - before["poll_duration_seconds_count"]
    poll_s = (
        (after["poll_duration_seconds_sum"] - before["poll_duration_seconds_sum"]) / count if count else 0.0
    )
    least, most = one_per_interval_bounds(seconds, interval, poll_s)
    return {
        "seconds": round(seconds, 2),
        "polls": polls,
        "cpu_ms_per_poll": round(cpu_s / total * 1000, 2) if total else None,
        "polls_per_interval": {i: round(p / (seconds / interval), 3) for i, p in polls.items()},
        "poll_ms_mean": round(poll_s * 1000, 2),
        "one_per_interval_bounds": [least, most],
        "one_per_interval": all(least <= p <= most for p in polls.values()),
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _window_cpu(figures: dict[str, Any]) -> float | None:
    """The CPU (ms) a window spent, from its per-poll figure and its polls."""
    per_poll = figures["cpu_ms_per_poll"]
    return None if per_poll is None else float(per_poll) * sum(figures["polls"].values())


def summary(phases: list[dict[str, Any]]) -> dict[str, Any]:
    """Several instances ÷ the baseline, both as the mean over their phases, and the verdicts.

    With several rounds (baseline, several, baseline, several …) each round's ratio is kept
    too (``..._ratio_by_round``): their spread is the run's noise, and ``baseline_drift`` is
    the last baseline ÷ the first one (1 on a steady machine).
    """
    baselines = [p for p in phases if p["instances"] == 1]
    severals = [p for p in phases if p["instances"] > 1]
    first = severals[0]
    out: dict[str, Any] = {
        "instances": first["instances"],
        "torrents_per_instance": first["torrents_per_instance"],
        "rounds": len(severals),
    }
    for window in WINDOWS:
        base = [p[window]["cpu_ms_per_poll"] for p in baselines]
        several = [p[window]["cpu_ms_per_poll"] for p in severals]
        b, v = _mean(base), _mean(several)
        out[f"baseline_cpu_ms_per_poll_{window}"] = round(b, 2) if b is not None else None
        out[f"several_cpu_ms_per_poll_{window}"] = round(v, 2) if v is not None else None
        out[f"cpu_per_poll_ratio_{window}"] = _ratio(v, b)
        for part in ("event_loop", "other_threads"):
            key = f"{part}_cpu_ms_per_poll"
            out[f"{part}_cpu_per_poll_ratio_{window}"] = _ratio(
                _mean([p[window].get(key) for p in severals]), _mean([p[window].get(key) for p in baselines])
            )
        # What the added polls cost: the CPU the several-instance window spent beyond the
        # baseline's, over the polls it made beyond the baseline's. A window's fixed costs
        # (heartbeats, scrapes, timers) cancel out, where the per-poll figures share them out
        # over 3 × the polls in the several-instance window.
        extra_cpu = _mean([_window_cpu(p[window]) for p in severals])
        base_cpu = _mean([_window_cpu(p[window]) for p in baselines])
        extra_polls = _mean([sum(p[window]["polls"].values()) for p in severals])
        base_polls = _mean([sum(p[window]["polls"].values()) for p in baselines])
        marginal = (
            (extra_cpu - base_cpu) / (extra_polls - base_polls)
            if None not in (extra_cpu, base_cpu, extra_polls, base_polls) and extra_polls != base_polls
            else None
        )
        out[f"marginal_cpu_ms_per_added_poll_{window}"] = round(marginal, 2) if marginal is not None else None
        out[f"marginal_ratio_{window}"] = _ratio(marginal, b)
        if len(severals) > 1:
            out[f"cpu_per_poll_ratio_{window}_by_round"] = [
                _ratio(x, y) for x, y in zip(several, base, strict=False)
            ]
        if len(base) > 1:
            out[f"baseline_drift_{window}"] = _ratio(base[-1], base[0])
    ratios = [out[f"cpu_per_poll_ratio_{w}"] for w in WINDOWS]
    out["cpu_target_within_10pct"] = all(r is not None and r <= 1.10 for r in ratios)
    rates = [v for p in phases for w in WINDOWS for v in p[w]["polls_per_interval"].values()]
    out["polls_per_interval_min"] = min(rates)
    out["polls_per_interval_max"] = max(rates)
    out["one_poll_per_instance_per_interval"] = all(p[w]["one_per_interval"] for p in phases for w in WINDOWS)
    out["viewers"] = first["viewers"]

    def snap(group: list[dict[str, Any]], key: str) -> float | None:
        value = _mean([p[key] for p in group])
        return round(value, 1) if value is not None else None

    for name in ("v2", "v1"):
        out[f"snapshot_{name}_bytes"] = first[f"snapshot_{name}_bytes"]
        out[f"snapshot_{name}_torrents"] = first[f"snapshot_{name}_torrents"]
        out[f"snapshot_{name}_ms_p50"] = snap(severals, f"snapshot_{name}_ms_p50")
        out[f"snapshot_{name}_cached_ms_p50"] = snap(severals, f"snapshot_{name}_cached_ms_p50")
    out["baseline_snapshot_v2_ms_p50"] = snap(baselines, "snapshot_v2_ms_p50")
    out["baseline_snapshot_v1_ms_p50"] = snap(baselines, "snapshot_v1_ms_p50")
    out["snapshot_v2_vs_v1_bytes"] = _ratio(out["snapshot_v2_bytes"], out["snapshot_v1_bytes"])
    out["snapshot_v2_vs_v1_ms"] = _ratio(out["snapshot_v2_ms_p50"], out["snapshot_v1_ms_p50"])
    out["snapshot_v2_vs_baseline_v2_ms"] = _ratio(
        out["snapshot_v2_ms_p50"], out["baseline_snapshot_v2_ms_p50"]
    )
    out["baseline_snapshot_v2_vs_v1_ms"] = _ratio(
        out["baseline_snapshot_v2_ms_p50"], out["baseline_snapshot_v1_ms_p50"]
    )
    return out


def snapshot_frame(buf: bytes) -> bytes:
    """The ``snapshot`` frame in what a stream sent first (its lines up to the blank line)."""
    at = buf.find(b"event: snapshot\n")
    end = buf.find(b"\n\n", at)
    if at < 0 or end < 0:
        raise ValueError("no complete snapshot frame")
    return buf[at : end + 2]


def frame_torrents(frame: bytes) -> dict[str, int]:
    """Torrents per instance in a snapshot frame (v1: one entry, ``""``)."""
    data = b"\n".join(line[6:] for line in frame.split(b"\n") if line.startswith(b"data: "))
    payload = json.loads(data)
    if payload.get("v") == 2:
        return {i: len(t) for i, t in payload["torrents"].items()}
    return {"": len(payload["torrents"])}


# ---------------------------------------------------------------------------------- phases


class ProfiledServer(ServerProcess):
    """The server under pyinstrument (its main thread: the event loop), a session file at exit
    (``pyinstrument --load FILE -r text -p show_all`` renders it, or with any other renderer).

    For finding where CPU goes, never for figures: sampling every 1 ms costs CPU itself.
    """

    profile: Path | None = None

    def command(self) -> list[str]:
        command = super().command()
        assert command[1:3] == ["-m", "quart_dl"]
        session = ["-r", "pyisession", "-o", str(self.profile)]
        return [command[0], "-m", "pyinstrument", "-i", "0.001", *session, *command[1:]]


def _config(path: Path, fakes: list[SyntheticQbt]) -> None:
    tables = [
        f'[[instances]]\nid = "{i}"\nname = "Synthetic {i}"\nurl = "{fake.url}"\npassword = "synthetic"\n'
        for i, fake in zip(EXTRA_IDS, fakes, strict=False)
    ]
    path.write_text("\n".join(tables), encoding="utf-8")


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (``/proc``; no psutil, which the test extra lacks)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            kib = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
    except (FileNotFoundError, StopIteration):
        return None
    return round(kib / 1024, 1)


def main_thread_ns(pid: int) -> int:
    """CPU of the process's main thread (the event loop), in ns; 0 where schedstat is missing."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as handle:
            return int(handle.read().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        return 0


def _cpu_window(
    pid: int, url: str, seconds: float, ids: tuple[str, ...], fakes: list[SyntheticQbt]
) -> dict[str, Any]:
    before = _metrics(url)
    asked0 = [f.stats()["maindata"] for f in fakes]
    c0, m0, t0 = cpu_ns(pid), main_thread_ns(pid), time.monotonic()
    time.sleep(seconds)  # a measuring window, not a wait for a condition
    c1, m1, t1 = cpu_ns(pid), main_thread_ns(pid), time.monotonic()
    asked1 = [f.stats()["maindata"] for f in fakes]
    after = _metrics(url)
    out = window_figures(before, after, (c1 - c0) / 1e9, t1 - t0, ids)
    # Cross-check of /metrics from the other end: sync/maindata requests each qBittorrent got
    # (read a moment apart from the metrics, so ±1).
    out["maindata_requests"] = {i: b - a for i, a, b in zip(ids, asked0, asked1, strict=True)}
    total = sum(out["polls"].values())
    if total and m1:
        # Where it goes: the event loop (hub, streams, store calls) or the other threads (the
        # instances' qbittorrent-api worker threads: HTTP and JSON decoding; aiosqlite's).
        out["event_loop_cpu_ms_per_poll"] = round((m1 - m0) / 1e6 / total, 2)
        out["other_threads_cpu_ms_per_poll"] = round(((c1 - c0) - (m1 - m0)) / 1e6 / total, 2)
    out["t"] = (t0, t1)
    return out


def _polls(url: str, ids: tuple[str, ...]) -> dict[str, float]:
    m = _metrics(url)
    return {i: m.get(f'polls_total{{instance="{i}"}}', 0.0) for i in ids}


def _wait_polls(url: str, ids: tuple[str, ...], more: int, timeout: float = 60.0) -> None:
    """Wait until every instance has polled ``more`` more times."""
    start = _polls(url, ids)
    wait_for(
        lambda: all(v >= start[i] + more for i, v in _polls(url, ids).items()),
        timeout,
        f"{more} more polls of every instance",
    )


def _diffs(reader: SSEReader, t: tuple[float, float]) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in reader.events("diff"):
        if t[0] <= m.at <= t[1]:
            instance = m.json()["instance"]
            out[instance] = out.get(instance, 0) + 1
    return out


def _snapshots(
    port: int, path: str, samples: int, change: Callable[[], None], expect: dict[str, int]
) -> dict[str, Any]:
    """``samples`` × (a change, the snapshot after it, the snapshot again at once)."""
    after, cached = [], []
    frame = b""
    for _ in range(samples):
        change()
        _, took, buf = fetch_snapshot(port, path)
        after.append(took)
        _, took, buf = fetch_snapshot(port, path)
        cached.append(took)
        frame = snapshot_frame(buf)
    held = frame_torrents(frame)
    if held != expect:
        raise RuntimeError(f"the snapshot of {path} holds {held} torrents, not {expect}")
    return {
        "bytes": len(frame),
        "torrents": sum(held.values()),
        "ms_p50": round(statistics.median(after) * 1000, 1),
        "ms_max": round(max(after) * 1000, 1),
        "cached_ms_p50": round(statistics.median(cached) * 1000, 1),
    }


def run_phase(
    fakes: list[SyntheticQbt], count: int, params: Params, base: Path, log_dir: Path | None, label: str
) -> dict[str, Any]:
    """One server following the first ``count`` synthetic qBittorrents: every figure."""
    ids = ("default", *EXTRA_IDS[: count - 1])
    root = base / label
    config = root / "quart-dl.toml"
    root.mkdir(parents=True, exist_ok=True)
    _config(config, fakes[1:count])
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    profile = (log_dir or root) / f"instances-{label}.pyisession" if params.profile else None
    server = (ProfiledServer if profile else ServerProcess)(
        root / "server",
        qbt_url=fakes[0].url,
        qbt_password="synthetic",
        heartbeat=15.0,
        poll_interval=POLL_INTERVAL,
        extra_args=(
            *(("--config", str(config)) if count > 1 else ()),
            "--idle-poll-interval",
            f"{IDLE_POLL_INTERVAL:g}",
            "--log-level",
            "INFO",
        ),
        env={"PYTHONPATH": pythonpath},
    )
    if isinstance(server, ProfiledServer) and profile is not None:
        server.profile = profile
    out: dict[str, Any] = {
        "phase": label,
        "instances": count,
        "torrents_per_instance": params.torrents,
        "changing_per_poll": params.changing,
        "poll_interval_s": POLL_INTERVAL,
        "viewers": params.viewers,
    }
    with contextlib.ExitStack() as stack:
        if log_dir is not None:

            def keep_log() -> None:
                log_dir.mkdir(parents=True, exist_ok=True)
                (log_dir / f"instances-{label}-server.log").write_text(server.log_text())

            stack.callback(keep_log)
        stack.callback(server.stop)
        for fake in fakes:
            fake.mode(0)
        started = time.monotonic()
        server.start(timeout=60)
        assert server.proc is not None
        pid = server.proc.pid

        def loaded() -> bool:
            listed = get_json(server.url + "api/instances")["instances"]
            return [i["id"] for i in listed] == list(ids) and all(
                i["status"]["qbittorrent"] == "connected" and i["counts"]["torrents"] == params.torrents
                for i in listed
            )

        wait_for(loaded, 120, f"{count} instances of {params.torrents} torrents to be loaded")
        out["load_s"] = round(time.monotonic() - started, 2)
        for fake in fakes[:count]:
            fake.mode(params.changing)

        checker = SSEReader(server.url + "api/events?v=2", timeout=120)
        stack.callback(checker.close)
        opening = checker.wait(lambda ms: [m for m in ms if m.event == "snapshot"], 60, "the v2 snapshot")[0]
        held = {i: len(t) for i, t in opening.json()["torrents"].items()}
        if held != dict.fromkeys(ids, params.torrents):
            raise RuntimeError(f"the v2 snapshot holds {held}")
        _wait_polls(server.url, ids, 3)

        out["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
        one = _cpu_window(pid, server.url, params.window, ids, fakes[:count])
        diffs = _diffs(checker, one.pop("t"))
        one["diffs_per_poll"] = {i: _ratio(diffs.get(i, 0), one["polls"][i]) for i in ids}
        out["one_viewer"] = one
        _log(f"{label}: one viewer: {one['cpu_ms_per_poll']} ms CPU per poll, polls {one['polls']}")

        viewers = Viewers(server.port, "/api/events?v=2", params.viewers - 1)
        stack.callback(viewers.close)
        wait_for(
            lambda: _metrics(server.url, "quart_dl_sse_clients").get("sse_clients", 0) >= params.viewers,
            30,
            f"{params.viewers} open streams",
        )
        _wait_polls(server.url, ids, 2)
        many = _cpu_window(pid, server.url, params.window, ids, fakes[:count])
        diffs = _diffs(checker, many.pop("t"))
        many["diffs_per_poll"] = {i: _ratio(diffs.get(i, 0), many["polls"][i]) for i in ids}
        out["many_viewers"] = many
        out["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        _log(
            f"{label}: {params.viewers} viewers: {many['cpu_ms_per_poll']} ms CPU per poll, "
            f"polls {many['polls']}"
        )

        # -- snapshots: the qBittorrents quiet, one change before each sample ------------------
        for fake in fakes[:count]:
            fake.mode(0)
        _wait_polls(server.url, ids, 2)

        def change() -> None:
            before = len([m for m in checker.events("diff") if m.json()["instance"] == "default"])
            fakes[0].pulse(1)
            checker.wait(
                lambda ms: (
                    len([m for m in ms if m.event == "diff" and m.json()["instance"] == "default"]) > before
                ),
                30,
                "the change's diff",
            )

        v2 = _snapshots(
            server.port, "/api/events?v=2", params.samples, change, dict.fromkeys(ids, params.torrents)
        )
        v1 = _snapshots(server.port, "/api/events", params.samples, change, {"": params.torrents})
        for name, figures in (("v2", v2), ("v1", v1)):
            out.update({f"snapshot_{name}_{k}": v for k, v in figures.items()})
        _log(
            f"{label}: v2 snapshot {v2['bytes']} bytes in {v2['ms_p50']} ms; "
            f"v1 {v1['bytes']} in {v1['ms_p50']} ms"
        )

        out["server_rss_mb"] = rss_mb(pid)
        out["poll_errors_total"] = int(
            sum(v for k, v in _metrics(server.url).items() if k.startswith("poll_errors_total"))
        )
        out["viewer_bytes_min"] = min(viewers.received) if viewers.received else None
    return out


def run_instances(params: Params | None = None, log_dir: Path | None = None) -> dict[str, Any]:
    """Baseline (one instance) then several instances, ``rounds`` times; the summary."""
    params = params or Params()
    base = Path(tempfile.mkdtemp(prefix="quart-dl-instances-"))
    phases: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, ignore_errors=True)
        fakes: list[SyntheticQbt] = []
        for k in range(params.instances):
            fake = SyntheticQbt(params.torrents, first=k * params.torrents)
            stack.callback(fake.stop)
            fakes.append(fake)
        order = [
            phase
            for r in range(1, params.rounds + 1)
            for phase in ((1, f"baseline-{r}"), (params.instances, f"several-{r}"))
        ]
        for count, label in order:
            _log(f"{label}: {count} × {params.torrents} torrents…")
            phases.append(run_phase(fakes, count, params, base, log_dir, label))
    return {"params": params.__dict__, "phases": phases, "summary": summary(phases)}


def table(result: dict[str, Any]) -> str:
    """The summary and each phase's main figures as markdown tables."""
    if "error" in result:
        return f"\nSeveral qBittorrent instances: {result['error']}"
    s = result["summary"]
    parts = [
        figure_table(
            f"Several qBittorrent instances ({s['instances']} × {s['torrents_per_instance']:,} torrents, "
            f"synthetic, ratios to 1 instance in the same run):",
            s,
        )
    ]
    rows = [
        "| phase | instances | window | CPU ms/poll | polls | maindata requests | polls per interval"
        " | one per interval (bounds) | diffs per poll |"
    ]
    rows.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for p in result["phases"]:
        for w in WINDOWS:
            f = p[w]
            rows.append(
                f"| {p['phase']} | {p['instances']} | {1 if w == 'one_viewer' else p['viewers']} viewers "
                f"| {f['cpu_ms_per_poll']} | {f['polls']} | {f.get('maindata_requests')} "
                f"| {f['polls_per_interval']} "
                f"| {f['one_per_interval']} {f['one_per_interval_bounds']} "
                f"| {f['diffs_per_poll']} |"
            )
    parts.append("\n" + "\n".join(rows))
    return "\n".join(parts)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.instances", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 torrents each, 4 s windows, 3 viewers")
    parser.add_argument(
        "--torrents", type=int, help="torrents per instance (default 3,000; 300 with --quick)"
    )
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--json", help="write the figures here too")
    parser.add_argument("--profile", action="store_true", help="pyinstrument in the server (no figures)")
    parser.add_argument("--rounds", type=int, help="baseline + several, this many times (2; 1 with --quick)")
    args = parser.parse_args()
    chosen = Params.quick() if args.quick else Params()
    if args.torrents:
        chosen = Params(**{**chosen.__dict__, "torrents": args.torrents})
    chosen = Params(**{**chosen.__dict__, "instances": args.instances, "profile": args.profile})
    if args.rounds:
        chosen = Params(**{**chosen.__dict__, "rounds": args.rounds})
    figures = run_instances(chosen, log_dir=ROOT / "bench" / "results" / "logs")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    print(table(figures))
