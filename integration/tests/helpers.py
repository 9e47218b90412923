"""Test helpers: recording states and events, and a TCP proxy that can cut the network
between Home Assistant and the server.

No test sleeps and hopes: every wait names its condition and fails with it at a deadline
(``quart_dl.lab.wait``, the project's one wait helper).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from quart_dl.lab.wait import wait_for_async

from custom_components.quart_dl.const import DOMAIN
from custom_components.quart_dl.sse import SseParser


def state_of(hass: HomeAssistant, entity: str) -> State:
    """The current state of ``entity``, which must exist."""
    found = hass.states.get(entity)
    assert found is not None, f"no state for {entity}"
    return found


def entity_id(hass: HomeAssistant, entry_id: str, platform: str, key: str) -> str:
    """The entity id of one of our entities, found by its unique id."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, f"{entry_id}_{key}")
    assert found is not None, f"no {platform} entity with key {key}"
    return found


@dataclass
class StateRecorder:
    """Every state an entity takes, with the monotonic time it was written."""

    hass: HomeAssistant
    entity_id: str
    states: list[tuple[float, State | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Start listening at once."""
        self._unsub = async_track_state_change_event(self.hass, [self.entity_id], self._changed)

    @callback
    def _changed(self, event: Event[EventStateChangedData]) -> None:
        self.states.append((time.monotonic(), event.data["new_state"]))

    def first(self, predicate: Callable[[State], bool]) -> tuple[float, State] | None:
        """The first recorded state matching ``predicate``, with its time."""
        for at, state in self.states:
            if state is not None and predicate(state):
                return at, state
        return None

    def stop(self) -> None:
        """Stop listening."""
        self._unsub()


@dataclass
class EventRecorder:
    """Every bus event of one type, with the monotonic time it was fired."""

    hass: HomeAssistant
    event_type: str
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        """Start listening at once."""
        self._unsub = self.hass.bus.async_listen(self.event_type, self._fired)

    @callback
    def _fired(self, event: Event) -> None:
        self.events.append((time.monotonic(), dict(event.data)))

    def for_hash(self, torrent_hash: str) -> list[dict[str, Any]]:
        """The events about one torrent."""
        return [data for _, data in self.events if data.get("hash") == torrent_hash]

    def stop(self) -> None:
        """Stop listening."""
        self._unsub()


class TcpProxy:
    """Forward 127.0.0.1:<port> to the server, with a switch to cut the network.

    ``cut()`` drops every open connection and refuses new ones (each is accepted and closed
    at once, as a broken network path looks to a client); ``restore()`` lets them through
    again. The server keeps running, so a reconnect can resume with ``Last-Event-ID``.
    """

    def __init__(self, host: str, port: int) -> None:
        """Proxy to ``host:port`` (started by :meth:`start`)."""
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.open = True
        self.port = 0

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
            self._writers.discard(sink)

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self.open = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        """Let connections through again."""
        self.open = True

    async def stop(self) -> None:
        """Close everything; no task is left behind."""
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class StreamTap:
    """An independent reader of the server's event stream, timestamping each event.

    It tells *when the server published* a change, so a test can measure the
    integration's own delay from that moment to the entity state.
    """

    def __init__(self, base_url: str) -> None:
        """Read ``base_url``/api/events once :meth:`start` is awaited."""
        self._url = f"{base_url.rstrip('/')}/api/events"
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Connect and wait for the first event (the snapshot)."""
        self._session = aiohttp.ClientSession()
        self._task = asyncio.get_running_loop().create_task(self._read())
        await wait_for_async(lambda: self.events, 10, "the tap's snapshot")

    async def _read(self) -> None:
        assert self._session is not None
        parser = SseParser()
        async with self._session.get(
            self._url, timeout=aiohttp.ClientTimeout(total=None, sock_read=30)
        ) as response:
            async for chunk in response.content.iter_any():
                now = time.monotonic()
                for event in parser.feed(chunk):
                    self.events.append((now, event.event, json.loads(event.data)))

    def first(
        self, kind: str, predicate: Callable[[dict[str, Any]], bool]
    ) -> tuple[float, dict[str, Any]] | None:
        """The first event of ``kind`` whose payload matches, with its arrival time."""
        for at, event, payload in self.events:
            if event == kind and predicate(payload):
                return at, payload
        return None

    async def stop(self) -> None:
        """Disconnect."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


class FakeHostsResolver(AbstractResolver):
    """A fake DNS for aiohttp: a few names answer with fixed addresses, like /etc/hosts.

    The host-name tests need a name that resolves to loopback but that quart-dl does not
    answer to (a dotted name, not ``localhost``, not ``.local``). This machine has none:
    ``/etc/hosts`` holds only dotless names and ``localhost``, ``socket.getfqdn()`` is
    ``localhost``. Editing ``/etc/hosts`` would change the machine for everyone, so only
    the name look-up is faked: Home Assistant still connects by the name in the URL and
    sends it as ``Host``, and the real server refuses it. Home Assistant's test harness
    already swaps its resolver (``_async_make_resolver``) for aiohttp's, so this replaces a
    stand-in, not Home Assistant's own code. Every other name goes to the system resolver.
    """

    def __init__(self, names: Mapping[str, str]) -> None:
        """Answer ``names`` (name → IPv4 address) ourselves."""
        self._names = dict(names)
        # Made on first use: aiohttp's resolvers need a running event loop.
        self._system: aiohttp.ThreadedResolver | None = None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The fixed address for one of our names, else the system's answer."""
        address = self._names.get(host.lower().rstrip("."))
        if address is None:
            if self._system is None:
                self._system = aiohttp.ThreadedResolver()
            return await self._system.resolve(host, port, family)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
        ]

    async def close(self) -> None:
        """Close the system resolver."""
        if self._system is not None:
            await self._system.close()
