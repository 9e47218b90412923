"""A real, throttled BitTorrent transfer between two loopback qBittorrent daemons.

quart-dl has to show progress that moves, stalls, completes and survives restarts; the
only honest way to test (and demo) that is a real download. :class:`TransferPair` runs a
seeder and a leecher :class:`~quart_dl.lab.qbittorrent_nox.QbtInstance`, makes a payload and a
private, tracker-less torrent for it, seeds it, and has the leecher fetch it from the
seeder at a chosen rate. With no tracker and no DHT the leecher only learns about the
seeder because we tell it (``torrents_add_peers``), and re-tell it when needed.

Synchronous, and depends on nothing in ``quart_dl`` but :mod:`quart_dl.lab.qbittorrent_nox`.
Torrents are made with ``torf``, which only the lab needs: it comes with the ``demo`` extra
(``pip install 'quart-dl[demo]'``), and the ``test``, ``e2e`` and ``bench`` extras.
"""

from __future__ import annotations

import io
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import qbittorrentapi
import torf

from .qbittorrent_nox import DaemonError, QbtInstance

__all__ = [
    "SEEDING_STATES",
    "TransferError",
    "TransferPair",
    "make_payload",
    "make_torrent",
    "piece_size_for",
]

#: States in which a torrent has all its data and serves it.
SEEDING_STATES = frozenset({"stalledUP", "uploading", "forcedUP"})

_CHUNK = 1024 * 1024
_MIN_PIECE = 16 * 1024
_MAX_PIECE = 4 * 1024 * 1024


class TransferError(DaemonError):
    """A torrent could not be added, or never reached the expected state."""


def make_payload(directory: Path, name: str, size: int) -> Path:
    """Write ``size`` pseudo-random bytes to ``directory/name`` and return the path.

    Random (not zeros) so no layer can compress or dedupe it; ``os.urandom`` in 1 MiB
    chunks writes ~1 GB/s, so even a large demo payload is made in well under a second.
    """
    if size < 1:
        raise ValueError("size must be at least 1 byte (an empty file makes no torrent)")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            chunk = min(_CHUNK, remaining)
            handle.write(os.urandom(chunk))
            remaining -= chunk
    return path


def piece_size_for(size: int) -> int:
    """Pick a piece size giving about 256 pieces, between 16 KiB and 4 MiB.

    Small pieces make progress move in small, frequent steps (a 2 MiB payload gets
    16 KiB pieces, i.e. 128 steps), which is what the panel and the tests watch.
    """
    piece = _MIN_PIECE
    while piece < _MAX_PIECE and size / piece > 256:
        piece *= 2
    return piece


def make_torrent(path: Path) -> bytes:
    """Return the bencoded, private, tracker-less torrent for ``path``.

    Private so that even a misconfigured client would not use DHT/PeX for it; no
    tracker because peers are added by hand. No creation date, so the same payload
    always gives the same info-hash.
    """
    torrent = torf.Torrent(
        path=path,
        private=True,
        created_by="quart-dl",
        creation_date=None,
        piece_size=piece_size_for(path.stat().st_size),
    )
    torrent.generate()
    return torrent.dump()


def _info_hash(torrent_data: bytes) -> str:
    return torf.Torrent.read_stream(io.BytesIO(torrent_data)).infohash.lower()


