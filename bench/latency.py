"""Change-to-screen latency: a change made in a real qbittorrent-nox, until the panel's DOM in
Chromium shows it.

Everything is real and in its own process: a :class:`~quart_dl.lab.transfer.TransferPair` (seeder and
leecher qbittorrent-nox on loopback, one throttled transfer running so the panel also gets the
ordinary progress diffs), ``python -m quart_dl serve`` following the leecher at the production
poll interval (1 s), and Debian's Chromium (Playwright, sync API) with the panel open.

Each change is discrete, made by us, and has a value nobody else produces, alternating:

- ``rename``: ``torrents_rename`` to a fresh name; qBittorrent shows it at once.
- ``pause``: ``torrents_pause`` / ``torrents_resume`` in turn; qBittorrent's state follows
  libtorrent's next status alert (``Session\\RefreshInterval`` = 250 ms in the test profile),
  so its own view lags the API call.

Changes are spaced a random 0.3-2.3 s after the previous one reached the screen. That moment
is itself locked to the poll (the screen changes just after a poll), so the gap's range must
span a whole number of poll periods for the next change to land at a uniformly random phase
of the poll: with 0.3-1.7 s (1.4 periods) phases 0.3-0.7 s after a poll were drawn twice as
often as the rest, which bunched the measured latencies in the middle (first trial run).

Three clocks, one machine:

- **API**: host ``time.time()`` right after the Web API call returned.
- **qBittorrent shows it**: a sampler thread on a separate Web UI session reads
  ``sync/maindata`` (its own rid) back to back, ~every 20 ms; the change is placed at the
  midpoint between the last answer without it and the first with it (uncertainty ±half that
  gap, reported).
- **DOM**: a ``MutationObserver`` in the page (installed before the panel's scripts) records
  ``performance.timeOrigin + performance.now()`` whenever the row's name text or its
  ``data-phase`` changes. The observer runs in the same task as the panel's
  ``requestAnimationFrame`` flush that wrote the DOM, so this is the write, not the paint
  (which follows in the same frame). The browser clock is mapped onto the host's by bracketing
  ``evaluate`` calls (offset from the fastest of 15 round trips, before and after; the
  residual uncertainty is half that round trip, reported).

A plain SSE reader (``quart_dl.lab.sse_reader.SSEReader``, raw ``http.client``) on ``/api/events``
beside the page splits the path: **wire** is when the diff carrying the change reached a
client socket on the host, so qBittorrent→wire is the poll wait plus the server's poll work,
and wire→DOM is the browser's part (EventSource, the panel's parse, one animation frame).
"""

from __future__ import annotations

import contextlib
import random
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .fanout import pct

POLL_INTERVAL = 1.0

# One row watched; every change of its name text or phase is logged with the browser's
# high-resolution wall clock. Installed as an init script: it exists before the panel runs.
RECORDER = """
(() => {
  if (window.__lat) return;
  const rec = { hash: null, log: [], last: null };
  Object.defineProperty(window, "__lat", { value: rec });
  const look = () => {
    if (!rec.hash) return;
    const row = document.querySelector(`[data-testid=torrent-row][data-hash="${rec.hash}"]`);
    if (!row) return;
    const name = row.querySelector("[data-testid=torrent-name]");
    const now = { name: name ? name.textContent : null, phase: row.dataset.phase || null };
    const key = now.name + "\\u0000" + now.phase;
    if (key !== rec.last) {
      rec.last = key;
      rec.log.push({ t: performance.timeOrigin + performance.now(), name: now.name, phase: now.phase });
    }
  };
  new MutationObserver(look).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
    attributeFilter: ["data-phase", "data-hash"],
  });
  rec.look = look;
})();
"""


