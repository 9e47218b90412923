"""Running the app under Hypercorn from code, behind the socket layer (``socket_layer.py``).

From code rather than the ``hypercorn`` command, so that: the listen backlog is large enough
for a reconnect storm (Hypercorn's default of 100 refuses thousands of clients reconnecting at
once); no read timeout is set (it would cut live streams, whose clients never send); event
streams are held by ``socket_layer.py`` rather than by Hypercorn (it accepts every connection and
hands all but stream requests to Hypercorn's own connection handler); and on SIGTERM/SIGINT
every stream is ended *before* the graceful shutdown starts waiting for connections, so
shutdown takes milliseconds instead of the graceful timeout.

The loop below is Hypercorn's ``worker_serve`` for plain-HTTP sockets, with our accept
protocol in place of its stream-reader callback. What it uses of Hypercorn's internals is in
``hypercorn_internals.py``, checked at start-up: if a newer Hypercorn changed them, one
warning is logged and the app is served through Hypercorn's public ``serve`` instead (every
stream on Quart's path, and none of the socket layer's guards: framing checks, the
per-address connection cap), rather than failing.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from quart import Quart

from ..settings import Settings
from ..web.app import create_app
from ..web.auth import open_bind_warning
from ..web.limits import MAX_HEADER_BYTES, connection_cap
from ..web.runtime import runtime

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

    config = hypercorn_config(settings)
    problem = _hypercorn_problem()
    if problem is not None:
        log.warning(
            "this Hypercorn's internals are not the ones quart-dl was built against (%s): serving "
            "through Hypercorn's public serve, every event stream on the slower Quart path",
            problem,
        )
        await _serve_plainly(app, settings, config, stop)
        return
    # Imported here: with a Hypercorn whose internals moved, importing them fails (above).
    from .hypercorn_internals import ASGIWrapper, WorkerContext
    from .socket_layer import FrontDoor

    await app.startup()
    try:
        sockets = config.create_sockets()
    except OSError:
        # Binding failed after the app's startup ran: shut it down, or the poller and the
        # database threads keep the process alive after the error was printed.
        await app.shutdown()
        raise
    door = FrontDoor(
        app,
        ASGIWrapper(app),
        config,
        WorkerContext(None),
        metrics=runtime(app).metrics,
        send_timeout=settings.send_timeout,
        max_connections_per_client=connection_cap(settings),
    )
    servers = [
        await loop.create_server(door.protocol, sock=sock, backlog=config.backlog)
        for sock in sockets.insecure_sockets
    ]
    _listening(settings)
    try:
        await stop.wait()
    finally:
        log.info("shutting down: closing %d open streams", runtime(app).hub.client_count)
        runtime(app).hub.close_all()
        door.close_pending()
        for server in servers:
            server.close()
        # Idle keep-alive connections close on this; busy ones get the graceful timeout.
        await door.context.terminated.set()
        if door.tasks:
            _, late = await asyncio.wait(set(door.tasks), timeout=config.graceful_timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        await app.shutdown()
    log.info("stopped")


def _hypercorn_problem() -> str | None:
    """What keeps the socket layer from using this Hypercorn (``hypercorn_internals``), or None."""
    try:
        from . import hypercorn_internals
    except ImportError as error:  # a module or name it imports is gone
        return f"ImportError: {error}"
    return hypercorn_internals.contract_problem()


def _listening(settings: Settings) -> None:
    instances = settings.instances
    if len(instances) == 1:
        following = f"qBittorrent at {instances[0].url}"
    else:
        following = "qBittorrent " + ", ".join(f"{i.id} at {i.url}" for i in instances)
    log.info(
        "quart-dl listening on http://%s%s/ (%s, heartbeat %g s)",
        settings.bind,
        settings.root_path,
        following,
        settings.heartbeat,
    )
    warning = open_bind_warning(settings)
    if warning:
        log.warning(warning)


async def _serve_plainly(app: Quart, settings: Settings, config: Config, stop: asyncio.Event) -> None:
    """The fallback: Hypercorn's public ``serve`` (its lifespan runs the app's startup)."""

    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("shutting down: closing %d open streams", runtime(app).hub.client_count)
        runtime(app).hub.close_all()

    _listening(settings)
    await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger)
    log.info("stopped")
