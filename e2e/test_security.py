"""Attacks from web pages, in Chromium, against a real server: DNS rebinding, cross-site
lock-out, framing by other sites, the sign-in redirect, and the sign-in page under the CSP.

Chromium maps ``rebind.test`` and ``evil.test`` to 127.0.0.1 (``--host-resolver-rules``,
conftest.py). Other sites' pages are served by a small HTTP server of the tests (the ``site``
fixture, other_site.py); everything they make Chromium ask for goes over the network to the
real quart-dl process.
"""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from other_site import Site
from panel_driver import debug, wait_live
from playwright.sync_api import Page

from quart_dl.lab.server_process import ServerProcess

TOKEN = "e2e-Access-Tok3n-5b8e1d2c9a"
HA_SANDBOX = (
    "allow-forms allow-popups allow-pointer-lock allow-same-origin allow-scripts allow-modals allow-downloads"
)


def with_token(make_server: Callable[..., ServerProcess]) -> ServerProcess:
    return make_server(heartbeat=15, env={"QUART_DL_ACCESS_TOKEN": TOKEN})


def bearer_status(server: ServerProcess) -> int:
    request = urllib.request.Request(server.url + "api/status", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return int(reply.status)


# -- DNS rebinding --------------------------------------------------------------------------------

READ_EVERYTHING = """async () => {
  const out = {};
  for (const path of ["api/torrents", "api/status", "metrics", "api/events", "", "openapi.json"]) {
    const reply = await fetch(path, { cache: "no-store" });
    out[path] = { status: reply.status, body: path === "api/events" && reply.ok ? "" : await reply.text() };
    if (reply.body) reply.body.cancel().catch(() => {});
  }
  out.stream = await new Promise((resolve) => {
    const source = new EventSource("api/events");
    source.onopen = () => { source.close(); resolve("open"); };
    source.onerror = () => { resolve(source.readyState === 2 ? "closed" : "error"); source.close(); };
  });
  return out;
}"""


def test_regression_dns_rebinding_page_reads_nothing(
    page: Page, make_server: Callable[..., ServerProcess]
) -> None:
    """Default settings (no token, loopback bind): a page whose name now points at
    127.0.0.1 is same-origin with the server to Chromium; only the Host check stops it.

    The attacker's script runs (``evaluate``) in a document of the rebound origin,
    ``http://rebind.test:PORT``, as the script of the attacker's page would once its name
    resolves to this address."""
    server = make_server(heartbeat=15)
    page.goto(f"http://rebind.test:{server.port}/healthz")
    found: dict[str, Any] = page.evaluate(READ_EVERYTHING)
    stream = found.pop("stream")
    for path, reply in found.items():
        assert reply["status"] == 403, (path, reply)
        body = json.loads(reply["body"])
        assert body["error"] == "host_not_allowed", (path, body)
        assert "allowed_hosts" in body["message"]
    assert stream == "closed"
    # The user, at the server's real address, is served as before.
    page.goto(server.url)
    wait_live(page)


# -- cross-site lock-out --------------------------------------------------------------------------


def guessing_page(server: ServerProcess, guesses: int) -> str:
    images = "".join(
        f'<img src="{server.url}{path}?token=guess-{i:04d}-xxxxxxxxxxxxxxxx">'
        for i in range(guesses)
        for path in ("api/status", "")
    )
    script = f"""<script>
      window.done = Promise.all([...Array({guesses}).keys()].map((i) =>
        fetch("{server.url}api/status?token=fetch-guess-" + i + "-xxxxxxxxxxxx", {{ mode: "no-cors" }})
          .catch(() => null)));
    </script>"""
    return f"<!doctype html><title>another site</title>{images}{script}"


def test_regression_cross_site_guesses_cannot_lock_the_user_out(
    page: Page, make_server: Callable[..., ServerProcess], site: Site
) -> None:
    """Another site's page loads images and no-cors fetches with guessed tokens, many more
    than the allowance; then the user signs in, Home Assistant's frame loads, and a program's
    Bearer token works, all from the same address."""
    server = with_token(make_server)
    page.goto(site.page("evil.test", "/guess.html", guessing_page(server, 30)))
    page.wait_for_function("() => [...document.images].every((i) => i.complete)", timeout=15_000)
    page.evaluate("() => window.done")

    # The user signs in at the top level: cookie, redirect without the token, live.
    page.goto(f"{server.url}?token={TOKEN}")
    assert page.url == server.url, page.content()[:300]
    wait_live(page)
    assert "wrong access token" not in server.log_text()  # not even counted
    # Home Assistant's sidebar (another site framing the panel with the token in its URL).
    framed(page, site.page("localhost", "/ha.html", ""), f"{server.url}?token={TOKEN}", site)
    wait_live(next(f for f in page.frames if f.url.startswith(server.url)))
    assert bearer_status(server) == 200


# -- framing by other sites -----------------------------------------------------------------------


def framed(page: Page, parent: str, src: str, site: Site) -> Any:
    """Open ``parent`` (a page of ``site``) framing ``src`` as Home Assistant does; the
    frame once it has loaded (or been refused)."""
    path = "/" + parent.split("/", 3)[3]
    site.pages[path] = (
        f'<!doctype html><iframe id="f" src="{src}" sandbox="{HA_SANDBOX}"'
        ' onload="window.frameLoaded = true"></iframe>'
    )
    page.goto(parent)
    page.wait_for_function("() => window.frameLoaded === true", timeout=15_000)
    return page.locator("#f").content_frame


@pytest.mark.parametrize("token", ["", "?token=wrong-horse-battery-staple-42"])
def test_regression_another_site_cannot_frame_the_sign_in_page(
    page: Page, make_server: Callable[..., ServerProcess], site: Site, token: str
) -> None:
    server = with_token(make_server)
    frame = framed(page, site.page("evil.test", "/frame.html", ""), server.url + token, site)
    assert frame.locator("[data-testid=signin-form]").count() == 0


def test_regression_another_site_cannot_frame_the_panel_without_a_token(
    page: Page, make_server: Callable[..., ServerProcess], site: Site
) -> None:
    server = make_server(heartbeat=15)
    frame = framed(page, site.page("evil.test", "/frame.html", ""), server.url, site)
    assert frame.locator("[data-testid=connection-state]").count() == 0
    # A page on this machine (Home Assistant on the same host) still may.
    frame = framed(page, site.page("localhost", "/same-host.html", ""), server.url, site)
    assert frame.locator("[data-testid=connection-state]").count() == 1


def test_home_assistant_style_frame_with_the_token_works_from_any_site(
    page: Page, make_server: Callable[..., ServerProcess], site: Site
) -> None:
    server = with_token(make_server)
    framed(page, site.page("evil.test", "/ha.html", ""), f"{server.url}?token={TOKEN}", site)
    frame = next(f for f in page.frames if f.url.startswith(server.url))
    wait_live(frame)
    assert debug(frame)["opened"] == 1


# -- the sign-in page ------------------------------------------------------------------------------


def test_sign_in_form_works_under_the_csp(page: Page, make_server: Callable[..., ServerProcess]) -> None:
    server = with_token(make_server)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server.url)
    page.get_by_label("Access token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(server.url)
    wait_live(page)
    assert violations == []


# -- the sign-in redirect ------------------------------------------------------------------------------

HOSTILE = [
    "%5C%5Cevil.test",
    "%5Cevil.test",
    "x/%5C%5Cevil.test",
    "%09%5C%5Cevil.test",
    "%2F%2Fevil.test",
    "http:evil.test",
    "https:%2F%2Fevil.test",
    "http:%5C%5Cevil.test",
    "javascript:alert(1)",
]


def raw_location(server: ServerProcess, path: str) -> str:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        head = f"GET /{path}?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    answer = data.partition(b"\r\n\r\n")[0].decode("latin-1")
    assert answer.startswith("HTTP/1.1 303"), answer
    lines = answer.split("\r\n")
    return next(line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("location:"))


def test_regression_sign_in_redirect_stays_on_the_origin(
    page: Page, make_server: Callable[..., ServerProcess]
) -> None:
    server = with_token(make_server)
    origin = server.url.rstrip("/")
    page.goto(server.url + "healthz")
    for path in HOSTILE:
        location = raw_location(server, path)
        base = f"{server.url}{path}"
        resolved = page.evaluate("([l, b]) => new URL(l, b).origin", [location, base])
        assert resolved == origin, (path, location, resolved)
    # And followed by Chromium itself (it sends what it read in its address bar).
    for path in ["%5C%5Cevil.test", "http:evil.test"]:
        page.goto(f"{server.url}{path}?token={TOKEN}")
        assert page.url.startswith(origin + "/"), (path, page.url)