class TransferPair:
    """A seeder and a leecher daemon under ``base`` (``base/seeder``, ``base/leecher``).

    Use as a context manager, or call :meth:`start` and :meth:`stop`. Each daemon gets
    one cached, logged-in client (:attr:`seeder_client`, :attr:`leecher_client`); it
    logs in again by itself after a daemon restart. Not thread-safe: drive it from one
    thread.
    """

    def __init__(self, base: Path, *, password: str | None = None, binary: str | None = None) -> None:
        self.base = Path(base)
        # ``binary`` runs both daemons of one version (e.g. ``daemon_binary("5")``).
        self.seeder = QbtInstance(self.base / "seeder", name="seeder", binary=binary)
        self.leecher = QbtInstance(self.base / "leecher", name="leecher", binary=binary)
        if password is not None:
            self.seeder.password = self.leecher.password = password
        self._seeder_client: qbittorrentapi.Client | None = None
        self._leecher_client: qbittorrentapi.Client | None = None
        self._folders: dict[str, tuple[str, str]] = {}
        #: The .torrent of each transfer, for ``also_leech``.
        self._torrents: dict[str, bytes] = {}
        #: Info-hash of the most recent :meth:`add_transfer`, the default for helpers.
        self.last_hash: str | None = None

    # -------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 15.0) -> None:
        """Start both daemons (a no-op for one already running)."""
        try:
            self.seeder.start(timeout=timeout)
            self.leecher.start(timeout=timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop both daemons; safe to call twice."""
        self._seeder_client = None
        self._leecher_client = None
        self.leecher.stop()
        self.seeder.stop()

    def __enter__(self) -> TransferPair:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def seeder_client(self) -> qbittorrentapi.Client:
        """The seeder's logged-in client (created on first use)."""
        if self._seeder_client is None:
            self._seeder_client = self.seeder.client()
        return self._seeder_client

    @property
    def leecher_client(self) -> qbittorrentapi.Client:
        """The leecher's logged-in client (created on first use)."""
        if self._leecher_client is None:
            self._leecher_client = self.leecher.client()
        return self._leecher_client

    @property
    def seeder_peer(self) -> str:
        """``127.0.0.1:<port>`` where the seeder accepts BitTorrent connections."""
        return f"127.0.0.1:{self.seeder.bt_port}"

    # -------------------------------------------------------------- transfers

    def add_transfer(
        self,
        name: str = "sample.bin",
        size: int = 2 * 1024 * 1024,
        rate: int = 200 * 1024,
        *,
        timeout: float = 20.0,
    ) -> str:
        """Seed a new ``size``-byte file and have the leecher download it at ``rate`` B/s.

        Steps, each waited for with a deadline: write the payload into a folder of its own
        under the seeder's downloads; add the torrent there with ``is_skip_checking`` (we
        know the data is complete, and hashing would only cost time) and wait for a seeding
        state; add it to the leecher (into a matching folder of its own) with
        ``download_limit=rate`` (0 means unlimited: beware, 32 MiB move in ~1.5 s); then
        introduce the seeder as a peer until the leecher connects (~2 s, see
        :meth:`reconnect_peer`). Returns the info-hash, lower-case hex.

        The per-transfer folders let a long-lived pair (a session fixture) add the same
        ``name`` many times: a second payload never overwrites a file that is still being
        seeded, and the leecher never finds a stale file to recheck.
        """
        if not name or "/" in name or name in (".", ".."):
            raise ValueError(f"name must be a plain file name, got {name!r}")
        deadline = time.monotonic() + timeout
        folder = f"{len(self._folders) + 1:03d}-{secrets.token_hex(3)}"
        payload = make_payload(self.seeder.downloads / folder, name, size)
        data = make_torrent(payload)
        info_hash = _info_hash(data)
        self._folders[info_hash] = (folder, name)
        self._torrents[info_hash] = data

        seeder_dir = str(self.seeder.downloads / folder)
        _add(self.seeder_client, data, save_path=seeder_dir, is_skip_checking=True)
        _poll(
            self.seeder_client,
            info_hash,
            lambda t: t.state in SEEDING_STATES,
            deadline,
            f"the seeder to seed {name}",
        )
        _add(
            self.leecher_client,
            data,
            save_path=str(self.leecher.downloads / folder),
            download_limit=rate if rate > 0 else None,
        )
        _poll(self.leecher_client, info_hash, lambda t: True, deadline, f"the leecher to add {name}")
        self.last_hash = info_hash
        self.reconnect_peer(info_hash, timeout=max(0.0, deadline - time.monotonic()))
        return info_hash

    def also_leech(
        self,
        other: QbtInstance,
        torrent_hash: str | None = None,
        rate: int = 200 * 1024,
        timeout: float = 20.0,
    ) -> None:
        """Add a transfer's .torrent to another leecher daemon too (cross-seeding: the same
        hash in two qBittorrents), at ``rate`` B/s, and introduce the seeder to it until it
        connects. ``other`` may be another qBittorrent version than the pair's."""
        info_hash = self._hash(torrent_hash)
        folder, name = self._folder(info_hash)
        deadline = time.monotonic() + timeout
        client = other.client()
        save_path = str(other.downloads / folder)
        _add(client, self._torrents[info_hash], save_path=save_path, download_limit=rate or None)
        _poll(client, info_hash, lambda t: True, deadline, f"{other.name} to add {name}")
        while True:
            client.torrents_add_peers(peers=[self.seeder_peer], torrent_hashes=info_hash)
            torrent = _poll(client, info_hash, lambda t: True, deadline, f"{other.name} to list {name}")
            if torrent.num_seeds > 0 or torrent.progress > 0 or _complete(torrent):
                return
            if time.monotonic() >= deadline:
                raise TransferError(f"timed out waiting for {other.name} to connect to the seeder")
            time.sleep(0.25)

    def payload_path(self, torrent_hash: str | None = None) -> Path:
        """The seeder's copy of a transfer's file (the original)."""
        folder, name = self._folder(torrent_hash)
        return self.seeder.downloads / folder / name

    def download_path(self, torrent_hash: str | None = None) -> Path:
        """Where the leecher writes a transfer's file."""
        folder, name = self._folder(torrent_hash)
        return self.leecher.downloads / folder / name

    def reconnect_peer(self, torrent_hash: str | None = None, timeout: float = 20.0) -> None:
        """Tell the leecher about the seeder until it is connected (or done).

        Needed once per added torrent, and again after either daemon restarts: with no
        tracker and no DHT nothing else tells the leecher where the seeder is. A peer
        added while the torrent is still loading can be dropped, so the peer is added
        again every ~3 s until the leecher reports a connected seed. Expect ~1.5-2.5 s
        even on loopback: that is how long libtorrent takes from ``add_peers`` to the
        first piece (the TCP connection is up after ~0.4 s; handshake and unchoke take
        the rest, with or without encryption).
        """
        info_hash = self._hash(torrent_hash)
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            try:
                self.leecher_client.torrents_add_peers(peers=[self.seeder_peer], torrent_hashes=info_hash)
            except qbittorrentapi.APIError as exc:
                last_error = exc
            retry_at = min(deadline, time.monotonic() + 3.0)
            while True:
                try:
                    torrent = self._leecher_torrent(info_hash)
                except qbittorrentapi.APIConnectionError as exc:
                    last_error, torrent = exc, None
                if torrent is not None and (torrent.num_seeds > 0 or _complete(torrent)):
                    return
                if time.monotonic() >= retry_at:
                    break
                time.sleep(0.05)
            if time.monotonic() >= deadline:
                detail = f"; last error: {last_error}" if last_error else ""
                raise TransferError(
                    f"the leecher did not connect to the seeder at {self.seeder_peer} "
                    f"within {timeout:g} s{detail}"
                )

    def set_rate(self, torrent_hash: str | None, rate: int) -> None:
        """Change the leecher's download limit for one torrent (bytes/s, 0 = unlimited)."""
        info_hash = self._hash(torrent_hash)
        self.leecher_client.torrents_set_download_limit(limit=max(0, rate), torrent_hashes=info_hash)

    def leecher_info(self, torrent_hash: str | None = None) -> qbittorrentapi.TorrentDictionary:
        """The leecher's current view of one torrent; :class:`TransferError` if unknown."""
        info_hash = self._hash(torrent_hash)
        torrent = self._leecher_torrent(info_hash)
        if torrent is None:
            raise TransferError(f"the leecher has no torrent {info_hash}")
        return torrent

    def wait_for(
        self,
        predicate: Callable[[qbittorrentapi.TorrentDictionary], bool],
        timeout: float = 30.0,
        *,
        torrent_hash: str | None = None,
        interval: float = 0.1,
    ) -> qbittorrentapi.TorrentDictionary:
        """Poll the leecher's info for one torrent until ``predicate`` holds; return it.

        The torrent defaults to the last one added. Connection errors (the leecher
        restarting or suspended) count as "not yet", so this also waits across a restart.
        Raises :class:`TimeoutError` with the last state seen.
        """
        info_hash = self._hash(torrent_hash)
        deadline = time.monotonic() + timeout
        last: str = "nothing yet"
        while True:
            try:
                torrent = self._leecher_torrent(info_hash)
            except qbittorrentapi.APIConnectionError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if torrent is not None:
                    if predicate(torrent):
                        return torrent
                    last = (
                        f"state={torrent.state} progress={torrent.progress:.3f} "
                        f"amount_left={torrent.amount_left} num_seeds={torrent.num_seeds}"
                    )
                else:
                    last = "torrent not in the leecher"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"timed out after {timeout:g} s on {info_hash}: {last}")
            time.sleep(min(interval, remaining))

    def wait_complete(
        self, torrent_hash: str | None = None, timeout: float = 60.0
    ) -> qbittorrentapi.TorrentDictionary:
        """Wait until the leecher has every byte (``amount_left == 0``, an upload state)."""
        return self.wait_for(_complete, timeout, torrent_hash=torrent_hash)

    # -------------------------------------------------------------- internals

    def _folder(self, torrent_hash: str | None) -> tuple[str, str]:
        info_hash = self._hash(torrent_hash)
        try:
            return self._folders[info_hash]
        except KeyError:
            raise TransferError(f"{info_hash} was not added by this pair") from None

    def _hash(self, torrent_hash: str | None) -> str:
        if torrent_hash is not None:
            return torrent_hash.lower()
        if self.last_hash is None:
            raise TransferError("no transfer added yet: pass a torrent hash")
        return self.last_hash

    def _leecher_torrent(self, info_hash: str) -> qbittorrentapi.TorrentDictionary | None:
        return _find(self.leecher_client, info_hash)


