"""quart_dl.web.hosts: the Host check that stops DNS rebinding.

Unit tests run the real app with Quart's test client over every route; the last section
runs a real server process (the socket layer, Hypercorn, the whole app) and talks to it over
raw sockets, so that both carriers of a stream (a fresh connection held by the socket layer,
and a keep-alive connection Hypercorn already serves) and the absolute-form request target
are checked on the wire.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import H1, RunningApp, full_update, raw_torrent, running_app

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.web.hosts import HostPolicy, absolute_form, host_name

TOKEN = "correct-horse-battery-staple-42"
ROUTES = [
    "/",
    "/index.html",
    "/app.js",
    "/nothing",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/api/status",
    "/api/torrents",
    f"/api/torrents/{H1}",
    "/api/history",
    "/api/nope",
]
STREAMS = ["/api/events", f"/api/torrents/{H1}/events"]
#: Host values a DNS-rebinding page (or someone spoofing one) would send.
FOREIGN = [
    "evil.example",
    "evil.example:8765",
    "EVIL.example.",
    "rebind.test:8765",
    "127.0.0.1.evil.example",
    "localhost.evil.example",
    "localhost.evil.example.:80",
    "[::1].evil.example",
    "quart.lan",
    "a b",
    "[evil]",
    "[::1",
    "evil.example:8765:1",
    "user@127.0.0.1",
]
#: Host values of this server: IP literals, localhost names, local-only names; any port, case.
OURS = [
    "127.0.0.1",
    "127.0.0.1:8765",
    "192.168.1.10:8765",
    "10.0.0.5",
    "[::1]:8765",
    "[::1]",
    "[2001:db8::1]:8765",
    "[fe80::1%25eth0]:8765",
    "localhost",
    "LOCALHOST:8765",
    "localhost.",
    "panel.localhost:8765",
    "nas:8765",
    "quart-dl",
    "nas.local:8765",
    "NAS.Local.",
]


# -- the policy ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Quart.Lan.:8765", "quart.lan"),
        ("[::1]:8765", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("  localhost  ", "localhost"),
        ("a b", None),
        ("", None),
        (".", None),
        ("ex..ample", None),
        ("[not-ipv6]", None),
        ("-bad.example", None),
        ("x" * 64 + ".example", None),
        ("caf\u00e9.example", None),
    ],
)
def test_host_name_is_normalized_or_refused(value: str, name: str | None) -> None:
    assert host_name(value) == name


@pytest.mark.parametrize("value", OURS)
def test_without_a_token_ip_literals_localhost_and_local_names_are_answered(value: str) -> None:
    assert HostPolicy((), token_set=False).allows(value)


@pytest.mark.parametrize("value", FOREIGN)
def test_without_a_token_other_names_are_refused(value: str) -> None:
    assert not HostPolicy((), token_set=False).allows(value)


def test_allowed_hosts_are_answered_whatever_the_case_port_or_trailing_dot() -> None:
    policy = HostPolicy(("quart.lan", "proxy.example.org"), token_set=False)
    for value in ["quart.lan", "QUART.LAN.:443", "proxy.example.org:8765"]:
        assert policy.allows(value), value
    for value in ["evil.example", "sub.quart.lan", "quart.lan.evil.example"]:
        assert not policy.allows(value), value


def test_star_turns_the_check_off() -> None:
    assert HostPolicy(("*",), token_set=False).allows("evil.example")


def test_with_a_token_the_check_is_off_unless_allowed_hosts_are_named() -> None:
    assert HostPolicy((), token_set=True).allows("evil.example")
    named = HostPolicy(("quart.lan",), token_set=True)
    assert named.allows("quart.lan")
    assert named.allows("127.0.0.1")
    assert not named.allows("evil.example")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/api/status", None),
        ("*", None),
        ("http://evil.example/api/status", ("evil.example", "/api/status")),
        ("HTTP://127.0.0.1:8765/api/events", ("127.0.0.1:8765", "/api/events")),
        ("http://127.0.0.1@evil.example/", ("evil.example", "/")),
        ("https://[::1]:8765", ("[::1]:8765", "/")),
        ("evil.example/api/status", ("", "/")),
        ("ftp://evil.example/x", ("", "/")),
    ],
)
def test_absolute_form_targets_give_their_authority(target: str, expected: tuple[str, str] | None) -> None:
    assert absolute_form(target) == expected


# -- every route of the app ---------------------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    qbt = FakeSession([full_update({H1: raw_torrent("one")})])
    async with running_app(qbt) as running:
        await wait_for_async(lambda: H1 in running.runtime.hub.torrents, what="the torrent")
        yield running


async def assert_refused(response: Any, name: str | None = None) -> None:
    assert response.status_code == 403
    body = await response.get_json()
    assert body["error"] == "host_not_allowed"
    assert body["setting"] == "allowed_hosts"
    assert "allowed_hosts" in body["message"]
    assert "QUART_DL_ALLOWED_HOSTS" in body["message"] or name is None
    if name is not None:
        assert repr(name) in body["message"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("host", ["evil.example", "rebind.test:8765", "Evil.Example."])
async def test_regression_dns_rebinding_every_route_refuses_a_foreign_host(
    served: RunningApp, path: str, host: str
) -> None:
    """Without a token, a page on a name re-resolved to this address read every answer."""
    response = await served.client.get(path, headers={"Host": host})
    await assert_refused(response, host_name(host))
    assert set(await response.get_json()) == {"error", "message", "setting"}  # no data at all


@pytest.mark.parametrize("path", STREAMS)
async def test_regression_dns_rebinding_streams_refuse_a_foreign_host_and_never_subscribe(
    served: RunningApp, path: str
) -> None:
    # Bounded: without the check the stream opens and a plain get() would never return.
    response = await asyncio.wait_for(served.client.get(path, headers={"Host": "evil.example"}), 10)
    await assert_refused(response, "evil.example")
    assert served.runtime.hub.client_count == 0


async def test_preflights_and_other_methods_refuse_a_foreign_host(served: RunningApp) -> None:
    headers = {"Host": "evil.example", "Origin": "http://evil.example"}
    headers["Access-Control-Request-Method"] = "GET"
    await assert_refused(await served.client.options("/api/status", headers=headers))
    await assert_refused(await served.client.post("/api/status", headers={"Host": "evil.example"}))
    await assert_refused(await served.client.head("/api/status", headers={"Host": "evil.example"}))


@pytest.mark.parametrize("host", OURS)
async def test_our_own_hosts_are_answered(served: RunningApp, host: str) -> None:
    for path in ["/", "/api/status", "/healthz"]:
        response = await served.client.get(path, headers={"Host": host})
        assert response.status_code == 200, (host, path)


async def test_an_empty_host_names_nothing_and_is_answered(served: RunningApp) -> None:
    assert (await served.client.get("/api/status", headers={"Host": ""})).status_code == 200


async def test_allowed_hosts_setting_opens_a_name_and_only_that() -> None:
    async with running_app(allowed_hosts="quart.lan, proxy.example.org") as served:
        assert (await served.client.get("/api/status", headers={"Host": "quart.lan:8765"})).status_code == 200
        assert (await served.client.get("/", headers={"Host": "PROXY.example.org."})).status_code == 200
        await assert_refused(await served.client.get("/api/status", headers={"Host": "evil.example"}))


async def test_allowed_hosts_star_answers_any_host() -> None:
    async with running_app(allowed_hosts="*") as served:
        assert (await served.client.get("/api/status", headers={"Host": "evil.example"})).status_code == 200


async def test_with_a_token_any_host_reaches_access_control() -> None:
    """The relaxation: a rebinding page has no credential for its name, so it gets 401."""
    async with running_app(access_token=TOKEN) as served:
        response = await served.client.get("/api/status", headers={"Host": "evil.example"})
        assert response.status_code == 401
        bearer = {"Host": "quart.example.org", "Authorization": f"Bearer {TOKEN}"}
        assert (await served.client.get("/api/status", headers=bearer)).status_code == 200


async def test_with_a_token_and_allowed_hosts_the_check_is_on() -> None:
    async with running_app(access_token=TOKEN, allowed_hosts="quart.lan") as served:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        refused = await served.client.get("/api/status", headers={**bearer, "Host": "evil.example"})
        await assert_refused(refused)
        ok = await served.client.get("/api/status", headers={**bearer, "Host": "quart.lan"})
        assert ok.status_code == 200


async def test_a_refused_host_does_not_count_as_a_wrong_token() -> None:
    async with running_app(access_token=TOKEN, allowed_hosts="quart.lan") as served:
        for _ in range(20):
            guess = "/api/status?token=wrong-token-guess-000000"
            await assert_refused(await served.client.get(guess, headers={"Host": "evil.example"}))
        ok = await served.client.get(f"/api/status?token={TOKEN}", headers={"Host": "quart.lan"})
        assert ok.status_code == 200


async def test_refused_hosts_are_logged_once_each_and_boundedly(
    served: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="quart_dl.web.hosts"):
        for _ in range(5):
            await served.client.get("/api/status", headers={"Host": "evil.example"})
        for i in range(100):
            await served.client.get("/api/status", headers={"Host": f"n{i}.evil.example"})
    lines = [r.getMessage() for r in caplog.records if r.name == "quart_dl.web.hosts"]
    assert sum("'evil.example'" in line for line in lines) == 1
    assert len(lines) <= 32


# -- a real server, on the wire -----------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real quart-dl process without a token (the default that rebinding attacked).

    No qBittorrent is needed for what is tested here: the check answers before any route.
    """
    process = ServerProcess(tmp_path_factory.mktemp("server"), qbt_url="http://127.0.0.1:9")
    with process:
        yield process


