"""The two SSE routes, and the stream loop every subscriber runs.

How a stream ends on either carrier (client closed, overflow, send timeout, shutdown, ...),
who notices, what is written and logged: docs/streams.md, the one place that tells it. A
stream never ends on a timer: ``response.timeout = None`` lifts Quart's 60 s
``RESPONSE_TIMEOUT``, and the heartbeat keeps proxies and browsers from calling it idle.

Two ways to carry a stream, one set of rules. The routes below decide everything (auth,
CORS, caps, validation, 404/503: the app's hooks run as for any request). Then:

- on the real server, the socket layer put a ``Takeover`` in the request's ASGI extensions
  (``server/takeover.py``, the contract): on a fresh connection, and on a keep-alive one it
  took back from Hypercorn at a request boundary. The route leaves a ``StreamPlan`` there and
  answers an empty 200, and the socket layer writes the head and opening itself and hands the
  transport to the hub (a ``TransportSink``), which writes every later event straight to it
  (the fast path, carrier ``socket`` in /metrics);
- otherwise (Quart's test client, a stream pipelined behind other requests, the fallback when
  Hypercorn's internals changed) the response body is the ``_stream`` generator below, fed by
  a ``QueueSink`` (carrier ``quart``).

Both log the same lines and end for the same reasons. ``/metrics`` counts streams by carrier
(``sse_streams_opened_total`` and the gauge ``sse_streams``), so an operator sees which path
real clients get.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, TypedDict

from quart import Blueprint, Response, request
from quart.blueprints import BlueprintSetupState
from quart_schema import document_response, validate_querystring

from ..hub import CLIENT_CLOSED, Hub, QueueSink, Sink, TransportSink
from ..hub.frames import retry_frame
from ..hub.log import Resume
from ..server.takeover import TAKEOVER, Takeover
from ..torrents import HASH_RE
from .errors import UnknownInstance, api_error
from .limits import Ticket, admit_stream
from .openapi import ErrorBody, StreamQuery
from .runtime import runtime

if TYPE_CHECKING:
    from asyncio import Transport

log = logging.getLogger("quart_dl.web.sse")

bp = Blueprint("sse", __name__)

__all__ = ["CARRIER_QUART", "CARRIER_SOCKET", "TAKEOVER", "StreamPlan", "Takeover", "bp"]

#: The ``carrier`` label of the stream series in /metrics: the socket layer's fast path
#: (a ``TransportSink``), or Quart's path (a ``QueueSink``).
CARRIER_SOCKET = "socket"
CARRIER_QUART = "quart"

STREAM_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    # No Content-Encoding, ever: a compressing proxy holds events back until the stream ends.
    "Content-Encoding": "identity",
}


@bp.get("/api/events")
@validate_querystring(StreamQuery)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 503)
async def all_events(query_args: StreamQuery) -> Response:
    """Every torrent, status and transfer: the panel's dashboard and Home Assistant.

    Protocol 1 (default) follows one instance, the primary unless ``instance`` names
    another; ``v=2`` follows every instance (or the one named)."""
    return await _stream_response(None, query_args.instance, query_args)


@bp.get("/api/instances/<instance_id>/events")
@validate_querystring(StreamQuery)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 503)
async def instance_events(instance_id: str, query_args: StreamQuery) -> Response:
    """One instance's stream: ``/api/events?instance=<id>``."""
    return await _stream_response(None, instance_id, query_args)


@bp.get("/api/torrents/<torrent_hash>/events")
@validate_querystring(StreamQuery)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 503)
async def torrent_events(torrent_hash: str, query_args: StreamQuery) -> Response:
    """One torrent, for a detail view (of the primary instance unless ``instance`` names one)."""
    return await _torrent_stream(torrent_hash, query_args.instance, query_args)


@bp.get("/api/instances/<instance_id>/torrents/<torrent_hash>/events")
@validate_querystring(StreamQuery)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 503)
async def instance_torrent_events(instance_id: str, torrent_hash: str, query_args: StreamQuery) -> Response:
    """One torrent of one instance."""
    return await _torrent_stream(torrent_hash, instance_id, query_args)


