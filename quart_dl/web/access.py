"""Who may change anything: the same-origin check on every state-changing request, and the
rule that only the full token (or, without a token, the ``open_actions`` setting) acts.

Why a same-origin check besides the token: the panel's session cookie is ``SameSite=Lax``,
and a page on another port of the same host (Home Assistant on :8123) is *same-site*, so the
browser sends the cookie with its requests; a page on another site may still make a form
post. A cookie alone therefore proves nothing about who wrote the request. Every request
that is not ``GET``/``HEAD``/``OPTIONS`` is refused (403 ``cross_site``) when:

- ``Sec-Fetch-Site`` is ``cross-site`` or ``same-site`` (the browser says another page made
  it), or
- ``Origin`` is present and is neither this server's own origin (scheme, host and port as
  this request addressed them) nor listed in ``cors_origins``.

Listed ``cors_origins`` pass both: they are trusted to read, and with the token to act, but
only with a token they present (``Authorization: Bearer``, ``?token=``), never with the
session cookie alone: a listed origin on the same host (Home Assistant's ``:8123``, the
example in the README) is same-site, so the browser adds the cookie to the requests of any
script on it (a custom card, a compromised add-on) by itself. A program sends neither
header and passes (with ``Authorization: Bearer``). Browsers send ``Origin`` on every
cross-origin POST, and Fetch Metadata to https and loopback, so a page cannot hide where it
is from; the ``Host`` check (``hosts.py``) runs before this, so a
DNS-rebinding page never has a matching "own" origin.

Then the token: the full token acts; the read-only token (``read_token``) gets 403
``read_only``; without any token, actions are off (403 ``actions_disabled``) unless
``open_actions`` is set. ``GET /api/access`` tells the panel which it holds.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from urllib.parse import urlsplit

from quart import Quart, Response, request

from ..settings import Settings
from .auth import FULL, NONE, by_cookie, token_kind
from .errors import api_error
from .limits import client_key

log = logging.getLogger("quart_dl.web.access")

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The routes the token rule guards (``actions.py``); the same-origin check guards every
#: state-changing route.
ACTION_BLUEPRINT = "actions"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
#: A refusal is logged at WARNING once per address and origin in this many seconds, then at
#: DEBUG: a hostile page can post in a loop, and must not flood the operator's log.
WARN_EVERY = 60.0
#: Address-and-origin pairs remembered for that (oldest forgotten first).
MAX_WARNED = 1024


class RefusalLog:
    """Log a cross-site refusal once a while per address and origin, the repeats at DEBUG."""

    def __init__(self, every: float = WARN_EVERY, max_keys: int = MAX_WARNED) -> None:
        self.every = every
        self.max_keys = max_keys
        self._last: OrderedDict[tuple[str, str], float] = OrderedDict()

    def level(self, address: str, origin: str) -> int:
        """The level for this refusal: WARNING if the pair was not warned of lately."""
        now = time.monotonic()
        key = (address, origin)
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return logging.DEBUG
        self._last[key] = now
        self._last.move_to_end(key)
        while len(self._last) > self.max_keys:
            self._last.popitem(last=False)
        return logging.WARNING


def _host_port(scheme: str, netloc: str) -> str:
    """``host:port`` lower-cased, the default port of ``scheme`` left out."""
    netloc = netloc.lower().rsplit("@", 1)[-1]
    host, sep, port = netloc.rpartition(":")
    if not sep or "]" in port:  # no port (an IPv6 literal's colons are inside brackets)
        return netloc
    if port == _DEFAULT_PORTS.get(scheme):
        return host
    return netloc


def is_own_origin(origin: str) -> bool:
    """``origin`` is this server as the current request addressed it: scheme, host, port.

    The scheme is the request's, or the first ``X-Forwarded-Proto`` a proxy that ends TLS
    set (a page cannot add that header to a cross-origin request without a preflight, which
    only ``cors_origins`` pass, so it cannot help another page match).
    """
    try:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        parts.port  # noqa: B018 - raises for a port that is no number (":x", ":99999")
    except ValueError:  # "http://[oops": an unparsable Origin is nobody's own (it was a 500)
        return False
    forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    scheme = forwarded if forwarded in ("http", "https") else request.scheme
    if parts.scheme != scheme:
        return False
    return _host_port(parts.scheme, parts.netloc) == _host_port(scheme, request.host)


def cross_site_reason(trusted_origins: frozenset[str]) -> str | None:
    """Why the current request looks made by another site's page, or ``None``."""
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() in trusted_origins:
        if by_cookie() and not is_own_origin(origin):
            return "a listed origin acts with the token it presents (Authorization: Bearer), not the cookie"
        return None
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    if site in ("cross-site", "same-site"):
        return f"the browser says another page made this request (Sec-Fetch-Site: {site})"
    if origin is not None and not is_own_origin(origin):
        return "the request comes from a page of another origin"
    return None


def may_act(settings: Settings) -> bool:
    """The current request's credentials allow actions."""
    kind = token_kind()
    if kind == FULL:
        return True
    return kind == NONE and not settings.access_token and settings.open_actions


def actions_enabled(settings: Settings) -> bool:
    """Some credential on this server can act (the full token, or ``open_actions``)."""
    return bool(settings.access_token) or settings.open_actions


def install_access(app: Quart, settings: Settings) -> None:
    """Refuse state-changing requests from other sites' pages and from read-only credentials.

    Installed after ``install_auth``: a request without a valid token got its 401 there.
    """
    trusted = frozenset(o.lower() for o in settings.cors_origins)
    refusals = RefusalLog()

    @app.before_request
    async def guard_changes() -> Response | None:
        # Only routes that take this method: a wrong method or path keeps its 405 or 404.
        if request.method in SAFE_METHODS or request.url_rule is None:
            return None
        reason = cross_site_reason(trusted)
        if reason is not None:
            origin = (request.headers.get("Origin") or "-")[:100]
            address = client_key(request.remote_addr)
            log.log(
                refusals.level(address, origin),
                "refused %s %s from %s: %s (Origin %s)",
                request.method,
                request.path,
                address,
                reason,
                origin,
            )
            return api_error(
                403, "cross_site", reason + "; actions are only taken from this server's own pages"
            )
        if request.blueprint != ACTION_BLUEPRINT or may_act(settings):
            return None
        if token_kind() == "read":
            return api_error(403, "read_only", "the read-only token cannot act; use the full access token")
        return api_error(
            403,
            "actions_disabled",
            "actions are off on a server without an access token (set access_token, or open_actions)",
        )
