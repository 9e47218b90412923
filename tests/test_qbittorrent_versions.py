"""The service against both qBittorrents it supports: Debian 12's 4.5.2 and Debian 13's 5.1.

Every test here runs once per version (ids ``4.5`` and ``5.1``), each against a real
seeder/leecher pair of that version. 5.1 comes from ``./dev setup`` (a debootstrapped Debian
13 tree, ``$QUART_DL_QBITTORRENT_NOX_5``); when it is missing the 5.1 tests fail saying how to
install it, they never skip: a green run has always seen both versions.

Differences met between the two, and where they are handled:

* ``torrents/pause``/``resume`` are ``torrents/stop``/``start`` in 5.x (Web API 2.11.0):
  qbittorrent-api picks the endpoint from ``app/webapiVersion``; the session test pins the
  version split it relies on.
* States ``pausedDL``/``pausedUP`` are ``stoppedDL``/``stoppedUP`` in 5.x: both map to the
  phase ``paused`` (``quart_dl.torrents``); the transfer test stops a torrent on each.
* A full ``sync/maindata`` with no torrents has no "torrents" key in 5.1 (``{}`` in 4.5.2);
  the table reads a missing key as none (pinned below, without a daemon).
* Adding stopped is ``paused`` in 4.x and ``stopped`` in 5.x (qbittorrent-api sends both),
  the "add stopped" preference is ``AddTorrentPaused``/``AddTorrentStopped``, and the legal
  notice (see ``QbtInstance.write_config``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import H1, full_update, raw_torrent

from quart_dl.lab.qbittorrent_nox import VERSION_ENV, QbtNotInstalled, daemon_binary
from quart_dl.lab.server_process import ServerFactory, get_json
from quart_dl.lab.sse_reader import SSEMessage, SSEReader, apply_stream
from quart_dl.lab.transfer import TransferPair
from quart_dl.qbittorrent.session import QbtSession
from quart_dl.torrents import TorrentTable

MiB = 1024 * 1024

#: (major version asked of the lab, the ``app/version`` prefix expected, the state word of a
#: stopped incomplete torrent, of a stopped complete one, whether Web API >= 2.11.0).
VERSIONS = [
    pytest.param(("4", "v4.5.", "pausedDL", "pausedUP", False), id="4.5"),
    pytest.param(("5", "v5.1.", "stoppedDL", "stoppedUP", True), id="5.1"),
]

Version = tuple[str, str, str, str, bool]


@pytest.fixture(scope="module", params=VERSIONS)
def version(request: pytest.FixtureRequest) -> Version:
    value: Version = request.param
    return value


@pytest.fixture(scope="module")
def versioned_pair(version: Version, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferPair]:
    """A seeder and a leecher of one version, shared by this module's tests of that version."""
    binary = _binary_or_fail(version[0])
    with TransferPair(tmp_path_factory.mktemp(f"qbt{version[0]}"), binary=binary) as pair:
        yield pair


def _binary_or_fail(major: str) -> str:
    """The daemon of ``major``, or a failure (never a skip) saying in one line how to get it."""
    try:
        return daemon_binary(major)
    except QbtNotInstalled as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture
def make_server(versioned_pair: TransferPair, tmp_path: Path) -> Iterator[ServerFactory]:
    leecher = versioned_pair.leecher
    factory = ServerFactory(tmp_path, leecher.url, leecher.username, leecher.password)
    yield factory
    factory.close()


def test_daemon_binary_without_5_says_to_run_dev_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VERSION_ENV["5"], raising=False)
    with pytest.raises(QbtNotInstalled, match=r"run `\./dev setup`") as caught:
        daemon_binary("5")
    assert "\n" not in str(caught.value)
    monkeypatch.setenv(VERSION_ENV["5"], "/nonexistent/qbittorrent-nox")
    with pytest.raises(QbtNotInstalled, match=r"not an executable file: run `\./dev setup`"):
        daemon_binary("5")


def test_both_daemons_of_a_pair_run_the_version_asked_for(
    versioned_pair: TransferPair, version: Version
) -> None:
    for daemon in (versioned_pair.seeder, versioned_pair.leecher):
        assert daemon.version is not None
        assert daemon.version.startswith(version[1]), daemon.version
        assert daemon.major == version[0]


