"""Debian's nginx as a child process with a config of our own, for proxy scenarios.

Everything nginx writes (pid, error log, access log, temp files) stays in the instance's
folder; it listens on loopback ports picked by the test and runs in the foreground
(``daemon off;``), so it is stopped like any child process. The config is written from the
server blocks a test gives, inside an ``http`` block that keeps nginx's defaults for
everything a test does not set (``proxy_buffering on``, gzip off, HTTP/1.0 upstream unless
asked): the point is to see what an unprepared proxy does to the stream.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from quart_dl.lab.wait import wait_for

NGINX = "/usr/sbin/nginx"


def proxy_location(prefix: str, upstream: int | str, *, read_timeout: str = "5s", extra: str = "") -> str:
    """A ``location`` that proxies ``prefix`` to quart-dl, stripping the prefix.

    ``upstream``: quart-dl's port on loopback, or the name of an ``upstream`` block
    (``keepalive_upstream``). HTTP/1.1 with keep-alive to the upstream, as the README's example
    has it, but with nginx's default buffering (``proxy_buffering on``): quart-dl's
    ``X-Accel-Buffering: no`` header is what must turn buffering off for the streams.
    """
    target = f"127.0.0.1:{upstream}" if isinstance(upstream, int) else upstream
    return f"""
        location {prefix} {{
            proxy_pass http://{target}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_read_timeout {read_timeout};
            {extra}
        }}
    """


def keepalive_upstream(name: str, port: int, keepalive: int = 32) -> str:
    """An ``upstream`` block keeping up to ``keepalive`` idle connections to quart-dl open, so
    that nginx sends later requests (a stream among them) on connections that served others."""
    return f"upstream {name} {{ server 127.0.0.1:{port}; keepalive {keepalive}; }}"


class Nginx:
    """One nginx master (and one worker) serving ``servers`` (``server { ... }`` blocks)."""

    def __init__(self, root: Path, servers: list[str], ports: list[int]) -> None:
        self.root = root
        self.servers = servers
        self.ports = ports
        self.proc: subprocess.Popen[bytes] | None = None
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def conf_path(self) -> Path:
        return self.root / "nginx.conf"

    @property
    def error_log(self) -> Path:
        return self.root / "error.log"

    @property
    def access_log(self) -> Path:
        return self.root / "access.log"

    def error_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def access_lines(self) -> list[str]:
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def write_config(self) -> None:
        temp = self.root / "temp"
        for name in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / name).mkdir(parents=True, exist_ok=True)
        user = "user root;" if os.geteuid() == 0 else ""
        body = "\n".join(self.servers)
        self.conf_path.write_text(
            f"""
{user}
worker_processes 1;
pid {self.root}/nginx.pid;
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    access_log {self.access_log};
    client_body_temp_path {temp}/client;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    types {{ text/html html; }}
    default_type application/octet-stream;
{body}
}}
"""
        )

    def start(self, timeout: float = 10.0) -> None:
        if not Path(NGINX).exists() and not shutil.which("nginx"):
            raise RuntimeError(f"{NGINX} is missing: apt-get install -y nginx")
        self.write_config()
        binary = NGINX if Path(NGINX).exists() else str(shutil.which("nginx"))
        check = subprocess.run(
            [binary, "-t", "-p", str(self.root), "-c", str(self.conf_path), "-g", "daemon off;"],
            capture_output=True,
            text=True,
            check=False,
        )
        if check.returncode != 0:
            raise RuntimeError(f"nginx rejected its config:\n{check.stderr}\n{self.conf_path.read_text()}")
        with (self.root / "stderr.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [binary, "-p", str(self.root), "-c", str(self.conf_path), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.error_text()[-2000:]}")
            for port in self.ports:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                except OSError:
                    return False
            return True

        try:
            wait_for(listening, timeout, "nginx to listen")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # SIGQUIT is nginx's graceful stop, but it waits for open streams: SIGTERM is fast.
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Nginx:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
