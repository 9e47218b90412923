"""Run real ``qbittorrent-nox`` processes on loopback, for the demo and the tests.

quart-dl's promise ("the panel never goes stale") can only be shown against a real
qBittorrent: its Web API quirks (partial ``sync/maindata`` updates, IP bans after failed
logins, a daemon that hangs rather than dies) are what the service must survive. This module
starts such daemons in throw-away profile directories, locked down so that a test run never
touches the network or the user's own qBittorrent:

* everything binds to 127.0.0.1 (BitTorrent and Web UI), no DHT/LSD/PeX/UPnP, TCP only;
* the Web UI never bans (``MaxAuthenticationFailCount=0``), so a wrong-password test cannot
  lock the next test out;
* every started process is tracked and stopped at interpreter exit, so none is left behind.
  (``atexit`` does not run when Python itself dies of a signal: a long-running user such
  as ``quart-dl demo`` should turn SIGTERM into ``SystemExit``. The daemons stay in our
  process group, so a Ctrl-C in a terminal reaches them too.)

Two qBittorrents are tested: Debian 12's own ``qbittorrent-nox`` (4.5.2, found by
:func:`find_qbittorrent_nox`) and Debian 13's (5.1), which ``./dev setup`` installs into a
debootstrapped tree and announces as ``$QUART_DL_QBITTORRENT_NOX_5`` (:func:`daemon_binary`).
A :class:`QbtInstance` runs whichever ``binary`` it is given and records the version that
answered (:attr:`QbtInstance.version`), so a test can assert which one it got. What differs
between them and matters here is said where it is handled: the legal notice and the
"add stopped" preference in :meth:`QbtInstance.write_config`; ``torrents/pause`` vs
``torrents/stop`` and ``paused`` vs ``stopped`` on add are chosen by qbittorrent-api from
``app/webapiVersion`` (2.11.0 is 5.0's); the states ``pausedDL``/``pausedUP`` became
``stoppedDL``/``stoppedUP`` (:mod:`quart_dl.torrents` maps both to the phase ``paused``).

It is synchronous and depends on nothing else in ``quart_dl``: tests, the e2e suite, the
Home Assistant tests and ``quart-dl demo`` all use it as is. Its errors derive from
:class:`DaemonError`, which has nothing to do with the service's
:class:`quart_dl.qbittorrent.client.QbtError` (a failed call to a qBittorrent the service follows).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import qbittorrentapi

__all__ = [
    "VERSION_ENV",
    "DaemonError",
    "QbtInstance",
    "QbtNotInstalled",
    "QbtStartError",
    "daemon_binary",
    "find_qbittorrent_nox",
    "free_port",
    "hash_password",
    "qbittorrent_processes",
]

#: PBKDF2 parameters qBittorrent (>= 4.2) uses for ``WebUI\Password_PBKDF2``.
PBKDF2_ITERATIONS = 100_000
PBKDF2_KEY_LENGTH = 64
PBKDF2_SALT_LENGTH = 16

#: Where to look when ``qbittorrent-nox`` is not on ``$PATH``.
FALLBACK_PATHS: tuple[str, ...] = ("/usr/bin/qbittorrent-nox", "/usr/local/bin/qbittorrent-nox")

#: The environment variable naming the ``qbittorrent-nox`` of each major version that is not
#: the system's own (``./dev setup`` exports it: a wrapper that runs Debian 13's daemon).
VERSION_ENV: dict[str, str] = {"5": "QUART_DL_QBITTORRENT_NOX_5"}

#: How many times a first start may pick fresh ports after losing a port race.
_PORT_RETRIES = 3


class DaemonError(RuntimeError):
    """Base class for everything this module raises on purpose (a daemon we run, not one we follow)."""


class QbtNotInstalled(DaemonError):
    """``qbittorrent-nox`` is not on this machine."""


class QbtStartError(DaemonError):
    """The daemon exited, or its Web API did not answer a login before the deadline."""


# --------------------------------------------------------------------------- helpers

_handed_out_ports: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now.

    The kernel picks it (bind to port 0). The socket is closed before the daemon binds
    the port, so another process could take it in between; :meth:`QbtInstance.start`
    retries with fresh ports when that happens. A port is never handed out twice by one
    process, so two instances started back to back cannot be given the same one.
    """
    with _ports_lock:
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out_ports:
                _handed_out_ports.add(port)
                return port
    raise DaemonError("could not find a free TCP port on 127.0.0.1")


