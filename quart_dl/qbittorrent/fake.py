"""``FakeSession``: a scripted qBittorrent session for tests, typed like the real one.

It implements ``session.Session``, so tests hand it to ``create_app(session=...)`` or to an
``Instance`` without a ``type: ignore``, the way httpx's ``MockTransport`` stands in for a
network transport. It is not a qBittorrent simulator: it answers what it was told to.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .client import UnknownTorrents

Answer = Mapping[str, Any] | BaseException


class FakeSession:
    """Answers ``login`` and ``maindata`` from a script.

    ``answers`` are consumed by ``maindata`` in order: a mapping is returned (a copy, with a
    ``rid`` added when it has none), an exception instance is raised. Once the script is used
    up, ``maindata`` answers "nothing changed". ``login_answers`` script ``login`` the same
    way (``None`` = success). ``failure``, while set, is raised by every ``login`` and
    ``maindata`` (an outage). ``calls`` lists every call by name, for assertions.

    Actions: ``hashes`` is the set of torrents the fake holds (``act`` raises
    ``UnknownTorrents`` for others, as the real client does); ``acted`` lists every
    ``(action, hashes, params)`` applied, ``added`` every ``(urls, files, options)``;
    ``action_failure``, while set, is raised by every action (a refusal, an outage) and
    ``failure`` too. ``transfer`` is the global state ``set_transfer`` changes.

    Each call yields to the event loop once, as the real session's hop to its worker thread
    does, so a poll never runs start to end without letting other tasks in.
    """

    def __init__(
        self,
        answers: Iterable[Answer] = (),
        *,
        version: str = "v4.5.2",
        login_answers: Iterable[BaseException | None] = (),
        torrents: int = 0,
    ) -> None:
        self.version = version
        self.rid = 0
        self.failure: BaseException | None = None
        self.calls: list[str] = []
        self.torrents = torrents
        self.closed = False
        self._answers: deque[Answer] = deque(answers)
        self._login_answers: deque[BaseException | None] = deque(login_answers)
        self._next_rid = 1000
        self.hashes: set[str] = set()
        self.acted: list[tuple[str, list[str] | None, dict[str, Any]]] = []
        self.added: list[tuple[list[str], dict[str, bytes], dict[str, Any]]] = []
        self.action_failure: BaseException | None = None
        self.transfer: dict[str, Any] = {"alt_speed": False, "dl_limit": 0, "up_limit": 0}
        self.category_list: list[dict[str, str]] = []
        self.tag_list: list[str] = []

    def script(self, *answers: Answer) -> None:
        """Queue more ``maindata`` answers."""
        self._answers.extend(answers)

    def count(self, call: str) -> int:
        """How many times ``call`` (``login``, ``maindata``, ``reset``, ``close``) happened."""
        return self.calls.count(call)

    async def login(self) -> str:
        self.calls.append("login")
        await asyncio.sleep(0)
        scripted = self._login_answers.popleft() if self._login_answers else None
        if self.failure is not None:
            raise self.failure
        if scripted is not None:
            raise scripted
        self.rid = 0
        return self.version

    async def maindata(self) -> dict[str, Any]:
        self.calls.append("maindata")
        await asyncio.sleep(0)
        self._next_rid += 1
        if self.failure is not None:
            raise self.failure
        answer = self._answers.popleft() if self._answers else None
        if isinstance(answer, BaseException):
            raise answer
        data = dict(answer) if answer is not None else {"rid": self._next_rid}
        self.rid = data.setdefault("rid", self._next_rid)
        return data

    async def torrent_count(self) -> int:
        self.calls.append("torrent_count")
        await asyncio.sleep(0)
        if self.failure is not None:
            raise self.failure
        return self.torrents

    async def _acting(self, call: str) -> None:
        self.calls.append(call)
        await asyncio.sleep(0)
        if self.failure is not None:
            raise self.failure
        if self.action_failure is not None:
            raise self.action_failure

    async def act(self, action: str, hashes: Sequence[str] | None, params: Mapping[str, Any]) -> list[str]:
        await self._acting("act")
        if hashes is not None:
            missing = [h for h in hashes if h not in self.hashes]
            if missing:
                raise UnknownTorrents(missing)
        self.acted.append((action, None if hashes is None else list(hashes), dict(params)))
        return sorted(self.hashes) if hashes is None else list(hashes)

    async def set_transfer(
        self, alt_speed: bool | None, dl_limit: int | None, up_limit: int | None
    ) -> dict[str, Any]:
        await self._acting("set_transfer")
        for key, value in (("alt_speed", alt_speed), ("dl_limit", dl_limit), ("up_limit", up_limit)):
            if value is not None:
                self.transfer[key] = value
        return dict(self.transfer)

    async def add(self, urls: Sequence[str], files: Mapping[str, bytes], options: Mapping[str, Any]) -> int:
        await self._acting("add")
        self.added.append((list(urls), dict(files), dict(options)))
        return len(urls) + len(files)

    async def categories(self) -> list[dict[str, str]]:
        await self._acting("categories")
        return list(self.category_list)

    async def tags(self) -> list[str]:
        await self._acting("tags")
        return list(self.tag_list)

    def reset(self) -> None:
        self.calls.append("reset")
        self.rid = 0

    async def close(self) -> None:
        self.calls.append("close")
        self.closed = True
