"""Tests for quart_dl.lab.qbittorrent_nox against real qbittorrent-nox processes (no mocks).

Every test waits on a condition with a deadline; none sleeps and hopes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import qbittorrentapi

from quart_dl.lab import qbittorrent_nox
from quart_dl.lab.qbittorrent_nox import (
    QbtInstance,
    QbtNotInstalled,
    QbtStartError,
    find_qbittorrent_nox,
    free_port,
    hash_password,
    qbittorrent_processes,
)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------- pure helpers


def test_hash_password_matches_qbittorrent_format() -> None:
    salt = bytes(range(16))
    value = hash_password("adminadmin", salt)
    assert value.startswith("@ByteArray(")
    assert value.endswith(")")
    salt64, key64 = value[len("@ByteArray(") : -1].split(":")
    assert base64.b64decode(salt64) == salt
    key = base64.b64decode(key64)
    assert len(key) == 64
    assert key == hashlib.pbkdf2_hmac("sha512", b"adminadmin", salt, 100_000, 64)


def test_hash_password_salts_randomly() -> None:
    first, second = hash_password("x"), hash_password("x")
    assert first != second
    assert len(base64.b64decode(first[len("@ByteArray(") :].split(":")[0])) == 16


def test_free_port_is_bindable_and_never_repeats() -> None:
    ports = [free_port() for _ in range(20)]
    assert len(set(ports)) == 20
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[-1]))


def test_find_qbittorrent_nox_explains_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("QBITTORRENT_NOX", raising=False)
    monkeypatch.setattr(qbittorrent_nox, "FALLBACK_PATHS", ())
    with pytest.raises(QbtNotInstalled, match="apt-get install qbittorrent-nox"):
        find_qbittorrent_nox()


def test_write_config_locks_the_daemon_down(tmp_path: Path) -> None:
    q = QbtInstance(tmp_path / "p", password="secret")
    q.write_config()
    text = q.config_path.read_text()
    for line in [
        "Accepted=true",
        f"Session\\Port={q.bt_port}",
        "Session\\InterfaceAddress=127.0.0.1",
        "Session\\DHTEnabled=false",
        "Session\\LSDEnabled=false",
        "Session\\PeXEnabled=false",
        "Session\\QueueingSystemEnabled=false",
        "Session\\BTProtocol=TCP",
        "Session\\MultiConnectionsPerIp=true",
        "Session\\RefreshInterval=250",
        "PortForwardingEnabled=false",
        "WebUI\\Address=127.0.0.1",
        f"WebUI\\Port={q.webui_port}",
        "WebUI\\MaxAuthenticationFailCount=0",
        "Connection\\ResolvePeerCountries=false",
        'WebUI\\Password_PBKDF2="@ByteArray(',
    ]:
        assert line in text
    assert "secret" not in text
    assert "secret" not in repr(q)


def test_write_config_keeps_foreign_keys(tmp_path: Path) -> None:
    q = QbtInstance(tmp_path / "p")
    q.write_config()
    with q.config_path.open("a") as handle:
        handle.write("[Custom]\nSome\\Key=a=b;c\n")
    q.write_config()
    assert "Some\\Key=a=b;c" in q.config_path.read_text()


def test_profile_path_with_equals_sign_is_refused_early(tmp_path: Path) -> None:
    q = QbtInstance(tmp_path / "a=b")
    with pytest.raises(QbtStartError, match="'='"):
        q.start()


# ------------------------------------------------------------------ real daemons


def test_start_stop_restart_keeps_ports_and_profile(tmp_path: Path) -> None:
    q = QbtInstance(tmp_path / "p", name="restart")
    ports = (q.webui_port, q.bt_port)
    started = time.monotonic()
    q.start()
    assert time.monotonic() - started < 5
    try:
        assert q.running
        first_pid = q.pid
        assert first_pid is not None
        client = q.client()
        assert client.app_version().startswith("v")
        prefs = client.app_preferences()
        assert (prefs["web_ui_port"], prefs["listen_port"]) == ports
        assert prefs["dht"] is False
        assert prefs["upnp"] is False
        assert str(prefs["save_path"]).rstrip("/") == str(q.downloads)

        q.stop()
        assert not q.running
        assert q.pid is None
        assert not pid_alive(first_pid)
        with pytest.raises(qbittorrentapi.APIConnectionError):
            client.app_version()

        q.start()
        assert (q.webui_port, q.bt_port) == ports
        assert q.pid != first_pid
        prefs = q.client().app_preferences()
        assert (prefs["web_ui_port"], prefs["listen_port"]) == ports
        assert "restart" in q.log_path.read_text()
    finally:
        q.stop()
    assert qbittorrent_processes(q.root) == []


def test_wrong_password_fails_without_banning(tmp_path: Path) -> None:
    """Six wrong logins (default ban is after five), then the right one still works."""
    with QbtInstance(tmp_path / "p") as q:
        for _ in range(6):
            with pytest.raises(qbittorrentapi.LoginFailed):
                q.client(password="wrong")
        assert q.client().app_version().startswith("v")


def test_suspend_makes_calls_time_out_and_resume_recovers(tmp_path: Path) -> None:
    with QbtInstance(tmp_path / "p") as q:
        client = q.client(timeout=0.5)
        q.suspend()
        assert q.suspended
        assert q.running
        started = time.monotonic()
        with pytest.raises(qbittorrentapi.APIConnectionError) as caught:
            client.app_version()
        elapsed = time.monotonic() - started
        assert not isinstance(caught.value, qbittorrentapi.HTTPError)
        assert 0.9 < elapsed < 2.5, elapsed  # a timeout, not a refusal: 2 attempts of 0.5 s
        q.resume()
        assert not q.suspended
        assert client.app_version().startswith("v")


def test_stop_while_suspended_is_graceful_and_prompt(tmp_path: Path) -> None:
    q = QbtInstance(tmp_path / "p")
    q.start()
    pid = q.pid
    assert pid is not None
    q.suspend()
    started = time.monotonic()
    q.stop(timeout=5)
    assert time.monotonic() - started < 3  # SIGCONT let it act on SIGTERM
    assert not pid_alive(pid)
    assert qbittorrent_processes(q.root) == []


def test_kill_and_context_manager_leave_no_process(tmp_path: Path) -> None:
    q = QbtInstance(tmp_path / "killed")
    q.start()
    q.kill()
    assert not q.running
    assert qbittorrent_processes(q.root) == []

    with QbtInstance(tmp_path / "ctx") as ctx:
        assert qbittorrent_processes(ctx.root) == [ctx.pid]
    assert qbittorrent_processes(ctx.root) == []


def test_fresh_object_on_old_profile_uses_its_own_password(tmp_path: Path) -> None:
    with QbtInstance(tmp_path / "p", password="one"):
        pass
    with QbtInstance(tmp_path / "p", password="two") as again:
        assert again.client().app_version().startswith("v")


def test_webui_port_taken_by_someone_else(tmp_path: Path) -> None:
    """A fixed port that is taken fails fast with the log; a picked one is re-picked."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        fixed = QbtInstance(tmp_path / "fixed", webui_port=taken, bt_port=free_port())
        started = time.monotonic()
        with pytest.raises(QbtStartError, match="could not bind"):
            fixed.start(timeout=10)
        assert time.monotonic() - started < 5
        assert qbittorrent_processes(fixed.root) == []

        picked = QbtInstance(tmp_path / "picked")
        picked.webui_port = taken  # as if another process won the race for it
        with picked:
            assert picked.webui_port != taken
            assert picked.client().app_version().startswith("v")


def test_atexit_cleanup_stops_forgotten_daemons(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from quart_dl.lab.qbittorrent_nox import QbtInstance
        q = QbtInstance(Path({str(tmp_path / "forgotten")!r}))
        q.start()
        print(q.pid, flush=True)
        """
    )
    repo = Path(__file__).resolve().parents[1]
    paths = [str(repo), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, env=env)
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.strip())
    assert not pid_alive(pid)
    assert qbittorrent_processes(tmp_path / "forgotten") == []


def test_bittorrent_port_taken_by_someone_else(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        fixed = QbtInstance(tmp_path / "fixed", webui_port=free_port(), bt_port=taken)
        with pytest.raises(QbtStartError, match="BitTorrent could not bind"):
            fixed.start(timeout=10)
        assert qbittorrent_processes(fixed.root) == []

        picked = QbtInstance(tmp_path / "picked")
        picked.bt_port = taken
        with picked:
            assert picked.bt_port != taken
            assert picked.client().app_preferences()["listen_port"] == picked.bt_port
