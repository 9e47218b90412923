"""Tests for quart_dl.lab.transfer: real throttled transfers between two qbittorrent-nox.

No mocks; every wait has a deadline.
"""

from __future__ import annotations

import io
import itertools
import time
from pathlib import Path

import pytest
import qbittorrentapi
import torf

from quart_dl.lab.qbittorrent_nox import qbittorrent_processes
from quart_dl.lab.transfer import TransferError, TransferPair, make_payload, make_torrent, piece_size_for


def test_make_payload_writes_random_bytes_of_the_exact_size(tmp_path: Path) -> None:
    size = 3 * 1024 * 1024 + 7
    path = make_payload(tmp_path / "new", "p.bin", size)
    assert path == tmp_path / "new" / "p.bin"
    assert path.stat().st_size == size
    data = path.read_bytes()
    assert data.count(0) < size // 100  # random, not a sparse file of zeros
    with pytest.raises(ValueError, match="at least 1 byte"):
        make_payload(tmp_path, "empty.bin", 0)


def test_piece_size_keeps_progress_steps_small() -> None:
    assert piece_size_for(1024 * 1024) == 16 * 1024
    assert piece_size_for(4 * 1024 * 1024) == 16 * 1024
    assert piece_size_for(64 * 1024 * 1024) == 256 * 1024
    assert piece_size_for(100 * 1024**3) == 4 * 1024 * 1024


def test_make_torrent_is_private_trackerless_and_reproducible(tmp_path: Path) -> None:
    path = make_payload(tmp_path, "x.bin", 1024 * 1024)
    data = make_torrent(path)
    assert data == make_torrent(path)  # same payload, same info-hash
    torrent = torf.Torrent.read_stream(io.BytesIO(data))
    assert torrent.private is True
    assert not torrent.trackers
    assert torrent.piece_size == 16 * 1024
    assert torrent.name == "x.bin"
    assert torrent.size == 1024 * 1024


def test_throttled_transfer_completes_with_rising_progress(tmp_path: Path) -> None:
    """1 MiB at 256 KiB/s: progress is seen rising several times, then completes."""
    size, rate = 1024 * 1024, 256 * 1024
    with TransferPair(tmp_path) as pair:
        started = time.monotonic()
        info_hash = pair.add_transfer("one.bin", size=size, rate=rate)
        assert len(info_hash) == 40
        assert info_hash == info_hash.lower()

        seen: list[float] = []

        def record(torrent: qbittorrentapi.TorrentDictionary) -> bool:
            progress = float(torrent.progress)
            if not seen or progress != seen[-1]:
                seen.append(progress)
            return int(torrent.amount_left) == 0 and str(torrent.state).endswith("UP")

        done = pair.wait_for(record, timeout=30, interval=0.1)
        elapsed = time.monotonic() - started
        assert done.hash == info_hash
        rises = sum(1 for a, b in itertools.pairwise(seen) if b > a)
        assert rises >= 3, seen
        assert seen == sorted(seen), seen
        assert elapsed > 1.5, elapsed  # the limit holds: unthrottled this takes ~0.1 s
        assert pair.download_path(info_hash).name == "one.bin"
        assert pair.download_path(info_hash).read_bytes() == pair.payload_path(info_hash).read_bytes()
        assert sorted(qbittorrent_processes(tmp_path)) == sorted(
            pid for pid in (pair.seeder.pid, pair.leecher.pid) if pid is not None
        )
    assert qbittorrent_processes(tmp_path) == []
    assert not pair.seeder.running
    assert not pair.leecher.running


def test_leecher_restart_then_reconnect_and_raise_rate(tmp_path: Path) -> None:
    """A restarted leecher knows no peers (no tracker, no DHT) until told again."""
    with TransferPair(tmp_path) as pair:
        info_hash = pair.add_transfer("slow.bin", size=2 * 1024 * 1024, rate=64 * 1024)
        before = pair.wait_for(lambda t: t.downloaded > 0 and t.progress < 0.9, timeout=15)
        assert not str(before.state).endswith("UP")

        pair.leecher.stop()
        pair.leecher.start()
        pair.reconnect_peer(info_hash, timeout=20)
        pair.set_rate(info_hash, 4 * 1024 * 1024)
        assert pair.leecher_info(info_hash).dl_limit == 4 * 1024 * 1024

        done = pair.wait_complete(info_hash, timeout=20)
        assert done.amount_left == 0
        assert pair.download_path().read_bytes() == pair.payload_path().read_bytes()
    assert qbittorrent_processes(tmp_path) == []


def test_helpers_need_a_hash_before_any_transfer(tmp_path: Path) -> None:
    pair = TransferPair(tmp_path)
    for call in (
        lambda: pair.set_rate(None, 1),
        lambda: pair.reconnect_peer(),
        lambda: pair.wait_for(lambda t: True, timeout=0),
    ):
        with pytest.raises(TransferError, match="no transfer added"):
            call()


def test_same_name_twice_does_not_clobber_the_first(tmp_path: Path) -> None:
    """A long-lived pair (session fixture) may add the same default name again."""
    with TransferPair(tmp_path) as pair:
        first = pair.add_transfer("dup.bin", size=256 * 1024, rate=0)
        second = pair.add_transfer("dup.bin", size=256 * 1024, rate=0)
        assert first != second
        for info_hash in (first, second):
            pair.wait_complete(info_hash, timeout=20)
            assert pair.download_path(info_hash).read_bytes() == pair.payload_path(info_hash).read_bytes()
        assert pair.payload_path(first) != pair.payload_path(second)
        with pytest.raises(ValueError, match="plain file name"):
            pair.add_transfer("../escape.bin")
