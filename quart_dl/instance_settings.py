"""What one followed qBittorrent is configured with (``InstanceSettings``), and its id rules.

Why a module of its own: ``settings.py`` builds these from the flat ``qbt_*`` settings and the
TOML ``[[instances]]`` tables, and the qBittorrent package runs them; keeping the type here
lets ``settings.py`` stay free of the qBittorrent package (and its client library), while
``quart_dl.qbittorrent.instance`` re-exports it for the code that already imports it there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .secret import Secret

if TYPE_CHECKING:
    from .qbittorrent.session import QbtSession
    from .settings import Settings

#: The id of the instance the flat ``qbt_*`` settings describe.
DEFAULT_ID = "default"

#: An instance id: short, lower-case and URL-safe (it keys rows, events, routes and Home
#: Assistant entities, so it must stay the same for as long as the instance is followed).
#: A letter first: an all-digit id ("1") is reordered as a number by JavaScript objects (the
#: panel's list of instances) and read as one by YAML (Home Assistant's configuration).
ID_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}\Z")  # \Z: "$" would let "a\n" through


@dataclass(frozen=True, kw_only=True)
class InstanceSettings:
    """What one qBittorrent is configured with; ``name`` defaults to the id."""

    id: str
    url: str
    username: str
    password: Secret
    poll_interval: float
    idle_poll_interval: float
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.id)

    @classmethod
    def from_settings(cls, settings: Settings) -> InstanceSettings:
        """The one instance the flat ``qbt_*`` settings describe (``default``)."""
        return settings.default_instance()

    def session(self) -> QbtSession:
        """A real session for this qBittorrent (imported here: settings never load the client)."""
        from .qbittorrent.session import QbtSession

        return QbtSession.connect(self.url, self.username, self.password.reveal())


def same_url_key(url: str) -> str:
    """``url`` as compared for "two instances with the same URL": scheme and host in lower
    case, the scheme's default port made explicit, no trailing slash (the path is kept)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"
