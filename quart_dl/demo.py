"""``quart-dl demo``: the embedded default for a first run.

Starts two local qbittorrent-nox daemons on loopback (nothing leaves the machine: no DHT, no
tracker, no port forwarding), has one seed sample files to the other at a throttled rate,
and serves the panel against the downloader. Everything lives under ``DATA_DIR/demo`` and is
started fresh on every run, so the demo never touches a real qBittorrent or database.

The daemons and the transfer come from :mod:`quart_dl.lab` (test and demo scaffolding);
making the sample torrents needs ``torf``, from the ``demo`` extra. The service never
imports this module: ``quart-dl demo`` does, and says how to install the extra when
``torf`` is missing.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sys
import threading
from dataclasses import replace

from .lab.qbittorrent_nox import DaemonError, find_qbittorrent_nox
from .lab.transfer import TransferPair
from .settings import Secret, Settings
from .web.auth import is_loopback

log = logging.getLogger("quart_dl.demo")

MiB = 1024 * 1024

#: (file name, size, seconds it should take; 0 = at once). The first takes ``minutes``.
SAMPLES = (
    ("debian-12-netinst.iso", 48 * MiB, None),
    ("podcast-episode-42.mp3", 6 * MiB, 90),
    ("holiday-photos.zip", 1 * MiB, 0),
)


def run_demo(settings: Settings, minutes: float = 4.0) -> int:
    """Run the demo until Ctrl-C; returns the exit status."""
    try:
        find_qbittorrent_nox()
    except DaemonError as exc:
        print(f"quart-dl: error: {exc}", file=sys.stderr)
        return 1
    base = settings.data_dir / "demo"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    pair = TransferPair(base / "qbittorrent")
    try:
        pair.start()
    except DaemonError as exc:
        print(f"quart-dl: error: cannot start qbittorrent-nox: {exc}", file=sys.stderr)
        return 1
    demo_settings = replace(
        settings,
        qbt_url=pair.leecher.url,
        qbt_username=pair.leecher.username,
        qbt_password=Secret(pair.leecher.password),
        qbt_password_file=None,
        database_url=f"sqlite://{base / 'quart-dl.sqlite3'}",
        # The demo's daemons are its own, started fresh: on loopback without a token a
        # newcomer may act on them from the panel (a real server stays read-only so).
        open_actions=settings.open_actions or (not settings.access_token and is_loopback(settings.host)),
    )
    feeder = threading.Thread(target=_add_samples, args=(pair, minutes), daemon=True)
    feeder.start()
    print(
        f"quart-dl demo: open http://{settings.bind}{settings.root_path}/ in a browser (Ctrl-C to stop)",
        file=sys.stderr,
        flush=True,
    )
    from .server.serve import serve

    try:
        asyncio.run(serve(demo_settings))
    except OSError as exc:
        print(f"quart-dl: error: cannot listen on {settings.bind}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        pair.stop()
    return 0


def _add_samples(pair: TransferPair, minutes: float) -> None:
    """Add the sample transfers (each takes a couple of seconds to connect)."""
    for name, size, seconds in SAMPLES:
        duration = minutes * 60 if seconds is None else seconds
        rate = int(size / duration) if duration else 0
        try:
            pair.add_transfer(name, size=size, rate=rate, timeout=60)
            speed = f" at {rate // 1024} KiB/s" if rate else ""
            log.info("demo: added %s (%d MiB%s)", name, size // MiB, speed)
        except Exception as exc:  # noqa: BLE001 - a demo sample failing must not stop the server
            log.warning("demo: could not add %s: %s", name, exc)
