"""One qBittorrent as a unit: its settings, session, torrent table, store rows, poller, status.

Why a unit: "one qBittorrent" used to be an assumption spread over the settings, the app
factory, the poller and the hub. Everything that belongs to one qBittorrent now hangs off one
``Instance``, so following several means holding several instances, and actions on torrents
go through the same instance's one ordered session as its poller (``session.py``).

The instance writes into the hub (the published view and the streams) and never reads from
the web layer: data still flows one way.
"""

from __future__ import annotations

from ..hub import Hub
from ..instance_settings import DEFAULT_ID as DEFAULT_ID  # re-exported: where it used to live
from ..instance_settings import InstanceSettings as InstanceSettings
from ..metrics import Metrics
from ..status import InstanceStatus
from ..store.store import Store
from ..torrents import TorrentTable
from .poller import Poller
from .session import Session


class Instance:
    """One followed qBittorrent; ``start`` loads its rows and starts polling."""

    def __init__(
        self,
        config: InstanceSettings,
        *,
        hub: Hub,
        metrics: Metrics,
        session: Session | None = None,
        sample_interval: float = 5.0,
        history_seconds: float = 86400.0,
    ) -> None:
        self.config = config
        self.session: Session = session if session is not None else config.session()
        self.status = InstanceStatus()
        self.store = Store(config.id, config.url)
        hub.add_instance(config.id, config.name)
        self.poller = Poller(
            session=self.session,
            hub=hub,
            store=self.store,
            status=self.status,
            metrics=metrics,
            poll_interval=config.poll_interval,
            idle_poll_interval=config.idle_poll_interval,
            sample_interval=sample_interval,
            history_seconds=history_seconds,
        )

    @property
    def id(self) -> str:
        """Short, URL-safe and stable: it keys the instance's rows."""
        return self.config.id

    @property
    def table(self) -> TorrentTable:
        """The poller's working table (the hub holds the published view)."""
        return self.poller.table

    async def start(self) -> None:
        """Load what the database knew of this instance, then poll in the background."""
        await self.poller.start()

    async def stop(self) -> None:
        """Stop polling and end the session; nothing of the instance is left running."""
        await self.poller.stop()
        await self.session.close()
