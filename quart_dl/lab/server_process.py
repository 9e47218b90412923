"""Running a real quart-dl server process, for this project's tests and for integrators.

The integration, end-to-end and Home Assistant suites all need the same thing: ``quart-dl
serve`` as a real process on a free loopback port, started and stopped with deadlines, its
log kept for the failure message. Shipped in the package (like ``quart.testing``) so the
suites in other environments can import it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .qbt_process import free_port

T = TypeVar("T")

#: Debian's Chromium (Playwright cannot download its own here) and the flags it needs on a
#: machine with no network beyond loopback: without the background-networking ones it
#: keeps trying Google's hosts, and as root it needs --no-sandbox.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - kept for the failure message
            last_error = exc
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{suffix}")
        time.sleep(interval)


def get_json(url: str, timeout: float = 5.0) -> Any:
    """GET a JSON document."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


class ServerProcess:
    """``python -m quart_dl serve`` on a free port, with its log in ``root/server.log``."""

    def __init__(
        self,
        root: Path,
        *,
        qbt_url: str,
        qbt_username: str = "admin",
        qbt_password: str = "",
        heartbeat: float = 1.0,
        poll_interval: float = 0.25,
        port: int = 0,
        extra_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.port = port or free_port()
        self.qbt_url = qbt_url
        self.qbt_username = qbt_username
        self.qbt_password = qbt_password
        self.heartbeat = heartbeat
        self.poll_interval = poll_interval
        self.extra_args = extra_args
        self.env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """Base URL, with a trailing slash."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        """Where the server's stderr goes."""
        return self.root / "server.log"

    def log_text(self) -> str:
        """The server log so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def command(self) -> list[str]:
        """The command line (the password goes through the environment, never argv)."""
        return [
            sys.executable,
            "-m",
            "quart_dl",
            "serve",
            "--qbt-url",
            self.qbt_url,
            "--qbt-username",
            self.qbt_username,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--data-dir",
            str(self.root / "data"),
            "--heartbeat",
            f"{self.heartbeat:g}",
            "--poll-interval",
            f"{self.poll_interval:g}",
            "--idle-poll-interval",
            f"{max(self.poll_interval, 1.0):g}",
            "--log-level",
            "DEBUG",
            *self.extra_args,
        ]

    def start(self, timeout: float = 20.0) -> None:
        """Start and wait until ``/healthz`` answers."""
        env = {**os.environ, **self.env, "QUART_DL_QBT_PASSWORD": self.qbt_password}
        env.pop("QUART_DL_CONFIG", None)
        log = self.log_path.open("ab")
        try:
            # cwd: run the installed package, not a quart_dl/ that happens to be in the
            # current folder (under tox that would be the checkout, not the wheel).
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=self.root
            )
        finally:
            log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"quart-dl exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                return bool(get_json(self.url + "healthz", timeout=1.0).get("ok"))
            except (OSError, urllib.error.URLError, ValueError):
                return False

        try:
            wait_for(ready, timeout, "quart-dl to answer /healthz")
        except TimeoutError as exc:
            self.kill()
            raise TimeoutError(f"{exc}\n{self.log_text()[-3000:]}") from None

    def stop(self, timeout: float = 10.0) -> float:
        """SIGTERM and wait; returns how long the exit took (SIGKILL after ``timeout``)."""
        if self.proc is None:
            return 0.0
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: the server dies without closing anything."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    @property
    def running(self) -> bool:
        """The process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> Any:
        """``GET /api/status``."""
        return get_json(self.url + "api/status")

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SSEMessage:
    """One parsed SSE message (an event, or a comment such as a heartbeat)."""

    __slots__ = ("at", "comment", "data", "event", "id", "retry")

    def __init__(self) -> None:
        self.at = 0.0
        self.id: str | None = None
        self.event = "message"
        self.data: str | None = None
        self.comment: str | None = None
        self.retry: int | None = None

    def json(self) -> Any:
        """The data, decoded."""
        assert self.data is not None
        return json.loads(self.data)

    def __repr__(self) -> str:
        if self.comment is not None:
            return f"<SSE comment {self.comment!r}>"
        return f"<SSE {self.event} id={self.id} {len(self.data or '')} bytes>"


class SSEReader:
    """A blocking SSE client on its own thread: records every message with its arrival time.

    Written against the raw bytes (``http.client``), not a library, so the tests see exactly
    what the server sent: comments, ``retry:``, ids, and where the stream ended.
    """

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, timeout: float = 120.0) -> None:
        import http.client
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        self.messages: list[SSEMessage] = []
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.ended = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._conn.request("GET", path, headers={"Accept": "text/event-stream", **(headers or {})})
        self._sock = self._conn.sock
        response = self._conn.getresponse()
        self.status = response.status
        self.response_headers = {k.lower(): v for k, v in response.getheaders()}
        self._response = response
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        current = SSEMessage()
        data_lines: list[str] = []
        try:
            while True:
                raw = self._response.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    if data_lines or current.comment is not None or current.retry is not None:
                        current.data = "\n".join(data_lines) if data_lines else None
                        current.at = time.monotonic()
                        with self._lock:
                            self.messages.append(current)
                    current, data_lines = SSEMessage(), []
                elif line.startswith(":"):
                    current.comment = line[1:].strip()
                else:
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "data":
                        data_lines.append(value)
                    elif name == "id":
                        current.id = value
                    elif name == "event":
                        current.event = value
                    elif name == "retry":
                        current.retry = int(value)
        except Exception as exc:  # noqa: BLE001 - a closed or broken stream ends the reader
            self.error = exc
        finally:
            self.ended.set()

    def snapshot(self) -> list[SSEMessage]:
        """The messages so far."""
        with self._lock:
            return list(self.messages)

    def events(self, kind: str | None = None) -> list[SSEMessage]:
        """Events (not comments), optionally of one kind."""
        return [m for m in self.snapshot() if m.data is not None and (kind is None or m.event == kind)]

    def heartbeats(self) -> list[SSEMessage]:
        """Heartbeat comments received."""
        return [m for m in self.snapshot() if m.comment == "heartbeat"]

    def wait(self, predicate: Callable[[list[SSEMessage]], T | None], timeout: float, what: str) -> T:
        """Wait until ``predicate(messages)`` is truthy."""

        def check() -> T | None:
            if self.ended.is_set() and not predicate(self.snapshot()):
                raise RuntimeError(f"stream ended while waiting for {what}")
            return predicate(self.snapshot())

        return wait_for(check, timeout, what)

    @property
    def last_id(self) -> str | None:
        """The newest event id seen."""
        ids = [m.id for m in self.snapshot() if m.id]
        return ids[-1] if ids else None

    def close(self) -> None:
        """Hang up."""
        import socket

        # A blocking readline() on the reader thread is only interrupted by a shutdown.
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conn.close()
        self._thread.join(5)

    def __enter__(self) -> SSEReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def qbittorrent_processes(under: Path) -> list[int]:
    """PIDs of live qbittorrent-nox processes whose profile is ``under`` or below it."""
    needle = f"--profile={under}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg == needle or arg.startswith(needle + b"/") for arg in args):
            pids.append(int(entry.name))
    return pids


class ServerFactory:
    """Starts ``ServerProcess``es that follow one qBittorrent, and stops them all at the end.

    The shape of the ``make_server`` fixture in the integration and end-to-end suites.
    """

    def __init__(self, root: Path, qbt_url: str, qbt_username: str, qbt_password: str) -> None:
        self.root = root
        self.defaults: dict[str, Any] = {
            "qbt_url": qbt_url,
            "qbt_username": qbt_username,
            "qbt_password": qbt_password,
        }
        self.started: list[ServerProcess] = []

    def __call__(self, **kwargs: Any) -> ServerProcess:
        server = ServerProcess(self.root / f"server{len(self.started)}", **{**self.defaults, **kwargs})
        self.started.append(server)
        server.start()
        return server

    def close(self) -> None:
        """Stop every server started."""
        for server in self.started:
            server.stop()