class Wire:
    """A raw HTTP/1.x connection: sends bytes as given, reads answers with deadlines."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.data = b""

    def send(self, head: bytes) -> None:
        self.sock.sendall(head)

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} in {self.data[-300:]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed before {marker!r}; got {self.data[-300:]!r}")
            self.data += chunk
        return self.data

    def answer(self, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
        """The next whole answer with a Content-Length (consumed from the buffer)."""
        self.read_until(b"\r\n\r\n", timeout)
        head, _, rest = self.data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        deadline = time.monotonic() + timeout
        while len(rest) < length:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"body incomplete: {rest[-300:]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed within the body: {rest[-300:]!r}")
            rest += chunk
        self.data = rest[length:]
        return status, headers, rest[:length]

    def closed(self, timeout: float = 5.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(65536) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


def head(target: str, host: str | None = "127.0.0.1", version: str = "1.1", extra: str = "") -> bytes:
    host_line = f"Host: {host}\r\n" if host is not None else ""
    return f"GET {target} HTTP/{version}\r\n{host_line}{extra}\r\n".encode()


def assert_refused_on_wire(status: int, body: bytes) -> None:
    assert status == 403, body
    found = json.loads(body)
    assert found["error"] == "host_not_allowed"
    assert "allowed_hosts" in found["message"]


@pytest.mark.parametrize("path", [*ROUTES, *STREAMS])
def test_wire_every_route_refuses_a_foreign_host(server: ServerProcess, path: str) -> None:
    wire = Wire(server.port)
    try:
        wire.send(head(path, host=f"rebind.test:{server.port}", extra="Connection: close\r\n"))
        status, _, body = wire.answer()
        assert_refused_on_wire(status, body)
    finally:
        wire.close()


@pytest.mark.parametrize("path", STREAMS)
def test_wire_stream_on_a_fresh_connection(server: ServerProcess, path: str) -> None:
    """The socket layer runs the app for it: refused with the JSON answer, then closed."""
    wire = Wire(server.port)
    try:
        wire.send(head(path, host="evil.example"))
        status, headers, body = wire.answer()
        assert_refused_on_wire(status, body)
        assert headers["connection"] == "close"
        assert wire.closed()
    finally:
        wire.close()
    wire = Wire(server.port)
    try:
        # (this server follows no qBittorrent, so only the all-torrents stream exists)
        wire.send(head("/api/events", host=f"localhost:{server.port}"))
        wire.read_until(b"retry: ")
        assert wire.data.startswith(b"HTTP/1.1 200")
        assert b"text/event-stream" in wire.data
    finally:
        wire.close()


def test_wire_stream_on_a_keep_alive_connection(server: ServerProcess) -> None:
    """Hypercorn already served the connection: the stream is taken back to the socket
    layer's path (issue #12), and the check answers there too."""
    wire = Wire(server.port)
    try:
        wire.send(head("/healthz"))
        status, _, _ = wire.answer()
        assert status == 200
        wire.send(head("/api/events", host="evil.example"))
        status, _, body = wire.answer()
        assert_refused_on_wire(status, body)
        wire.send(head("/api/events", host=f"127.0.0.1:{server.port}"))
        wire.read_until(b"retry: ")
        assert wire.data.startswith(b"HTTP/1.1 200")
    finally:
        wire.close()