class Sampler(threading.Thread):
    """``sync/maindata`` back to back on its own session; logs when the torrent's name or
    paused-ness changes, with the answer times around it."""

    def __init__(self, client: Any, torrent_hash: str, every: float = 0.02) -> None:
        super().__init__(daemon=True, name="qbt sampler")
        self.client = client
        self.hash = torrent_hash
        self.every = every
        self.log: list[tuple[float, float, str, bool]] = []  # (prev answer, answer, name, paused)
        self.samples = 0
        self.started_at = 0.0
        self.stopped_at = 0.0
        self.lock = threading.Lock()
        self._halt = threading.Event()

    def run(self) -> None:
        rid = 0
        record: dict[str, Any] = {}
        last: tuple[str, bool] | None = None
        prev = time.time()
        self.started_at = prev
        while not self._halt.is_set():
            began = time.time()
            data = self.client.sync_maindata(rid=rid)
            answered = time.time()
            self.samples += 1
            rid = int(data.get("rid", rid))
            torrents = data.get("torrents") or {}
            if data.get("full_update"):
                record = {}
            if self.hash in torrents:
                record.update(dict(torrents[self.hash]))
            if record:
                now = (str(record.get("name")), str(record.get("state", "")).startswith("paused"))
                if now != last:
                    with self.lock:
                        self.log.append((prev, answered, *now))
                    last = now
            prev = answered
            self._halt.wait(max(0.0, self.every - (time.time() - began)))
        self.stopped_at = time.time()

    def first(self, since: float, match: Any) -> tuple[float, float] | None:
        """(estimated time, ± half-width) of the first logged change after ``since`` matching.

        The change became visible between the last answer without it and the first with it,
        and not before ``since`` (the API call was made then): the midpoint of that window.
        """
        with self.lock:
            for before, after, name, paused in self.log:
                if after >= since and match(name, paused):
                    start = max(before, since)
                    return (start + after) / 2, (after - start) / 2
        return None

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def _clock_offset(page: Any, rounds: int = 15) -> tuple[float, float]:
    """(browser − host seconds, ± half round trip) from the fastest bracketing ``evaluate``."""
    best: tuple[float, float] | None = None
    for _ in range(rounds):
        before = time.time()
        browser = float(page.evaluate("() => performance.timeOrigin + performance.now()")) / 1000
        after = time.time()
        half = (after - before) / 2
        if best is None or half < best[1]:
            best = (browser - (before + after) / 2, half)
    assert best is not None
    return best


def _dom_first(page: Any, since_browser_ms: float, name: str | None, paused: bool | None) -> float | None:
    """Browser time (ms) the DOM first showed the value, after ``since``, or None yet."""
    return page.evaluate(
        """([since, name, paused]) => {
          const hit = window.__lat.log.find((e) => e.t >= since &&
            (name === null ? (e.phase === "paused") === paused : e.name === name));
          return hit ? hit.t : null;
        }""",
        [since_browser_ms, name, paused],
    )


def _wire_first(reader: Any, since_mono: float, torrent_hash: str, match: Any) -> float | None:
    """Monotonic arrival of the first SSE event after ``since`` whose change of the torrent matches."""
    for message in reader.events():
        if message.at < since_mono:
            continue
        try:
            fields = (message.json().get("changed") or {}).get(torrent_hash)
        except (ValueError, AttributeError):
            continue
        if fields and match(fields):
            return float(message.at)
    return None


def _poll_counters(base_url: str) -> tuple[float, float, float]:
    """(host time, polls, seconds spent polling) from the server's ``/metrics``."""
    import urllib.request

    with urllib.request.urlopen(base_url + "metrics", timeout=5) as reply:
        text = reply.read().decode()
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in (
            "poll_duration_seconds_count",
            "poll_duration_seconds_sum",
            "quart_dl_poll_duration_seconds_count",
            "quart_dl_poll_duration_seconds_sum",
        ):
            values[name.removeprefix("quart_dl_")] = float(value)
    return (
        time.time(),
        values.get("poll_duration_seconds_count", 0.0),
        values.get("poll_duration_seconds_sum", 0.0),
    )


def _summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values) * 1000, 1),
        "p95_ms": round(pct(values, 95) * 1000, 1),
        "min_ms": round(min(values) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
    }


