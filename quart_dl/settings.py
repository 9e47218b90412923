"""Settings: command-line flags over ``QUART_DL_*`` environment variables over a TOML file.

Every setting is declared once in ``SETTING_SPECS``; the CLI, the environment and the TOML file are
all read through that table, so a setting cannot exist in one source and be missing from
another. Validation happens here, before anything starts, and a bad value raises
``SettingsError`` with one sentence naming the setting: the CLI prints it and exits 2.

The qBittorrent password is kept in a ``Secret`` whose ``repr``/``str`` hide it, so no log
line or error message built from settings can leak it.

Several qBittorrent instances: the TOML file's ``[[instances]]`` tables, each checked here
(``_parse_instances``); the flat ``qbt_*`` settings describe instance ``default``, followed
when there is no table or when any ``qbt_*`` setting is given (``Settings.instances``).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .instance_settings import DEFAULT_ID, ID_RE, InstanceSettings, same_url_key
from .secret import Secret as Secret  # re-exported: settings hold secrets

ENV_PREFIX = "QUART_DL_"


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the setting and the problem."""


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/quart-dl`` (``~/.local/share/quart-dl``): where SQLite lives by default."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "quart-dl"


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with, validated."""

    qbt_url: str = "http://127.0.0.1:8080"
    qbt_name: str = "qBittorrent"
    qbt_username: str = "admin"
    qbt_password: Secret = field(default_factory=lambda: Secret(""))
    qbt_password_file: Path | None = None
    poll_interval: float = 1.0
    idle_poll_interval: float = 30.0
    heartbeat: float = 15.0
    retry_ms: int = 3000
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""
    bind: str = "127.0.0.1:8765"
    root_path: str = ""
    frame_ancestors: str = "auto"
    queue_size: int = 256
    send_timeout: float = 30.0
    replay_size: int = 2048
    event_window_minutes: int = 60
    event_window_events: int = 10_000
    lifecycle_days: int = 30
    history_minutes: int = 24 * 60
    sample_interval: float = 5.0
    backlog: int = 4096
    log_level: str = "INFO"
    access_token: Secret = field(default_factory=lambda: Secret(""))
    access_token_file: Path | None = None
    cors_origins: tuple[str, ...] = ()
    max_streams_per_client: int = 64
    max_streams: int = 20_000
    allowed_hosts: tuple[str, ...] = ()
    max_connections_per_client: int = 0
    read_token: Secret = field(default_factory=lambda: Secret(""))
    read_token_file: Path | None = None
    open_actions: bool = False
    max_upload_bytes: int = 16 * 1024 * 1024
    # Not settings of their own (no flag, no variable: ``TABLE_FIELDS``):
    #: The TOML file's ``[[instances]]`` tables, validated, in the file's order.
    instance_tables: tuple[InstanceSettings, ...] = ()
    #: Whether a ``qbt_*`` setting was given (flag, variable or TOML key): the flat settings
    #: then describe instance ``default`` next to the tables, so a file that had ``qbt_url``
    #: and gained one ``[[instances]]`` table follows both.
    qbt_given: bool = False

    @property
    def instances(self) -> tuple[InstanceSettings, ...]:
        """Every followed qBittorrent, in configured order; the first is the primary (the one
        protocol-1 routes without ``instance`` mean)."""
        if self.instance_tables and not self.qbt_given:
            return self.instance_tables
        return (self.default_instance(), *self.instance_tables)

    def default_instance(self) -> InstanceSettings:
        """The instance the flat ``qbt_*`` settings describe (id ``default``)."""
        return InstanceSettings(
            id=DEFAULT_ID,
            name=self.qbt_name,
            url=self.qbt_url,
            username=self.qbt_username,
            password=self.qbt_password,
            poll_interval=self.poll_interval,
            idle_poll_interval=self.idle_poll_interval,
        )

    @property
    def host(self) -> str:
        """Host part of ``bind``."""
        return self.bind.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        """Port part of ``bind``."""
        return int(self.bind.rsplit(":", 1)[1])

    def resolved_database_url(self) -> str:
        """The database URL, defaulting to an SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite://{self.data_dir / 'quart-dl.sqlite3'}"


