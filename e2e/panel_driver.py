"""Reading the panel from a test: its debug object, its rows, and what the recorder saw.

``target`` is a Playwright ``Page`` or ``Frame`` (the embedded scenario reads the panel
inside an iframe); both have ``evaluate`` and ``wait_for_function``. The panel exposes a
read-only ``window.quartDl`` (stream counters and state) and the conftest's recorder keeps
``window.__e2e`` (every progress value and connection state the DOM showed).
"""

from __future__ import annotations

import base64
import itertools
import math
import time
from typing import Any, Protocol

from playwright.sync_api import Error as PlaywrightError

from quart_dl.lab.server_process import get_json
from quart_dl.lab.transfer import TransferPair

KiB = 1024
MiB = 1024 * 1024


class Target(Protocol):
    def evaluate(self, expression: str, arg: Any = None) -> Any: ...

    def wait_for_function(self, expression: str, *, arg: Any = None, timeout: float | None = None) -> Any: ...


def debug(target: Target) -> dict[str, Any]:
    """``window.quartDl`` as plain data (eventSources, opened, heartbeats, state, attempts, …)."""
    return dict(target.evaluate("() => window.quartDl.toJSON()"))


def wait_live(target: Target, timeout: float = 15.0) -> None:
    """Wait until the panel says its stream is live."""
    try:
        target.wait_for_function(
            "() => window.quartDl && window.quartDl.state === 'live'", timeout=timeout * 1000
        )
    except PlaywrightError as exc:
        state = target.evaluate("() => window.quartDl ? window.quartDl.toJSON() : null")
        raise AssertionError(f"the panel did not go live within {timeout:g} s: {state}") from exc


def row_progress(target: Target, torrent_hash: str, instance: str | None = None) -> float | None:
    """The percentage the dashboard row shows now (its bar's aria-valuenow), or None.

    ``instance``: the row of that qBittorrent instance (the same hash can be in several).
    """
    value = target.evaluate(
        """([h, instance]) => {
          const where = instance ? `[data-instance="${instance}"]` : "";
          const bar = document.querySelector(
            `[data-testid=torrent-row][data-hash="${h}"]${where} [data-testid=torrent-progress]`);
          return bar ? bar.getAttribute("aria-valuenow") : null;
        }""",
        [torrent_hash, instance],
    )
    return None if value is None else float(value)


def detail_progress(target: Target) -> float | None:
    """The percentage the detail view shows now, or None."""
    value = target.evaluate(
        """() => {
          const bar = document.querySelector("#detail:not([hidden]) [data-testid=detail-progress]");
          return bar ? bar.getAttribute("aria-valuenow") : null;
        }"""
    )
    return None if value is None else float(value)


def recorded(
    target: Target, torrent_hash: str, kind: str = "row", since: float = 0, instance: str | None = None
) -> list[float]:
    """Every progress value the DOM showed for one torrent (``kind`` row or detail), in order.

    ``since`` is a browser timestamp (ms since the epoch, see :func:`browser_now`);
    ``instance``: only what that qBittorrent instance's row (or detail view) showed.
    """
    values = target.evaluate(
        """([h, kind, since, instance]) => window.__e2e.progress
             .filter((p) => p.hash === h && p.kind === kind && p.t >= since
               && (!instance || p.instance === instance))
             .map((p) => p.v)""",
        [torrent_hash, kind, since, instance],
    )
    return [float(v) for v in values]


def recorded_states(target: Target, since: float = 0) -> list[str]:
    """Every connection state the indicator showed (``data-state``), in order."""
    return list(
        target.evaluate(
            "(since) => window.__e2e.states.filter((s) => s.t >= since).map((s) => s.state)", since
        )
    )


def browser_now(target: Target) -> float:
    """The browser's clock (ms), to cut the recorder's logs."""
    return float(target.evaluate("() => Date.now()"))


def rises(values: list[float]) -> int:
    """How many times a sequence went up."""
    return sum(1 for a, b in itertools.pairwise(values) if b > a)


def shown(progress: float, complete: bool = False) -> float:
    """What the panel should show for a 0–1 progress: floored to 0.1, 100 only when complete."""
    if complete:
        return 100.0
    return min(math.floor(progress * 1000) / 10, 99.9)


def qbt_torrent(pair: TransferPair, torrent_hash: str) -> Any:
    """qBittorrent's own record of the torrent (the leecher's)."""
    (torrent,) = pair.leecher_client.torrents_info(torrent_hashes=torrent_hash)
    return torrent