async def _torrent_stream(torrent_hash: str, instance: str | None, query: StreamQuery) -> Response:
    torrent_hash = torrent_hash.lower()
    if not HASH_RE.match(torrent_hash):
        return api_error(400, "invalid_hash", "the hash must be 40 or 64 hexadecimal characters", "hash")
    hub = runtime().hub
    instance = instance if instance is not None else hub.primary
    if instance not in hub.views:
        raise UnknownInstance(instance)
    if query.v != 1:
        return api_error(400, "invalid_parameter", "a torrent's stream speaks protocol 1 only", "v")
    if torrent_hash not in hub.view(instance).torrents:
        return api_error(404, "not_found", f"no torrent with hash {torrent_hash} in instance {instance}")
    return await _stream_response(torrent_hash, instance, query)


@bp.record_once
def _count_streams_by_carrier(state: BlueprintSetupState) -> None:
    """The ``sse_streams{carrier}`` gauge, read when scraped (the app's runtime is set up first)."""
    rt = state.app.extensions["quart_dl"]
    hub = rt.hub

    def by_carrier() -> dict[str, float]:
        counts = {CARRIER_SOCKET: 0.0, CARRIER_QUART: 0.0}
        for sink in hub.subscribers():
            counts[CARRIER_SOCKET if isinstance(sink, TransportSink) else CARRIER_QUART] += 1
        return counts

    rt.metrics.labelled_gauges["sse_streams"] = by_carrier


async def _stream_response(torrent_hash: str | None, instance: str | None, query: StreamQuery) -> Response:
    rt = runtime()
    if instance is not None and instance not in rt.hub.views:
        raise UnknownInstance(instance)
    v2 = query.v == 2
    if rt.hub.closing:
        response = api_error(503, "shutting_down", "the server is restarting; retry shortly")
        response.headers["Retry-After"] = "1"
        return response
    last_event_id = request.headers.get("Last-Event-ID") or query.lastEventId
    remote = request.remote_addr or "-"
    # Read from the durable log what memory no longer holds (an id from before a restart),
    # here, before subscribing: ``subscribe`` itself must not await (hub.py).
    resume = await rt.hub.resume(last_event_id, v2, instance)
    ticket = admit_stream(remote)
    if isinstance(ticket, Response):
        return ticket
    plan = StreamPlan(
        rt.hub,
        rt.settings.retry_ms,
        torrent_hash,
        last_event_id,
        remote,
        query.heartbeat == "event",
        ticket,
        instance=instance,
        v2=v2,
    )
    plan.resume = resume
    takeover = request.scope.get("extensions", {}).get(TAKEOVER)
    if isinstance(takeover, Takeover):
        takeover.plan = plan
        # The socket layer replaces this empty body with the stream (after the app's hooks
        # have added their headers to it).
        return Response(b"", status=200, headers=STREAM_HEADERS)
    body = _stream(plan)
    ticket.bind(body)
    response = Response(body, status=200, headers=STREAM_HEADERS)
    response.timeout = None
    return response


class _Subscription(TypedDict):
    remote: str
    torrent_hash: str | None
    last_event_id: str | None
    heartbeat_as_event: bool
    resume: Resume | None
    instance: str | None
    v2: bool


