"""REST routes of one qBittorrent instance: ``/api/instances`` and ``/api/instances/<id>/...``.

Why routes of their own besides ``?instance=`` on the protocol-1 routes: an address that
names the instance in its path is what a client that follows one instance (a Home Assistant
device, a bookmark of the panel's detail view) keeps; and ``/api/instances`` is the one
place that lists what is configured. Each answer is read from that instance's published view
in the hub, as the streams are, and an unknown id is a 404 naming it (``Runtime.instance``).
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response, jsonify
from quart_schema import document_response, validate_querystring

from ..qbittorrent.instance import Instance
from ..torrents import PHASES
from .api import bad_hash, checked_hash, fresh, history_of, no_torrent, poller_state, torrent_list, torrent_of
from .openapi import (
    ErrorBody,
    History,
    InstanceHistoryQuery,
    InstanceList,
    InstanceStatusAnswer,
    InstanceSummary,
    InstanceTorrentRecord,
    InstanceTorrentsQuery,
    TorrentList,
)
from .runtime import runtime

bp = Blueprint("instance_api", __name__)


def summary(instance: Instance) -> dict[str, Any]:
    """One instance as ``/api/instances`` lists it: status, version, counts by phase, transfer."""
    view = runtime().hub.view(instance.id)
    counts = dict.fromkeys(PHASES, 0)
    for record in view.torrents.values():
        counts[record["phase"]] = counts.get(record["phase"], 0) + 1
    return {
        "id": instance.id,
        "name": view.name,
        "status": view.status,
        "version": view.status.get("version"),
        "counts": {"torrents": len(view.torrents), **counts},
        "transfer": view.transfer,
    }


@bp.get("/api/instances")
@document_response(InstanceList)
async def list_instances() -> Response:
    """Every configured qBittorrent in configured order (the first is the primary), and
    the total over them."""
    rt = runtime()
    instances = [summary(instance) for instance in rt.instances.values()]
    return jsonify(
        {
            "instances": instances,
            "total": {
                "torrents": sum(i["counts"]["torrents"] for i in instances),
                "transfer": rt.hub.total_transfer(),
            },
            "server_id": rt.hub.server_id,
        }
    )


@bp.get("/api/instances/<instance_id>")
@document_response(InstanceSummary)
@document_response(ErrorBody, 404)
async def get_instance(instance_id: str) -> Response:
    """One instance, as ``/api/instances`` lists it."""
    return jsonify(summary(runtime().instance(instance_id)))


@bp.get("/api/instances/<instance_id>/torrents")
@validate_querystring(InstanceTorrentsQuery)
@document_response(TorrentList)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
async def instance_torrents(instance_id: str, query_args: InstanceTorrentsQuery) -> Response:
    """One instance's torrents, filtered and sorted as ``/api/torrents``."""
    instance = runtime().instance(instance_id)
    await fresh(instance)
    return torrent_list([instance], query_args)


@bp.get("/api/instances/<instance_id>/torrents/<torrent_hash>")
@document_response(InstanceTorrentRecord)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
async def instance_torrent(instance_id: str, torrent_hash: str) -> Response:
    """One torrent of one instance."""
    instance = runtime().instance(instance_id)
    checked = checked_hash(torrent_hash)
    if checked is None:
        return bad_hash()
    await fresh(instance)
    return torrent_of(instance, checked) or no_torrent(checked)


@bp.get("/api/instances/<instance_id>/status")
@document_response(InstanceStatusAnswer)
@document_response(ErrorBody, 404)
async def instance_status(instance_id: str) -> Response:
    """One instance's status, transfer, poller and database state."""
    rt = runtime()
    instance = rt.instance(instance_id)
    view = rt.hub.view(instance.id)
    return jsonify(
        {
            "id": instance.id,
            "name": view.name,
            "status": view.status,
            "transfer": view.transfer,
            "poller": poller_state(instance),
            "database": {"ok": not instance.store.behind, "last_error": instance.store.last_error},
            "event_id": rt.hub.last_event_id,
        }
    )


@bp.get("/api/instances/<instance_id>/history")
@validate_querystring(InstanceHistoryQuery)
@document_response(History)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 503)
async def instance_history(instance_id: str, query_args: InstanceHistoryQuery) -> Response:
    """One instance's speed samples of the last ``minutes``, global or of one torrent."""
    return await history_of(runtime().instance(instance_id), query_args)
