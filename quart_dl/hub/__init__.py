"""The hub: what every stream is told, and how it gets there.

Three parts, one module each: the published view (``view.py``), the event log (``log.py``:
ids and replay behind a small interface) and the fan-out (``fanout.py``: every stream's sink,
``sinks.py``, one delivery loop, one heartbeat tick; ``selector_transport.py``: what that loop
relies on of asyncio's TCP transport to send on the socket itself). ``hub.py`` puts them together. Nothing
here talks to qBittorrent or to HTTP: instances publish in, carriers take sinks out.
"""

from .fanout import Demand, FanOut
from .hub import Hub
from .log import EventLog, MemoryEventLog, new_epoch
from .sinks import CLIENT_CLOSED, OVERFLOW, SEND_TIMEOUT, SERVER_SHUTDOWN, QueueSink, Sink, TransportSink
from .view import PublishedView

__all__ = [
    "CLIENT_CLOSED",
    "OVERFLOW",
    "SEND_TIMEOUT",
    "SERVER_SHUTDOWN",
    "Demand",
    "EventLog",
    "FanOut",
    "Hub",
    "MemoryEventLog",
    "PublishedView",
    "QueueSink",
    "Sink",
    "TransportSink",
    "new_epoch",
]
