"""Small fakes and helpers shared by the unit tests.

``FakeQbtClient`` stands in for ``quart_dl.qbt_client.QbtClient``: it answers ``login`` and
``maindata`` from a script (dicts are answers, exception instances are raised), so the poller
and the app can be driven without a qBittorrent. It is called from the poller's worker thread,
so its bookkeeping is guarded by a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

from quart_dl.record import FIELDS, TorrentRecord
from quart_dl.settings import Settings, load_settings

#: Realistic info-hashes (lower-case hex, 40 characters).
H1 = "5a1b" + "0" * 36
H2 = "7c3d" + "1" * 36
H3 = "9e5f" + "2" * 36
UNKNOWN_HASH = "f" * 40


def raw_torrent(name: str = "debian.iso", **overrides: Any) -> dict[str, Any]:
    """A full qBittorrent 4.5 torrent entry as ``sync/maindata`` sends it (rid 0)."""
    raw: dict[str, Any] = {
        "name": name,
        "state": "downloading",
        "progress": 0.31,
        "size": 2_097_152,
        "downloaded": 650_117,
        "completed": 650_117,
        "amount_left": 1_447_035,
        "dlspeed": 204_800,
        "upspeed": 0,
        "eta": 7,
        "ratio": 0.0,
        "num_seeds": 1,
        "num_leechs": 0,
        "category": "",
        "tags": "",
        "save_path": "/downloads",
        "added_on": 1_764_446_400,
        "completion_on": -1,
        "last_activity": 1_764_446_412,
        "time_active": 12,
    }
    raw.update(overrides)
    return raw


#: Validates a value against the declared record (record.TorrentRecord), strictly: no coercion.
_RECORD = TypeAdapter(TorrentRecord)


def check_record(value: Mapping[str, Any]) -> None:
    """Fail unless ``value`` is a full torrent record: every field of ``record.TorrentRecord``,
    nothing else, each of its declared type (derived from the declaration, not listed here)."""
    missing, extra = set(FIELDS) - set(value), set(value) - set(FIELDS)
    assert not missing, f"record fields missing: {sorted(missing)}"
    assert not extra, f"record fields not declared: {sorted(extra)}"
    _RECORD.validate_python(dict(value), strict=True)


def seeding_torrent(name: str = "done.iso", **overrides: Any) -> dict[str, Any]:
    """A complete torrent, seeding."""
    values: dict[str, Any] = {
        "state": "stalledUP",
        "progress": 1.0,
        "downloaded": 2_097_152,
        "completed": 2_097_152,
        "amount_left": 0,
        "dlspeed": 0,
        "eta": 8_640_000,
        "completion_on": 1_764_446_500,
    }
    values.update(overrides)
    return raw_torrent(name, **values)


def full_update(
    torrents: Mapping[str, Mapping[str, Any]] | None = None,
    server_state: Mapping[str, Any] | None = None,
    rid: int = 1,
) -> dict[str, Any]:
    """A ``full_update`` maindata answer."""
    answer: dict[str, Any] = {
        "rid": rid,
        "full_update": True,
        "torrents": {h: dict(t) for h, t in (torrents or {}).items()},
    }
    if server_state is not None:
        answer["server_state"] = dict(server_state)
    return answer


def partial_update(
    torrents: Mapping[str, Mapping[str, Any]] | None = None,
    removed: Iterable[str] = (),
    server_state: Mapping[str, Any] | None = None,
    rid: int = 2,
) -> dict[str, Any]:
    """A later maindata answer: only changed keys."""
    answer: dict[str, Any] = {"rid": rid}
    if torrents:
        answer["torrents"] = {h: dict(t) for h, t in torrents.items()}
    removed = list(removed)
    if removed:
        answer["torrents_removed"] = removed
    if server_state is not None:
        answer["server_state"] = dict(server_state)
    return answer


class FakeQbtClient:
    """A scripted stand-in for ``QbtClient``.

    ``answers`` are consumed by ``maindata`` in order: a dict is returned (a copy), an exception
    instance is raised. Once the script is used up, ``maindata`` answers "nothing changed".
    ``login_answers`` script ``login`` the same way (``None`` = success). ``failure``, when set,
    is raised by every ``login``/``maindata`` call until it is cleared (an outage).
    """

    def __init__(
        self,
        answers: Iterable[Mapping[str, Any] | BaseException] = (),
        *,
        version: str = "v4.5.2",
        login_answers: Iterable[BaseException | None] = (),
    ) -> None:
        self.version = version
        self.rid = 0
        self.failure: BaseException | None = None
        self.calls: list[str] = []
        self._answers: deque[Mapping[str, Any] | BaseException] = deque(answers)
        self._login_answers: deque[BaseException | None] = deque(login_answers)
        self._lock = threading.Lock()
        self._next_rid = 1000

    def script(self, *answers: Mapping[str, Any] | BaseException) -> None:
        """Queue more maindata answers."""
        with self._lock:
            self._answers.extend(answers)

    def count(self, call: str) -> int:
        """How many times ``call`` (``login``, ``maindata``, ``reset``, ``close``) happened."""
        with self._lock:
            return self.calls.count(call)

    def login(self) -> str:
        with self._lock:
            self.calls.append("login")
            scripted = self._login_answers.popleft() if self._login_answers else None
            failure = self.failure
        if failure is not None:
            raise failure
        if scripted is not None:
            raise scripted
        self.rid = 0
        return self.version

    def maindata(self) -> dict[str, Any]:
        with self._lock:
            self.calls.append("maindata")
            failure = self.failure
            answer = self._answers.popleft() if self._answers and failure is None else None
            self._next_rid += 1
            rid = self._next_rid
        if failure is not None:
            raise failure
        if isinstance(answer, BaseException):
            raise answer
        data = dict(answer) if answer is not None else {"rid": rid}
        self.rid = data.setdefault("rid", rid)
        return data

    def torrent_count(self) -> int:
        return 0

    def reset(self) -> None:
        with self._lock:
            self.calls.append("reset")
        self.rid = 0

    def close(self) -> None:
        with self._lock:
            self.calls.append("close")


async def wait_until(predicate: Callable[[], object], timeout: float = 3.0, what: str = "condition") -> None:
    """Wait until ``predicate()`` is true, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


