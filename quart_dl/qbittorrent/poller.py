"""The poller: follows qBittorrent, commits what changed, then publishes it.

One loop, one direction: ``sync/maindata`` (through the instance's session) → ``TorrentTable.apply``
→ ``Hub.prepare_changes`` (the ``diff`` gets its id) → ``Store.commit`` (one transaction: the
change set and, with the durable log, its event) → ``Hub.publish_prepared``. Publishing after
the commit means the REST API and the stream never disagree, and a process killed between the
two loses nothing: the event is in the table, and the next start replays it to whoever missed
it. When the database is failing, the change is still published (the stream serves from
memory) and the store and the log catch up later, together.

Cadence: fast while anyone watches, slow with nobody; a first subscriber wakes the poller at
once so a newly opened panel never waits a slow interval for fresh data.

Faults never end the loop. Unreachable → exponential backoff with full jitter, capped at 30 s.
Auth failed → a long backoff (qBittorrent bans an address after 5 failed logins by default).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from ..hub import Hub
from ..metrics import Metrics
from ..status import InstanceStatus
from ..store.store import Store
from ..torrents import TorrentTable
from .client import AuthFailed, QbtError
from .session import Session

log = logging.getLogger("quart_dl.qbittorrent.poller")

UNREACHABLE_BASE = 1.0
UNREACHABLE_CAP = 30.0
#: After an action: poll this often for ``FOLLOW_UP_SECONDS`` (see ``Poller.follow_up``).
FOLLOW_UP_INTERVAL = 0.25
FOLLOW_UP_SECONDS = 4.0
AUTH_BASE = 60.0
AUTH_CAP = 600.0


def backoff(failures: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter: between half and all of ``min(cap, base·2^(n-1))``.

    Half-jitter rather than full: a delay near zero would hammer a qBittorrent that is
    restarting, and for auth failures would spend the ban budget.
    """
    ceiling = min(cap, base * 2.0 ** max(0, failures - 1))
    return float(ceiling * (0.5 + 0.5 * rand()))


