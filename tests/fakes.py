"""Small fakes and helpers shared by the unit tests.

The scripted qBittorrent session is the package's own ``quart_dl.qbittorrent.fake.FakeSession``
(typed like the real one); the helpers here build the ``sync/maindata`` answers it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from pydantic import TypeAdapter
from quart import Quart

from quart_dl.instance_settings import InstanceSettings
from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.qbittorrent.poller import Poller
from quart_dl.record import FIELDS, TorrentRecord
from quart_dl.secret import Secret
from quart_dl.settings import Settings, load_settings
from quart_dl.web.runtime import Runtime, runtime

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


class FakeTransport(asyncio.Transport):
    """A unit-test fake of ``asyncio.Transport``: records writes and how it was closed."""

    def __init__(self, buffered: int = 0) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = ""
        #: What ``get_write_buffer_size`` says: > 0 is a client that is not reading.
        self.buffered = buffered

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def close(self) -> None:
        self.closed = "close"

    def abort(self) -> None:
        self.closed = "abort"


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

    app: Quart
    #: Quart's client; ``Any``, as its connection protocol types lack the attributes tests
    #: read (``status_code``, ``headers``) that the real connections have.
    client: Any
    runtime: Runtime
    qbt: FakeSession


def instance_tables(settings: Settings, ids: Iterable[str]) -> tuple[InstanceSettings, ...]:
    """``[[instances]]`` tables with these ids (named after them, title case), on distinct
    loopback ports, with the flat settings' intervals."""
    return tuple(
        InstanceSettings(
            id=instance_id,
            name=instance_id.title(),
            url=f"http://127.0.0.1:{18080 + number}",
            username="admin",
            password=Secret(f"pw-{instance_id}-not-shown"),
            poll_interval=settings.poll_interval,
            idle_poll_interval=settings.idle_poll_interval,
        )
        for number, instance_id in enumerate(ids)
    )


def _polled(poller: Poller) -> bool:
    """Whether a poller has been through its first poll (good or not)."""
    return poller.last_success is not None or bool(poller.errors)


@contextlib.asynccontextmanager
async def running_app(
    qbt: FakeSession | None = None,
    *,
    instances: Mapping[str, FakeSession] | None = None,
    **settings: Any,
) -> AsyncIterator[RunningApp]:
    """``create_app`` over ``FakeSession``s, started, with every instance's first poll done.

    Without ``instances``: the one instance ``default`` of the flat settings, over ``qbt``.
    With: those instances (``[[instances]]`` tables, in that order), each over its session;
    ``qbt`` is then the first one's.
    """
    from quart_dl.web.app import create_app

    forget_sql_dialect()
    config = make_settings(**settings)
    if instances:
        config = replace(config, instance_tables=instance_tables(config, instances))
        qbt = next(iter(instances.values()))
    qbt = qbt if qbt is not None else FakeSession()
    app = create_app(config, session=qbt, sessions=instances)
    async with app.test_app() as test_app:
        rt = runtime(app)
        for instance in rt.instances.values():
            await wait_for_async(partial(_polled, instance.poller), what=f"the first poll of {instance.id}")
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