def qbt_percent(pair: TransferPair, torrent_hash: str) -> float:
    """qBittorrent's own progress, in percent."""
    return float(qbt_torrent(pair, torrent_hash).progress) * 100


def api_torrent(base_url: str, torrent_hash: str) -> dict[str, Any]:
    """The server's REST view of one torrent."""
    return dict(get_json(base_url + f"api/torrents/{torrent_hash}"))


def sample_for(target: Target, seconds: float, every: float = 0.5) -> list[dict[str, Any]]:
    """``window.quartDl`` every ``every`` seconds for ``seconds``: the wait is the test here."""
    samples: list[dict[str, Any]] = []
    end = math.inf
    while True:
        sample = debug(target)
        sample["at"] = time.monotonic()
        samples.append(sample)
        end = min(end, sample["at"] + seconds)
        if sample["at"] >= end:
            return samples
        time.sleep(min(every, max(0.0, end - time.monotonic())))


# ---- actions (e2e/test_actions.py, bench/actions.py) ----

#: Every text the rows' and the detail view's action marks showed (``torrent-action``,
#: ``detail-action``), with the time: "Pausing…" can come and go between two polls of a
#: test, the recorder cannot miss it. Add with ``context.add_init_script(ACTION_RECORDER)``.
ACTION_RECORDER = """
(() => {
  if (window.__actions) return;
  const log = [];
  Object.defineProperty(window, "__actions", { value: log });
  const seen = new WeakMap();
  const note = (el) => {
    if (!(el instanceof Element)) return;
    const id = el.dataset.testid;
    if (id !== "torrent-action" && id !== "detail-action" && id !== "torrent-state") return;
    const text = el.hidden ? "" : el.textContent;
    if (seen.get(el) === text) return;
    seen.set(el, text);
    const owner = el.closest("[data-hash]");
    const hash = owner ? owner.dataset.hash : null;
    log.push({ t: Date.now(), p: performance.now(), hash, kind: id, text });
  };
  const scan = (root) => {
    if (!(root instanceof Element)) return;
    note(root);
    const ids = ["torrent-action", "detail-action", "torrent-state"];
    for (const el of root.querySelectorAll(ids.map((i) => `[data-testid=${i}]`).join(","))) note(el);
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "attributes") note(m.target);
      else if (m.type === "characterData") note(m.target.parentElement);
      else {
        note(m.target);
        for (const node of m.addedNodes) scan(node);
      }
    }
  }).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ["hidden"],
  });
})();
"""


def action_marks(target: Target, torrent_hash: str, kind: str = "torrent-action") -> list[str]:
    """Every text one torrent's action mark showed (``""`` when hidden), in order."""
    return list(
        target.evaluate(
            "([h, kind]) => window.__actions.filter((a) => a.hash === h && a.kind === kind)"
            ".map((a) => a.text)",
            [torrent_hash, kind],
        )
    )


def row_selector(torrent_hash: str, instance: str | None = None) -> str:
    """The CSS selector of one torrent's dashboard row (of one instance, when given)."""
    where = f'[data-instance="{instance}"]' if instance else ""
    return f'[data-testid=torrent-row][data-hash="{torrent_hash}"]{where}'


#: Test ids of every control that acts (hidden when ``GET /api/access`` says ``act: false``).
ACTION_CONTROLS = (
    "add-open",
    "select-all",
    "torrent-select",
    "torrent-toggle",
    "torrent-menu",
)


def visible_action_controls(target: Target) -> list[str]:
    """The test ids of the action controls a person could see or reach now."""
    return list(
        target.evaluate(
            """(ids) => ids.filter((id) => [...document.querySelectorAll(`[data-testid="${id}"]`)]
                 .some((el) => el.checkVisibility()))""",
            [*ACTION_CONTROLS, "detail-actions", "alt-speed", "bulk-bar"],
        )
    )


def drop_files(target: Target, selector: str, files: list[tuple[str, bytes]]) -> None:
    """Drop files on an element as a person dragging them from a file manager would: a
    ``DataTransfer`` built in the page holds ``File``s, and dragenter, dragover and drop
    are dispatched on the element with it."""
    payload = [[name, base64.b64encode(data).decode("ascii")] for name, data in files]
    target.evaluate(
        """([selector, files]) => {
          const dt = new DataTransfer();
          for (const [name, b64] of files) {
            const bin = atob(b64);
            const bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i += 1) bytes[i] = bin.charCodeAt(i);
            dt.items.add(new File([bytes], name, { type: "application/x-bittorrent" }));
          }
          const el = document.querySelector(selector);
          for (const type of ["dragenter", "dragover", "drop"]) {
            el.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
          }
        }""",
        [selector, payload],
    )