def find_qbittorrent_nox() -> str:
    """Return the path of the ``qbittorrent-nox`` binary.

    ``$QBITTORRENT_NOX`` wins (for a build elsewhere), then ``$PATH``, then the Debian
    location (``/usr/bin`` may be missing from a minimal ``$PATH`` in CI containers).
    """
    candidates = [os.environ.get("QBITTORRENT_NOX"), shutil.which("qbittorrent-nox")]
    candidates.extend(FALLBACK_PATHS)
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise QbtNotInstalled(
        "qbittorrent-nox was not found; install it with "
        "`sudo apt-get install qbittorrent-nox` (or set $QBITTORRENT_NOX)"
    )


def daemon_binary(major: str) -> str:
    """Return the ``qbittorrent-nox`` to run for qBittorrent ``major`` (``"4"`` or ``"5"``).

    ``"4"`` is the system's own (Debian 12's 4.5.2, :func:`find_qbittorrent_nox`); ``"5"`` is
    the wrapper named by ``$QUART_DL_QBITTORRENT_NOX_5``. A missing one raises
    :class:`QbtNotInstalled` with a one-line message saying how to install it: the tests
    that need it fail with that message rather than skip, so a run without 5.1 never looks
    like a run that tested it.
    """
    major = major.split(".", 1)[0]
    if major == "4":
        return find_qbittorrent_nox()
    env = VERSION_ENV.get(major)
    if env is None:
        raise QbtNotInstalled(f"no qBittorrent {major} is known to the lab (only 4 and 5)")
    path = os.environ.get(env)
    if not path:
        raise QbtNotInstalled(
            f"qBittorrent {major} is not set up: run `./dev setup` (it installs Debian 13's "
            f"qbittorrent-nox and exports ${env}), or set ${env} to a qbittorrent-nox {major}.x"
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise QbtNotInstalled(f"${env}={path} is not an executable file: run `./dev setup` to rebuild it")
    return path


def hash_password(password: str, salt: bytes | None = None) -> str:
    """Return the value qBittorrent stores in ``WebUI\\Password_PBKDF2``.

    Format ``@ByteArray(<base64 salt>:<base64 key>)`` with PBKDF2-HMAC-SHA512, 100000
    iterations, a 64-byte key and a 16-byte salt: what qBittorrent itself writes, so the
    daemon accepts the password without ever seeing it in clear text.
    """
    if salt is None:
        salt = secrets.token_bytes(PBKDF2_SALT_LENGTH)
    key = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, PBKDF2_ITERATIONS, PBKDF2_KEY_LENGTH)
    salt64 = base64.b64encode(salt).decode("ascii")
    key64 = base64.b64encode(key).decode("ascii")
    return f"@ByteArray({salt64}:{key64})"


def qbittorrent_processes(under: Path) -> list[int]:
    """PIDs of live qbittorrent-nox processes whose profile is ``under`` or below it.

    Read from ``/proc``, not from this module's registry: a test uses it to show that no
    daemon outlived what started it, even one started by another process.
    """
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


