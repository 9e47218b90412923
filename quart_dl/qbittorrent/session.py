"""One ordered qBittorrent Web API session, as async calls.

``QbtClient`` (``client.py``) is synchronous, as qbittorrent-api is; ``QbtSession`` runs
its calls on one worker thread of its own, in the order they were asked for. That order is
the point: ``sync/maindata``'s ``rid`` is per Web UI session, and two callers sharing a
session cookie out of order spoil each other's rid (DESIGN.md). The poller and, later,
actions on torrents (``act``, ``add``, ``set_transfer``) go through the same instance's one
session, so they can never overlap.

``BlockingClient`` is what polling needs of the blocking client (a benchmark's stand-in
implements only that); ``ActingClient`` adds the actions ``QbtClient`` implements. A session
over a client that cannot act answers every action as ``Unreachable``.

``Session`` is the interface the poller depends on; ``fake.FakeSession`` is a scripted
implementation of it for tests, as httpx ships ``MockTransport`` beside its real transports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .client import QbtClient, Unreachable, WorkerThread


class Session(Protocol):
    """What the poller (and ``quart-dl check``) need of a qBittorrent session."""

    async def login(self) -> str:
        """Log in; qBittorrent's version (``v4.5.2``). Raises ``QbtError``."""
        ...

    async def maindata(self) -> dict[str, Any]:
        """The next ``sync/maindata`` answer (a full update after ``reset``). Raises ``QbtError``."""
        ...

    async def torrent_count(self) -> int:
        """How many torrents qBittorrent holds. Raises ``QbtError``."""
        ...

    def reset(self) -> None:
        """Forget the rid: the next ``maindata`` is a full update."""
        ...

    async def act(self, action: str, hashes: Sequence[str] | None, params: Mapping[str, Any]) -> list[str]:
        """Apply an action to torrents (``None``: all); the hashes applied to. Raises
        ``UnknownTorrents`` (nothing applied), ``Refused`` or another ``QbtError``."""
        ...

    async def set_transfer(
        self, alt_speed: bool | None, dl_limit: int | None, up_limit: int | None
    ) -> dict[str, Any]:
        """Set global limits; the state after (``alt_speed``, ``dl_limit``, ``up_limit``)."""
        ...

    async def add(self, urls: Sequence[str], files: Mapping[str, bytes], options: Mapping[str, Any]) -> int:
        """Add torrents by URL or .torrent contents; how many. Raises ``Refused``."""
        ...

    async def categories(self) -> list[dict[str, str]]:
        """Categories: ``name`` and ``save_path``."""
        ...

    async def tags(self) -> list[str]:
        """Tags, sorted."""
        ...

    async def close(self) -> None:
        """End the session; later calls are not allowed."""
        ...


class BlockingClient(Protocol):
    """The blocking calls ``QbtSession`` runs on its thread: ``QbtClient``'s, or a benchmark's
    stand-in for it (which then pays the same thread hop as the real client)."""

    def login(self) -> str: ...

    def maindata(self) -> dict[str, Any]: ...

    def torrent_count(self) -> int: ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class ActingClient(BlockingClient, Protocol):
    """A blocking client that can also act on torrents (``QbtClient``)."""

    def act(self, action: str, hashes: Sequence[str] | None, params: Mapping[str, Any]) -> list[str]: ...

    def set_transfer(
        self, alt_speed: bool | None, dl_limit: int | None, up_limit: int | None
    ) -> dict[str, Any]: ...

    def add(self, urls: Sequence[str], files: Mapping[str, bytes], options: Mapping[str, Any]) -> int: ...

    def categories(self) -> list[dict[str, str]]: ...

    def tags(self) -> list[str]: ...


class QbtSession:
    """The real session: a blocking client and the one thread its calls run on."""

    def __init__(self, client: BlockingClient) -> None:
        self.client = client
        self._worker = WorkerThread()

    @classmethod
    def connect(cls, url: str, username: str, password: str) -> QbtSession:
        """A session for qBittorrent at ``url`` (nothing is sent until the first call)."""
        return cls(QbtClient(url, username, password))

    async def login(self) -> str:
        return await self._worker.run(self.client.login)

    async def maindata(self) -> dict[str, Any]:
        return await self._worker.run(self.client.maindata)

    async def torrent_count(self) -> int:
        return await self._worker.run(self.client.torrent_count)

    # Actions queue on the same thread as ``maindata``: never inside a poll, in the order
    # they were asked for.

    async def act(self, action: str, hashes: Sequence[str] | None, params: Mapping[str, Any]) -> list[str]:
        client = self._acting()
        return await self._worker.run(lambda: client.act(action, hashes, params))

    async def set_transfer(
        self, alt_speed: bool | None, dl_limit: int | None, up_limit: int | None
    ) -> dict[str, Any]:
        client = self._acting()
        return await self._worker.run(lambda: client.set_transfer(alt_speed, dl_limit, up_limit))

    async def add(self, urls: Sequence[str], files: Mapping[str, bytes], options: Mapping[str, Any]) -> int:
        client = self._acting()
        return await self._worker.run(lambda: client.add(urls, files, options))

    async def categories(self) -> list[dict[str, str]]:
        return await self._worker.run(self._acting().categories)

    async def tags(self) -> list[str]:
        return await self._worker.run(self._acting().tags)

    def _acting(self) -> ActingClient:
        if not isinstance(self.client, ActingClient):
            raise Unreachable("this qBittorrent session cannot act on torrents")
        return self.client

    def reset(self) -> None:
        # Only called between calls (the poller awaits each one), so no call is in flight
        # on the thread that could read a half-reset rid.
        self.client.reset()

    async def close(self) -> None:
        # A call hung on an unresponsive qBittorrent is abandoned: the thread is a daemon and
        # ends after its current job.
        self._worker.close()
        self.client.close()
