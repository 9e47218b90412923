"""REST routes: the same published view the streams serve, plus history and health.

Torrents and status are read from the hub's view (what the streams have published), so a
REST answer and the stream never disagree; history comes from the database.
"""

from __future__ import annotations

import time
from typing import Any

from quart import Blueprint, Response, jsonify
from quart_schema import document_response, validate_querystring

from .. import __version__
from ..hub.frames import PROTOCOL_VERSION
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..store.store import DB_ERRORS
from ..torrents import HASH_RE
from .errors import api_error
from .openapi import (
    ErrorBody,
    Health,
    History,
    HistoryQuery,
    Status,
    TorrentList,
    TorrentRecord,
    TorrentsQuery,
)
from .runtime import runtime

bp = Blueprint("api", __name__)

# Query strings are checked by their models (openapi.py) before a handler runs: a bad one
# is a 400 naming the parameter (errors.py), unknown parameters are ignored.


@bp.get("/api/torrents")
@validate_querystring(TorrentsQuery)
@document_response(TorrentList)
@document_response(ErrorBody, 400)
async def list_torrents(query_args: TorrentsQuery) -> Response:
    """All torrents, optionally filtered by phase and sorted by any field."""
    phases, sort, order = query_args.phases(), query_args.sort, query_args.order
    rt = runtime()
    await rt.default.poller.fresh(rt.settings.poll_interval)
    hub = rt.hub
    records = [r for r in hub.torrents.values() if not phases or r["phase"] in phases]
    # Torrents without a value (an unknown ETA) come last in either order.
    present = [r for r in records if r.get(sort) is not None]
    missing = [r for r in records if r.get(sort) is None]
    present.sort(key=lambda r: _sort_key(r[sort]), reverse=order == "desc")
    records = present + missing
    return jsonify({"torrents": records, "count": len(records), "event_id": hub.last_event_id})


def _sort_key(value: Any) -> tuple[int, Any]:
    """Keep mixed types from raising: numbers, then text (case-insensitive)."""
    if isinstance(value, str):
        return (1, value.casefold())
    if isinstance(value, list):
        return (1, ",".join(map(str, value)).casefold())
    return (0, value)


@bp.get("/api/torrents/<torrent_hash>")
@document_response(TorrentRecord)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
async def get_torrent(torrent_hash: str) -> Response:
    """One torrent's record."""
    torrent_hash = torrent_hash.lower()
    if not HASH_RE.match(torrent_hash):
        return api_error(400, "invalid_hash", "the hash must be 40 or 64 hexadecimal characters", "hash")
    rt = runtime()
    await rt.default.poller.fresh(rt.settings.poll_interval)
    record = rt.hub.torrents.get(torrent_hash)
    if record is None:
        return api_error(404, "not_found", f"no torrent with hash {torrent_hash}")
    return jsonify(record)


@bp.get("/api/status")
@document_response(Status)
async def status() -> Response:
    """The poller's and the server's state."""
    rt = runtime()
    instance = rt.default
    return jsonify(
        {
            "status": rt.hub.status,
            "transfer": rt.hub.transfer,
            "poller": {
                "interval": instance.poller.interval,
                "errors": instance.poller.errors,
                "last_error": instance.poller.last_error,
                "last_duration": instance.poller.last_duration,
            },
            "database": {"ok": not instance.store.behind, "last_error": instance.store.last_error},
            "clients": rt.hub.client_count,
            "event_id": rt.hub.last_event_id,
            "epoch": rt.hub.epoch,
            "heartbeat": rt.settings.heartbeat,
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
        }
    )


@bp.get("/api/history")
@validate_querystring(HistoryQuery)
@document_response(History)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 503)
async def history(query_args: HistoryQuery) -> Response:
    """Speed samples of the last ``minutes`` (default 60), global or of one torrent."""
    minutes, torrent_hash = query_args.minutes, query_args.hash
    try:
        samples = await runtime().default.store.history(time.time() - minutes * 60, torrent_hash)
    except DB_ERRORS:
        return api_error(503, "database_unavailable", "the history database cannot be read right now")
    return jsonify({"samples": samples})


@bp.get("/healthz")
@document_response(Health)
async def healthz() -> Response:
    """Liveness: the server answers (qBittorrent's state is in /api/status)."""
    return jsonify({"ok": True})


@bp.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format (quart_dl.metrics: prometheus_client, one registry per app)."""
    return Response(runtime().metrics.render(), content_type=METRICS_CONTENT_TYPE)
