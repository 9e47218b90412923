"""Cross-site request forgery, in Chromium, against a real server and a real qBittorrent.

The user is signed in (the panel's session cookie is in the browser). Then a page of another
origin tries every action: ``fetch`` without a preflight (``no-cors``, ``text/plain`` and
form bodies, credentials included), ``fetch`` as JSON (a preflight only listed origins
pass), and HTML form posts (``text/plain`` shaped like JSON, ``multipart`` for the add
route), each in a frame of its own. It does so from two places:

* ``http://127.0.0.1:<another port>``: the same host as the server, so *same-site*: the
  ``SameSite=Lax`` cookie goes with every request (Home Assistant on :8123 is this case);
* ``http://evil.test:<port>``: another site (Chromium maps the name to 127.0.0.1).

Nothing may change in qBittorrent. The same script from the server's own page then does
change it (the positive control: the cookie did work, the check is what stopped the rest).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from other_site import Site
from playwright.sync_api import Page

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair, make_payload, make_torrent
from quart_dl.lab.wait import wait_for

TOKEN = "e2e-csrf-Tok3n-8c1f3a9b2e77"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def bodies(info_hash: str, magnet: str) -> list[tuple[str, dict[str, Any]]]:
    """Every verb, as a forger would send it."""
    on = {"hashes": [info_hash]}
    return [
        ("api/torrents/actions", {"action": verb, **on, **params})
        for verb, params in (
            ("pause", {}),
            ("force_start", {}),
            ("recheck", {}),
            ("reannounce", {}),
            ("set_category", {"category": "forged", "create": True}),
            ("add_tags", {"tags": ["forged"]}),
            ("set_limits", {"dl_limit": 1024, "up_limit": 1024}),
            ("move", {"save_path": "/tmp/forged"}),
            ("rename", {"name": "forged"}),
            ("queue_top", {}),
            ("delete", {"delete_files": True}),
        )
    ] + [
        ("api/transfer", {"alt_speed": True, "dl_limit": 1024}),
        ("api/torrents/add", {"urls": [magnet]}),
    ]


FORGE = """async ([base, requests]) => {
  const out = [];
  for (const [path, body] of requests) {
    const text = JSON.stringify(body);
    const attempts = [
      { mode: "no-cors", credentials: "include", method: "POST", body: text,
        headers: { "Content-Type": "text/plain" } },
      { mode: "no-cors", credentials: "include", method: "POST",
        body: new URLSearchParams({ ...body, hashes: (body.hashes || []).join(",") }) },
      { mode: "cors", credentials: "include", method: "POST", body: text,
        headers: { "Content-Type": "application/json" } },
    ];
    if (path === "api/torrents/add") {
      const form = new FormData();
      form.append("urls", body.urls.join("\\n"));
      attempts.push({ mode: "no-cors", credentials: "include", method: "POST", body: form });
    }
    for (const init of attempts) {
      try {
        const reply = await fetch(base + path, init);
        out.push({ path, mode: init.mode, status: reply.status });
      } catch (error) {
        out.push({ path, mode: init.mode, status: "blocked" });
      }
    }
  }
  return out;
}"""


def forms_page(server: ServerProcess, requests: list[tuple[str, dict[str, Any]]]) -> str:
    """HTML forms: JSON smuggled into a text/plain body, and a multipart add; each posts into
    its own frame and counts when the frame has loaded."""
    forms = []
    for number, (path, body) in enumerate(requests):
        text = json.dumps(body)[:-1] + ', "x": "'
        name = text.replace("'", "&#39;")
        forms.append(
            f'<iframe name="f{number}" onload="window.loaded = (window.loaded || 0) + 1"></iframe>'
            f'<form target="f{number}" method="POST" enctype="text/plain" action="{server.url}{path}">'
            f"<input name='{name}' value='\"}}'></form>"
        )
    add = next(body for path, body in requests if path == "api/torrents/add")
    forms.append(
        '<iframe name="fm" onload="window.loaded = (window.loaded || 0) + 1"></iframe>'
        '<form target="fm" method="POST" enctype="multipart/form-data"'
        f' action="{server.url}api/torrents/add">'
        f'<input name="urls" value="{add["urls"][0]}"></form>'
    )
    return (
        "<!doctype html><title>another origin</title>"
        + "".join(forms)
        + "<script>window.loaded = 0; window.addEventListener('load', () => {"
        "window.base = window.loaded; for (const f of document.forms) f.submit(); });</script>"
    )


def state(pair: TransferPair, info_hash: str) -> dict[str, Any]:
    """What a forged action would change, read from qBittorrent itself."""
    client = pair.leecher_client
    info = client.torrents_info(torrent_hashes=info_hash)
    torrent = info[0] if info else None
    return {
        "torrents": sorted(t.hash for t in client.torrents_info()),
        "torrent": None
        if torrent is None
        else {
            k: torrent[k]
            for k in ("state", "category", "tags", "dl_limit", "up_limit", "save_path", "name", "force_start")
        },
        "categories": sorted(client.torrents_categories()),
        "alt_speed": str(client.transfer_speed_limits_mode()),
        "dl_limit": client.transfer_download_limit(),
    }


def test_pages_of_other_origins_change_nothing_with_the_cookie_present(
    page: Page, make_server: Callable[..., ServerProcess], site: Site, pair: TransferPair, tmp_path: Path
) -> None:
    payload = make_payload(tmp_path / "payload", "csrf.bin", 64 * 1024)
    data = make_torrent(payload)
    pair.leecher_client.torrents_add(torrent_files=data, save_path=str(payload.parent))
    info_hash = wait_for(
        lambda: next((t.hash for t in pair.leecher_client.torrents_info() if t.progress == 1), None),
        20,
        "the torrent seeding",
    )
    # DEBUG: a refusal repeated within a minute is logged at DEBUG (access.py), and the
    # count below is of every refusal.
    server = make_server(heartbeat=15, env={"QUART_DL_ACCESS_TOKEN": TOKEN, "QUART_DL_LOG_LEVEL": "DEBUG"})
    magnet = "magnet:?xt=urn:btih:" + "c" * 40
    requests = bodies(info_hash, magnet)

    # The user signs in: the session cookie is now in the browser (host-only, every port).
    page.goto(f"{server.url}?token={TOKEN}")
    assert page.url == server.url
    assert any(c["name"] == "quart_dl_session" for c in page.context.cookies())
    before = state(pair, info_hash)

    for name in ("127.0.0.1", "evil.test"):
        page.goto(site.page(name, f"/forge-{name}.html", "<!doctype html><title>forger</title>"))
        results = page.evaluate(FORGE, [server.url, requests])
        assert len(results) == 3 * len(requests) + 1
        # No preflight passes, so the JSON attempts never leave the browser.
        assert all(r["status"] == "blocked" for r in results if r["mode"] == "cors"), results
        page.goto(site.page(name, f"/forms-{name}.html", forms_page(server, requests)))
        page.wait_for_function(f"() => window.loaded >= window.base + {len(requests) + 1}", timeout=20_000)
        assert state(pair, info_hash) == before, name

    # The forgeries reached the server (they were sent, with the cookie from the same host)
    # and were refused by the same-origin check: not one was taken.
    log = server.log_text()
    assert log.count("refused POST") >= 2 * len(requests), log[-2000:]
    assert "action pause" not in log

    # Positive control: the same request from the server's own page is taken.
    page.goto(server.url)
    status = page.evaluate(
        """async ([body]) => (await fetch("api/torrents/actions", { method: "POST",
             headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).status""",
        [{"action": "pause", "hashes": [info_hash]}],
    )
    assert status == 200
    wait_for(
        lambda: state(pair, info_hash)["torrent"]["state"] in ("pausedUP", "stoppedUP"),
        10,
        "the torrent paused by the panel's own origin",
    )
    request = urllib.request.Request(server.url + "api/access", headers=BEARER)
    with urllib.request.urlopen(request, timeout=10) as reply:
        assert json.loads(reply.read())["act"] is True


def test_a_listed_origin_on_the_same_host_cannot_act_with_the_cookie(
    page: Page, make_server: Callable[..., ServerProcess], site: Site, pair: TransferPair
) -> None:
    """Regression: with Home Assistant's origin (same host, another port) in
    ``cors_origins``, a script on its pages sent a JSON action with ``credentials:
    "include"``: the preflight passed, the browser added the session cookie (same-site),
    and the action was taken. A listed origin must present the token itself."""
    listed = f"http://127.0.0.1:{site.port}"
    server = make_server(heartbeat=15, env={"QUART_DL_ACCESS_TOKEN": TOKEN, "QUART_DL_CORS_ORIGINS": listed})
    page.goto(f"{server.url}?token={TOKEN}")
    assert any(c["name"] == "quart_dl_session" for c in page.context.cookies())
    before = str(pair.leecher_client.transfer_speed_limits_mode())
    page.goto(site.page("127.0.0.1", "/listed.html", "<!doctype html><title>listed origin</title>"))
    send = """async ([url, headers]) => (await fetch(url, { method: "POST", mode: "cors",
        credentials: "include", headers: { "Content-Type": "application/json", ...headers },
        body: JSON.stringify({ alt_speed: true }) })).status"""
    assert page.evaluate(send, [server.url + "api/transfer", {}]) == 403
    assert str(pair.leecher_client.transfer_speed_limits_mode()) == before
    # Positive control: the listed origin with the token it presents acts.
    assert page.evaluate(send, [server.url + "api/transfer", BEARER]) == 200
    wait_for(
        lambda: str(pair.leecher_client.transfer_speed_limits_mode()) == "1", 10, "alt speed on by Bearer"
    )