class Poller:
    """The poll loop of one instance: its session in, its table, store and status driven.

    The session, store and status belong to the instance (``instance.py``); the poller
    drives them, and is the only writer of the table.
    """

    def __init__(
        self,
        *,
        session: Session,
        hub: Hub,
        store: Store,
        metrics: Metrics,
        status: InstanceStatus | None = None,
        poll_interval: float,
        idle_poll_interval: float,
        sample_interval: float = 5.0,
        history_seconds: float = 86400.0,
    ) -> None:
        self.session = session
        self.hub = hub
        #: The instance this poller follows (its store's rows and its view in the hub).
        self.instance = store.instance_name
        self.status = status if status is not None else InstanceStatus()
        self.store = store
        self.metrics = metrics
        self.poll_interval = poll_interval
        self.idle_poll_interval = idle_poll_interval
        self.sample_interval = sample_interval
        self.history_seconds = history_seconds
        self.table = TorrentTable()
        self.failures = 0
        self.errors = 0
        self.last_error: str | None = None
        self.last_duration: float | None = None
        self._wake = asyncio.Event()
        self._polled = asyncio.Condition()
        self.last_success: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._logged_in = False
        self._version: str | None = None
        self._next_sample = 0.0
        self._next_prune = 0.0
        self._follow_until = 0.0
        hub.watch_status(self.status.record, self.instance)
        hub.demand.listen(self._on_viewer)

    @property
    def interval(self) -> float:
        """The current cadence (faster for a few seconds after an action)."""
        base = self.poll_interval if self.hub.demand.viewers else self.idle_poll_interval
        if time.monotonic() < self._follow_until:
            return min(base, FOLLOW_UP_INTERVAL)
        return base

    def _on_viewer(self, count: int) -> None:
        # Poll at once for a first viewer, so it never waits out the idle interval; but not
        # while credentials are failing: each attempt spends qBittorrent's ban budget.
        if count == 1 and self.last_error != "auth_failed":
            self._wake.set()

    def wake(self) -> None:
        """Poll now (a first subscriber, or a test)."""
        self._wake.set()

    def follow_up(self, seconds: float = FOLLOW_UP_SECONDS) -> None:
        """Poll now, then every ``FOLLOW_UP_INTERVAL`` for ``seconds``: an action was answered.

        Why not one poll: qBittorrent answers an action before its effect shows in
        ``sync/maindata`` (libtorrent applies it and reports back at qBittorrent's refresh
        interval, 1.5 s by default), so the poll right after the answer often still sees the
        old state; measured on 4.5.2 and 5.1 (test_actions_real, pause). A few fast polls
        catch the change within one refresh interval instead of a whole poll interval.
        """
        self._follow_until = max(self._follow_until, time.monotonic() + seconds)
        self._wake.set()

    async def fresh(self, max_age: float, timeout: float = 3.0) -> None:
        """Make sure the view is at most ``max_age`` old, polling now if needed.

        With no stream open the poller runs at the idle cadence; a REST request must still
        not answer with 30 s old data, so it asks for a poll and waits (bounded) for it.
        While qBittorrent is failing it returns at once: the status tells the truth then.
        """
        if self.failures or self._task is None:
            return
        if self.last_success is not None and time.monotonic() - self.last_success <= max_age:
            return
        async with self._polled:
            self._wake.set()
            try:
                await asyncio.wait_for(self._polled.wait(), timeout)
            except TimeoutError:
                pass

    async def start(self) -> None:
        """Load what the database knows, then start polling in the background."""
        known = await self.store.open_instance()
        self.table = TorrentTable(known, first_run=self.store.created)
        self.hub.seed(self.table.records, self.instance)
        self._task = asyncio.create_task(self._run(), name="quart-dl poller")

    async def stop(self) -> None:
        """Stop the loop (the instance closes the session after it)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            # Cleared before the poll, not after: a wake that lands during a poll (an action
            # answered while maindata was in flight) must cause one more poll at once, or the
            # action's effect would wait out the whole interval.
            self._wake.clear()
            try:
                delay = await self.poll_once()
            except Exception as exc:
                # Whatever poll_once did not expect (an unencodable value, a bug) costs one
                # poll, never the loop: a dead loop would leave the panel silently stale.
                log.exception("%s: poll failed unexpectedly", self.instance)
                delay = await self._failed(QbtError(f"unexpected error ({exc.__class__.__name__})"))
            async with self._polled:
                self._polled.notify_all()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def poll_once(self) -> float:
        """One poll; returns how long to wait before the next."""
        started = time.perf_counter()
        try:
            if not self._logged_in:
                self._version = await self.session.login()
                self._logged_in = True
            data = await self.session.maindata()
            # Inside the try: an answer of the wrong shape is a fault of qBittorrent (or of
            # whatever answers in its place), not a reason for the loop to die.
            changes = self.table.apply(data)
        except QbtError as exc:
            return await self._failed(exc)
        except Exception as exc:
            log.exception("%s: unexpected error while polling qBittorrent", self.instance)
            return await self._failed(QbtError(f"unexpected answer ({exc.__class__.__name__})"))

        self.last_error = None
        if self.failures:
            log.info("%s: qBittorrent is back after %d failed polls", self.instance, self.failures)
        self.failures = 0
        now = time.time()
        # A store that fell behind retries on every poll, not only when something changed:
        # otherwise a table that went quiet during a database fault (a download that
        # completed meanwhile) would never reach the database (test_faults, "catches up").
        event = self.hub.prepare_changes(changes, self.table.records, self.instance)
        try:
            if changes or self.store.behind:
                await self.store.commit(changes, self.table.records)
        finally:
            # Published whatever the commit did: a reserved event that is never published
            # would hold back every later one.
            if event is not None:
                self.hub.publish_prepared(event, changes)
        visible, newly = self.status.connected(
            version=self._version,
            database={"ok": not self.store.behind, "last_error": self.store.last_error},
            now=now,
        )
        if newly:
            log.info("%s: connected to qBittorrent %s", self.instance, self._version)
        if visible:
            self.hub.publish_status(self.status.record, self.instance)
        if newly:
            await self.store.save_status(self.status.record)
        self.last_duration = time.perf_counter() - started
        self.last_success = time.monotonic()
        self.metrics.observe("poll_duration_seconds", self.last_duration)
        await self._housekeeping(now)
        return self.interval

    async def _failed(self, exc: QbtError) -> float:
        self.failures += 1
        self.errors += 1
        self.last_error = exc.kind
        self.metrics.inc("poll_errors_total", kind=exc.kind)
        self._logged_in = False
        self.session.reset()
        if isinstance(exc, AuthFailed):
            delay = backoff(self.failures, AUTH_BASE, AUTH_CAP)
        else:
            delay = backoff(self.failures, UNREACHABLE_BASE, UNREACHABLE_CAP)
        if self.status.failed(exc.kind, str(exc), time.time()):
            self.hub.publish_status(self.status.record, self.instance)
            log.warning(
                "%s: qBittorrent %s: %s; retrying in %.1f s",
                self.instance,
                exc.kind.replace("_", " "),
                exc,
                delay,
            )
            await self.store.save_status(self.status.record)
        else:
            log.debug("%s: still %s; retrying in %.1f s", self.instance, exc.kind, delay)
        return delay

    async def _housekeeping(self, now: float) -> None:
        """History samples and their retention, on their own slower clocks."""
        if now >= self._next_sample:
            self._next_sample = now + self.sample_interval
            await self.store.sample(now, self.table.transfer, self.table.active())
        if now >= self._next_prune:
            self._next_prune = now + 300
            await self.store.prune(now - self.history_seconds)
