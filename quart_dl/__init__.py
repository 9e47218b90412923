"""quart-dl: a live download panel for qBittorrent, streamed over Server-Sent Events.

The public surface is small: ``create_app`` and ``Settings`` for embedding, the ``quart-dl``
command for everything else. The rest are implementation modules.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Settings", "__version__", "create_app", "load_settings"]


def __getattr__(name: str) -> object:
    # Lazy, so that ``quart_dl.lab`` and the CLI's error path import nothing heavy.
    if name == "create_app":
        from .web.app import create_app

        return create_app
    if name in ("Settings", "load_settings"):
        from . import settings

        return getattr(settings, name)
    raise AttributeError(name)
