"""Server CPU per request for the panel's files, on one keep-alive connection, beside ``/healthz``.

Why: a page load of the panel fetches index.html and about twenty modules (Home Assistant's
sidebar loads it each time it is opened), and a reload storm thousands of them; each went
through ``send_from_directory`` (four stats, a file body read in a worker thread). This
measures what one such request costs the server: a real quart-dl process
(``bench.target_quartdl``), one client connection kept alive as a browser's is, N sequential
GETs of each path, the server's CPU (schedstat, all threads) ÷ N. ``/healthz`` is the
baseline in the same run: what any request through Hypercorn and Quart costs.

Tree-agnostic (HTTP only), so the same file can be run from an older checkout:
``cd OLD && python /path/to/bench/pagefiles.py``.

    python -m bench.pagefiles [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.getcwd())  # the checkout run from, as the server's ``-m`` would

from bench.common import content_length, cpu_ns, free_port

PATHS = ("/healthz", "/", "/detail.js", "/style.css")
#: Requests per connection: a page load makes a few dozen on each of its connections.
PER_CONNECTION = 500


def read_some(s: socket.socket) -> bytes:
    data = s.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data


def get_all(port: int, path: str, n: int) -> int:
    """N GETs of ``path``, each answer read whole, at most ``PER_CONNECTION`` per connection
    (Hypercorn closes a connection after 1,000); the last status."""
    status = 0
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode()
    left = n
    while left:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            for _ in range(min(left, PER_CONNECTION)):
                s.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += read_some(s)
                head, _, body = data.partition(b"\r\n\r\n")
                length = content_length(head)
                while len(body) < length:
                    body += read_some(s)
                status = int(head.split(b" ", 2)[1])
                left -= 1
    return status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="GETs of each path per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port, control = free_port(), free_port()
    command = [sys.executable, "-m", "bench.target_quartdl", "--port", str(port), "--control", str(control)]
    server = subprocess.Popen(
        [*command, "--heartbeat", "5"],
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        time.sleep(2.0)  # its first poll and commit
        print("| round | path | status | server CPU ms per request |")
        print("| --- | --- | --- | --- |")
        for round_ in range(1, args.rounds + 1):
            for path in PATHS:
                before = cpu_ns(server.pid)
                status = get_all(port, path, args.requests)
                per = (cpu_ns(server.pid) - before) / args.requests / 1e6
                print(f"| {round_} | `{path}` | {status} | {per:.2f} |", flush=True)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
