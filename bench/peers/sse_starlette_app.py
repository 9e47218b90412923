"""Peer (b): the same endpoint on sse-starlette (EventSourceResponse) served by uvicorn.

One ``asyncio.Queue`` per client, ``ServerSentEvent`` encoding per client (sse-starlette's
way), its built-in ``ping`` as the heartbeat. Same payloads and control socket as the others.

    python -m bench.peers.sse_starlette_app --port P --control C --heartbeat H
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from ..common import event_payload, now, raise_fd_limit, serve_control

clients: set[asyncio.Queue[tuple[int, dict[str, Any]]]] = set()
state: dict[str, Any] = {"seq": 0, "torrents": {}, "heartbeat": 15.0}


async def events(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    clients.add(queue)

    async def stream() -> AsyncIterator[dict[str, Any]]:
        try:
            snapshot = {"torrents": state["torrents"], "status": {"qbittorrent": "connected"}}
            yield {"id": str(state["seq"]), "event": "snapshot", "data": json.dumps(snapshot)}
            while True:
                seq, payload = await queue.get()
                yield {"id": str(seq), "event": "diff", "data": json.dumps(payload)}
        finally:
            clients.discard(queue)

    return EventSourceResponse(stream(), ping=int(state["heartbeat"]) or 1)


app = Starlette(routes=[Route("/api/events", events)])


def pub() -> str:
    state["seq"] += 1
    seq = state["seq"]
    t = now()
    payload = event_payload(seq)
    for queue in list(clients):
        queue.put_nowait((seq, payload))
    return f"{seq} {t:.6f}"


async def main(args: argparse.Namespace) -> None:
    raise_fd_limit()
    logging.basicConfig(level=logging.WARNING)
    state["heartbeat"] = args.heartbeat
    control = await serve_control(
        args.control, {"pub": pub, "count": lambda: f"{len(clients)}", "ping": lambda: "ok"}
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        backlog=4096,
        log_level="warning",
        access_log=False,
        lifespan="off",
        limit_concurrency=None,
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        control.close()


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=15.0)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