def _parse_float(name: str, raw: Any, minimum: float, maximum: float) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: expected a number of seconds, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise SettingsError(f"{name}: must be between {minimum:g} and {maximum:g}, got {value:g}")
    return value


def _parse_int(name: str, raw: Any, minimum: int, maximum: int) -> int:
    try:
        value = int(str(raw), 10) if not isinstance(raw, int) or isinstance(raw, bool) else raw
    except ValueError:
        raise SettingsError(f"{name}: expected a whole number, got {raw!r}") from None
    if isinstance(raw, bool) or not minimum <= value <= maximum:
        raise SettingsError(f"{name}: must be between {minimum} and {maximum}, got {raw!r}")
    return value


def _shown_url(text: str) -> str:
    """``text`` as an error may repeat it: whatever comes before an ``@`` (a user name and
    password written into the URL) hidden, so a URL refused for another fault (its scheme,
    port or host) never puts the password in the terminal or the log."""
    if "@" not in text:
        return text
    head, _, tail = text.rpartition("@")
    scheme = head.partition("://")[0] + "://" if "://" in head else ""
    return f"{scheme}***@{tail}"


def _parse_url(name: str, raw: Any, credentials: str = "qbt_username/qbt_password") -> str:
    if not isinstance(raw, str):
        raise SettingsError(f"{name}: expected an http:// or https:// URL, got {raw!r}")
    text = raw.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name}: expected an http:// or https:// URL, got {_shown_url(text)!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise SettingsError(f"{name}: the port in {_shown_url(text)!r} is not valid") from None
    if parts.username or parts.password:
        raise SettingsError(f"{name}: put credentials in {credentials}, not the URL")
    return text.rstrip("/")


def _parse_bind(name: str, raw: Any) -> str:
    text = str(raw).strip()
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise SettingsError(f"{name}: expected HOST:PORT, got {text!r}")
    _parse_int(name, port, 0, 65535)
    return text


def _parse_db_url(name: str, raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        return ""
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if scheme not in ("sqlite", "postgres", "asyncpg", "psycopg"):
        raise SettingsError(
            f"{name}: expected sqlite://PATH or postgres://USER@HOST/DB, got scheme {scheme!r}"
        )
    return text


def _parse_root_path(name: str, raw: Any) -> str:
    text = str(raw).strip()
    if not text:
        return ""
    if not text.startswith("/") or any(c in text for c in "?#"):
        raise SettingsError(f"{name}: expected a path starting with '/', got {text!r}")
    return text.rstrip("/")


def _parse_level(name: str, raw: Any) -> str:
    text = str(raw).strip().upper()
    if text not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError(f"{name}: expected DEBUG, INFO, WARNING or ERROR, got {raw!r}")
    return text


def _parse_frame_ancestors(name: str, raw: Any) -> str:
    text = " ".join(str(raw).split())
    if not text or any(c in text for c in ";,\r\n") or ("auto" in text.split() and text != "auto"):
        raise SettingsError(
            f"{name}: expected auto, or space-separated CSP sources ('*', \"'self'\", https://ha.lan),"
            f" got {raw!r}"
        )
    return text


_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?:\*|{_LABEL}(?:\.{_LABEL})*)$")


def _parse_hosts(name: str, raw: Any) -> tuple[str, ...]:
    """Host names the server answers to besides IP literals and ``localhost``; ``*``: any.

    Names only (``quart.lan``): no scheme, no port (every port of a name is the same name to
    a DNS-rebinding page). Case and one trailing dot are ignored.
    """
    items = raw if isinstance(raw, list | tuple) else str(raw).replace(",", " ").split()
    names: list[str] = []
    for item in items:
        text = str(item).strip().lower()
        text = text[:-1] if text.endswith(".") and text != "." else text
        if not _HOST_NAME.match(text) or len(text) > 253:
            raise SettingsError(
                f"{name}: expected host names such as quart.lan (no scheme, no port), or *, got {str(item)!r}"
            )
        names.append(text)
    return tuple(dict.fromkeys(names))


