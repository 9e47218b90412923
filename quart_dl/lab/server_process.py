"""Running a real quart-dl server process, for this project's tests, the bench and integrators.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .qbittorrent_nox import free_port
from .wait import wait_for

__all__ = ["ServerFactory", "ServerProcess", "get_json"]


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
