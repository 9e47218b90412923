"""Running the app under Hypercorn from code.

From code rather than the ``hypercorn`` command, so that: the listen backlog is large enough
for a reconnect storm (Hypercorn's default of 100 refuses thousands of clients reconnecting at
once); no read timeout is set (it would cut live streams, whose clients never send); and on
SIGTERM/SIGINT every stream is ended *before* Hypercorn's graceful shutdown starts waiting for
connections, so shutdown takes milliseconds instead of the graceful timeout.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from quart import Quart

from .app import create_app
from .auth import open_bind_warning
from .limits import MAX_HEADER_BYTES
from .runtime import runtime
from .settings import Settings

log = logging.getLogger("quart_dl")


def hypercorn_config(settings: Settings) -> Config:
    """Hypercorn's configuration for quart-dl."""
    config = Config()
    config.bind = [settings.bind]
    config.backlog = settings.backlog
    config.root_path = settings.root_path
    config.graceful_timeout = 1.5
    config.read_timeout = None
    # Hypercorn's default, made explicit: it runs from a connection's start until its whole
    # request head has arrived (trickled bytes do not reset it), so a slow-loris client is
    # closed after 5 s while an open stream is never timed (see SECURITY.md).
    config.keep_alive_timeout = 5.0
    # Request line and headers: about 16 KiB (a bigger block is refused with 431 before
    # the app sees it); the bodies this API takes are capped by MAX_CONTENT_LENGTH.
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.h2_max_header_list_size = MAX_HEADER_BYTES
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def serve(settings: Settings, stop: asyncio.Event | None = None, app: Quart | None = None) -> None:
    """Serve until SIGTERM/SIGINT (or ``stop`` is set); ``app`` defaults to ``create_app``."""
    app = app or create_app(settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - not on the main thread
            pass

    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("shutting down: closing %d open streams", runtime(app).hub.client_count)
        runtime(app).hub.close_all()

    log.info(
        "quart-dl listening on http://%s%s/ (qBittorrent at %s, heartbeat %g s)",
        settings.bind,
        settings.root_path,
        settings.qbt_url,
        settings.heartbeat,
    )
    warning = open_bind_warning(settings)
    if warning:
        log.warning(warning)
    try:
        await hypercorn_serve(app, hypercorn_config(settings), shutdown_trigger=shutdown_trigger)
    except OSError:
        # Hypercorn binds after the app's startup ran and, when binding fails, never runs
        # its shutdown: do it here, or the poller and the database threads keep the
        # process alive after the error was printed.
        await app.shutdown()
        raise
    log.info("stopped")
