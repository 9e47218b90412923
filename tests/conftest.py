"""Shared fixtures: a real qbittorrent-nox pair and real quart-dl server processes.

Unit tests use small fakes (tests/fakes.py); everything named ``stack`` here is real:
qbittorrent-nox processes on loopback with a throttled transfer between them, and
``python -m quart_dl serve`` as a child process.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quart_dl.lab.server_process import ServerFactory
from quart_dl.lab.transfer import TransferPair

if importlib.util.find_spec("bench") is None:
    # For the tests of the benchmark's own logic (test_bench_*.py). Under tox the checkout is
    # not on sys.path (the tests import the installed wheel's quart_dl), and the bench is not
    # packaged: load it, and only it, from where it lives.
    _bench = Path(__file__).resolve().parent.parent / "bench"
    _spec = importlib.util.spec_from_file_location(
        "bench", _bench / "__init__.py", submodule_search_locations=[str(_bench)]
    )
    assert _spec is not None
    assert _spec.loader is not None
    sys.modules["bench"] = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(sys.modules["bench"])


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransferPair]:
    """A seeder and a leecher qbittorrent-nox, one pair per test module."""
    base = tmp_path_factory.mktemp("qbt")
    with TransferPair(base) as running:
        yield running


@pytest.fixture
def make_server(pair: TransferPair, tmp_path: Path) -> Iterator[ServerFactory]:
    """Start quart-dl processes following the pair's leecher; all stopped at the end."""
    factory = ServerFactory(tmp_path, pair.leecher.url, pair.leecher.username, pair.leecher.password)
    yield factory
    factory.close()
