"""Fixtures for the browser tests: Debian's Chromium, a real qBittorrent pair, real quart-dl
processes and nginx, and an in-page recorder of what the panel showed.

Everything is real: the panel is loaded by Chromium from a ``python -m quart_dl serve``
process that follows a qbittorrent-nox leecher downloading from a seeder on loopback.
One qBittorrent pair serves the whole session (each test adds its own small transfer);
servers and nginx instances belong to one test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nginx import Nginx
from other_site import Site

from quart_dl.lab.chromium import CHROMIUM, CHROMIUM_ARGS
from quart_dl.lab.qbittorrent_nox import free_port
from quart_dl.lab.server_process import ServerFactory
from quart_dl.lab.transfer import TransferPair

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"

# What the panel shows, recorded in the page itself (every frame) from the first script on:
# every value a progress bar took (rows and the detail view) and every connection state the
# indicator showed. A MutationObserver misses nothing that reached the DOM, however briefly,
# which polling from the test could.
RECORDER = """
(() => {
  if (window.__e2e) return;
  const rec = { progress: [], states: [] };
  Object.defineProperty(window, "__e2e", { value: rec });
  const note = (el) => {
    if (!(el instanceof Element)) return;
    if (el.hasAttribute("aria-valuenow")) {
      const owner = el.closest("[data-hash]");
      rec.progress.push({
        t: Date.now(),
        hash: owner ? owner.dataset.hash : null,
        instance: owner ? owner.dataset.instance || null : null,
        kind: el.dataset.testid === "detail-progress" ? "detail" : "row",
        v: Number(el.getAttribute("aria-valuenow")),
      });
    }
    if (el.dataset.testid === "connection-state" && el.hasAttribute("data-state")) {
      rec.states.push({ t: Date.now(), state: el.getAttribute("data-state") });
    }
  };
  new MutationObserver((mutations) => {
    for (const m of mutations) {
      if (m.type === "attributes") {
        note(m.target);
      } else {
        for (const node of m.addedNodes) {
          if (!(node instanceof Element)) continue;
          note(node);
          for (const el of node.querySelectorAll("[aria-valuenow], [data-testid=connection-state]")) note(el);
        }
      }
    }
  }).observe(document, {
    subtree: true,
    childList: true,
    attributes: true,
    attributeFilter: ["aria-valuenow", "data-state"],
  });
})();
"""


def pytest_configure(config: pytest.Config) -> None:
    # pytest-playwright's artifacts (failure screenshots) go under artifacts/, wherever
    # pytest runs from, unless --output says otherwise.
    if getattr(config.option, "output", None) == "test-results":
        config.option.output = str(ARTIFACTS / "playwright")


#: Names that resolve to loopback inside Chromium only: a page at ``http://rebind.test:PORT``
#: is another site that reaches quart-dl's port (a DNS-rebinding attacker once its name
#: points here), ``http://evil.test`` another site (e2e/test_security.py). ``.test`` is
#: reserved (RFC 6761): no real name is shadowed.
HOST_RESOLVER_RULES = "MAP rebind.test 127.0.0.1, MAP evil.test 127.0.0.1"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    args = [*CHROMIUM_ARGS, f"--host-resolver-rules={HOST_RESOLVER_RULES}"]
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": args}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@pytest.fixture
def context(context: Any) -> Any:
    context.add_init_script(RECORDER)
    return context


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``artifacts/`` at the repository root (gitignored): screenshots worth keeping."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session", autouse=True)
def installed_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run from an empty folder, so that the servers (``python -m quart_dl``) import the
    installed package and serve the panel files it ships, not the checkout's: the e2e
    environment tests what a user installs."""
    previous = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    try:
        yield
    finally:
        os.chdir(previous)


@pytest.fixture(scope="session")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferPair]:
    """A seeder and a leecher qbittorrent-nox for the whole session."""
    base = tmp_path_factory.mktemp("qbt")
    with TransferPair(base) as running:
        yield running


@pytest.fixture
def make_server(pair: TransferPair, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start quart-dl processes following the pair's leecher; all stopped at the end."""
    factory = ServerFactory(tmp_path, pair.leecher.url, pair.leecher.username, pair.leecher.password)
    yield factory
    factory.close()


@pytest.fixture
def make_nginx(tmp_path: Path) -> Iterator[Callable[..., Nginx]]:
    """Start nginx instances (``make_nginx(servers, ports)``); all stopped at the end."""
    started: list[Nginx] = []

    def make(servers: list[str], ports: list[int]) -> Nginx:
        proxy = Nginx(tmp_path / f"nginx{len(started)}", servers, ports)
        started.append(proxy)
        proxy.start()
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def site() -> Iterator[Site]:
    """Another web site (other_site.py), for pages that attack or embed the server."""
    running = Site()
    yield running
    running.close()


@pytest.fixture
def port() -> Callable[[], int]:
    """Free loopback ports, never the same one twice in a session."""
    return free_port


@pytest.fixture(autouse=True)
def idle_leecher(pair: TransferPair) -> Iterator[None]:
    """Each test starts with a leecher that has no torrents and no global limits, and leaves
    it so.

    Transfers left running would send diffs into the next test's streams, and a quiet
    stream (only heartbeats) is what several tests are about. Alternative speed limits or a
    global limit left on by an action test slowed every later transfer to a crawl (the
    progress and proxy tests failed in CI after test_csrf's positive control).
    """
    yield
    if not pair.leecher.running:
        pair.leecher.start()
    client = pair.leecher_client
    client.torrents_delete(delete_files=True, torrent_hashes="all")
    if str(client.transfer_speed_limits_mode()) == "1":
        client.transfer_toggle_speed_limits_mode()
    client.transfer_set_download_limit(0)
    client.transfer_set_upload_limit(0)
