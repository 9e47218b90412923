"""Click-to-screen for actions: pause a torrent in quart-dl's panel and in qBittorrent's own
WebUI, both in Chromium, against one real qbittorrent-nox at qBittorrent's default refresh
interval (``Session\\RefreshInterval`` = 1,500 ms), in the same run.

    python -m bench.actions                 # 20 pauses in each UI, qBittorrent 4.5.2
    python -m bench.actions --trials 40 --qbt 5 --json bench/results/actions-5.json

Everything is real and in its own process: a :class:`~quart_dl.lab.transfer.TransferPair`
(seeder and leecher on loopback, one throttled transfer that never finishes during the run;
the leecher's profile says ``RefreshInterval=1500`` instead of the lab's 250),
``python -m quart_dl serve`` at its production poll interval (1 s) with actions allowed
(``open_actions``), and Debian's Chromium (Playwright, the e2e launch arguments) with two pages
open side by side: the panel, and qBittorrent's WebUI logged in (which polls
``sync/maindata`` every refresh interval).

A trial, in each UI in turn (the order alternates): wait a random 0.3–1.8 s (a whole refresh
period of spread, so the click lands at a uniform phase of qBittorrent's refresh), click the
UI's own pause control (the row's pause button in the panel; the row, then the toolbar's
Pause/Stop button in the WebUI), wait until that UI shows the torrent paused, then resume it
through the Web API and wait until both UIs show it running again.

Clocks, all in the page (``performance.now()``, the same clock as the event's timestamp):

- **click**: the ``click`` event's ``timeStamp`` (a capture listener installed first);
- **feedback**: the first frame drawn after the row showed anything about the action: in the
  panel the "Pausing…" mark (a MutationObserver notes the DOM write; the time taken is the
  ``requestAnimationFrame`` + ``setTimeout(0)`` after it, i.e. after that frame's paint);
  qBittorrent's WebUI shows nothing until the state itself, so its feedback *is* the
  confirmed state;
- **confirmed**: likewise, the frame after the row's state text became "Paused" ("Stopped"
  on 5.x's WebUI).

Not a timed test: figures are printed and written to JSON, and BENCHMARKS.md records a run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from quart_dl.lab.qbittorrent_nox import QbtInstance, daemon_binary

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REFRESH_MS = 1500  # qBittorrent's default Session\RefreshInterval
FEEDBACK_TARGET_MS = 100.0
CONFIRMED_SLACK_MS = 250.0

# In both pages, before their own scripts: click times, and for the watched row every text
# change of its action mark and state, each with the time after the frame that showed it.
RECORDER = """
(() => {
  if (window.__bench) return;
  const rec = { clicks: [], log: [], hash: null, last: {} };
  Object.defineProperty(window, "__bench", { value: rec });
  window.addEventListener("click", (ev) => rec.clicks.push(ev.timeStamp), true);
  const painted = (entry) => requestAnimationFrame(() => setTimeout(() => {
    entry.painted = performance.now();
  }, 0));
  const look = () => {
    if (!rec.hash) return;
    const row = document.querySelector(`[data-testid=torrent-row][data-hash="${rec.hash}"]`)
      || document.querySelector(`tr[data-row-id="${rec.hash}"]`);
    if (!row) return;
    const mark = row.querySelector("[data-testid=torrent-action]");
    const state = row.querySelector("[data-testid=torrent-state]");
    const now = {
      mark: mark && !mark.hidden ? mark.textContent : "",
      state: state ? state.textContent
        : [...row.cells].some((c) => ["Paused", "Stopped"].includes(c.textContent)) ? "Paused" : "running",
    };
    for (const k of ["mark", "state"]) {
      if (rec.last[k] !== now[k]) {
        rec.last[k] = now[k];
        const entry = { t: performance.now(), kind: k, text: now[k], painted: null };
        rec.log.push(entry);
        painted(entry);
      }
    }
  };
  new MutationObserver(look).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
  rec.look = look;
})();
"""


class SlowRefreshQbt(QbtInstance):
    """The lab's daemon with qBittorrent's default refresh interval instead of the lab's 250 ms."""

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text(encoding="utf-8", errors="surrogateescape")
        text = text.replace("Session\\RefreshInterval=250", f"Session\\RefreshInterval={REFRESH_MS}")
        self.config_path.write_text(text, encoding="utf-8", errors="surrogateescape")


