"""The Host check: only answer to names a DNS-rebinding page cannot have.

Why: a page on ``http://evil.example:8765`` whose name the attacker re-resolves to
``127.0.0.1`` (or to the LAN address of a ``0.0.0.0`` bind) is, to the browser, the same
origin as quart-dl on that address: its scripts read every answer. Only the ``Host`` header
still says which name the browser meant. So, as Transmission (``rpc-host-whitelist``,
CVE-2018-5702), Syncthing and Jupyter do, a request is answered only when its host is

- an IP literal (``192.168.1.10``, ``[::1]``): a browser that sends one has connected to that
  very address, no name was resolved;
- ``localhost`` or a name under ``.localhost``: browsers resolve these to loopback
  themselves (RFC 6761), never through DNS;
- a name the public DNS cannot give an attacker: one without a dot (``nas``, a Docker
  service name; the local resolver and its search domain answer it) or under ``.local``
  (multicast DNS, answered on the local link only). Rebinding needs a name whose answers
  the attacker controls, first pointing at their server, then at this one; these answer
  only from inside the network, which can reach the port anyway;
- a name in ``allowed_hosts`` (the name a reverse proxy or Home Assistant uses).

Case, one trailing dot and the port are ignored (the attacker controls the name, not the
port). A request without any host (HTTP/1.0) names nothing that could have been rebound and
is answered. With an ``access_token`` and no ``allowed_hosts`` the check is relaxed: a
request for another name goes on to the token check (users who reach a token-protected
server by a host name keep working as before), because a rebinding page has no credential
for the name it uses (the session cookie belongs to the real name, Bearer tokens are the
integration's) and only ever sees 401. Its wrong tokens are counted apart from those sent
for the server's own names (``auth.py``, marked by ``FOREIGN_HOST``), so a rebinding page
cannot lock the user's own panel out. Naming ``allowed_hosts`` turns the check on again;
``*`` turns it off whatever else is set (unsafe without a token).

The absolute-form request target (``GET http://evil.example/api/torrents HTTP/1.1``, which
Hypercorn and this project's socket layer both pass on as the scope's ``path``) is rewritten
to the origin form before routing, and its authority is checked as well as the ``Host``
header: RFC 9112 makes the target's authority the one that counts, and checking both means
neither can smuggle a name past the other. Every request, streams included, runs through the
app once (``socket_layer.py`` runs stream requests through it before taking the socket over), so
the wrapper and one ``before_request`` hook cover both carriers.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from typing import Any
from urllib.parse import unquote, urlsplit

from quart import Quart, Response, g, jsonify, request

from ..settings import Settings

log = logging.getLogger("quart_dl.web.hosts")

#: The scope key holding an absolute-form target's authority (after the rewrite).
TARGET_AUTHORITY = "quart_dl.target_authority"
#: Refused names logged once each, at most this many (an attack must not flood the log).
MAX_LOGGED = 32

#: ``[v6]`` (a zone id, ``%25eth0``, is dropped) or a name, then an optional ``:port``.
_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)(?:%(?:25)?[\w.~-]+)?\]|(?P<name>[^\[\]:]+))(?::[0-9]*)?$")
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def host_name(value: str) -> str | None:
    """The name or address in a ``Host`` value, normalized; None when it is not a host.

    ``Quart.Lan.:8765`` → ``quart.lan``; ``[::1]:8765`` → ``::1``; ``a b`` → None.
    """
    match = _HOST.match(value.strip())
    if match is None:
        return None
    if match["v6"] is not None:
        try:
            return str(ipaddress.IPv6Address(match["v6"]))
        except ValueError:
            return None
    name = match["name"].lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return None
    if not all(_LABEL.match(label) for label in name.split(".")):
        return None
    return name


def is_ip_literal(name: str) -> bool:
    """An IPv4 or IPv6 address, as ``host_name`` returns it."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_localhost(name: str) -> bool:
    """``localhost`` or a name under it (browsers resolve these to loopback themselves)."""
    return name == "localhost" or name.endswith(".localhost")


def is_local_name(name: str) -> bool:
    """A name only the local network answers: no dot at all, or under ``.local`` (mDNS)."""
    return "." not in name or name.endswith(".local")