def _complete(torrent: qbittorrentapi.TorrentDictionary) -> bool:
    """Complete as protocol.md defines it; ``progress`` alone can show 1.0 too early."""
    return int(torrent.amount_left) == 0 and str(torrent.state).endswith("UP")


def _find(client: qbittorrentapi.Client, info_hash: str) -> qbittorrentapi.TorrentDictionary | None:
    for torrent in client.torrents_info(torrent_hashes=info_hash):
        if str(torrent.hash).lower() == info_hash:
            return torrent
    return None


def _add(
    client: qbittorrentapi.Client,
    data: bytes,
    *,
    save_path: str,
    is_skip_checking: bool | None = None,
    download_limit: int | None = None,
) -> None:
    # No ``is_paused``/``is_stopped`` here; where it is given, qbittorrent-api sends both
    # fields (``paused`` for 4.x, ``stopped``, its 5.x name), so one call fits both versions.
    answer = client.torrents_add(
        torrent_files=data,
        save_path=save_path,
        is_skip_checking=is_skip_checking,
        download_limit=download_limit,
        use_auto_torrent_management=False,
    )
    if isinstance(answer, str) and answer.strip() != "Ok.":
        raise TransferError(f"qBittorrent refused the torrent: {answer!r}")


def _poll(
    client: qbittorrentapi.Client,
    info_hash: str,
    predicate: Callable[[qbittorrentapi.TorrentDictionary], bool],
    deadline: float,
    what: str,
) -> qbittorrentapi.TorrentDictionary:
    last = "torrent not listed"
    while True:
        torrent = _find(client, info_hash)
        if torrent is not None:
            if predicate(torrent):
                return torrent
            last = f"state={torrent.state}"
        if time.monotonic() >= deadline:
            raise TransferError(f"timed out waiting for {what} ({last})")
        time.sleep(0.05)