def pct(values: list[float], q: float) -> float | None:
    """The q-quantile (0–1), linear between closest ranks; None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 1)

    return {
        "n": len(values),
        "median_ms": r(statistics.median(values)) if values else None,
        "p95_ms": r(pct(values, 0.95)),
        "min_ms": r(min(values)) if values else None,
        "max_ms": r(max(values)) if values else None,
    }


def _trial(page: Any, click: Any, is_paused: str, timeout_ms: float = 15_000) -> dict[str, Any]:
    """Click, wait until the page shows the torrent paused, and read the recorder."""
    clicks_before = page.evaluate("() => window.__bench.clicks.length")
    log_before = page.evaluate("() => window.__bench.log.length")
    click()
    page.wait_for_function(is_paused, timeout=timeout_ms)
    # The paint time is written one frame + one task later.
    page.wait_for_function(
        "(n) => window.__bench.log.slice(n).filter((e) => e.kind === 'state')"
        ".every((e) => e.painted !== null)",
        arg=log_before,
    )
    data = page.evaluate(
        """([c, n]) => ({
          click: window.__bench.clicks[window.__bench.clicks.length - 1],
          clicks: window.__bench.clicks.length - c,
          log: window.__bench.log.slice(n),
        })""",
        [clicks_before, log_before],
    )
    at = float(data["click"])
    feedback = next((e for e in data["log"] if e["kind"] == "mark" and e["text"]), None)
    confirmed = next(
        (e for e in data["log"] if e["kind"] == "state" and e["text"] in ("Paused", "Stopped")), None
    )

    def since(entry: dict[str, Any] | None, key: str) -> float | None:
        return None if entry is None or entry[key] is None else float(entry[key]) - at

    result: dict[str, Any] = {
        "feedback_ms": since(feedback, "painted"),
        "feedback_write_ms": since(feedback, "t"),
        "confirmed_ms": since(confirmed, "painted"),
        "confirmed_write_ms": since(confirmed, "t"),
        "clicks": float(data["clicks"]),
    }
    if confirmed is None:
        result["log"] = data["log"]  # what the recorder saw instead, to find out why
    return result


def run(trials: int, qbt: str, seed: int | None, log_dir: Path | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from quart_dl.lab.chromium import CHROMIUM, CHROMIUM_ARGS
    from quart_dl.lab.server_process import ServerProcess
    from quart_dl.lab.transfer import TransferPair
    from quart_dl.lab.wait import wait_for

    rng = random.Random(seed)
    base = Path(tempfile.mkdtemp(prefix="quart-dl-bench-actions-"))
    out: dict[str, Any] = {"trials": trials}
    stack = contextlib.ExitStack()
    stack.callback(shutil.rmtree, base, ignore_errors=True)
    with stack:
        binary = daemon_binary(qbt)
        pair = TransferPair(base / "qbt", binary=binary)
        pair.leecher = SlowRefreshQbt(pair.base / "leecher", name="leecher", binary=binary)
        stack.enter_context(pair)
        client = pair.leecher_client
        prefs = client.app_preferences()
        out["qbittorrent"] = str(pair.leecher.version)
        out["refresh_interval_ms"] = int(str(prefs["refresh_interval"]))
        assert out["refresh_interval_ms"] == REFRESH_MS, prefs["refresh_interval"]
        torrent_hash = pair.add_transfer("actions.bin", size=256 * 1024 * 1024, rate=16 * 1024)
        five = pair.leecher.major == "5"
        resume = client.torrents_start if five else client.torrents_resume

        server = ServerProcess(
            base / "server",
            qbt_url=pair.leecher.url,
            qbt_username=pair.leecher.username,
            qbt_password=pair.leecher.password,
            heartbeat=15.0,
            poll_interval=1.0,
            env={"QUART_DL_OPEN_ACTIONS": "true"},
        )
        if log_dir is not None:
            kept = log_dir

            def keep_log() -> None:
                kept.mkdir(parents=True, exist_ok=True)
                (kept / "actions-server.log").write_text(server.log_text())

            stack.callback(keep_log)
        stack.callback(server.stop)
        server.start()

        pw = stack.enter_context(sync_playwright())
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        out["chromium"] = browser.version

        def new_page() -> Any:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            ctx.add_init_script(RECORDER)
            return ctx.new_page()

        ours = new_page()
        ours.goto(server.url)
        ours.wait_for_function("() => window.quartDl && window.quartDl.state === 'live'", timeout=20_000)
        ours.wait_for_function("() => document.body.dataset.act === 'true'", timeout=10_000)
        ours.wait_for_selector(f'[data-testid=torrent-row][data-hash="{torrent_hash}"]', timeout=20_000)
        ours.evaluate("(h) => { window.__bench.hash = h; window.__bench.look(); }", torrent_hash)

        webui = new_page()
        webui.goto(pair.leecher.url)
        webui.fill("#username", pair.leecher.username)
        webui.fill("#password", pair.leecher.password)
        webui.click("#login, #loginButton, input[type=submit], button[type=submit]")
        webui.wait_for_selector(f'tr[data-row-id="{torrent_hash}"]', timeout=20_000)
        webui.evaluate("(h) => { window.__bench.hash = h; window.__bench.look(); }", torrent_hash)
        stop_button = "#stopButton" if webui.locator("#stopButton").count() else "#pauseButton"
        out["webui_button"] = stop_button
        out["visibility"] = [p.evaluate("() => document.visibilityState") for p in (ours, webui)]

        ours_paused = f"""() => {{
            const r = document.querySelector('[data-testid=torrent-row][data-hash="{torrent_hash}"]');
            return !!r && r.querySelector('[data-testid=torrent-state]').textContent === 'Paused';
        }}"""
        ours_running = ours_paused.replace("=== 'Paused'", "!== 'Paused'")
        webui_paused = f"""() => {{
            const r = document.querySelector('tr[data-row-id="{torrent_hash}"]');
            return !!r && [...r.cells].some((c) => c.textContent === "Paused" || c.textContent === "Stopped");
        }}"""
        webui_running = webui_paused.replace("return !!r && [", "return !!r && ![")

        def click_ours() -> None:
            ours.click(f'[data-testid=torrent-row][data-hash="{torrent_hash}"] [data-testid=torrent-toggle]')

        def click_webui() -> None:
            webui.click(f'tr[data-row-id="{torrent_hash}"]')  # select the row (not timed)
            webui.click(stop_button)

        def running_everywhere() -> None:
            resume(torrent_hashes=torrent_hash)
            ours.wait_for_function(ours_running, timeout=15_000)
            webui.wait_for_function(webui_running, timeout=15_000)
            wait_for(
                lambda: (
                    not str(client.torrents_info(torrent_hashes=torrent_hash)[0].state).startswith(
                        ("paused", "stopped")
                    )
                ),
                15,
                "qBittorrent to run the torrent again",
            )

        rows: dict[str, list[dict[str, Any]]] = {"quart-dl": [], "qbittorrent-webui": []}
        load_start = os.getloadavg()
        running_everywhere()
        for i in range(trials):
            order = [
                ("quart-dl", ours, click_ours, ours_paused),
                ("qbittorrent-webui", webui, click_webui, webui_paused),
            ]
            if i % 2:
                order.reverse()
            for kind, page, click, paused in order:
                time.sleep(0.3 + rng.uniform(0.0, REFRESH_MS / 1000))
                rows[kind].append(_trial(page, click, paused))
                running_everywhere()
        out["load_average"] = {"start": load_start, "end": os.getloadavg()}
        out["raw"] = rows

    figures: dict[str, Any] = {}
    for kind, trials_of in rows.items():
        confirmed = [float(t["confirmed_ms"]) for t in trials_of if t["confirmed_ms"] is not None]
        feedback = [float(t["feedback_ms"]) for t in trials_of if t["feedback_ms"] is not None]
        if kind == "qbittorrent-webui":
            feedback = confirmed  # no pending mark: the state is the first thing it shows
        figures[kind] = {
            "click_to_feedback": summary(feedback),
            "click_to_feedback_dom_write": summary(
                [float(t["feedback_write_ms"]) for t in trials_of if t["feedback_write_ms"] is not None]
            ),
            "click_to_confirmed": summary(confirmed),
            "missed_feedback": sum(1 for t in trials_of if t["feedback_ms"] is None),
        }
    out["figures"] = figures
    q = figures["quart-dl"]
    w = figures["qbittorrent-webui"]
    med_ratio = (
        round(q["click_to_confirmed"]["median_ms"] / w["click_to_confirmed"]["median_ms"], 3)
        if q["click_to_confirmed"]["median_ms"] and w["click_to_confirmed"]["median_ms"]
        else None
    )
    out["ratio_confirmed_median_quartdl_vs_webui"] = med_ratio
    out["targets"] = {
        "feedback_median_ms": FEEDBACK_TARGET_MS,
        "confirmed_p95_ms": REFRESH_MS + CONFIRMED_SLACK_MS,
        "feedback_met": q["click_to_feedback"]["median_ms"] is not None
        and q["click_to_feedback"]["median_ms"] <= FEEDBACK_TARGET_MS,
        "confirmed_met": q["click_to_confirmed"]["p95_ms"] is not None
        and q["click_to_confirmed"]["p95_ms"] <= REFRESH_MS + CONFIRMED_SLACK_MS,
    }
    return out


def table(out: dict[str, Any]) -> str:
    lines = [
        "| UI | leg | n | median ms | p95 ms | min ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for kind, figs in out["figures"].items():
        for leg in ("click_to_feedback", "click_to_confirmed", "click_to_feedback_dom_write"):
            if kind == "qbittorrent-webui" and leg == "click_to_feedback_dom_write":
                continue
            f = figs[leg]
            name = leg.replace("_", " ").replace("click to", "click →")
            cells = [kind, name, *(str(f[k]) for k in ("n", "median_ms", "p95_ms", "min_ms", "max_ms"))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.actions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="pauses in each UI (default 20)")
    parser.add_argument("--qbt", choices=("4", "5"), default="4", help="qBittorrent 4.5.2 or 5.1 (default 4)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS / "actions.json")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep the server's log there")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    started = time.time()
    out = run(args.trials, args.qbt, args.seed, args.log_dir)
    out["python"] = platform.python_version()
    out["cpus"] = os.cpu_count()
    out["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    out["seconds"] = round(time.time() - started, 1)
    print(table(out))
    t = out["targets"]
    ratio = out["ratio_confirmed_median_quartdl_vs_webui"]
    feedback = "met" if t["feedback_met"] else "NOT met"
    confirmed = "met" if t["confirmed_met"] else "NOT met"
    print(
        f"\nratio quart-dl / qBittorrent WebUI, click → confirmed median: {ratio}"
        f"\ntargets: feedback median ≤ {t['feedback_median_ms']:g} ms: {feedback};"
        f" confirmed p95 ≤ {t['confirmed_p95_ms']:g} ms: {confirmed}"
        f"\nload average {out['load_average']['start'][0]:.2f} → {out['load_average']['end'][0]:.2f}"
        " (2 shared cores: expect noise)"
    )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
