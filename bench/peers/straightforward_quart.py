"""Peer (a): the endpoint written the way the original app did it, on Quart/Hypercorn.

One ``asyncio.Queue`` per client, the payload JSON-encoded per client, and
``asyncio.wait_for(queue.get(), heartbeat)`` for the heartbeat. Same routes, same
payloads, same control socket as quart-dl's target.

    python -m bench.peers.straightforward_quart --port P --control C --heartbeat H
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart, Response

from ..common import event_payload, now, raise_fd_limit, serve_control

app = Quart(__name__)
clients: set[asyncio.Queue[tuple[int, dict[str, Any]]]] = set()
state: dict[str, Any] = {"seq": 0, "torrents": {}, "heartbeat": 15.0}


@app.get("/api/events")
async def events() -> Response:
    queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
    clients.add(queue)

    async def stream():  # type: ignore[no-untyped-def]
        try:
            snapshot = {"torrents": state["torrents"], "status": {"qbittorrent": "connected"}}
            yield f"retry: 3000\n\nid: {state['seq']}\nevent: snapshot\ndata: {json.dumps(snapshot)}\n\n"
            while True:
                try:
                    seq, payload = await asyncio.wait_for(queue.get(), state["heartbeat"])
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                yield f"id: {seq}\nevent: diff\ndata: {json.dumps(payload)}\n\n"
        finally:
            clients.discard(queue)

    response = Response(stream(), content_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    response.timeout = None
    return response


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
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.backlog = 4096
    config.read_timeout = None
    config.accesslog = None
    try:
        await serve(app, config)
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