@pytest.mark.parametrize(
    ("target", "host"),
    [
        ("http://evil.example/api/status", "127.0.0.1"),
        ("http://evil.example/api/events", "127.0.0.1"),
        ("http://127.0.0.1@evil.example/api/torrents", "127.0.0.1"),
        ("HTTP://EVIL.EXAMPLE:8765/", "127.0.0.1"),
        ("http://127.0.0.1/api/status", "evil.example"),
        ("http://127.0.0.1/api/events", "evil.example"),
    ],
)
def test_regression_absolute_form_target_cannot_smuggle_a_foreign_host(
    server: ServerProcess, target: str, host: str
) -> None:
    wire = Wire(server.port)
    try:
        wire.send(head(target, host=host, extra="Connection: close\r\n"))
        status, _, body = wire.answer()
        assert_refused_on_wire(status, body)
    finally:
        wire.close()


def test_absolute_form_target_of_our_own_host_is_served(server: ServerProcess) -> None:
    wire = Wire(server.port)
    try:
        wire.send(head(f"http://127.0.0.1:{server.port}/api/status?x=1"))
        status, _, body = wire.answer()
        assert status == 200, body
        assert "status" in json.loads(body)
        wire.send(head(f"http://localhost:{server.port}/api/events?heartbeat=event"))
        wire.read_until(b"retry: ")
        assert wire.data.startswith(b"HTTP/1.1 200")
    finally:
        wire.close()


@pytest.mark.parametrize("path", ["/api/status", "/api/events"])
def test_http10_without_a_host_is_answered(server: ServerProcess, path: str) -> None:
    wire = Wire(server.port)
    try:
        wire.send(head(path, host=None, version="1.0"))
        marker = b"retry: " if path.endswith("events") else b"}"
        wire.read_until(marker)
        assert wire.data.startswith(b"HTTP/1.1 200"), wire.data[:200]
    finally:
        wire.close()


def test_server_log_names_a_refused_host_once(server: ServerProcess, tmp_path: Path) -> None:
    for _ in range(3):
        wire = Wire(server.port)
        try:
            wire.send(head("/api/status", host="logged-once.example", extra="Connection: close\r\n"))
            wire.answer()
        finally:
            wire.close()
    assert server.log_text().count("'logged-once.example'") == 1