def _parse_token(name: str, raw: Any) -> Secret:
    """An access token: printable ASCII without spaces (it travels in headers and URLs).

    The message never repeats the value: it is a secret even when it is a bad one.
    """
    if not isinstance(raw, str):
        # Not ``_parse_str``: its message repeats the value (a number in the TOML file).
        raise SettingsError(f"{name}: expected text (quote it in the TOML file)")
    text = raw.strip()
    if text and (len(text) < 16 or not all("!" <= c <= "~" for c in text)):
        raise SettingsError(
            f"{name}: expected at least 16 printable ASCII characters without spaces"
            " (e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return Secret(text)


def _parse_origins(name: str, raw: Any) -> tuple[str, ...]:
    """Origins allowed to read the API from scripts: ``scheme://host[:port]``, no ``*``."""
    items = raw if isinstance(raw, list | tuple) else str(raw).replace(",", " ").split()
    origins: list[str] = []
    for item in items:
        text = str(item).strip().rstrip("/")
        parts = urlsplit(text)
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query:
            raise SettingsError(f"{name}: expected origins such as https://ha.lan:8123, got {text!r}")
        origins.append(f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(dict.fromkeys(origins))


def _parse_bool(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}: expected true or false, got {raw!r}")


def _parse_str(name: str, raw: Any) -> str:
    if not isinstance(raw, str):
        raise SettingsError(f"{name}: expected text, got {raw!r}")
    return raw


def _parse_secret(name: str, raw: Any) -> Secret:
    """A password: text, and an error that never repeats it (a number in the TOML file)."""
    if not isinstance(raw, str):
        raise SettingsError(f"{name}: expected text (quote it in the TOML file)")
    return Secret(raw)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _parse_name(name: str, raw: Any) -> str:
    """A display name: the panel's chips and Home Assistant's device names show it."""
    text = raw.strip() if isinstance(raw, str) else ""
    if not text or len(text) > 64 or _CONTROL.search(text):
        raise SettingsError(f"{name}: expected a display name of 1 to 64 characters on one line, got {raw!r}")
    return text


Parser = Callable[[str, Any], Any]

#: Every setting: name → (parser, CLI help). The order is the order of ``--help``.
SETTING_SPECS: dict[str, tuple[Parser, str]] = {
    "qbt_url": (_parse_url, "qBittorrent Web UI URL (default http://127.0.0.1:8080)"),
    "qbt_name": (_parse_name, "display name of that qBittorrent (instance 'default'; default qBittorrent)"),
    "qbt_username": (_parse_str, "qBittorrent Web UI user name (default admin)"),
    "qbt_password": (_parse_secret, "qBittorrent Web UI password"),
    "qbt_password_file": (
        lambda n, v: Path(str(v)).expanduser(),
        "file holding the qBittorrent password",
    ),
    "poll_interval": (
        lambda n, v: _parse_float(n, v, 0.1, 3600),
        "seconds between polls while a client is connected (default 1)",
    ),
    "idle_poll_interval": (
        lambda n, v: _parse_float(n, v, 0.1, 3600),
        "seconds between polls with no client connected (default 30)",
    ),
    "heartbeat": (
        lambda n, v: _parse_float(n, v, 1, 300),
        "seconds of silence after which a stream gets a heartbeat (default 15, at least 1)",
    ),
    "retry_ms": (
        lambda n, v: _parse_int(n, v, 100, 600_000),
        "reconnect delay hinted to browsers, in ms (default 3000)",
    ),
    "data_dir": (lambda n, v: Path(str(v)).expanduser(), "data directory (default ~/.local/share/quart-dl)"),
    "database_url": (_parse_db_url, "database URL (default sqlite://DATA_DIR/quart-dl.sqlite3)"),
    "bind": (_parse_bind, "HOST:PORT to listen on (default 127.0.0.1:8765)"),
    "root_path": (_parse_root_path, "path prefix when served behind a reverse proxy (e.g. /qbt)"),
    "frame_ancestors": (
        _parse_frame_ancestors,
        "CSP frame-ancestors: who may embed the panel (default auto: see the README)",
    ),
    "queue_size": (
        lambda n, v: _parse_int(n, v, 8, 100_000),
        "events a slow client may fall behind before it is dropped (default 256)",
    ),
    "send_timeout": (
        lambda n, v: _parse_float(n, v, 1, 3600),
        "seconds one send to a client may stay blocked before it is dropped (default 30)",
    ),
    "replay_size": (
        lambda n, v: _parse_int(n, v, 16, 1_000_000),
        "events kept for Last-Event-ID replay (default 2048)",
    ),
    "event_window_minutes": (
        lambda n, v: _parse_int(n, v, 1, 10_080),
        "minutes of diffs kept in the database for replay after a restart (default 60)",
    ),
    "event_window_events": (
        lambda n, v: _parse_int(n, v, 16, 10_000_000),
        "at most this many diffs and statuses kept for replay (default 10000)",
    ),
    "lifecycle_days": (
        lambda n, v: _parse_int(n, v, 1, 3650),
        "days added/completed/removed and action events are kept for late clients (default 30)",
    ),
    "history_minutes": (
        lambda n, v: _parse_int(n, v, 1, 525_600),
        "minutes of speed history kept (default 1440)",
    ),
    "sample_interval": (
        lambda n, v: _parse_float(n, v, 0.5, 3600),
        "seconds between speed history samples (default 5)",
    ),
    "backlog": (lambda n, v: _parse_int(n, v, 16, 65_535), "listen backlog (default 4096)"),
    "log_level": (_parse_level, "DEBUG, INFO, WARNING or ERROR (default INFO)"),
    "access_token": (
        _parse_token,
        "token every client must present (Bearer header, session cookie or ?token=); default none",
    ),
    "access_token_file": (
        lambda n, v: Path(str(v)).expanduser(),
        "file holding the access token",
    ),
    "cors_origins": (
        _parse_origins,
        "origins whose scripts may read the API (comma-separated); default none (CORS off)",
    ),
    "max_streams_per_client": (
        lambda n, v: _parse_int(n, v, 1, 100_000),
        "open event streams allowed per client address (default 64)",
    ),
    "max_streams": (
        lambda n, v: _parse_int(n, v, 1, 1_000_000),
        "open event streams allowed in total (default 20000)",
    ),
    "allowed_hosts": (
        _parse_hosts,
        "host names the server answers to besides IP addresses and localhost (comma-separated;"
        " * for any, unsafe without a token); default none",
    ),
    "max_connections_per_client": (
        lambda n, v: _parse_int(n, v, 0, 1_000_000),
        "open connections allowed per client address, streams included"
        " (default 0: max_streams_per_client + 64)",
    ),
    "read_token": (
        _parse_token,
        "a second token that may read but never act (for Home Assistant's sidebar frame);"
        " needs access_token; default none",
    ),
    "read_token_file": (
        lambda n, v: Path(str(v)).expanduser(),
        "file holding the read-only token",
    ),
    "open_actions": (
        _parse_bool,
        "without access_token, let anyone who can reach the server act on torrents (default false)",
    ),
    "max_upload_bytes": (
        lambda n, v: _parse_int(n, v, 65_536, 1024 * 1024 * 1024),
        "largest body of POST /api/torrents/add, .torrent uploads (default 16777216)",
    ),
}


def env_name(name: str) -> str:
    """``qbt_url`` → ``QUART_DL_QBT_URL``."""
    return ENV_PREFIX + name.upper()


def read_toml(path: Path) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys, or a ``[quart_dl]`` table.

    The ``[[instances]]`` tables (``[[quart_dl.instances]]`` in a ``[quart_dl]`` file) come
    back unparsed under ``"instances"``; ``load_settings`` checks them.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SettingsError(f"config: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config: cannot read {str(path)!r}: {exc.__class__.__name__}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config: {str(path)!r} is not valid TOML ({exc})") from None
    table = data.get("quart_dl", data)
    if not isinstance(table, dict):
        raise SettingsError("config: [quart_dl] must be a table")
    if table is not data and INSTANCES in data:
        # A table written after [quart_dl] is top-level in TOML: it would be ignored silently.
        raise SettingsError(
            f"config: {str(path)!r} has a [quart_dl] table, so write [[quart_dl.instances]],"
            " not [[instances]]"
        )
    unknown = sorted(k for k in table if k != INSTANCES and k.replace("-", "_") not in SETTING_SPECS)
    if unknown:
        raise SettingsError(f"config: unknown setting {unknown[0]!r} in {str(path)!r}")
    return {k.replace("-", "_"): v for k, v in table.items()}


#: Fields of ``Settings`` that are not in ``SETTING_SPECS``: built from the TOML tables.
TABLE_FIELDS = ("instance_tables", "qbt_given")

#: The TOML key of the instance tables.
INSTANCES = "instances"

#: Keys of an ``[[instances]]`` table.
INSTANCE_KEYS = (
    "id",
    "name",
    "url",
    "username",
    "password",
    "password_file",
    "poll_interval",
    "idle_poll_interval",
)


def load_settings(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the three sources (CLI wins, then environment, then TOML) and validate.

    ``cli`` holds only the flags actually given (``None`` values are ignored).
    """
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(env_name("config")):
        config_file = Path(environ[env_name("config")])
    raw: dict[str, Any] = {}
    tables: Any = []
    if config_file is not None:
        raw.update(read_toml(config_file))
        tables = raw.pop(INSTANCES, [])
    for name in SETTING_SPECS:
        if env_name(name) in environ:
            raw[name] = environ[env_name(name)]
    for name, value in (cli or {}).items():
        if value is not None:
            raw[name] = value
    values: dict[str, Any] = {}
    for name, value in raw.items():
        parser = SETTING_SPECS[name][0]
        values[name] = parser(name, value)
    values["qbt_given"] = any(name.startswith("qbt_") for name in values)
    settings = _finish(Settings(**values))
    settings = replace(settings, instance_tables=_parse_instances(tables, settings))
    _check_instances(settings)
    return settings


def _parse_instances(tables: Any, settings: Settings) -> tuple[InstanceSettings, ...]:
    """The ``[[instances]]`` tables, each checked; intervals default to the flat settings'."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise SettingsError("config: instances must be [[instances]] tables")
    return tuple(_parse_instance(number, table, settings) for number, table in enumerate(tables, 1))


def _parse_instance(number: int, table: dict[str, Any], settings: Settings) -> InstanceSettings:
    keys = {k.replace("-", "_"): v for k, v in table.items()}
    instance_id = keys.get("id")
    if instance_id is None:
        raise SettingsError(f'[[instances]] table {number}: needs an id (such as id = "home")')
    if not isinstance(instance_id, str) or not ID_RE.match(instance_id):
        raise SettingsError(
            f"[[instances]] table {number}: id {str(instance_id)[:40]!r} is not URL-safe: use 1 to 32 of"
            " a-z 0-9 _ -, starting with a letter"
        )
    where = f"instance {instance_id!r}"
    unknown = [k for k in keys if k not in INSTANCE_KEYS]
    if unknown:
        raise SettingsError(f"{where}: unknown key {unknown[0][:40]!r} (expected {', '.join(INSTANCE_KEYS)})")
    if "url" not in keys:
        raise SettingsError(f'{where}: needs a url (such as url = "http://127.0.0.1:8080")')
    url = _parse_url(f"{where}: url", keys["url"], "username/password")
    name = _parse_name(f"{where}: name", keys["name"]) if "name" in keys else instance_id
    username = _parse_str(f"{where}: username", keys["username"]) if "username" in keys else "admin"
    password = _parse_secret(f"{where}: password", keys.get("password", ""))
    if "password_file" in keys:
        if "password" in keys:
            raise SettingsError(f"{where}: give either password or password_file, not both")
        path = Path(_parse_str(f"{where}: password_file", keys["password_file"])).expanduser()
        password = Secret(_read_secret_file(f"{where}: password_file", path))
    poll = settings.poll_interval
    if "poll_interval" in keys:
        poll = _parse_float(f"{where}: poll_interval", keys["poll_interval"], 0.1, 3600)
    idle = settings.idle_poll_interval
    if "idle_poll_interval" in keys:
        idle = _parse_float(f"{where}: idle_poll_interval", keys["idle_poll_interval"], 0.1, 3600)
    if idle < poll:
        raise SettingsError(
            f"{where}: idle_poll_interval must not be shorter than poll_interval ({idle:g} < {poll:g})"
        )
    return InstanceSettings(
        id=instance_id,
        name=name,
        url=url,
        username=username,
        password=password,
        poll_interval=poll,
        idle_poll_interval=idle,
    )


def _check_instances(settings: Settings) -> None:
    """No id twice (the flat settings' ``default`` included), no qBittorrent followed twice."""
    ids: set[str] = set()
    urls: dict[str, str] = {}
    flat = settings.qbt_given or not settings.instance_tables
    for instance in settings.instances:
        if instance.id in ids:
            if instance.id == DEFAULT_ID and flat:
                raise SettingsError(
                    f"instance {DEFAULT_ID!r}: the id is taken by the qbt_* settings (they describe"
                    f" instance {DEFAULT_ID!r}); choose another id, or drop the qbt_* settings"
                )
            raise SettingsError(
                f"instance {instance.id!r}: the id is given twice; each instance needs its own"
            )
        ids.add(instance.id)
        key = same_url_key(instance.url)
        if key in urls:
            raise SettingsError(
                f"instance {instance.id!r}: same qBittorrent URL as instance {urls[key]!r} ({instance.url})"
            )
        urls[key] = instance.id


def _finish(settings: Settings) -> Settings:
    """Cross-field checks and the password file."""
    if settings.qbt_password_file is not None:
        if settings.qbt_password:
            raise SettingsError("qbt_password_file: give either a password or a password file, not both")
        try:
            text = settings.qbt_password_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SettingsError(
                f"qbt_password_file: file {str(settings.qbt_password_file)!r} does not exist"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(
                f"qbt_password_file: cannot read {str(settings.qbt_password_file)!r}"
                f" ({exc.__class__.__name__})"
            ) from None
        settings = replace(settings, qbt_password=Secret(text.rstrip("\r\n")))
    if settings.access_token_file is not None:
        if settings.access_token:
            raise SettingsError("access_token_file: give either a token or a token file, not both")
        text = _read_secret_file("access_token_file", settings.access_token_file)
        settings = replace(settings, access_token=_parse_token("access_token_file", text))
    if settings.read_token_file is not None:
        if settings.read_token:
            raise SettingsError("read_token_file: give either a token or a token file, not both")
        text = _read_secret_file("read_token_file", settings.read_token_file)
        settings = replace(settings, read_token=_parse_token("read_token_file", text))
    if settings.read_token and not settings.access_token:
        raise SettingsError("read_token: needs access_token too (without one everything is open)")
    if settings.read_token and settings.read_token == settings.access_token:
        raise SettingsError("read_token: must differ from access_token")
    if settings.idle_poll_interval < settings.poll_interval:
        raise SettingsError(
            "idle_poll_interval: must not be shorter than poll_interval"
            f" ({settings.idle_poll_interval:g} < {settings.poll_interval:g})"
        )
    return settings


def _read_secret_file(name: str, path: Path) -> str:
    """A secret's file, without its trailing newline; errors name the file, never the content."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise SettingsError(f"{name}: file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{name}: cannot read {str(path)!r} ({exc.__class__.__name__})") from None
