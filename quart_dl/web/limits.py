"""Caps on open event streams: per client address and in total.

Why: every open stream holds a socket and its state (~6 KB each when the socket layer holds
it, ~33 KB on Quart's path; BENCHMARKS.md). Without
a cap one misbehaving client (a reconnect loop that never closes the old EventSource, a
script opening streams in a loop) could take the server's memory and file descriptors from
everybody else. Beyond a cap the answer is ``503`` JSON with ``Retry-After``, before any
stream starts: EventSource treats it as final, and the panel reconnects itself with backoff.

A stream is counted from the moment its request is admitted, not when its body starts: a
burst of requests whose handlers all run before any body starts would otherwise all be
admitted. The count is released exactly once: by the stream's ``finally`` when it ends, or
when its body is garbage collected without ever starting (the client left between the
handler and the first byte, so the body's ``finally`` never runs).
"""

from __future__ import annotations

import ipaddress
import logging
import weakref
from collections import Counter

from quart import Quart, Response, current_app, request

from ..settings import Settings
from .errors import api_error

log = logging.getLogger("quart_dl.web.limits")

#: Seconds a refused client is asked to wait.
RETRY_AFTER = 5
#: Request line and headers, in bytes (also Hypercorn's h11/h2 limits, see server/serve.py).
MAX_HEADER_BYTES = 16 * 1024
#: Connections an address may have open beyond its streams, by default: the panel's and
#: Home Assistant's REST requests (a browser opens at most 6 connections per host).
SPARE_CONNECTIONS = 64


def connection_cap(settings: Settings) -> int:
    """Open connections allowed per client key (streams included; socket layer, socket_layer.py).

    By default it follows ``max_streams_per_client``, so that raising the stream cap (a
    proxy in front, the many-streams tests and benchmarks from 127.0.0.1) never makes the
    connection cap refuse streams the stream cap would admit. Loopback is not exempt: a
    proxy on the same host is where one address carries everybody.
    """
    return settings.max_connections_per_client or settings.max_streams_per_client + SPARE_CONNECTIONS


def client_key(remote: str | None) -> str:
    """The address a limit applies to: IPv4 as is, IPv6 by its /64 network.

    A single IPv6 host usually owns a whole /64, so counting per address would let it
    multiply its allowance by 2**64.
    """
    if not remote:
        return "-"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Ticket:
    """One admitted stream's place in the counts; ``release`` is idempotent."""

    __slots__ = ("__weakref__", "_key", "_limits")

    def __init__(self, limits: StreamLimits, key: str) -> None:
        self._limits: StreamLimits | None = limits
        self._key = key

    def release(self) -> None:
        """Give the place back (a second call does nothing)."""
        limits, self._limits = self._limits, None
        if limits is not None:
            limits._release(self._key)

    def bind(self, body: object) -> None:
        """Release when ``body`` (the stream generator) is collected without having run."""
        weakref.finalize(body, self.release)


class StreamLimits:
    """Counts open streams per client key and in total."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self.open: Counter[str] = Counter()
        self.open_total = 0
        self.refused: Counter[str] = Counter()

    def admit(self, remote: str | None) -> Ticket | str:
        """A ticket for a new stream, or why it is refused when a cap is reached."""
        key = client_key(remote)
        if self.open_total >= self.total:
            self.refused["total"] += 1
            return "the server has too many open event streams; retry shortly"
        if self.open[key] >= self.per_client:
            self.refused["per_client"] += 1
            return f"this address already has {self.per_client} open event streams; close some first"
        self.open[key] += 1
        self.open_total += 1
        return Ticket(self, key)

    def _release(self, key: str) -> None:
        self.open_total -= 1
        self.open[key] -= 1
        if self.open[key] <= 0:
            del self.open[key]


def install_limits(app: Quart, settings: Settings) -> StreamLimits:
    """Attach the stream caps to ``app`` (read by the SSE routes through ``stream_limits``),
    and the cap on request headers."""
    limits = StreamLimits(settings.max_streams_per_client, settings.max_streams)
    app.extensions["quart_dl.web.limits"] = limits

    @app.before_request
    async def cap_headers() -> Response | None:
        # Hypercorn's h11_max_incomplete_size only counts a head that is still incomplete:
        # one that arrives whole in a single read (up to 64 KiB) passed, 20 KB or 60 KB of
        # headers alike (test_regression_huge_headers_in_one_packet_are_a_431).
        size = len(request.scope.get("raw_path", b"")) + len(request.scope.get("query_string", b""))
        size += sum(len(name) + len(value) + 4 for name, value in request.scope.get("headers", ()))
        if size > MAX_HEADER_BYTES:
            return api_error(431, "headers_too_large", f"request headers over {MAX_HEADER_BYTES} bytes")
        return None

    return limits


def stream_limits() -> StreamLimits:
    """The current app's stream caps."""
    limits = current_app.extensions["quart_dl.web.limits"]
    assert isinstance(limits, StreamLimits)
    return limits


def admit_stream(remote: str | None) -> Ticket | Response:
    """A ticket for a new stream of the current app, or its 503 answer with ``Retry-After``."""
    ticket = stream_limits().admit(remote)
    if isinstance(ticket, Ticket):
        return ticket
    log.debug("refused an event stream from %s: %s", client_key(remote), ticket)
    response = api_error(503, "too_many_streams", ticket)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    return response
