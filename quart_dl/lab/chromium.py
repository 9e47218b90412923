"""The browser the end-to-end suite and the latency bench drive (Playwright, sync API).

Debian's Chromium, because Playwright cannot download its own here, and the flags it needs
on a machine with no network beyond loopback: without the background-networking ones it
keeps trying Google's hosts, and as root it needs ``--no-sandbox``.
"""

from __future__ import annotations

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