class HostPolicy:
    """Which host names this server answers to."""

    def __init__(self, allowed_hosts: tuple[str, ...], token_set: bool) -> None:
        names = {name for name in (host_name(h) for h in allowed_hosts if h != "*") if name}
        self.names = frozenset(names)
        #: ``*`` listed: every name is answered, nothing is marked.
        self.any = "*" in allowed_hosts
        #: A token without any ``allowed_hosts``: other names go on to the token check.
        self.relaxed = not self.any and token_set and not allowed_hosts
        #: Nothing is refused (``*``, or relaxed).
        self.off = self.any or self.relaxed

    def allows(self, value: str) -> bool:
        """``value`` (a Host header or an authority) may be answered."""
        return self.off or self.known(value)

    def known(self, value: str) -> bool:
        """``value`` names this server by the rules above (whether or not a token is set)."""
        name = host_name(value)
        if name is None:
            return False
        return is_ip_literal(name) or is_localhost(name) or is_local_name(name) or name in self.names


def absolute_form(target: str) -> tuple[str, str] | None:
    """``(authority, path)`` of an absolute-form target (no query), or None for origin form.

    A target that is neither (``evil.example/x``) gives an empty authority: refused.
    """
    if target.startswith("/") or target == "*":
        return None
    parts = urlsplit(target)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return "", "/"
    return parts.netloc.rpartition("@")[2], parts.path or "/"


def _origin_form(app: Any) -> Any:
    """ASGI wrapper: an absolute-form target becomes origin form, its authority kept aside.

    Without it the route table never matches such a path (the check below still runs and
    refuses a foreign authority; an allowed one would get a 404 for an existing route).
    Both servers have split the query off already and percent-decoded ``path``, so the
    target is read from ``raw_path``.
    """

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            raw = scope.get("raw_path") or str(scope.get("path", "/")).encode("utf-8")
            target = absolute_form(bytes(raw).decode("latin-1"))
            if target is not None:
                authority, path = target
                scope = {
                    **scope,
                    "path": unquote(path),
                    "raw_path": path.encode("latin-1"),
                    TARGET_AUTHORITY: authority,
                }
        await app(scope, receive, send)

    return wrapped


def install_hosts(app: Quart, settings: Settings) -> None:
    """Refuse requests for host names that are not this server's (install before auth)."""
    policy = HostPolicy(settings.allowed_hosts, bool(settings.access_token))
    app.extensions["quart_dl.web.hosts"] = policy
    app.asgi_app = _origin_form(app.asgi_app)  # type: ignore[method-assign]
    logged: set[str] = set()

    @app.before_request
    async def check_host() -> Response | None:
        if policy.any:
            return None
        values = [v for v in request.headers.getlist("Host") if v.strip()]
        authority = request.scope.get(TARGET_AUTHORITY)
        if authority is not None:
            values.append(str(authority))  # "" (a target that is no URL) is refused
        for value in values:
            if not policy.known(value):
                if policy.relaxed:
                    g.quart_dl_foreign_host = True  # FOREIGN_HOST: its wrong tokens count apart
                    return None
                return _refused(value, logged)
        return None


def foreign_host() -> bool:
    """This request named a host the server does not know (only with a relaxed check)."""
    return bool(g.get("quart_dl_foreign_host", False))


def _refused(value: str, logged: set[str]) -> Response:
    shown = value.strip()[:100]
    name = host_name(value)
    if name is None:
        message = f"the host {shown!r} is not a valid host name"
    else:
        message = (
            f"this server does not answer to the host name {name!r}; if you reach quart-dl by"
            " that name (a reverse proxy, Home Assistant set up with a host name), add it to"
            " allowed_hosts (--allowed-hosts, QUART_DL_ALLOWED_HOSTS), or use its IP address"
        )
        if len(logged) < MAX_LOGGED and name not in logged:
            logged.add(name)
            log.warning("refused requests for host name %r: not in allowed_hosts", name)
    response = jsonify({"error": "host_not_allowed", "message": message, "setting": "allowed_hosts"})
    response.status_code = 403
    response.headers["Cache-Control"] = "no-store"
    return response
