"""quart_dl.qbittorrent.client against a real qbittorrent-nox: what the poller relies on.

The client is the only module that talks to qBittorrent, so its error classes are the
poller's whole view of the world: ``AuthFailed`` (back off long: failed logins get an
address banned) versus ``Unreachable`` (down, hung, or not qBittorrent at all).
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import qbittorrentapi

from quart_dl.lab.qbittorrent_nox import QbtInstance, free_port
from quart_dl.qbittorrent.client import AuthFailed, QbtClient, Unreachable, WorkerThread


@pytest.fixture(scope="module")
def qbt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QbtInstance]:
    with QbtInstance(tmp_path_factory.mktemp("client") / "qbt") as running:
        yield running


def test_login_gives_the_version_and_maindata_advances_the_rid(qbt: QbtInstance) -> None:
    client = QbtClient(qbt.url, qbt.username, qbt.password)
    try:
        assert client.login().startswith("v4.")
        first = client.maindata()
        assert first["full_update"] is True
        assert isinstance(first["torrents"], dict)
        assert client.rid == first["rid"] > 0
        second = client.maindata()
        assert not second.get("full_update")  # a partial answer for the rid we hold
        client.reset()
        assert client.maindata()["full_update"] is True
        assert client.torrent_count() == 0
    finally:
        client.close()


def test_wrong_password_is_auth_failed_and_never_shows_the_password(qbt: QbtInstance) -> None:
    client = QbtClient(qbt.url, qbt.username, "wrong-password-123")
    with pytest.raises(AuthFailed) as info:
        client.login()
    assert "wrong-password-123" not in str(info.value)
    assert info.value.kind == "auth_failed"


def test_closed_port_is_unreachable_at_once() -> None:
    client = QbtClient(f"http://127.0.0.1:{free_port()}", "admin", "secret-pass")
    started = time.monotonic()
    with pytest.raises(Unreachable, match="connection refused") as info:
        client.login()
    assert time.monotonic() - started < 2
    assert "secret-pass" not in str(info.value)


def test_hung_qbittorrent_is_unreachable_within_a_few_timeouts(qbt: QbtInstance) -> None:
    client = QbtClient(qbt.url, qbt.username, qbt.password, timeout=0.5)
    client.login()
    qbt.suspend()
    try:
        started = time.monotonic()
        with pytest.raises(Unreachable, match="timed out"):
            client.maindata()
        # The library's own retries and scheme probing are off: not ~4x the timeout.
        assert time.monotonic() - started < 2.5
    finally:
        qbt.resume()
        client.close()


class _NotQbittorrent(BaseHTTPRequestHandler):
    """Something else answering on the port (a router page, another app)."""

    def do_GET(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


def test_regression_another_web_server_is_called_a_wrong_password() -> None:
    # A router page on the configured port made login "fail": status auth_failed, a
    # "wrong password" message and the 60 s auth backoff, for what is a wrong URL.
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotQbittorrent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = QbtClient(f"http://127.0.0.1:{server.server_address[1]}", "admin", "pw")
        with pytest.raises(Unreachable, match="does not answer like qBittorrent"):
            client.login()
    finally:
        server.shutdown()


class _FakeMaindata(BaseHTTPRequestHandler):
    """Just enough of qBittorrent's Web API to log in; ``sync/maindata`` answers ``BODIES`` in turn."""

    BODIES: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        path = self.path.split("?")[0]
        if path.endswith("/auth/login"):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(b"Ok.", "text/plain", cookie="SID=fake")
        elif path.endswith("/app/version"):
            self._answer(b"v4.5.2", "text/plain")
        elif path.endswith("/sync/maindata"):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            self._answer(self.BODIES.pop(0), "application/json")
        else:
            self._answer(b"2.8.19", "text/plain")

    do_GET = do_POST

    def _answer(self, body: bytes, kind: str, cookie: str | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", f"{cookie}; path=/")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_maindata_is_plain_json_and_any_other_shape_is_unreachable() -> None:
    # maindata asks the library for the decoded JSON as is (SIMPLE_RESPONSES), not its
    # attribute dicts: the poller gets plain dicts, and must still refuse what is not an object.
    _FakeMaindata.BODIES[:] = [
        b'{"rid": 7, "torrents": {"abc": {"name": "x", "tags": ""}}, "server_state": {"dl_info_speed": 1}}',
        b'{"rid": 8, "torrents": {}}',
        b"[1, 2, 3]",
        b'"a string"',
        b'{"torrents": {}}',
        b"not json",
    ]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeMaindata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = QbtClient(f"http://127.0.0.1:{server.server_address[1]}", "admin", "pw")
    try:
        assert client.login() == "v4.5.2"
        first = client.maindata()
        assert first == {
            "rid": 7,
            "full_update": True,
            "torrents": {"abc": {"name": "x", "tags": ""}},
            "server_state": {"dl_info_speed": 1},
        }
        assert type(first) is dict
        assert type(first["torrents"]) is dict
        assert type(first["torrents"]["abc"]) is dict
        assert client.rid == 7
        assert client.maindata() == {"rid": 8, "torrents": {}}  # no full_update once the rid is held
        for _ in range(3):  # a list, a string, an object without a rid
            with pytest.raises(Unreachable, match="did not answer like qBittorrent"):
                client.maindata()
        with pytest.raises(Unreachable, match="answered with an error"):  # not JSON at all
            client.maindata()
        assert client.rid == 8
    finally:
        client.close()
        server.shutdown()


async def test_worker_thread_runs_calls_in_order_off_the_event_loop() -> None:
    worker = WorkerThread()
    loop_thread = threading.get_ident()
    try:
        seen: list[int] = []

        def job(n: int) -> int:
            assert threading.get_ident() != loop_thread
            seen.append(n)
            return n * 2

        results = await asyncio.gather(*(worker.run(functools.partial(job, n)) for n in range(5)))
        assert results == [0, 2, 4, 6, 8]
        assert seen == [0, 1, 2, 3, 4]
        with pytest.raises(ZeroDivisionError):
            await worker.run(lambda: 1 // 0)
    finally:
        worker.close()


def test_a_path_given_as_url_keeps_its_prefix(tmp_path: Path) -> None:
    # qBittorrent behind a reverse proxy under /qbt: the prefix must survive.
    client = QbtClient(f"http://127.0.0.1:{free_port()}/qbt", "admin", "pw")
    with pytest.raises(Unreachable, match=r"/qbt"):
        client.login()


class _SecondCallFails:
    """A qbittorrentapi client whose first limit call works and whose second cannot reach
    qBittorrent (it went down between the two)."""

    def __init__(self, torrent_hash: str) -> None:
        self.torrent_hash = torrent_hash
        self.calls: list[str] = []

    def torrents_info(self, **_: object) -> list[dict[str, str]]:
        return [{"hash": self.torrent_hash}]

    def torrents_set_download_limit(self, **_: object) -> None:
        self.calls.append("download")

    def torrents_set_upload_limit(self, **_: object) -> None:
        raise qbittorrentapi.APIConnectionError("Connection refused")

    def transfer_set_speed_limits_mode(self, **_: object) -> None:
        self.calls.append("alt")

    def transfer_set_download_limit(self, **_: object) -> None:
        raise qbittorrentapi.APIConnectionError("Read timed out")


def test_an_action_half_done_when_qbittorrent_went_down_says_what_was_applied() -> None:
    """Regression: set_limits with both limits (and the global limits) are several calls; when
    qBittorrent went down after the first, the error said only "may not have been applied"
    while the download limit (or alternative speeds) had been set."""
    client = QbtClient(f"http://127.0.0.1:{free_port()}", "admin", "secret-pass")
    fake = _SecondCallFails("ab" * 20)
    client._client = fake  # type: ignore[assignment]
    with pytest.raises(Unreachable) as info:
        client.act("set_limits", ["ab" * 20], {"dl_limit": 1024, "up_limit": 2048})
    assert fake.calls == ["download"]
    assert info.value.partly == ("the download limit was set",)
    with pytest.raises(Unreachable) as info:
        client.set_transfer(True, 4096, None)
    assert info.value.partly == ("alternative speeds were switched on",)
    with pytest.raises(Unreachable) as info:
        client.act("set_limits", ["ab" * 20], {"up_limit": 2048})
    assert info.value.partly == ()


def test_an_action_on_all_that_failed_names_the_torrents_it_was_sent_for() -> None:
    """Regression: an action on "all" that qBittorrent refused or could not take was
    announced and logged with no hashes ("on all (0)"): the resolved list was dropped."""
    client = QbtClient(f"http://127.0.0.1:{free_port()}", "admin", "secret-pass")
    client._client = _SecondCallFails("ab" * 20)  # type: ignore[assignment]
    with pytest.raises(Unreachable) as info:
        client.act("set_limits", None, {"up_limit": 2048})
    assert info.value.targets == ("ab" * 20,)