class StreamPlan:
    """An admitted stream, as the route decided it: what ``open`` subscribes with."""

    __slots__ = (
        "heartbeat_as_event",
        "hub",
        "instance",
        "last_event_id",
        "remote",
        "resume",
        "retry_ms",
        "ticket",
        "torrent_hash",
        "v2",
    )

    def __init__(
        self,
        hub: Hub,
        retry_ms: int,
        torrent_hash: str | None,
        last_event_id: str | None,
        remote: str,
        heartbeat_as_event: bool,
        ticket: Ticket,
        *,
        instance: str | None = None,
        v2: bool = False,
    ) -> None:
        self.hub = hub
        self.instance = instance
        self.v2 = v2
        self.retry_ms = retry_ms
        self.torrent_hash = torrent_hash
        self.last_event_id = last_event_id
        self.remote = remote
        self.heartbeat_as_event = heartbeat_as_event
        self.ticket = ticket
        #: What the durable log read for ``last_event_id`` (``Hub.resume``), if anything.
        self.resume: Resume | None = None

    def open_transport(self, transport: Transport, chunked: bool) -> tuple[TransportSink, bytes]:
        """Subscribe a stream the socket layer holds; the opening to write first."""
        sink, opening, how = self.hub.subscribe(**self._subscription(), transport=transport, chunked=chunked)
        self.hub.metrics.inc("sse_streams_opened_total", carrier=CARRIER_SOCKET)
        return sink, self._opened(sink, opening, how)

    def open_queue(self) -> tuple[QueueSink, bytes]:
        """Subscribe a stream on Quart's path; the opening to send first."""
        sink, opening, how = self.hub.subscribe(**self._subscription())
        self.hub.metrics.inc("sse_streams_opened_total", carrier=CARRIER_QUART)
        return sink, self._opened(sink, opening, how)

    def _subscription(self) -> _Subscription:
        return {
            "remote": self.remote,
            "torrent_hash": self.torrent_hash,
            "last_event_id": self.last_event_id,
            "heartbeat_as_event": self.heartbeat_as_event,
            "resume": self.resume,
            "instance": self.instance,
            "v2": self.v2,
        }

    def _opened(self, sink: Sink, opening: list[bytes], how: str) -> bytes:
        scope = f"torrent {self.torrent_hash[:12]}" if self.torrent_hash else "all torrents"
        if self.instance is not None:
            scope = f"{scope} of {self.instance}"
        if self.v2:
            scope = f"{scope}, protocol 2"
        carrier = CARRIER_SOCKET if isinstance(sink, TransportSink) else CARRIER_QUART
        log.info(
            "%s connected from %s (%s, opened with %s, carried by %s)",
            sink.client_id,
            self.remote,
            scope,
            how,
            carrier,
        )
        return retry_frame(self.retry_ms) + b"".join(opening)

    def release(self) -> None:
        """The stream was never opened: give its place back."""
        self.ticket.release()

    def close(self, sub: Sink, reason: str) -> None:
        """The stream ended: give its place back, forget it, log why (the hub's reason wins)."""
        reason = sub.close_reason or reason
        self.ticket.release()
        duration = self.hub.unsubscribe(sub, reason)
        log.info("%s disconnected after %.1f s: %s", sub.client_id, duration, reason)


async def _stream(plan: StreamPlan) -> AsyncIterator[bytes]:
    # Subscribing happens here, in the body, not in the handler: a body that never starts
    # (the client left first) then never leaves a subscriber behind.
    hub = plan.hub
    sub, opening = plan.open_queue()
    sub.task = asyncio.current_task()
    reason = CLIENT_CLOSED
    try:
        sub.sending_since = time.monotonic()
        yield opening
        sub.sending_since = None
        sub.last_sent = time.monotonic()
        while True:
            await sub.wake.wait()
            sub.wake.clear()
            if sub.close_reason is not None:
                reason = sub.close_reason
                return
            chunk = _next_chunk(hub, sub)
            if chunk:
                # Quart resumes this generator only once the send completed: the hub's
                # tick drops the stream if that takes longer than the send timeout.
                sub.sending_since = time.monotonic()
                yield chunk
                sub.sending_since = None
                sub.last_sent = time.monotonic()
    finally:
        # The hub's reason wins: a stream it dropped ends by cancellation or by Quart
        # closing this generator (GeneratorExit), and either looks like a client leaving.
        plan.close(sub, reason)


def _next_chunk(hub: Hub, sub: QueueSink) -> bytes:
    frames = sub.drain()
    if frames:
        sub.heartbeat_due = False
        return b"".join(frames)
    if sub.heartbeat_due:
        sub.heartbeat_due = False
        log.debug("%s heartbeat", sub.client_id)
        return hub.heartbeat_frame(sub)
    return b""