def run_latency(
    changes: int = 40,
    *,
    poll_interval: float = POLL_INTERVAL,
    log_dir: Path | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Make ``changes`` changes (rename and pause/resume in turn) and time each to the DOM."""
    from playwright.sync_api import sync_playwright

    from quart_dl.lab.chromium import CHROMIUM, CHROMIUM_ARGS
    from quart_dl.lab.server_process import ServerProcess
    from quart_dl.lab.sse_reader import SSEReader
    from quart_dl.lab.transfer import TransferPair
    from quart_dl.lab.wait import wait_for

    rng = random.Random(seed)
    target_ms = poll_interval / 2 * 1000 + 150
    base = Path(tempfile.mkdtemp(prefix="quart-dl-latency-"))
    rows: list[dict[str, Any]] = []
    cleanup = contextlib.ExitStack()
    cleanup.callback(shutil.rmtree, base, ignore_errors=True)  # after the daemons stopped
    with cleanup, TransferPair(base / "qbt") as pair:
        # Slow enough never to finish during the run; progress keeps changing meanwhile.
        torrent_hash = pair.add_transfer("latency.bin", size=64 * 1024 * 1024, rate=32 * 1024)
        client = pair.leecher_client
        server = ServerProcess(
            base / "server",
            qbt_url=pair.leecher.url,
            qbt_username=pair.leecher.username,
            qbt_password=pair.leecher.password,
            heartbeat=15.0,
            poll_interval=poll_interval,
        )
        server.start()
        sampler = Sampler(pair.leecher.client(), torrent_hash)
        sampler.start()
        reader = SSEReader(server.url + "api/events")
        mono_to_wall = time.time() - time.monotonic()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context(viewport={"width": 1280, "height": 800})
                    context.add_init_script(RECORDER)
                    page = context.new_page()
                    page.goto(server.url)
                    page.wait_for_function(
                        "() => window.quartDl && window.quartDl.state === 'live'", timeout=20_000
                    )
                    page.evaluate("(h) => { window.__lat.hash = h; window.__lat.look(); }", torrent_hash)
                    page.wait_for_selector(
                        f'[data-testid=torrent-row][data-hash="{torrent_hash}"]', timeout=20_000
                    )
                    offset_start = _clock_offset(page)
                    polls_start = _poll_counters(server.url)
                    paused = False
                    for i in range(changes):
                        kind = "rename" if i % 2 == 0 else "pause"
                        time.sleep(0.3 + rng.uniform(0.0, 2.0 * poll_interval))
                        name: str | None = None
                        want_paused: bool | None = None
                        called = time.time()
                        if kind == "rename":
                            name = f"lat-{i:03d}-{secrets.token_hex(3)}"
                            client.torrents_rename(torrent_hash=torrent_hash, new_torrent_name=name)
                        else:
                            want_paused = not paused
                            if want_paused:
                                client.torrents_pause(torrent_hashes=torrent_hash)
                            else:
                                client.torrents_resume(torrent_hashes=torrent_hash)
                            paused = want_paused
                        returned = time.time()
                        try:
                            shown_ms = wait_for(
                                lambda n=name, p=want_paused, t=(called + offset_start[0]) * 1000: _dom_first(
                                    page, t, n, p
                                ),
                                10,
                                f"change {i} ({kind}) on screen",
                                interval=0.02,
                            )
                        except TimeoutError:
                            shown_ms = None
                        qbt = sampler.first(
                            called,
                            (lambda n, _p, want=name: n == want)
                            if kind == "rename"
                            else (lambda _n, p, want=want_paused: p == want),
                        )
                        wire = _wire_first(
                            reader,
                            called - mono_to_wall,
                            torrent_hash,
                            (lambda f, want=name: f.get("name") == want)
                            if kind == "rename"
                            else (
                                lambda f, want=want_paused: (
                                    "state" in f and str(f["state"]).startswith("paused") == want
                                )
                            ),
                        )
                        rows.append(
                            {
                                "i": i,
                                "kind": kind,
                                "value": name or ("paused" if want_paused else "resumed"),
                                "api_call_ms": round((returned - called) * 1000, 1),
                                "api_returned": returned,
                                "qbt_shows": qbt[0] if qbt else None,
                                "qbt_uncertainty_ms": round(qbt[1] * 1000, 1) if qbt else None,
                                "dom_browser_ms": shown_ms,
                                "wire": wire + mono_to_wall if wire is not None else None,
                            }
                        )
                    offset_end = _clock_offset(page)
                    polls_end = _poll_counters(server.url)
                    stream = page.evaluate("() => window.quartDl.toJSON()")
                finally:
                    browser.close()
        finally:
            try:
                reader.close()
                sampler.stop()
            finally:
                server.stop()  # whatever failed above, never leave the server running
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                (log_dir / "latency-server.log").write_text(server.log_text())

    offset = (offset_start[0] + offset_end[0]) / 2
    api_to_dom: list[float] = []
    qbt_to_dom: list[float] = []
    by_kind: dict[str, dict[str, list[float]]] = {}
    split: dict[str, list[float]] = {}
    for row in rows:
        shown = row.pop("dom_browser_ms")
        dom = shown / 1000 - offset if shown is not None else None
        row["api_to_dom_ms"] = round((dom - row["api_returned"]) * 1000, 1) if dom else None
        row["qbt_to_dom_ms"] = round((dom - row["qbt_shows"]) * 1000, 1) if dom and row["qbt_shows"] else None
        row["api_to_qbt_ms"] = (
            round((row["qbt_shows"] - row["api_returned"]) * 1000, 1) if row["qbt_shows"] else None
        )
        kind = by_kind.setdefault(row["kind"], {"api": [], "qbt": [], "api_qbt": []})
        if row["api_to_dom_ms"] is not None:
            api_to_dom.append(row["api_to_dom_ms"] / 1000)
            kind["api"].append(row["api_to_dom_ms"] / 1000)
        if row["qbt_to_dom_ms"] is not None:
            qbt_to_dom.append(row["qbt_to_dom_ms"] / 1000)
            kind["qbt"].append(row["qbt_to_dom_ms"] / 1000)
        if row["api_to_qbt_ms"] is not None:
            kind["api_qbt"].append(row["api_to_qbt_ms"] / 1000)
        wire = row.pop("wire")
        row["qbt_to_wire_ms"] = (
            round((wire - row["qbt_shows"]) * 1000, 1) if wire is not None and row["qbt_shows"] else None
        )
        row["wire_to_dom_ms"] = round((dom - wire) * 1000, 1) if wire is not None and dom else None
        for key, name in (("qbt_to_wire_ms", "qbt_wire"), ("wire_to_dom_ms", "wire_dom")):
            if row[key] is not None:
                kind.setdefault(name, []).append(row[key] / 1000)
                split.setdefault(name, []).append(row[key] / 1000)
        del row["api_returned"], row["qbt_shows"]

    polls = polls_end[1] - polls_start[1]
    api = _summary(api_to_dom)
    qbt = _summary(qbt_to_dom)
    sampled_s = max(1e-9, sampler.stopped_at - sampler.started_at)
    return {
        "changes": changes,
        "poll_interval_s": poll_interval,
        "target_median_ms": target_ms,
        "missed": sum(1 for r in rows if r["api_to_dom_ms"] is None),
        "api_to_dom": api,
        "qbt_to_dom": qbt,
        "qbt_to_wire": _summary(split.get("qbt_wire", [])),
        "wire_to_dom": _summary(split.get("wire_dom", [])),
        "by_kind": {
            k: {
                "api_to_dom": _summary(v["api"]),
                "qbt_to_dom": _summary(v["qbt"]),
                "api_to_qbt": _summary(v["api_qbt"]),
                "qbt_to_wire": _summary(v.get("qbt_wire", [])),
                "wire_to_dom": _summary(v.get("wire_dom", [])),
            }
            for k, v in by_kind.items()
        },
        "target_met_api": bool(api.get("n")) and api["median_ms"] <= target_ms,
        "target_met_qbt": bool(qbt.get("n")) and qbt["median_ms"] <= target_ms,
        # The poller sleeps the interval after each poll, so the period is interval + poll time.
        "poll_period_ms": round((polls_end[0] - polls_start[0]) / polls * 1000, 1) if polls else None,
        "poll_duration_ms_mean": round((polls_end[2] - polls_start[2]) / polls * 1000, 1) if polls else None,
        "qbt_sample_interval_ms": round(sampled_s / max(1, sampler.samples) * 1000, 1),
        "qbt_uncertainty_ms_median": (
            round(statistics.median(u for r in rows if (u := r["qbt_uncertainty_ms"]) is not None), 1)
            if any(r["qbt_uncertainty_ms"] is not None for r in rows)
            else None
        ),
        "clock_offset_ms": {
            "start": round(offset_start[0] * 1000, 2),
            "end": round(offset_end[0] * 1000, 2),
            "uncertainty": round(max(offset_start[1], offset_end[1]) * 1000, 2),
        },
        "stream": {k: stream.get(k) for k in ("state", "opened", "heartbeats") if k in stream},
        "rows": rows,
    }