def _ini_value(value: str) -> str:
    """Quote a string for Qt's INI format when it needs it.

    QSettings splits unquoted values at commas (into a list) and treats a leading ``@``
    as a type marker; a quoted string with C-style escapes reads back verbatim. Qt 5
    (Debian's 4.5.2) reads the file as Latin-1, so anything outside ASCII is written as
    ``\\x<code point>``, which Qt 5 and 6 both decode; like Qt, a hex digit right after
    such an escape is escaped too, or it would be read as part of it.
    """
    if value and all(c.isascii() and (c.isalnum() or c in "_-./:+") for c in value):
        return value
    out: list[str] = []
    after_hex_escape = False
    for char in value:
        code = ord(char)
        if after_hex_escape and char in "0123456789abcdefABCDEF":
            out.append(f"\\x{code:x}")
            continue
        after_hex_escape = False
        if char in '\\"':
            out.append("\\" + char)
        elif code < 0x20 or code >= 0x7F:
            # Qt decodes one UTF-16 unit per escape: split astral characters into pairs.
            units = char.encode("utf-16-be", "surrogatepass")
            for i in range(0, len(units), 2):
                out.append(f"\\x{int.from_bytes(units[i : i + 2], 'big'):x}")
            after_hex_escape = True
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _tail(path: Path, limit: int = 3000) -> str:
    """Return the end of a log file (or a note that it is missing), for error messages."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return f"({path} not readable)"
    text = data.decode("utf-8", "replace").strip()
    return text or f"({path} is empty)"


# ---------------------------------------------------------------- process registry

_live: set[QbtInstance] = set()
_live_lock = threading.Lock()
_owner_pid = os.getpid()


def _cleanup_at_exit() -> None:
    """Stop every daemon this process started and did not stop (atexit hook).

    A crashed test or a Ctrl-C in the demo must not leave ``qbittorrent-nox`` running.
    Forked children inherit the registry but do not own the daemons: they skip it.
    """
    if os.getpid() != _owner_pid:
        return
    with _live_lock:
        instances = list(_live)
    for instance in instances:
        with contextlib.suppress(Exception):
            instance.stop(timeout=2.0)


atexit.register(_cleanup_at_exit)


# ---------------------------------------------------------------------- the daemon


def _random_password() -> str:
    return secrets.token_urlsafe(18)


@dataclass(eq=False)
class QbtInstance:
    """One ``qbittorrent-nox`` daemon with its own profile directory under ``root``.

    Ports left at 0 are picked when the instance is created, so :attr:`url` is known
    before :meth:`start` (a test can point quart-dl at a daemon that is not up yet). They
    are kept for the life of the object: a restart after :meth:`stop` comes back on the
    same ports with the same profile, like a real qBittorrent restart.

    Instances compare by identity (``eq=False``): two objects describing the same
    profile are still two daemons to manage.
    """

    root: Path
    webui_port: int = 0
    bt_port: int = 0
    username: str = "admin"
    password: str = field(default_factory=_random_password, repr=False)
    name: str = "qbt"
    #: The ``qbittorrent-nox`` to run (e.g. :func:`daemon_binary`); ``None`` means
    #: :func:`find_qbittorrent_nox` at each start.
    binary: str | None = None
    #: ``app/version`` of the daemon that last answered a start (``"v4.5.2"``, ``"v5.1.0"``),
    #: ``None`` before the first start.
    version: str | None = field(default=None, init=False)

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _suspended: bool = field(default=False, init=False, repr=False)
    _auto_ports: bool = field(default=False, init=False, repr=False)
    _started_once: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self._auto_ports = self.webui_port == 0 or self.bt_port == 0
        if self.webui_port == 0:
            self.webui_port = free_port()
        if self.bt_port == 0:
            self.bt_port = free_port()

    # ------------------------------------------------------------------ paths

    @property
    def config_path(self) -> Path:
        """``qBittorrent.conf`` inside the profile (``--profile`` appends ``qBittorrent/``)."""
        return self.root / "qBittorrent" / "config" / "qBittorrent.conf"

    @property
    def downloads(self) -> Path:
        """Where torrents are saved by default."""
        return self.root / "downloads"

    @property
    def log_path(self) -> Path:
        """The daemon's stdout and stderr (appended to across restarts)."""
        return self.root / "qbittorrent.log"

    @property
    def app_log_path(self) -> Path:
        """qBittorrent's own log file (bind errors and the like end up here)."""
        return self.root / "qBittorrent" / "data" / "logs" / "qbittorrent.log"

    @property
    def url(self) -> str:
        """Base URL of the Web UI, e.g. ``http://127.0.0.1:8080``."""
        return f"http://127.0.0.1:{self.webui_port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running daemon, ``None`` when not running."""
        return self._proc.pid if self._proc is not None and self.running else None

    @property
    def running(self) -> bool:
        """True while the daemon process exists (also when suspended)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def suspended(self) -> bool:
        """True between :meth:`suspend` and :meth:`resume`."""
        return self._suspended and self.running

    @property
    def major(self) -> str | None:
        """The major version of :attr:`version` (``"4"``, ``"5"``), ``None`` before a start."""
        return self.version.lstrip("v").split(".", 1)[0] if self.version else None

    # ----------------------------------------------------------------- config

    def write_config(self) -> None:
        """Write ``qBittorrent.conf`` so the daemon is private, quiet and fast.

        Each setting is there for a reason found the hard way (see DESIGN.md):

        * ``LegalNotice\\Accepted``: 4.5.2 otherwise waits for a "yes" on stdin; 5.1 only
          prints the notice and carries on. 5.x also has ``--confirm-legal-notice``, but
          4.5.2 exits on it ("unknown command line parameter"): the key suits both.
        * ``Session\\Interface*`` = lo / 127.0.0.1 and ``WebUI\\Address``: out of the box
          qBittorrent listens on every interface; tests must not be reachable from outside.
        * no DHT, LSD, PeX, UPnP/NAT-PMP: nothing leaves the machine, peers are added by hand.
        * queueing off: a fourth torrent would otherwise sit in ``queuedDL``.
        * TCP only and several connections per IP: every peer is 127.0.0.1, and without
          these a restarted peer on loopback can stay stalled.
        * ``RefreshInterval=250``: stats update 4x a second, so progress is smooth.
        * ``MaxAuthenticationFailCount=0``: never ban 127.0.0.1 after wrong passwords,
          or a wrong-password test would break every later login.
        * ``ResolvePeerCountries=false``: no GeoIP database download.
        * ``AddTorrentPaused`` (4.x) and ``AddTorrentStopped`` (its 5.x name): torrents
          start when added, whatever a default might become.

        Keys already in the file that are not ours (preferences set through the API)
        are kept; ours are rewritten, so the file always matches this object's ports and
        password even when a fresh object is pointed at an old profile. :meth:`start`
        calls this; a running daemon only reads it at its next start.
        """
        downloads = str(self.downloads) + "/"
        ours: dict[str, dict[str, str]] = {
            "LegalNotice": {"Accepted": "true"},
            "BitTorrent": {
                "Session\\Port": str(self.bt_port),
                "Session\\Interface": "lo",
                "Session\\InterfaceName": "lo",
                "Session\\InterfaceAddress": "127.0.0.1",
                "Session\\DHTEnabled": "false",
                "Session\\LSDEnabled": "false",
                "Session\\PeXEnabled": "false",
                "Session\\QueueingSystemEnabled": "false",
                "Session\\BTProtocol": "TCP",
                "Session\\MultiConnectionsPerIp": "true",
                "Session\\RefreshInterval": "250",
                "Session\\IgnoreLimitsOnLAN": "false",
                "Session\\AnonymousModeEnabled": "false",
                "Session\\DefaultSavePath": _ini_value(downloads),
                "Session\\TempPathEnabled": "false",
                "Session\\AddTorrentPaused": "false",
                "Session\\AddTorrentStopped": "false",
            },
            "Network": {"PortForwardingEnabled": "false"},
            "Preferences": {
                "WebUI\\Enabled": "true",
                "WebUI\\Address": "127.0.0.1",
                "WebUI\\Port": str(self.webui_port),
                "WebUI\\UseUPnP": "false",
                "WebUI\\Username": _ini_value(self.username),
                "WebUI\\Password_PBKDF2": f'"{hash_password(self.password)}"',
                "WebUI\\MaxAuthenticationFailCount": "0",
                "WebUI\\LocalHostAuth": "true",
                "Connection\\ResolvePeerCountries": "false",
                "General\\Locale": "en",
            },
        }
        sections = _read_ini(self.config_path)
        for section, values in ours.items():
            sections.setdefault(section, {}).update(values)
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.downloads.mkdir(parents=True, exist_ok=True)
        text = "".join(
            f"[{section}]\n" + "".join(f"{key}={value}\n" for key, value in values.items()) + "\n"
            for section, values in sections.items()
        )
        tmp = self.config_path.with_suffix(".conf.tmp")
        tmp.write_text(text, encoding="utf-8", errors="surrogateescape")
        tmp.replace(self.config_path)

    # -------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 15.0) -> None:
        """Start the daemon and return once its Web API accepts a login.

        The config is (re)written first. The daemon runs in the foreground (``-d`` would
        fork and hide the PID we need for stop/suspend), stdin from /dev/null, output
        appended to :attr:`log_path`. If the process exits, the Web UI cannot bind, or no
        login succeeds before ``timeout``, the process is killed and
        :class:`QbtStartError` carries the log tails. On a first start with picked ports
        a lost port race is retried with fresh ports. Starting a running instance is a
        no-op.
        """
        if self.running:
            return
        if "=" in str(self.root):
            # qbittorrent-nox splits "--profile=<value>" at every "=" and exits with
            # "Bad command line": say so now rather than show that log later.
            raise QbtStartError(
                f"{self.name}: qbittorrent-nox cannot use a profile path containing '=': {self.root}"
            )
        binary = self.binary or find_qbittorrent_nox()
        deadline = time.monotonic() + timeout
        attempts = _PORT_RETRIES if self._auto_ports and not self._started_once else 1
        for attempt in range(attempts):
            self.write_config()
            try:
                self._launch_and_wait(binary, deadline)
            except _PortInUse as exc:
                if attempt + 1 >= attempts or time.monotonic() >= deadline:
                    raise QbtStartError(self._failure(str(exc))) from None
                self.webui_port = free_port()
                self.bt_port = free_port()
                continue
            self._started_once = True
            return

    def _launch_and_wait(self, binary: str, deadline: float) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        app_log_offset = self.app_log_path.stat().st_size if self.app_log_path.exists() else 0
        with self.log_path.open("ab") as log:
            log.write(f"--- quart-dl: starting {binary} ({self.name}) ---\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                [binary, f"--profile={self.root}"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        self._suspended = False
        with _live_lock:
            _live.add(self)
        try:
            self._wait_ready(deadline, app_log_offset)
        except BaseException:
            self.kill()
            raise

    def _wait_ready(self, deadline: float, app_log_offset: int) -> None:
        """Poll ``auth/login`` until it says ``Ok.``.

        Raw urllib rather than qbittorrent-api: one cheap request per try, no retries
        hidden inside, and a short socket timeout so the deadline is kept. qBittorrent
        4.5.2 exits when the Web UI cannot bind, but only logs a BitTorrent port it
        cannot listen on (that is logged before the Web UI starts, so one more look
        after the login catches it).
        """
        body = urllib.parse.urlencode({"username": self.username, "password": self.password}).encode()
        last = "no answer yet"
        while True:
            assert self._proc is not None
            code = self._proc.poll()
            bind_failure = self._bind_failure(app_log_offset)
            if bind_failure:
                raise _PortInUse(bind_failure)
            if code is not None:
                raise QbtStartError(self._failure(f"qbittorrent-nox exited with code {code}"))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QbtStartError(self._failure(f"no successful login within the deadline ({last})"))
            request = urllib.request.Request(f"{self.url}/api/v2/auth/login", data=body)
            try:
                with urllib.request.urlopen(request, timeout=min(1.0, remaining)) as reply:
                    text = reply.read().decode("utf-8", "replace").strip()
            except (OSError, urllib.error.URLError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if text in ("Ok.", ""):
                    bind_failure = self._bind_failure(app_log_offset)
                    if bind_failure:
                        raise _PortInUse(bind_failure)
                    self.version = self._read_version(body, max(1.0, deadline - time.monotonic()))
                    return
                if text == "Fails.":
                    raise QbtStartError(self._failure("the Web UI rejected the configured password"))
                last = f"unexpected answer {text[:80]!r}"
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def _read_version(self, login: bytes, timeout: float) -> str:
        """Log in with a session of its own and read ``app/version`` (``"v5.1.0"``).

        ``app/version`` needs a logged-in session (``LocalHostAuth`` is on), hence the cookie
        jar; recorded so tests can assert which qBittorrent they got.
        """
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        try:
            with opener.open(f"{self.url}/api/v2/auth/login", data=login, timeout=timeout):
                pass
            with opener.open(f"{self.url}/api/v2/app/version", timeout=timeout) as reply:
                return str(reply.read().decode("utf-8", "replace").strip())
        except (OSError, urllib.error.URLError) as exc:
            raise QbtStartError(self._failure(f"app/version did not answer: {exc}")) from None

    def _bind_failure(self, offset: int) -> str | None:
        """Say which of our ports was taken, from qBittorrent's log since ``offset``."""
        try:
            with self.app_log_path.open("rb") as handle:
                handle.seek(offset)
                new = handle.read()
        except OSError:
            return None
        if b"Web UI: Unable to bind" in new:
            return f"the Web UI could not bind 127.0.0.1:{self.webui_port} (port taken)"
        if f'Port: "TCP/{self.bt_port}"'.encode() in new and b"Failed to listen" in new:
            return f"BitTorrent could not bind 127.0.0.1:{self.bt_port} (port taken)"
        return None

    def _failure(self, reason: str) -> str:
        return (
            f"{self.name}: {reason}\n"
            f"--- {self.log_path} (tail) ---\n{_tail(self.log_path)}\n"
            f"--- {self.app_log_path} (tail) ---\n{_tail(self.app_log_path)}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop gracefully (SIGTERM, ~0.1 s), SIGKILL after ``timeout``; always reaps.

        SIGCONT follows the SIGTERM: a suspended daemon could not act on it otherwise.
        Safe to call when not running, and twice.
        """
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
                proc.send_signal(signal.SIGCONT)  # harmless if it was not stopped
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL and reap: a crash, without the resume data a clean stop saves."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        proc.wait()
        self._forget()

    def _forget(self) -> None:
        self._suspended = False
        with _live_lock:
            _live.discard(self)

    def suspend(self) -> None:
        """SIGSTOP: the daemon stays up but answers nothing, like a hung qBittorrent.

        The kernel still accepts TCP connections on its ports, so clients see read
        timeouts rather than refused connections (the "hung" case, not "down").
        """
        if not self.running:
            raise DaemonError(f"{self.name} is not running")
        assert self._proc is not None
        self._proc.send_signal(signal.SIGSTOP)
        self._suspended = True

    def resume(self) -> None:
        """SIGCONT after :meth:`suspend`; requests queued meanwhile are then answered."""
        if not self.running:
            raise DaemonError(f"{self.name} is not running")
        assert self._proc is not None
        self._proc.send_signal(signal.SIGCONT)
        self._suspended = False

    def restart(self, timeout: float = 15.0) -> None:
        """Stop, then start again on the same ports and profile."""
        self.stop()
        self.start(timeout=timeout)

    # ----------------------------------------------------------------- client

    def client(self, *, password: str | None = None, timeout: float = 5.0) -> qbittorrentapi.Client:
        """Return a new, logged-in ``qbittorrentapi.Client`` with its own session.

        Its own session because qBittorrent's ``sync/maindata`` rid is per session: two
        users of one cookie spoil each other's rid. ``timeout`` is per HTTP attempt. A
        hung daemon fails a call after about ``2 * timeout`` (qbittorrent-api retries
        once) rather than ``4 * timeout``: urllib3's own retry is off, and the scheme is
        taken from :attr:`url`, because on a retry qbittorrent-api otherwise probes HTTP
        and then HTTPS, each probe waiting a full timeout. Pass a ``password`` to try
        another one: a wrong one raises ``LoginFailed``.
        """
        client = qbittorrentapi.Client(
            host=self.url,
            username=self.username,
            password=self.password if password is None else password,
            REQUESTS_ARGS={"timeout": timeout},
            HTTPADAPTER_ARGS={"max_retries": 0},
            FORCE_SCHEME_FROM_HOST=True,
        )
        client.auth_log_in()
        return client

    # -------------------------------------------------------- context manager

    def __enter__(self) -> QbtInstance:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _PortInUse(DaemonError):
    """Internal: another process holds one of our ports; :meth:`QbtInstance.start` may retry."""


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    """Read a QSettings INI file into ordered sections, values kept verbatim.

    Hand-rolled rather than configparser: QSettings keys contain backslashes and values
    may contain ``=``, ``;`` or ``%``, all of which must round-trip untouched.
    """
    sections: dict[str, dict[str, str]] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except FileNotFoundError:
        return sections
    current: dict[str, str] | None = None
    for line in lines:
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], {})
        elif "=" in stripped and current is not None:
            key, _, value = stripped.partition("=")
            current[key.strip()] = value.strip()
    return sections
