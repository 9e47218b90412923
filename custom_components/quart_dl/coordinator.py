"""The coordinator: the event stream pushes, REST polling covers while it is down.

Home Assistant's qBittorrent integration polls every 30 s. Here the server's SSE stream is
the source of truth: every event is applied and handed to the entities at once through
``async_set_updated_data``, so a change reaches an entity state within the server's poll
interval plus a few milliseconds. Polling (``_async_update_data``) is used only

* once at setup, so that the entities have data and an unreachable server fails the setup
  (Home Assistant then retries it), and
* while the stream is down: the update interval is switched on when the stream drops and
  off again when it delivers its first event. A failed poll is what marks the entities
  unavailable.

Several qBittorrent instances. A server with ``/api/instances`` speaks protocol 2: one
stream (``/api/events?v=2``) carries every instance, each diff, status and late event
naming its ``instance``, and the state keeps one view per instance (a device each). The
instance set is taken from every v2 snapshot, every poll and ``/api/instances`` at each
(re)connection of the stream: a stream resumed with ``Last-Event-ID`` after the server
restarted with another ``[[instances]]`` list replays diffs, and no snapshot says that
an instance is gone. An older server (no ``/api/instances``, or a 400 to ``v=2``) is
followed in protocol 1, as one instance ``default``.

Automation events (bus events, and the event entity through
:meth:`QuartDlCoordinator.async_add_download_listener`) are fired from ``diff`` events
(their ``added``, ``completed`` and ``removed`` lists) and from ``late`` events, never
from a snapshot or a poll: a snapshot shows state, not what just happened, so a reconnect
must not announce every finished download again.

Exactly once across restarts. The id of the last applied event is kept with Home
Assistant's ``Store`` and sent as ``Last-Event-ID`` after a restart of Home Assistant or of
the server: the server's event log is durable, so it replays the missed diffs, or, past its
diff window, sends the missed ``late`` lifecycle events (each with its id and the time it
happened) and a snapshot. An event that happened more than ``LATE_AFTER`` seconds before it
is fired carries ``late: true`` and ``happened_at``. Ids are monotonic per server database
(``<database>.<run>-<seq>``): an event at or below the last one that fired anything is never
fired again, whatever replays overlap. An id is written after its bus events are fired (at
once): a crash in between could fire one event twice; never one lost.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator, UpdateFailed
from homeassistant.util import dt as dt_util

from .api import (
    QuartDlAuthError,
    QuartDlClient,
    QuartDlConnectionError,
    QuartDlError,
    QuartDlHostNotAllowedError,
    QuartDlResponseError,
    decode_event,
)
from .const import (
    DEFAULT_HEARTBEAT,
    DEFAULT_INSTANCE_ID,
    DEFAULT_RETRY_MS,
    DOMAIN,
    EVENT_DOWNLOAD_ADDED,
    EVENT_DOWNLOAD_COMPLETED,
    EVENT_DOWNLOAD_REMOVED,
    FALLBACK_POLL_INTERVAL,
    LATE_AFTER,
    LOGGER,
    MAX_RETRY_DELAY,
    MIN_RETRY_DELAY,
    PROTOCOL_VERSION,
    RETRY_JITTER,
    STORAGE_DELAY,
    STORAGE_KEY,
    STORAGE_VERSION,
    STREAM_PROTOCOL_VERSION,
    STREAM_READ_MARGIN,
    UNREACHABLE_ISSUE_AFTER,
)
from .device import async_device_id, async_remove_stale_devices, async_rename_devices
from .issues import TOKEN_REJECTED, UNREACHABLE, async_clear, async_raise
from .models import ServerState, TorrentRecord
from .sse import SseEvent, SseParser

if TYPE_CHECKING:
    from . import QuartDlConfigEntry


@dataclass(slots=True)
class StreamInfo:
    """How the event stream is doing; shown in diagnostics."""

    connected: bool = False
    last_event_id: str | None = None
    connects: int = 0
    failures: int = 0
    events: int = 0
    snapshots: int = 0
    last_error: str | None = None
    connected_since: float | None = None
    #: The wait before the latest reconnect attempt, in seconds (backoff with jitter).
    retry_delay: float | None = None


class QuartDlCoordinator(DataUpdateCoordinator[ServerState]):
    """Keep one :class:`ServerState` current for the entities of one config entry."""

    config_entry: QuartDlConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: QuartDlConfigEntry,
        client: QuartDlClient,
    ) -> None:
        """Set up the coordinator; the stream starts with :meth:`async_start_stream`."""
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {client.base_url}",
            update_interval=FALLBACK_POLL_INTERVAL,
        )
        self.client = client
        self.stream = StreamInfo()
        #: Lives across connections: it holds the Last-Event-ID and the retry hint.
        self.parser = SseParser()
        # Bumped whenever the stream changes the state, so that a poll that was already
        # running when the stream came back does not overwrite newer pushed data.
        self._generation = 0
        self._stream_task: asyncio.Task[None] | None = None
        #: Set when a poll finds the server back after it failed: the stream's backoff
        #: (which may have grown to a minute) ends at once.
        self._wake = asyncio.Event()
        #: Monotonic time of the first failed poll of an outage (``None``: reachable).
        self._unreachable_since: float | None = None
        self._store: Store[dict[str, Any]] = Store(hass, STORAGE_VERSION, f"{STORAGE_KEY}.{entry.entry_id}")
        #: (database, run, seq) of the newest event that fired bus events: nothing at or
        #: before it fires again.
        self._fired: tuple[str, int, int] | None = None
        #: The newest announcements as "<event type> <hash> <when>": a download announced
        #: again under another id fires once (a server killed while its database was
        #: failing numbers the events it could not write again, with new ids).
        self._announced: OrderedDict[str, None] = OrderedDict()
        self._download_listeners: list[DownloadListener] = []
        #: The instances (id, name) the devices were last checked against.
        self._synced_instances: tuple[tuple[str, str], ...] | None = None
        #: Set when the server refused a protocol 2 stream (400): protocol 1 from then on.
        self._v1_only = False

    def instance_param(self, instance_id: str) -> str | None:
        """The ``instance`` to send with an action for ``instance_id``: none to a server of
        protocol 1 (it has one instance, and no such field)."""
        if self.data is None or self.data.protocol < STREAM_PROTOCOL_VERSION:
            return None
        return instance_id

    @callback
    def async_sync_devices(self) -> None:
        """Remove the devices of instances the server no longer follows, rename those it
        renamed (a listener of this coordinator; it runs on every update, and acts when
        the set or a name changed)."""
        if self.data is None:
            return
        current = tuple((key, i.name) for key, i in self.data.instances.items() if i.described)
        if current == self._synced_instances:
            return
        self._synced_instances = current
        entry_id = self.config_entry.entry_id
        async_remove_stale_devices(self.hass, entry_id, self.data.instances)
        async_rename_devices(self.hass, entry_id, dict(current))

    @callback
    def async_add_download_listener(self, listener: DownloadListener) -> Callable[[], None]:
        """Call ``listener(event type, data)`` for every download event fired (once per
        download and moment, as the bus events); returns the function that stops it."""
        self._download_listeners.append(listener)
        return lambda: self._download_listeners.remove(listener)

    async def async_load_resume_point(self) -> None:
        """Resume from the event id stored before Home Assistant last stopped."""
        stored = await self._store.async_load()
        if not isinstance(stored, dict):
            return
        last = stored.get("last_event_id")
        if isinstance(last, str) and last:
            self.parser.last_event_id = last
            self.parser.reset()
            self.stream.last_event_id = last
        fired = stored.get("fired")
        if isinstance(fired, list) and len(fired) == 3:
            self._fired = (str(fired[0]), int(fired[1]), int(fired[2]))
        announced = stored.get("announced")
        if isinstance(announced, list):
            self._announced = OrderedDict((str(key), None) for key in announced[-ANNOUNCED_KEPT:])
        LOGGER.debug("Resuming %s from event %s", self.client.base_url, last)

    async def async_save_resume_point(self) -> None:
        """Write the last event id now (the entry unloads: its stream task is gone)."""
        await self._store.async_save(self._stored())

    def _stored(self) -> dict[str, Any]:
        return {
            "last_event_id": self.parser.last_event_id,
            "fired": list(self._fired) if self._fired else None,
            "announced": list(self._announced),
        }

    # ------------------------------------------------------------------ polling

    async def _async_update_data(self) -> ServerState:
        """Fetch the full state over REST (setup, and while the stream is down)."""
        if self.stream.connected and self.data is not None:
            # The stream is authoritative; a manual refresh has nothing to add.
            return self.data
        generation = self._generation
        try:
            status = await self.client.status()
            instances = await self.client.instances()
            torrents = await self.client.torrents()
        except QuartDlAuthError as err:
            async_raise(self.hass, self.config_entry, TOKEN_REJECTED)
            raise ConfigEntryAuthFailed(translation_domain=DOMAIN, translation_key="invalid_auth") from err
        except QuartDlHostNotAllowedError as err:
            # Not a reauth: the server refuses the host name, and a new token does not help
            # when it has allowed_hosts set. A failed update (at setup: not ready) retries
            # by itself, so fixing the server's setting is all the user has to do.
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="host_not_allowed",
                translation_placeholders={"host": err.host, "url": self.client.base_url},
            ) from err
        except QuartDlConnectionError as err:
            self._still_unreachable()
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="cannot_connect",
                translation_placeholders={"url": self.client.base_url, "reason": err.reason},
            ) from err
        except QuartDlError as err:
            # Our own texts ("/api/status: HTTP 502"), never an aiohttp repr.
            raise UpdateFailed(
                translation_domain=DOMAIN,
                translation_key="bad_response",
                translation_placeholders={"url": self.client.base_url, "reason": str(err)},
            ) from err
        self._reachable()
        if not self.last_update_success and not self.stream.connected:
            # The server answers again after a failed poll: reconnect the stream now
            # rather than when its backoff, grown during the outage, runs out.
            LOGGER.debug("%s answers again: reconnecting the stream", self.client.base_url)
            self.stream.failures = 0
            self._wake.set()
        if generation != self._generation and self.data is not None:
            # The stream delivered while we were polling: its data is newer.
            return self.data
        state = ServerState.from_rest(status, torrents, instances)
        if state.heartbeat is None and self.data is not None:
            state.heartbeat = self.data.heartbeat
        return state

    @callback
    def _still_unreachable(self) -> None:
        """A poll found no server: raise the repair issue once the outage is long."""
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        minutes = (now - self._unreachable_since) / 60
        if now - self._unreachable_since >= UNREACHABLE_ISSUE_AFTER:
            async_raise(self.hass, self.config_entry, UNREACHABLE, minutes=str(max(1, round(minutes))))

    @callback
    def _reachable(self) -> None:
        """The server answered (a poll, or the stream opened) with our token."""
        self._unreachable_since = None
        async_clear(self.hass, self.config_entry.entry_id)

    # ------------------------------------------------------------------ streaming

    @callback
    def async_start_stream(self) -> None:
        """Run the stream reader as a background task of the config entry.

        A background task, not a plain one: ``async_block_till_done`` (used by Home
        Assistant's startup and by tests) waits for ordinary tasks, and this one never
        ends. The entry cancels it on unload, so nothing outlives the entry.
        """
        self._stream_task = self.config_entry.async_create_background_task(
            self.hass, self._async_stream_forever(), f"{DOMAIN} event stream"
        )

    def _stream_version(self) -> int:
        """Protocol 2 with a server that has ``/api/instances`` (and accepts it), else 1."""
        if self._v1_only or self.data is None or self.data.protocol < STREAM_PROTOCOL_VERSION:
            return PROTOCOL_VERSION
        return STREAM_PROTOCOL_VERSION

    def _read_timeout(self) -> float:
        """Silence after which the stream counts as dead: above twice the heartbeat."""
        heartbeat = (self.data.heartbeat if self.data else None) or DEFAULT_HEARTBEAT
        return 2 * heartbeat + STREAM_READ_MARGIN

    def _retry_delay(self) -> float:
        """Delay before the next connection attempt (server hint, doubled per failure)."""
        base = (self.parser.retry_ms or DEFAULT_RETRY_MS) / 1000
        delay: float = base * 2.0 ** max(0, self.stream.failures - 1)
        delay = min(MAX_RETRY_DELAY, max(MIN_RETRY_DELAY, delay))
        return delay * (1 + random.uniform(0, RETRY_JITTER))

    async def _async_stream_forever(self) -> None:
        """Connect, read until the stream ends, fall back to polling, back off, repeat."""
        while True:
            refreshed = False
            try:
                await self._async_read_stream()
            except QuartDlAuthError as err:
                self._stream_lost(str(err))
                # Polling hits the same 401 and starts the reauth flow (whose success
                # reloads the entry, and so restarts the stream); reading on would only
                # hammer the server with refused requests until the user acts.
                await self.async_refresh()
                refreshed = True
                if not self.last_update_success:
                    LOGGER.warning("quart-dl at %s refused our token", self.client.base_url)
                    return
            except QuartDlResponseError as err:
                self._stream_lost(str(err))
                if err.status == 400 and self._stream_version() == STREAM_PROTOCOL_VERSION:
                    # A server with /api/instances but no protocol 2 stream: follow its
                    # primary instance in protocol 1 rather than fail forever.
                    LOGGER.warning(
                        "quart-dl at %s refuses protocol %s streams: following it in"
                        " protocol 1 (its first instance only)",
                        self.client.base_url,
                        STREAM_PROTOCOL_VERSION,
                    )
                    self._v1_only = True
                    self.stream.failures = 0
                    continue
            except QuartDlError as err:
                self._stream_lost(str(err))
            else:
                self._stream_lost("stream closed by the server")
            if self.stream.failures == 1 and not refreshed:
                # First failure after a healthy stream: find out at once whether the
                # server is gone (entities unavailable) or only the stream broke.
                await self.async_refresh()
            await self._async_back_off()

    async def _async_back_off(self) -> None:
        """Wait before the next attempt: the backoff delay, or less if a poll finds the
        server back first (the fallback poll runs every few seconds while the stream is
        down; the backoff doubles up to a minute)."""
        delay = self._retry_delay()
        if self._wake.is_set():
            # Set by the poll that this loop itself ran just now: the server answers.
            delay = MIN_RETRY_DELAY
        self._wake.clear()
        self.stream.retry_delay = delay
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except TimeoutError:
            pass
        self._wake.clear()

    async def _async_read_stream(self) -> None:
        """One connection: apply every event until the stream ends."""
        LOGGER.debug(
            "Connecting to %s/api/events (Last-Event-ID %s)",
            self.client.base_url,
            self.parser.last_event_id,
        )
        events = self.client.events(
            last_event_id=self.parser.last_event_id,
            read_timeout=self._read_timeout(),
            parser=self.parser,
            on_open=self._stream_opened,
            version=self._stream_version(),
        )
        # aclosing: a bad event raises out of the loop; the response must be closed now,
        # not whenever the abandoned generator is garbage-collected.
        async with aclosing(events):
            async for event in events:
                self._handle_event(event)

    @callback
    def _stream_lost(self, reason: str) -> None:
        """The stream ended: count it, and switch polling on until it is back."""
        if self.stream.connected:
            LOGGER.info("Event stream from %s lost: %s", self.client.base_url, reason)
            self.stream.failures = 0
        else:
            LOGGER.debug("Event stream from %s failed: %s", self.client.base_url, reason)
        self.stream.connected = False
        self.stream.connected_since = None
        self.stream.failures += 1
        self.stream.last_error = reason
        if self.update_interval is None:
            self.update_interval = FALLBACK_POLL_INTERVAL
            self._schedule_refresh()

    @callback
    def _stream_opened(self) -> None:
        """The server accepted the stream (a resumed one may stay silent until news).

        A protocol 2 stream: the instance set is read once now (see the module docstring:
        a resumed stream does not say which instances are gone).
        """
        self._mark_connected()
        if self._stream_version() == STREAM_PROTOCOL_VERSION:
            self.config_entry.async_create_background_task(
                self.hass, self._async_reconcile_instances(), f"{DOMAIN} instances"
            )

    async def _async_reconcile_instances(self) -> None:
        """Take the server's instance set from ``/api/instances`` (added, gone, renamed)."""
        try:
            answer = await self.client.instances()
        except QuartDlError as err:
            LOGGER.debug("Could not read the instances of %s: %s", self.client.base_url, err)
            return
        if answer is None or self.data is None:
            return
        if self.data.apply_instances(answer):
            self._generation += 1
            self.async_set_updated_data(self.data)

    @callback
    def _mark_connected(self) -> None:
        if not self.stream.connected:
            self.stream.connected = True
            self.stream.connects += 1
            self.stream.failures = 0
            self.stream.last_error = None
            self.stream.connected_since = time.time()
            self._reachable()
            # The stream pushes: no polling while it is up.
            self.update_interval = None
            LOGGER.debug("Event stream from %s is up", self.client.base_url)

    @callback
    def _handle_event(self, event: SseEvent) -> None:
        """Apply one stream event and publish the result."""
        payload = decode_event(event)
        self._mark_connected()
        self.stream.events += 1
        self.stream.last_event_id = event.id
        state = self.data if self.data is not None else ServerState()
        diff = None
        if event.event == "snapshot":
            if payload.get("v") != self._stream_version():
                LOGGER.warning(
                    "quart-dl at %s speaks protocol %s, this integration asked for %s",
                    self.client.base_url,
                    payload.get("v"),
                    self._stream_version(),
                )
            self.stream.snapshots += 1
            state.apply_snapshot(payload)
        elif event.event == "diff":
            diff = state.apply_diff(payload)
        elif event.event == "status":
            state.apply_status(payload)
        elif event.event == "late":
            self._late(event, payload)
            return
        else:
            LOGGER.debug("Ignoring unknown event %r", event.event)
            return
        self._generation += 1
        self.async_set_updated_data(state)
        if diff is not None and (diff.added or diff.completed or diff.removed) and self._first_time(event.id):
            happened = payload.get("t")
            instance = diff.instance_id
            for record in diff.added:
                self._fire(EVENT_DOWNLOAD_ADDED, record, instance, happened)
            for record in diff.completed:
                self._fire(EVENT_DOWNLOAD_COMPLETED, record, instance, happened)
            for record in diff.removed:
                self._fire(EVENT_DOWNLOAD_REMOVED, record, instance, happened)
            self._store.async_delay_save(self._stored, 0)
        else:
            self._store.async_delay_save(self._stored, STORAGE_DELAY)

    @callback
    def _late(self, event: SseEvent, payload: dict[str, Any]) -> None:
        """A lifecycle event the server kept past its diff window: fire what it says.

        The snapshot that follows brings the state; this only announces.
        """
        if self._first_time(event.id):
            torrents = payload.get("torrents") or {}
            happened = payload.get("t")
            named = payload.get("instance")
            if isinstance(named, str) and named:
                instance = named
            else:
                instance = self.data.primary.id if self.data else DEFAULT_INSTANCE_ID
            for key, event_type in (
                ("added", EVENT_DOWNLOAD_ADDED),
                ("completed", EVENT_DOWNLOAD_COMPLETED),
                ("removed", EVENT_DOWNLOAD_REMOVED),
            ):
                for torrent_hash in payload.get(key) or ():
                    record = torrents.get(torrent_hash) or {"hash": torrent_hash}
                    self._fire(event_type, record, instance, happened)
        self._store.async_delay_save(self._stored, 0)

    def _first_time(self, event_id: str | None) -> bool:
        """True (and remembered) unless an event at or after this id already fired."""
        key = _event_key(event_id)
        if key is None:
            return True
        if self._fired is not None and self._fired[0] == key[0] and key[1:] <= self._fired[1:]:
            LOGGER.debug("Not firing event %s again", event_id)
            return False
        self._fired = key
        return True

    @callback
    def _fire(self, event_type: str, record: TorrentRecord, instance_id: str, happened: Any = None) -> None:
        """Put a download event on the bus and hand it to the event entity, with what an
        automation needs to act (once per download and moment: see ``_announced``).

        The moment of an addition or completion is the torrent's ``added_at`` or
        ``completed_at``; a removal's is when it happened (the diff's ``t``, which a late
        replay of it carries too). The same hash in two instances (cross-seeding) is two
        downloads; the instance ``default`` keeps the key it had before instances, so the
        announcements stored by an older version still count.
        """
        if event_type == EVENT_DOWNLOAD_REMOVED:
            when = happened
        else:
            when = record.get("completed_at" if event_type == EVENT_DOWNLOAD_COMPLETED else "added_at")
        if when is not None:
            torrent = record.get("hash")
            if instance_id != DEFAULT_INSTANCE_ID:
                torrent = f"{instance_id}/{torrent}"
            key = f"{event_type} {torrent} {when}"
            if key in self._announced:
                LOGGER.debug("Not firing %s for %s again", event_type, record.get("hash"))
                return
            self._announced[key] = None
            while len(self._announced) > ANNOUNCED_KEPT:
                self._announced.popitem(last=False)
        data: dict[str, Any] = {
            "config_entry_id": self.config_entry.entry_id,
            "instance": instance_id,
            "device_id": async_device_id(self.hass, self.config_entry.entry_id, instance_id),
            "hash": record.get("hash"),
            "name": record.get("name"),
            "size": record.get("size"),
            "save_path": record.get("save_path"),
        }
        if isinstance(happened, int | float) and time.time() - happened > LATE_AFTER:
            data["late"] = True
            data["happened_at"] = dt_util.utc_from_timestamp(happened).isoformat()
        LOGGER.debug("Firing %s for %s", event_type, data["hash"])
        self.hass.bus.async_fire(event_type, data)
        for listener in list(self._download_listeners):
            listener(event_type.removeprefix(f"{DOMAIN}_"), data)


#: Called with a download event's type (``download_added``, ``download_completed``,
#: ``download_removed``) and its data (as on the bus).
type DownloadListener = Callable[[str, dict[str, Any]], None]


#: How many announcements are remembered (and stored) to fire each download once.
ANNOUNCED_KEPT = 1000


def _event_key(event_id: str | None) -> tuple[str, int, int] | None:
    """``<database>.<run>-<seq>`` as (database, run, seq): ids compare within one database,
    by run and then by seq.

    By run first: a server killed while its database was failing loses the events it could
    not write, and its next run numbers on from the last written one, so a later run's seq
    can be lower than one already fired; its events are still newer (runs only count up).
    An id of an older server (``<epoch>-<seq>``, per process) compares within its epoch.
    """
    if not event_id:
        return None
    epoch, sep, seq = event_id.rpartition("-")
    if not sep or not seq.isdigit():
        return None
    database, _, run = epoch.partition(".")
    return database, int(run) if run.isdigit() else 0, int(seq)
