"""Several qBittorrent instances for real: one quart-dl process following two leechers at once,
qBittorrent 4.5.2 (Debian 12's, the flat ``qbt_*`` flags: instance ``default``) and qBittorrent
5.1 (Debian 13's, an ``[[instances]]`` table in the TOML file, as a newcomer adds a second one),
the same .torrent in both (cross-seeding: one hash, two records).

What must hold for a user: both instances stream live in protocol 2; the same hash is two rows
everywhere; one instance stopped changes only that instance's status, and the other keeps its
cadence on the same stream; a protocol 1 client sees only the default instance, as before.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quart_dl.lab.qbittorrent_nox import QbtInstance, daemon_binary
from quart_dl.lab.server_process import ServerProcess, get_json
from quart_dl.lab.sse_reader import SSEMessage, SSEReader
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for

MiB = 1024 * 1024
BOTH = ("default", "five")


@pytest.fixture(scope="module")
def five(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QbtInstance]:
    """A qBittorrent 5.1 leecher beside the module's 4.5.2 pair."""
    daemon = QbtInstance(tmp_path_factory.mktemp("qbt5"), name="leecher5", binary=daemon_binary("5"))
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


def two_instance_server(
    make_server: Callable[..., ServerProcess], five: QbtInstance, tmp_path: Path, poll_interval: float = 0.25
) -> ServerProcess:
    """A server following the pair's leecher (flat flags: ``default``) and ``five`` (TOML), both
    polled every ``poll_interval``, once both are connected."""
    config = tmp_path / "quart-dl.toml"
    config.write_text(
        "[[instances]]\n"
        'id = "five"\n'
        'name = "qBittorrent 5"\n'
        f'url = "{five.url}"\n'
        f'username = "{five.username}"\n'
        f"password = {json.dumps(five.password)}\n"
        f"poll_interval = {poll_interval}\n",
        encoding="utf-8",
    )
    server = make_server(extra_args=("--config", str(config)), poll_interval=poll_interval)

    def connected() -> bool:
        instances = get_json(server.url + "api/instances")["instances"]
        return all(i["status"]["qbittorrent"] == "connected" for i in instances)

    wait_for(connected, 20, "both instances to be connected")
    return server


def progress_by_instance(messages: list[SSEMessage], torrent_hash: str) -> dict[str, list[float]]:
    """Every progress value a protocol 2 stream carried for one hash, per instance, in order."""
    values: dict[str, list[float]] = {}
    for message in messages:
        if message.data is None or message.event not in ("snapshot", "diff"):
            continue
        payload = message.json()
        if message.event == "snapshot":
            for instance, torrents in payload["torrents"].items():
                if torrent_hash in torrents:
                    values.setdefault(instance, []).append(torrents[torrent_hash]["progress"])
        else:
            change = payload["changed"].get(torrent_hash, {})
            if "progress" in change:
                values.setdefault(payload["instance"], []).append(change["progress"])
    return values


def rises(values: list[float]) -> int:
    return sum(1 for a, b in itertools.pairwise(values) if b > a)


def test_two_qbittorrents_of_two_versions_stream_live_and_one_going_down_leaves_the_other(
    pair: TransferPair, five: QbtInstance, make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    server = two_instance_server(make_server, five, tmp_path)
    torrent_hash = pair.add_transfer("cross-seeded.bin", size=8 * MiB, rate=160 * 1024)
    pair.also_leech(five, torrent_hash, rate=160 * 1024)

    with SSEReader(server.url + "api/events?v=2") as v2, SSEReader(server.url + "api/events") as v1:
        snapshot = v2.wait(lambda m: [e for e in m if e.event == "snapshot"], 10, "the v2 snapshot")[0].json()
        assert snapshot["v"] == 2
        assert list(snapshot["instances"]) == ["default", "five"]
        assert snapshot["instances"]["five"]["name"] == "qBittorrent 5"

        # Both instances' copies of the one hash advance, live, on the one stream.
        v2.wait(
            lambda m: all(rises(progress_by_instance(m, torrent_hash).get(i, [])) >= 2 for i in BOTH),
            60,
            "progress rising in both instances",
        )
        instances = {i["id"]: i for i in get_json(server.url + "api/instances")["instances"]}
        assert instances["default"]["version"].startswith("v4.5")
        assert instances["five"]["version"].startswith("v5.1")
        rows = [(r["instance"], r["hash"]) for r in get_json(server.url + "api/torrents")["torrents"]]
        assert sorted(r for r in rows if r[1] == torrent_hash) == [(i, torrent_hash) for i in BOTH]

        # qBittorrent 5.1 goes away: its status says so, and the default instance goes on.
        five.stop()
        try:
            v2.wait(
                lambda m: [
                    e
                    for e in m
                    if e.event == "status"
                    and e.json()["instance"] == "five"
                    and e.json()["qbittorrent"] == "unreachable"
                ],
                20,
                "five's status to say unreachable",
            )
            down_at = len(v2.snapshot())
            v2.wait(
                lambda m: rises(progress_by_instance(m[down_at:], torrent_hash).get("default", [])) >= 2,
                30,
                "the default instance's progress to go on rising",
            )
            assert progress_by_instance(v2.snapshot()[down_at:], torrent_hash).get("five", []) == []
            instances = {i["id"]: i for i in get_json(server.url + "api/instances")["instances"]}
            states = [instances[i]["status"]["qbittorrent"] for i in BOTH]
            assert states == ["connected", "unreachable"]
        finally:
            five.start()

        # The protocol 1 stream saw the default instance only, as a server with that one would.
        v1_messages = v1.snapshot()
        v1_snapshot = next(e for e in v1_messages if e.event == "snapshot").json()
        assert v1_snapshot["v"] == 1
        assert "instances" not in v1_snapshot
        assert all("instance" not in e.json() for e in v1_messages if e.event in ("diff", "status"))
        statuses = [e.json()["qbittorrent"] for e in v1_messages if e.event == "status"]
        assert "unreachable" not in statuses


def test_one_poll_per_instance_per_interval_however_many_viewers(
    pair: TransferPair, five: QbtInstance, make_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Ten viewers cost each qBittorrent what one costs: its pollers are the server's, not the streams'."""
    server = two_instance_server(make_server, five, tmp_path, poll_interval=0.5)

    def polls() -> dict[str, float]:
        text = urlopen_text(server.url + "metrics")
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("quart_dl_polls_total{"):
                labels, value = line.rsplit(" ", 1)
                instance = labels.split('instance="', 1)[1].split('"', 1)[0]
                out[instance] = float(value)
        return out

    readers = [SSEReader(server.url + ("api/events?v=2" if n % 2 else "api/events")) for n in range(10)]
    try:
        for reader in readers:
            reader.wait(lambda m: [e for e in m if e.event == "snapshot"], 10, "a snapshot")
        before, started = polls(), time.monotonic()
        time.sleep(5.0)  # a window to count polls in, not a wait for something to happen
        after, elapsed = polls(), time.monotonic() - started
    finally:
        for reader in readers:
            reader.close()
    for instance in BOTH:
        count = after[instance] - before[instance]
        # 0.5 s interval: about elapsed / 0.5 polls (each takes some ms), never one per viewer.
        assert elapsed / 0.5 * 0.6 <= count <= elapsed / 0.5 + 2, (instance, count)


def urlopen_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return str(answer.read().decode())