def forget_sql_dialect() -> None:
    """Clear Tortoise's process-wide cache of built INSERT/DELETE statements.

    Tortoise keys that cache by connection name ("default"), not by backend, and never clears
    it: after a test on PostgreSQL, a test on SQLite in the same process would send ``$1``
    placeholders to SQLite (and ``?`` to PostgreSQL the other way round). Production opens
    one database per process, so only tests that switch backends need this.
    """
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()


def make_settings(**values: Any) -> Settings:
    """Validated settings from the given values only (no environment, no TOML file)."""
    values.setdefault("database_url", "sqlite://:memory:")
    return load_settings(cli=values, environ={})


@dataclass
class RunningApp:
    """An app started with ``test_app()`` (before_serving ran), its test client and parts."""

    app: Any
    client: Any
    runtime: Any
    qbt: FakeQbtClient


@contextlib.asynccontextmanager
async def running_app(qbt: FakeQbtClient | None = None, **settings: Any) -> AsyncIterator[RunningApp]:
    """``create_app`` over a ``FakeQbtClient``, started, with its first poll done."""
    from quart_dl.app import create_app
    from quart_dl.runtime import runtime

    forget_sql_dialect()
    qbt = qbt if qbt is not None else FakeQbtClient()
    app = create_app(make_settings(**settings), client=qbt)  # type: ignore[arg-type]
    async with app.test_app() as test_app:
        rt = runtime(app)
        await wait_until(lambda: rt.poller.last_success is not None or rt.poller.errors, what="first poll")
        yield RunningApp(app, test_app.test_client(), rt, qbt)


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    """SSE frames as dicts: ``id``, ``event``, ``data`` (raw text), ``retry``, ``comment``.

    Lines are split on ``\\n`` only, as the SSE spec does (not ``str.splitlines``, which also
    splits on U+2028 and friends that JSON leaves as they are).
    """
    out: list[dict[str, Any]] = []
    text = data.decode("utf-8")
    assert "\r" not in text, "frames must use \\n line ends only"
    for block in text.split("\n\n"):
        if not block:
            continue
        frame: dict[str, Any] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                frame["comment"] = line[1:].strip()
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "data" and "data" in frame:
                raise AssertionError(f"more than one data line in a frame: {block!r}")
            frame[key] = value
        out.append(frame)
    return out


class StreamReader:
    """Reads an SSE stream from a Quart test connection, frame by frame, with deadlines."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.buffer = b""
        self.frames: list[dict[str, Any]] = []

    async def next_frame(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next complete frame, or AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no SSE frame within {timeout} s (have {self.buffer!r})")
            try:
                chunk = await asyncio.wait_for(self.conn.receive(), remaining)
            except TimeoutError:
                raise AssertionError(f"no SSE frame within {timeout} s (have {self.buffer!r})") from None
            self.buffer += chunk
        block, _, self.buffer = self.buffer.partition(b"\n\n")
        (frame,) = parse_frames(block + b"\n\n")
        self.frames.append(frame)
        return frame

    async def next_event(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next frame that has an ``event:`` line (skipping retry and comments)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next_frame(max(0.0, deadline - time.monotonic()))
            if "event" in frame:
                return frame

    async def silent_for(self, seconds: float) -> bool:
        """True if nothing at all arrives for ``seconds``."""
        if self.buffer:
            return False
        try:
            chunk = await asyncio.wait_for(self.conn.receive(), seconds)
        except TimeoutError:
            return True
        self.buffer += chunk
        return False
