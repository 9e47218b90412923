"""CPU of one broadcast per stream, in one process: the fan-out's loop alone, no clients' load.

Why: the fan-out benchmark's CPU per broadcast is the whole server process, net of an idle
rate that includes heartbeats the broadcast phase does not send, on a machine whose 2 cores
are shared with the 4 client processes; it moved ±15 % between identical runs (BENCHMARKS.md,
run 8). This measures only ``Hub.publish_changes`` (the poller's call: encode once, deliver to
every stream) over N real loopback TCP connections held by asyncio's transports as the socket
layer holds them, their other ends plain sockets read between broadcasts (not measured).
``getrusage`` of this process (user + system) around each broadcast; the median per stream.

``--stub`` replaces each socket's send by ``len`` (the transport's and the fan-out's own), so
that what is left is the Python per stream, with no system call.

Tree-agnostic: it uses ``Hub.subscribe(transport=...)`` and ``publish_changes`` only, so the
same file can be run from an older checkout (``cd OLD && python /path/to/bench/deliver.py``).

    python -m bench.deliver [--streams 2000] [--rounds 40] [--stub]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import socket
import statistics
import sys
from typing import Any

sys.path.insert(0, os.getcwd())  # the checkout run from, as the server's ``-m`` would

from quart_dl.hub import Hub
from quart_dl.torrents import ChangeSet

EVENT_TORRENTS = 20  # as bench/common.py's events: 20 torrents, 5 fields each (~2.3 KB chunk)


def changes(seq: int) -> ChangeSet:
    return ChangeSet(
        changed={
            f"{i:08x}".rjust(40, "a"): {
                "progress": round((seq % 100) / 100 + i / 10_000, 4),
                "downloaded": seq * 1_048_576 + i,
                "amount_left": 1_000_000_000 - seq * 1_048_576,
                "dl_speed": 100_000 + seq * 7 + i,
                "eta": 3600 - seq,
            }
            for i in range(EVENT_TORRENTS)
        }
    )


class _Stub:
    """A socket whose send takes everything and does nothing (``--stub``)."""

    __slots__ = ("send",)

    def __init__(self) -> None:
        self.send = len


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(streams: int, rounds: int, stub: bool) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.get_running_loop()
    accepted: list[asyncio.Transport] = []

    class Held(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            accepted.append(transport)

    server = await loop.create_server(Held, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    clients = []
    for i in range(streams):
        client = socket.socket()
        client.setblocking(False)
        try:
            client.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        clients.append(client)
        if i % 200 == 199:
            await asyncio.sleep(0.01)
    while len(accepted) < streams:
        await asyncio.sleep(0.01)
    hub = Hub(heartbeat=3600.0)
    sinks = [hub.subscribe(transport=t)[0] for t in accepted]
    if stub:
        for transport in accepted:
            transport._sock = _Stub()  # type: ignore[attr-defined]
        for sink in sinks:
            if getattr(sink, "send", None) is not None:
                sink.send = len  # type: ignore[attr-defined]

    def drain() -> None:
        for client in clients:
            try:
                while client.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    per_stream: list[float] = []
    for seq in range(1, rounds + 1):
        before = _cpu()
        hub.publish_changes(changes(seq))
        per_stream.append((_cpu() - before) / streams)
        await asyncio.sleep(0.005)
        drain()
    per_stream = per_stream[2:]  # warm-up
    return {
        "streams": streams,
        "rounds": rounds,
        "stub": stub,
        "cpu_us_per_stream_median": round(statistics.median(per_stream) * 1e6, 3),
        "cpu_us_per_stream_min": round(min(per_stream) * 1e6, 3),
        "cpu_ms_per_broadcast_at_10000": round(statistics.median(per_stream) * 1e7, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.deliver", description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--stub", action="store_true", help="sockets' send replaced by len: Python only")
    args = parser.parse_args()
    result = asyncio.run(run(args.streams, args.rounds, args.stub))
    print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    os._exit(0)  # thousands of transports' teardown is not the measurement


if __name__ == "__main__":
    main()
