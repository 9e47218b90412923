"""quart-dl's real app (create_app, Hub, sse.py, Hypercorn via server.serve) with a fake qBittorrent.

The fake client answers the poller like an idle qBittorrent (or, with ``--torrents N``,
like one holding N torrents). Events are published on command from the control socket
through the real ``Hub.publish_changes`` — the same call the poller makes after a commit —
so the poll interval does not blur the fan-out figures.

    python -m bench.target_quartdl --port P --control C --heartbeat H [--torrents N]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from quart_dl.qbittorrent.session import QbtSession
from quart_dl.server.serve import serve
from quart_dl.settings import Settings
from quart_dl.torrents import ChangeSet
from quart_dl.web.app import create_app
from quart_dl.web.runtime import runtime

from .common import event_changes, now, raise_fd_limit, serve_control
from .synthetic import full_maindata


class FakeQbt:
    """Stands in for QbtClient: login, maindata, reset, close (run on a real session's worker thread)."""

    def __init__(self, torrents: int) -> None:
        self.torrents = torrents
        self.rid = 0
        self.lock = threading.Lock()

    def login(self) -> str:
        return "v4.5.2"

    def maindata(self) -> dict[str, Any]:
        with self.lock:
            self.rid += 1
            if self.rid == 1:
                return full_maindata(self.torrents)
            return {"rid": self.rid}

    def torrent_count(self) -> int:
        return self.torrents

    def reset(self) -> None:
        with self.lock:
            self.rid = 0

    def close(self) -> None:
        pass


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING)
    data = Path(tempfile.mkdtemp(prefix="quart-dl-bench-"))
    settings = Settings(
        bind=f"127.0.0.1:{args.port}",
        heartbeat=args.heartbeat,
        poll_interval=1.0,
        idle_poll_interval=1.0,
        data_dir=data,
        database_url=f"sqlite://{data / 'bench.sqlite3'}",
        max_streams=1_000_000,
        max_streams_per_client=1_000_000,
        log_level="WARNING",
        backlog=4096,
    )
    app = create_app(settings, session=QbtSession(FakeQbt(args.torrents)))
    seq = 0

    def pub() -> str:
        nonlocal seq
        seq += 1
        hub = runtime(app).hub
        t = now()
        event = hub.publish_changes(ChangeSet(changed=event_changes(seq)))
        assert event is not None
        return f"{event.id} {t:.6f}"

    def count() -> str:
        hub = runtime(app).hub
        return f"{hub.client_count} {len(hub.torrents)} {hub.last_event_id}"

    def carriers() -> str:
        metrics = runtime(app).metrics
        socket, quart = (metrics.value("sse_streams", carrier=c) for c in ("socket", "quart"))
        taken_back = metrics.value("connections_taken_back_total")
        return f"socket={socket:.0f} quart={quart:.0f} taken_back={taken_back:.0f}"

    profiler: Any = None

    def profile_start() -> str:
        # pyinstrument in the process (py-spy cannot attach where ptrace is restricted).
        nonlocal profiler
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001, async_mode="disabled")
        profiler.start()
        return "ok"

    def profile_stop() -> str:
        profiler.stop()
        Path(args.profile_out).write_text(profiler.output_text(unicode=False, color=False, show_all=True))
        return "ok"

    handlers = {"pub": pub, "count": count, "carriers": carriers, "ping": lambda: "ok"}
    if args.profile_out:
        handlers |= {"profile-start": profile_start, "profile-stop": profile_stop}
    control = await serve_control(args.control, handlers)
    try:
        await serve(settings, app=app)
    finally:
        control.close()


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    parser.add_argument("--torrents", type=int, default=0)
    parser.add_argument(
        "--profile-out", help="allow profile-start/-stop on the control socket (pyinstrument)"
    )
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
