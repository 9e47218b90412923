"""Shared fixtures: a real qbittorrent-nox pair and real quart-dl server processes.

Unit tests use small fakes (tests/fakes.py); everything named ``stack`` here is real:
qbittorrent-nox processes on loopback with a throttled transfer between them, and
``python -m quart_dl serve`` as a child process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from quart_dl.testing import ServerProcess
from quart_dl.transfer import TransferPair


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferPair]:
    """A seeder and a leecher qbittorrent-nox, one pair per test module."""
    base = tmp_path_factory.mktemp("qbt")
    with TransferPair(base) as running:
        yield running


@pytest.fixture
def make_server(pair: TransferPair, tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start quart-dl processes following the pair's leecher; all stopped at the end."""
    started: list[ServerProcess] = []

    def make(**kwargs: object) -> ServerProcess:
        options: dict[str, object] = {
            "qbt_url": pair.leecher.url,
            "qbt_username": pair.leecher.username,
            "qbt_password": pair.leecher.password,
        }
        options.update(kwargs)
        server = ServerProcess(tmp_path / f"server{len(started)}", **options)  # type: ignore[arg-type]
        started.append(server)
        server.start()
        return server

    yield make
    for server in started:
        server.stop()
