"""REST routes: the same published views the streams serve, plus history and health.

Torrents and status are read from the hub's views (what the streams have published), so a
REST answer and the stream never disagree; history comes from the database.

Several instances: ``/api/torrents`` holds every instance's torrents, each record naming its
``instance``; the other routes mean the primary instance unless ``?instance=`` names another,
so protocol-1 clients see what they always saw. ``instance_api.py`` has the per-instance
routes (``/api/instances/<id>/...``) built from the helpers here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from quart import Blueprint, Response, jsonify
from quart_schema import document_response, validate_querystring

from .. import __version__
from ..hub.frames import PROTOCOL_VERSION
from ..metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ..qbittorrent.instance import Instance
from ..store.store import DB_ERRORS
from ..torrents import HASH_RE, Record
from .errors import api_error
from .openapi import (
    ErrorBody,
    Health,
    History,
    HistoryQuery,
    InstanceHistoryQuery,
    InstanceTorrentRecord,
    InstanceTorrentsQuery,
    Status,
    TorrentList,
    TorrentQuery,
    TorrentsQuery,
)
from .runtime import runtime

bp = Blueprint("api", __name__)

# Query strings are checked by their models (openapi.py) before a handler runs: a bad one
# is a 400 naming the parameter (errors.py), unknown parameters are ignored. An unknown
# ``instance`` is a 404 naming it (``Runtime.instance`` raises, errors.py answers).


async def fresh(*instances: Instance) -> None:
    """Make each instance's view at most one of its poll intervals old, all at once (one
    hung instance costs its bounded wait, not the sum)."""
    await asyncio.gather(*(i.poller.fresh(i.config.poll_interval) for i in instances))


def with_instance(record: Record, instance_id: str) -> Record:
    """A REST torrent record: the published record plus the id of the instance holding it."""
    return {**record, "instance": instance_id}


def torrent_list(instances: Iterable[Instance], query: InstanceTorrentsQuery) -> Response:
    """The torrents of ``instances`` filtered and sorted as ``query`` asks, as JSON."""
    phases, sort, order = query.phases(), query.sort, query.order
    hub = runtime().hub
    records = [
        with_instance(r, i.id)
        for i in instances
        for r in hub.view(i.id).torrents.values()
        if not phases or r["phase"] in phases
    ]
    # Torrents without a value (an unknown ETA) come last in either order.
    present = [r for r in records if r.get(sort) is not None]
    missing = [r for r in records if r.get(sort) is None]
    present.sort(key=lambda r: _sort_key(r[sort]), reverse=order == "desc")
    records = present + missing
    return jsonify({"torrents": records, "count": len(records), "event_id": hub.last_event_id})


def checked_hash(torrent_hash: str) -> str | None:
    """A path's hash in lower case, or None when it is not 40 or 64 hexadecimal characters."""
    torrent_hash = torrent_hash.lower()
    return torrent_hash if HASH_RE.match(torrent_hash) else None


def bad_hash() -> Response:
    """The answer to a hash ``checked_hash`` refused."""
    return api_error(400, "invalid_hash", "the hash must be 40 or 64 hexadecimal characters", "hash")


def torrent_of(instance: Instance, torrent_hash: str) -> Response | None:
    """One instance's record of a torrent as JSON, or None when it holds no such torrent."""
    record = runtime().hub.view(instance.id).torrents.get(torrent_hash)
    return None if record is None else jsonify(with_instance(record, instance.id))


def no_torrent(torrent_hash: str) -> Response:
    """The 404 of a hash no instance asked about holds."""
    return api_error(404, "not_found", f"no torrent with hash {torrent_hash}")


@bp.get("/api/torrents")
@validate_querystring(TorrentsQuery)
@document_response(TorrentList)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
async def list_torrents(query_args: TorrentsQuery) -> Response:
    """Every instance's torrents (or one instance's), optionally filtered by phase and sorted
    by any field; each record names its ``instance``."""
    rt = runtime()
    if query_args.instance is not None:
        instances = [rt.instance(query_args.instance)]
    else:
        instances = list(rt.instances.values())
    await fresh(*instances)
    return torrent_list(instances, query_args)


def _sort_key(value: Any) -> tuple[int, Any]:
    """Keep mixed types from raising: numbers, then text (case-insensitive)."""
    if isinstance(value, str):
        return (1, value.casefold())
    if isinstance(value, list):
        return (1, ",".join(map(str, value)).casefold())
    return (0, value)


@bp.get("/api/torrents/<torrent_hash>")
@validate_querystring(TorrentQuery)
@document_response(InstanceTorrentRecord)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
async def get_torrent(torrent_hash: str, query_args: TorrentQuery) -> Response:
    """One torrent's record: of ``instance``, else the primary's, else the first instance's
    holding that hash (the same hash in two instances is two torrents)."""
    checked = checked_hash(torrent_hash)
    if checked is None:
        return bad_hash()
    rt = runtime()
    if query_args.instance is not None:
        candidates = [rt.instance(query_args.instance)]
    else:
        candidates = list(rt.instances.values())  # the primary first
    await fresh(*candidates)
    for instance in candidates:
        found = torrent_of(instance, checked)
        if found is not None:
            return found
    return no_torrent(checked)


@bp.get("/api/status")
@document_response(Status)
async def status() -> Response:
    """The primary instance's poller and the server's state (protocol 1), plus every
    instance's status and transfer and their total."""
    rt = runtime()
    instance = rt.primary
    hub = rt.hub
    return jsonify(
        {
            "status": hub.status,
            "transfer": hub.transfer,
            "poller": poller_state(instance),
            "database": {"ok": not instance.store.behind, "last_error": instance.store.last_error},
            "clients": hub.client_count,
            "event_id": hub.last_event_id,
            "epoch": hub.epoch,
            "heartbeat": rt.settings.heartbeat,
            "version": __version__,
            "protocol": PROTOCOL_VERSION,
            "server_id": hub.server_id,
            "instances": {
                view.instance_id: {"name": view.name, "status": view.status, "transfer": view.transfer}
                for view in hub.views.values()
            },
            "total_transfer": hub.total_transfer(),
        }
    )


def poller_state(instance: Instance) -> dict[str, Any]:
    """An instance's poller as ``/api/status`` shows it."""
    poller = instance.poller
    return {
        "interval": poller.interval,
        "errors": poller.errors,
        "last_error": poller.last_error,
        "last_duration": poller.last_duration,
    }


async def history_of(instance: Instance, query: InstanceHistoryQuery) -> Response:
    """An instance's speed samples as ``query`` asks, or a 503 when the database cannot say."""
    try:
        samples = await instance.store.history(time.time() - query.minutes * 60, query.hash)
    except DB_ERRORS:
        return api_error(503, "database_unavailable", "the history database cannot be read right now")
    return jsonify({"samples": samples})


@bp.get("/api/history")
@validate_querystring(HistoryQuery)
@document_response(History)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 503)
async def history(query_args: HistoryQuery) -> Response:
    """Speed samples of the last ``minutes`` (default 60) of one instance (default the
    primary), global or of one torrent."""
    return await history_of(runtime().instance(query_args.instance), query_args)


@bp.get("/healthz")
@document_response(Health)
async def healthz() -> Response:
    """Liveness: the server answers (qBittorrent's state is in /api/status)."""
    return jsonify({"ok": True})


@bp.get("/metrics")
async def metrics() -> Response:
    """Prometheus text format (quart_dl.metrics: prometheus_client, one registry per app)."""
    return Response(runtime().metrics.render(), content_type=METRICS_CONTENT_TYPE)
