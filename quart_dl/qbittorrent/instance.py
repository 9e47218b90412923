"""One qBittorrent as a unit: its settings, session, torrent table, store rows, poller, status.

Why a unit: "one qBittorrent" used to be an assumption spread over the settings, the app
factory, the poller and the hub. Everything that belongs to one qBittorrent now hangs off one
``Instance``, so following several means holding several instances, and actions on torrents
go through the same instance's one ordered session as its poller (``session.py``).

The instance writes into the hub (the published view and the streams) and never reads from
the web layer: data still flows one way.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..hub import Hub
from ..metrics import Metrics
from ..settings import Secret, Settings
from ..status import InstanceStatus
from ..store.store import Store
from ..torrents import TorrentTable
from .poller import Poller
from .session import QbtSession, Session

#: The id of the instance the flat ``qbt_*`` settings describe.
DEFAULT_ID = "default"


@dataclass(frozen=True)
class InstanceSettings:
    """What one qBittorrent is configured with."""

    id: str
    url: str
    username: str
    password: Secret
    poll_interval: float
    idle_poll_interval: float

    @classmethod
    def from_settings(cls, settings: Settings) -> InstanceSettings:
        """The one instance the flat ``qbt_*`` settings describe (``default``)."""
        return cls(
            id=DEFAULT_ID,
            url=settings.qbt_url,
            username=settings.qbt_username,
            password=settings.qbt_password,
            poll_interval=settings.poll_interval,
            idle_poll_interval=settings.idle_poll_interval,
        )

    def session(self) -> QbtSession:
        """A real session for this qBittorrent."""
        return QbtSession.connect(self.url, self.username, self.password.reveal())


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
        hub.add_instance(config.id, getattr(config, "name", config.id))
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
