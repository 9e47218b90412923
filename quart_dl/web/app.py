"""The app factory: wires settings, the hub and the qBittorrent instances into a Quart app.

Start-up (``before_serving``): open the database and create its schema, open the durable
event log (a new run: quart_dl/store/event_log.py), load what it knew, start the heartbeat
tick and each instance's poller. Shutdown (``after_serving``): end every
stream, stop the instances (poller and session) and the tick, close the database; nothing is left running.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from quart import Quart

from ..hub import Hub
from ..metrics import Metrics
from ..qbittorrent.instance import Instance
from ..qbittorrent.session import Session
from ..settings import Settings
from ..store.event_log import DurableEventLog
from ..store.store import close_database, open_database
from .access import install_access
from .actions import install_actions
from .api import bp as api_bp
from .auth import install_auth
from .cors import install_cors
from .errors import install_error_handlers
from .hosts import install_hosts
from .instance_api import bp as instance_api_bp
from .limits import install_limits
from .openapi import install_openapi
from .panel import bp as panel_bp
from .panel import install_headers
from .runtime import Runtime, runtime
from .sse import bp as sse_bp

log = logging.getLogger("quart_dl")


def create_app(
    settings: Settings,
    *,
    session: Session | None = None,
    sessions: Mapping[str, Session] | None = None,
) -> Quart:
    """A ready-to-serve app following every instance of ``settings.instances``.

    ``sessions`` replaces the qBittorrent sessions of the instances it names, ``session``
    the primary's (tests: ``FakeSession``); the others get real sessions.
    """
    app = Quart("quart_dl")
    # First: quart-schema replaces app.json, which the lines below configure.
    install_openapi(app)
    app.config["RESPONSE_TIMEOUT"] = 60  # streams lift it for themselves; see sse.py
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    metrics = Metrics()
    event_log = DurableEventLog(
        settings.replay_size,
        diff_events=settings.event_window_events,
        diff_seconds=settings.event_window_minutes * 60.0,
        lifecycle_seconds=settings.lifecycle_days * 86400.0,
        max_pending=settings.event_window_events,
    )
    hub = Hub(
        heartbeat=settings.heartbeat,
        queue_size=settings.queue_size,
        send_timeout=settings.send_timeout,
        replay_size=settings.replay_size,
        metrics=metrics,
        log=event_log,
    )
    metrics.gauges["sse_clients"] = lambda: hub.client_count
    given = dict(sessions or {})
    instances: dict[str, Instance] = {}
    for number, config in enumerate(settings.instances):
        # Each instance has its own session, poller (its own intervals) and status; they
        # share the hub (one event log, one fan-out) and the database.
        instance = Instance(
            config,
            hub=hub,
            metrics=metrics,
            session=given.get(config.id, session if number == 0 else None),
            sample_interval=settings.sample_interval,
            history_seconds=settings.history_minutes * 60.0,
        )
        instance.store.journal = event_log
        instances[instance.id] = instance
    app.extensions["quart_dl"] = Runtime(settings, hub, instances, metrics)

    app.register_blueprint(api_bp)
    app.register_blueprint(instance_api_bp)
    app.register_blueprint(sse_bp)
    app.register_blueprint(panel_bp)
    install_actions(app, settings)
    install_error_handlers(app)
    install_headers(app, settings.frame_ancestors, settings.cors_origins)
    install_hosts(app, settings)  # before CORS and auth: a foreign host gets nothing else
    install_cors(app, settings.cors_origins)
    install_auth(app, settings)
    install_access(app, settings)  # after auth: it reads which token the request holds
    install_limits(app, settings)

    @app.before_serving
    async def startup() -> None:
        if settings.database_url == "":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        await open_database(settings.resolved_database_url())
        await event_log.open()
        event_log.start()
        rt = runtime(app)
        rt.hub.start()
        for instance in rt.instances.values():
            await instance.start()

    @app.after_serving
    async def shutdown() -> None:
        rt = runtime(app)
        rt.hub.close_all()
        for instance in rt.instances.values():
            await instance.stop()
        await rt.hub.stop()
        await event_log.stop()
        await close_database()

    return app
