"""Everything quart-dl uses of Hypercorn beyond its public ``serve``: the one coupling, fenced.

Why: the socket layer accepts every connection itself and gives ordinary requests to
Hypercorn's own per-connection handler (``TCPServer``), which is not public API. Like
uvicorn's one private constant, the coupling is kept to a few names, all here:

- ``TCPServer(app, loop, config, context, state, reader, writer)`` and its ``run()``;
- its ``protocol_send(event)``, through which every ``Updated(idle=True)`` passes (the
  request was answered and h11 waits for the next one: a request boundary);
- its use of the ``StreamWriter`` it is given (write, drain, write_eof, close, wait_closed),
  and of the ``StreamReader`` (read until EOF, then end without writing);
- its ``_idle_timeout()``, the keep-alive wait of an idle connection, run as a task of the
  connection's task group (the handler ends only when it has: ``let_go`` ends it at once);
- ``WorkerContext(None)`` and its ``terminated`` event, ``ASGIWrapper(app)``.

``contract_problem`` checks these at start-up (and ``tests/test_serve.py`` checks the
behaviour). If a newer Hypercorn changed them, ``serve.py`` logs one warning and serves
through Hypercorn's public ``serve`` instead: every stream then takes Quart's path.
Hypercorn is pinned to the series checked (setup.cfg).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import Event, Updated

__all__ = [
    "ASGIWrapper",
    "Config",
    "GuardedWriter",
    "HypercornConnection",
    "WorkerContext",
    "contract_problem",
]

#: The parameters of ``TCPServer.__init__`` this module passes, in order.
_TCP_SERVER_PARAMETERS = ["self", "app", "loop", "config", "context", "state", "reader", "writer"]


def contract_problem() -> str | None:
    """What differs from the Hypercorn internals this module relies on, or None."""
    try:
        parameters = list(inspect.signature(TCPServer.__init__).parameters)
        if parameters != _TCP_SERVER_PARAMETERS:
            return f"TCPServer takes {parameters[1:]}, not {_TCP_SERVER_PARAMETERS[1:]}"
        for name in ("run", "protocol_send", "_idle_timeout"):
            if not inspect.iscoroutinefunction(getattr(TCPServer, name, None)):
                return f"TCPServer.{name} is not a coroutine function"
        if list(inspect.signature(TCPServer.protocol_send).parameters) != ["self", "event"]:
            return "TCPServer.protocol_send does not take (event)"
        if "idle" not in {field.name for field in dataclasses.fields(Updated)}:
            return "hypercorn.events.Updated has no idle field"
        terminated = getattr(WorkerContext(None), "terminated", None)
        if not callable(getattr(terminated, "set", None)):
            return "WorkerContext has no terminated event"
    except (TypeError, ValueError, AttributeError) as error:  # a changed shape of any of them
        return f"{type(error).__name__}: {error}"
    return None


class HypercornConnection(TCPServer):
    """Hypercorn's connection handler, calling ``answered`` at every request boundary."""

    def __init__(self, answered: Callable[[], None], *args: Any) -> None:
        super().__init__(*args)
        self._answered = answered
        self._let_go = False
        self._idle_waiting: asyncio.Task[Any] | None = None

    async def protocol_send(self, event: Event) -> None:
        await super().protocol_send(event)
        if isinstance(event, Updated) and event.idle:
            self._answered()

    def let_go(self) -> None:
        """The connection was taken back at a request boundary: end without touching it.

        Its writer is detached; its keep-alive wait ends now rather than after
        ``keep_alive_timeout`` (the handler, its h11 state and task group, ~40 KB, would
        otherwise stay until then). The caller feeds its reader EOF, on which it ends.
        """
        self._let_go = True
        writer = self.writer
        if isinstance(writer, GuardedWriter):
            writer.detach()
        if self._idle_waiting is not None:
            self._idle_waiting.cancel()

    async def _idle_timeout(self) -> None:
        if self._let_go:
            return
        self._idle_waiting = asyncio.current_task()
        try:
            await super()._idle_timeout()
        except asyncio.CancelledError:
            if not self._let_go:
                raise
        finally:
            self._idle_waiting = None


class GuardedWriter(asyncio.StreamWriter):
    """Hypercorn's writer: writes nothing once the connection is closing, lost or taken back.

    asyncio counts writes to a lost transport and logs ``socket.send() raised exception.``
    for each one past the fifth: a line per failed send, which is noise for operators.

    ``detach()``: the socket layer took the connection back at a request boundary (to carry a
    stream). Hypercorn's handler is then told EOF and ends; what it does on the way out
    (write EOF, close, wait for the close) must not touch the connection it no longer owns.
    """

    _detached = False

    def detach(self) -> None:
        self._detached = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._detached and not self.transport.is_closing():
            super().write(data)

    def write_eof(self) -> None:
        if not self._detached:
            super().write_eof()

    def close(self) -> None:
        if not self._detached:
            super().close()

    async def wait_closed(self) -> None:
        if not self._detached:
            await super().wait_closed()

    async def drain(self) -> None:
        if not self._detached:
            await super().drain()

    def __del__(self) -> None:
        # Python 3.12+ closes (and warns about) a writer collected unclosed: a detached one
        # belongs to a connection that lives on without it.
        if not self._detached:
            parent = getattr(super(), "__del__", None)
            if parent is not None:
                parent()