async def test_session_logs_in_and_reads_maindata(versioned_pair: TransferPair, version: Version) -> None:
    leecher = versioned_pair.leecher
    session = QbtSession.connect(leecher.url, leecher.username, leecher.password)
    try:
        reported = await session.login()
        assert reported == leecher.version
        assert reported.startswith(version[1])
        first = await session.maindata()
        assert first.get("full_update") is True
        # 5.1 leaves "torrents" out of a full update when it has none (4.5.2 sends {}).
        assert isinstance(first.get("torrents", {}), dict)
        assert isinstance(first["server_state"], dict)
        # The rid is kept: the next answer is a partial update of the same session.
        second = await session.maindata()
        assert not second.get("full_update")
        assert second["rid"] > first["rid"]
    finally:
        await session.close()
    # qbittorrent-api calls torrents/stop (5.x) or torrents/pause (4.x) by this version.
    api = tuple(int(part) for part in versioned_pair.leecher_client.app_web_api_version().split("."))
    assert (api >= (2, 11, 0)) is version[4]


def test_a_full_update_without_torrents_empties_the_table() -> None:
    """5.1's full ``sync/maindata`` of a qBittorrent with no torrents has no "torrents" key
    at all (4.5.2 sends ``{}``; seen in the session test): that means "none", not "unknown"."""
    table = TorrentTable()
    table.apply(full_update({H1: raw_torrent("a")}))
    changes = table.apply({"full_update": True, "rid": 2, "server_state": {"dl_info_data": 0}})
    assert changes.removed == [H1]
    assert table.records == {}


def _progress(messages: list[SSEMessage], torrent_hash: str) -> list[float]:
    values: list[float] = []
    for message in messages:
        if message.event == "diff" and message.data is not None:
            change = message.json()["changed"].get(torrent_hash, {})
            if "progress" in change:
                values.append(change["progress"])
    return values


def _states(view: dict[str, dict[str, Any]], *hashes: str) -> tuple[Any, ...]:
    return tuple(view.get(h, {}).get("state") for h in hashes)


def _completions(messages: list[SSEMessage], torrent_hash: str) -> int:
    return sum(
        1
        for m in messages
        if m.event == "diff" and m.data is not None and torrent_hash in m.json().get("completed", [])
    )


def test_server_follows_a_transfer_to_completion_and_shows_stopped_torrents(
    versioned_pair: TransferPair, version: Version, make_server: ServerFactory
) -> None:
    _, prefix, stopped_dl, stopped_up, _ = version
    pair = versioned_pair
    server = make_server()
    with SSEReader(server.url + "api/events") as stream:
        stream.wait(lambda m: [e for e in m if e.event == "snapshot"], 5, "a snapshot")
        done = pair.add_transfer("done.bin", size=1 * MiB, rate=256 * 1024)
        stream.wait(lambda m: _completions(m, done), 40, "the completion event")
        values = _progress(stream.snapshot(), done)
        rises = sum(1 for a, b in itertools.pairwise(values) if b > a)
        assert rises >= 3, f"progress rose only {rises} times: {values}"
        seen = apply_stream(stream.snapshot())[done]
        assert seen["complete"] is True
        assert seen["amount_left"] == 0
        assert seen["phase"] == "seeding"

        # A slow one, stopped while it downloads; then the complete one, stopped too.
        slow = pair.add_transfer("slow.bin", size=4 * MiB, rate=64 * 1024)
        stream.wait(lambda m: [v for v in _progress(m, slow) if v > 0], 20, "the slow one downloading")
        pair.leecher_client.torrents_stop(torrent_hashes=slow)
        pair.leecher_client.torrents_stop(torrent_hashes=done)

        def both_stopped(messages: list[SSEMessage]) -> dict[str, dict[str, Any]] | None:
            view = apply_stream(messages)
            return view if _states(view, slow, done) == (stopped_dl, stopped_up) else None

        view = stream.wait(both_stopped, 15, f"{stopped_dl} and {stopped_up} on the stream")
        assert view[slow]["phase"] == view[done]["phase"] == "paused"
        assert view[slow]["complete"] is False
        # Stopping a complete torrent is not a second completion.
        assert view[done]["complete"] is True
        assert _completions(stream.snapshot(), done) == 1
    # The REST API and the status agree with the stream, and name the version followed.
    assert get_json(server.url + f"api/torrents/{slow}")["state"] == stopped_dl
    status = server.status()["status"]
    assert status["version"] == pair.leecher.version
    assert status["version"].startswith(prefix)
