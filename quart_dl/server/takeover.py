"""The takeover contract: how a route hands an admitted stream to the socket layer.

Why a module of its own: the socket layer must not know the routes (it would import the
whole web layer), and the routes must not know the socket layer's protocols. They share this:
the socket layer puts a ``Takeover`` under ``TAKEOVER`` in a stream request's ASGI
extensions; a route that admits a stream leaves a ``StreamOffer`` there (``sse.StreamPlan``)
and answers an empty 200 with its headers; the socket layer then writes the head itself,
opens the offer on the transport and holds it. A request without the extension (Quart's test
client, Hypercorn's own path) gets an ordinary streaming body instead.
"""

from __future__ import annotations

from asyncio import Transport
from typing import Protocol

from ..hub import Sink, TransportSink

#: The ASGI extension through which the socket layer offers to carry a stream itself.
TAKEOVER = "quart_dl.takeover"


class StreamOffer(Protocol):
    """An admitted stream, as a route decided it (auth, CORS, caps, validation all passed)."""

    def open_transport(self, transport: Transport, chunked: bool) -> tuple[TransportSink, bytes]:
        """Subscribe the stream on ``transport``; the opening bytes to write first."""

    def close(self, sub: Sink, reason: str) -> None:
        """The stream ended (``reason`` unless the hub has its own)."""

    def release(self) -> None:
        """The stream was never opened (the client left, the app failed): give its place back."""


class Takeover:
    """Where a route leaves its ``StreamOffer`` for the socket layer."""

    __slots__ = ("plan",)

    def __init__(self) -> None:
        self.plan: StreamOffer | None = None
