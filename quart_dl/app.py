"""The app factory: wires settings, store, hub and poller into a Quart app.

Start-up (``before_serving``): open the database and create its schema, load what it knew,
start the heartbeat tick and the poller. Shutdown (``after_serving``): end every stream, stop
the poller and the tick, close the database; nothing is left running.
"""

from __future__ import annotations

import logging

from quart import Quart

from .api import bp as api_bp
from .auth import install_auth
from .cors import install_cors
from .errors import install_error_handlers
from .hosts import install_hosts
from .hub import Hub
from .limits import install_limits
from .metrics import Metrics
from .openapi import install_openapi
from .poller import Poller
from .qbt_client import QbtClient
from .runtime import Runtime, runtime
from .settings import Settings
from .sse import bp as sse_bp
from .store import Store, close_database, open_database
from .web import bp as panel_bp
from .web import install_headers

log = logging.getLogger("quart_dl")


def create_app(settings: Settings, *, client: QbtClient | None = None) -> Quart:
    """A ready-to-serve app; ``client`` replaces the qBittorrent client (tests)."""
    app = Quart("quart_dl")
    # First: quart-schema replaces app.json, which the lines below configure.
    install_openapi(app)
    app.config["RESPONSE_TIMEOUT"] = 60  # streams lift it for themselves; see sse.py
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    metrics = Metrics()
    hub = Hub(
        heartbeat=settings.heartbeat,
        queue_size=settings.queue_size,
        send_timeout=settings.send_timeout,
        replay_size=settings.replay_size,
        metrics=metrics,
    )
    metrics.gauges["sse_clients"] = lambda: hub.client_count
    store = Store("default", settings.qbt_url)
    if client is None:
        client = QbtClient(settings.qbt_url, settings.qbt_username, settings.qbt_password.reveal())
    poller = Poller(
        client=client,
        hub=hub,
        store=store,
        metrics=metrics,
        poll_interval=settings.poll_interval,
        idle_poll_interval=settings.idle_poll_interval,
        sample_interval=settings.sample_interval,
        history_seconds=settings.history_minutes * 60.0,
    )
    app.extensions["quart_dl"] = Runtime(settings, hub, store, poller, metrics)

    app.register_blueprint(api_bp)
    app.register_blueprint(sse_bp)
    app.register_blueprint(panel_bp)
    install_error_handlers(app)
    install_headers(app, settings.frame_ancestors, settings.cors_origins)
    install_hosts(app, settings)  # before CORS and auth: a foreign host gets nothing else
    install_cors(app, settings.cors_origins)
    install_auth(app, settings)
    install_limits(app, settings)

    @app.before_serving
    async def startup() -> None:
        if settings.database_url == "":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await open_database(settings.resolved_database_url())
        rt = runtime(app)
        rt.hub.start()
        await rt.poller.start()

    @app.after_serving
    async def shutdown() -> None:
        rt = runtime(app)
        rt.hub.close_all()
        await rt.poller.stop()
        await rt.hub.stop()
        await close_database()

    return app
