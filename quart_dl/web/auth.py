"""Access control: the optional access token, the panel's session cookie, and a limit on guesses.

With no ``access_token`` everything is open, as a LAN service has always been here (the
server warns once at start when it listens beyond loopback that way). With a token:

- ``/api/*``, both event streams, ``/metrics`` and the panel page need it. ``/healthz`` stays
  open for liveness probes, and so do the panel's scripts, styles and icon: they are the
  same public files for everybody and hold no data, and a panel in a frame that cannot keep
  a cookie must still be able to load them (see below).
- Programs (the Home Assistant integration) send ``Authorization: Bearer <token>``.
- Browsers open the panel once with ``?token=``: a top-level page gets an HttpOnly,
  ``SameSite=Lax`` session cookie and a redirect to the same address without the token
  (EventSource cannot send headers; a cookie it sends by itself). The cookie holds an HMAC
  of the token, not the token: it is no use elsewhere, and changing the token signs every
  browser out.
- A panel in a frame (``Sec-Fetch-Dest: iframe``) is not redirected: Home Assistant on
  another site makes it a third-party context, where a Lax cookie is never sent and browsers
  increasingly drop even ``SameSite=None; Secure`` ones (and over plain http there is no
  ``Secure``). The token stays in the frame's address and the panel adds it to its own
  stream and fetch URLs, which works over http and https alike. A same-site frame (Home
  Assistant on the same host, another port) also gets the cookie.
- Anything else gets 401: JSON ``{"error": "unauthorized", ...}`` for the API, a small
  sign-in page (a form that takes the token) for the panel.

Comparisons are constant-time over SHA-256 digests (so not even the length leaks). Wrong
tokens are limited per client address (10 a minute, then 429 with ``Retry-After``); while an
address is locked out no token from it is even looked at, so the lockout really caps the
guessing rate. A wrong session cookie is not counted: it is a 256-bit HMAC nobody guesses,
and a browser with a cookie from before a token change would otherwise lock itself out.
Neither the token nor the cookie value is ever logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from urllib.parse import quote, urlencode

from quart import Quart, Response, g, request
from quart.typing import ResponseTypes

from ..settings import Settings
from .errors import api_error
from .hosts import foreign_host
from .limits import client_key

log = logging.getLogger("quart_dl.web.auth")

SESSION_COOKIE = "quart_dl_session"
COOKIE_MAX_AGE = 90 * 24 * 3600
FAILURES_ALLOWED = 10
FAILURE_WINDOW = 60.0
#: Addresses whose failures are remembered at once (oldest forgotten first).
MAX_TRACKED = 10_000
#: Panel files anyone may load: public code and styles, no data.
ASSET_SUFFIXES = (".js", ".css", ".svg", ".ico", ".png", ".webp", ".woff2", ".map")
OPEN_PATHS = frozenset({"/healthz"})


class FailureLimiter:
    """Wrong attempts per client key in a sliding window; memory is bounded."""

    def __init__(
        self,
        allowed: int = FAILURES_ALLOWED,
        window: float = FAILURE_WINDOW,
        max_tracked: int = MAX_TRACKED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed = allowed
        self.window = window
        self.max_tracked = max_tracked
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may try again; 0 when it may now."""
        times = self._failures.get(key)
        if times is None:
            return 0
        now = self.clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        if len(times) < self.allowed:
            return 0
        return max(1, math.ceil(times[0] + self.window - now))

    def fail(self, key: str) -> bool:
        """Record a wrong attempt; True when it used up the allowance."""
        times = self._failures.get(key)
        if times is None:
            while len(self._failures) >= self.max_tracked:
                self._failures.popitem(last=False)
            times = self._failures[key] = deque(maxlen=self.allowed)
        times.append(self.clock())
        return len(times) >= self.allowed


class Gate:
    """The token and the session value derived from it, compared in constant time."""

    def __init__(self, token: str) -> None:
        secret = token.encode("utf-8")
        self._digest = hashlib.sha256(secret).digest()
        self.session = hmac.new(secret, b"quart-dl session v1", hashlib.sha256).hexdigest()

    def token_ok(self, presented: str) -> bool:
        """``presented`` is the token."""
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        return hmac.compare_digest(digest, self._digest)

    def session_ok(self, cookie: str | None) -> bool:
        """``cookie`` is the session value this token gives."""
        if not cookie:
            return False
        return hmac.compare_digest(cookie.encode("utf-8", "surrogateescape"), self.session.encode())


def is_api(path: str) -> bool:
    """Answers for programs (JSON errors) rather than for people (HTML)."""
    return path.startswith("/api/") or path == "/api" or path in ("/metrics", "/healthz", "/openapi.json")


def needs_token(path: str) -> bool:
    """Everything but ``/healthz`` and the panel's public asset files."""
    if path in OPEN_PATHS:
        return False
    if is_api(path):
        return True
    return not path.lower().endswith(ASSET_SUFFIXES)


def install_auth(app: Quart, settings: Settings) -> None:
    """Require ``settings.access_token`` on every request that needs it (no-op without one)."""
    if not settings.access_token:
        return
    gate = Gate(settings.access_token.reveal())
    limiter = FailureLimiter()
    trusted_origins = frozenset(o.lower() for o in settings.cors_origins)
    app.extensions["quart_dl.web.auth"] = limiter

    #: The read-only token, when set (settings: it needs the full one): it reads, never acts.
    read_gate = Gate(settings.read_token.reveal()) if settings.read_token else None
    gates = [(gate, FULL)] + ([(read_gate, READ)] if read_gate is not None else [])

    @app.before_request
    async def require_token() -> Response | None:
        # A CORS preflight never carries credentials, and its answer holds no data.
        if request.method == "OPTIONS" or not needs_token(request.path):
            return None
        for candidate, kind in gates:
            if candidate.session_ok(request.cookies.get(SESSION_COOKIE)):
                # A same-site frame (Home Assistant on another port of this host) sends the
                # cookie too: its page must still be frameable when its URL carries the token.
                query = request.args.get("token")
                if query is not None and any(other.token_ok(query) for other, _ in gates):
                    g.quart_dl_token_in_url = True
                    # The token in the address wins over the cookie: a read-only frame stays
                    # read-only in a browser that also holds the full cookie.
                    kind = next(k for other, k in gates if other.token_ok(query))
                else:
                    # A valid Bearer beside the cookie was presented by the caller itself;
                    # the cookie alone the browser added by itself (access.py tells them apart).
                    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
                    bearer = value.strip() if scheme.lower() == "bearer" else None
                    by_header = next((k for other, k in gates if bearer and other.token_ok(bearer)), None)
                    if by_header is not None:
                        kind = by_header
                    else:
                        g.quart_dl_by_cookie = True
                g.quart_dl_token_kind = kind
                return None
        api = is_api(request.path)
        presented, source = _presented(trusted_origins)
        if presented is None:
            if source == IGNORED:
                return _unauthorized(api, "an access token is required (another site's page cannot use one)")
            return _unauthorized(api, "an access token is required")
        # Each kind of guesser has its own allowance, so none can lock another out; a page
        # for a name that is not the server's (a DNS-rebinding page) has its own too.
        address = client_key(request.remote_addr)
        key = f"{address} {source}" + (" foreign-host" if foreign_host() else "")
        wait = limiter.retry_after(key)
        if wait:
            return _too_many(wait, api)
        matched = next(((other, k) for other, k in gates if other.token_ok(presented)), None)
        if matched is None:
            if limiter.fail(key):
                log.warning(
                    "too many wrong access tokens from %s (%s): refusing them for a while", address, source
                )
            else:
                log.warning("wrong access token from %s on %s (%s)", address, request.path, source)
            return _unauthorized(api, "the access token is not valid")
        g.quart_dl_token_kind = matched[1]
        if source != BEARER:
            g.quart_dl_token_in_url = True  # panel.py: a page only the token's holder can frame
            if not api and _top_level_navigation():
                return _signed_in_redirect(matched[0])
        return None


#: Which token a request was admitted with (``token_kind``): the full one acts, the read-only
#: one only reads; ``none`` when the server has no token.
FULL = "full"
READ = "read"
NONE = "none"


def token_kind() -> str:
    """The token the current request was admitted with: ``full``, ``read`` or ``none``."""
    return str(g.get("quart_dl_token_kind", NONE))


def by_cookie() -> bool:
    """The current request was admitted by the session cookie alone, which a browser sends
    by itself with any same-site page's request (no token in its header or address)."""
    return bool(g.get("quart_dl_by_cookie", False))


#: Where a presented token came from; also the name of its failure allowance (see ``_presented``).
BEARER = "bearer"
PAGE = "page"
CROSS_SITE = "cross-site"
IGNORED = "ignored"


def _presented(trusted_origins: frozenset[str]) -> tuple[str | None, str]:
    """The token the request offers and where from (Bearer header first, then ``?token=``).

    A ``?token=`` on a request another site's page made (Fetch Metadata ``Sec-Fetch-Site:
    cross-site`` or ``same-site``) that is not a navigation (an image, a script, a fetch) is
    not even looked at (``IGNORED``): such a page can send any number of them, and counting
    them would lock the user's own browser out. Origins listed in ``cors_origins`` are
    trusted with it. A navigation another site started (the Home Assistant iframe, a link, a
    form) is looked at, and its wrong tokens count in their own allowance (``CROSS_SITE``),
    apart from those of the user's own pages and the panel's requests (``PAGE``) and of
    programs (``BEARER``): a page that is not ours can exhaust only its own kind.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip(), BEARER
    query = request.args.get("token")
    if query is None:
        return None, PAGE
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    if site not in ("cross-site", "same-site"):
        return query, PAGE  # same-origin, typed (none), or no Fetch Metadata (programs, plain http)
    if _navigation():
        return query, CROSS_SITE
    if request.headers.get("Origin", "").lower() in trusted_origins:
        return query, PAGE
    return None, IGNORED


def _top_level_navigation() -> bool:
    """The browser is loading this page as a whole tab (Fetch Metadata), or cannot say.

    Only such a page is signed in (cookie and redirect): a frame keeps its token in its
    address, and a script's request gets its answer without a cookie it did not ask for.
    Browsers send Fetch Metadata only to https and loopback addresses; without it, anything
    that is not a frame (``Sec-Fetch-Dest`` is then absent too) is taken for a page.
    """
    dest = request.headers.get("Sec-Fetch-Dest", "").lower()
    if dest:
        return dest == "document"
    return request.headers.get("Sec-Fetch-Mode", "").lower() in ("", "navigate")


def _navigation() -> bool:
    """A page or a frame is being loaded (not an image, a script or a fetch)."""
    if request.headers.get("Sec-Fetch-Mode", "").lower() == "navigate":
        return True
    return request.headers.get("Sec-Fetch-Dest", "").lower() in ("document", "iframe", "frame")


def _set_session_cookie(response: ResponseTypes, gate: Gate) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        gate.session,
        max_age=COOKIE_MAX_AGE,
        path=(request.root_path or "").rstrip("/") + "/",
        secure=request.scheme == "https",
        httponly=True,
        samesite="Lax",
    )


def _signed_in_redirect(gate: Gate) -> Response:
    """303 to the same page without ``token`` (relative, so a proxy's path prefix is kept)."""
    rest = [(k, v) for k, v in request.args.items(multi=True) if k != "token"]
    target = same_page(request.path)
    if rest:
        target += "?" + urlencode(rest)
    response = Response("", status=303, headers={"Location": target, "Cache-Control": "no-store"})
    _set_session_cookie(response, gate)
    return response


def same_page(path: str) -> str:
    r"""A relative reference to the page at ``path`` that cannot leave its origin.

    Only the last segment is kept, percent-encoded whole: browsers read ``\\host``,
    ``/\host``, ``//host`` with a tab or newline inside, or ``http:host`` as another host,
    so not one ``/``, ``\``, ``:``, control character or space survives (nor ``%``, which
    a server behind would decode again). ``.`` and ``..`` stay on the origin as ``./`` and
    ``../``; an empty segment is ``./``.
    """
    segment = path.rsplit("/", 1)[-1]
    if segment in ("", ".", ".."):
        return "./" if segment == "" else segment + "/"
    return quote(segment, safe="")


def _unauthorized(api: bool, message: str) -> Response:
    if api:
        response = api_error(401, "unauthorized", message)
        response.headers["WWW-Authenticate"] = 'Bearer realm="quart-dl"'
    else:
        response = _page(401, message)
    response.headers["Cache-Control"] = "no-store"
    return response


def _too_many(wait: int, api: bool) -> Response:
    message = f"too many wrong access tokens from this address; try again in {wait} s"
    response = api_error(429, "too_many_attempts", message) if api else _page(429, message)
    response.headers["Retry-After"] = str(wait)
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(status: int, message: str) -> Response:
    """The sign-in page: a form that opens this page again with ``?token=``."""
    body = SIGN_IN_PAGE.replace("{message}", html.escape(message[0].upper() + message[1:] + "."))
    return Response(body, status=status, content_type="text/html; charset=utf-8")


SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark"><meta name="referrer" content="no-referrer">
<title>quart-dl: sign in</title>
<style>body{font:16px system-ui,sans-serif;max-width:26rem;margin:15vh auto;padding:0 1rem}
input,button{font:inherit;padding:.5rem;margin:.25rem 0;width:100%;box-sizing:border-box}</style>
</head><body>
<h1>quart-dl</h1>
<p data-testid="signin-message">{message}</p>
<form method="get" action="" data-testid="signin-form">
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Sign in</button>
</form>
<p><small>In a Home Assistant panel on another address, put the token in the panel's URL
instead: <code>http://HOST:8765/?token=…</code></small></p>
</body></html>
"""


def open_bind_warning(settings: Settings) -> str | None:
    """The warning for an address beyond loopback served without a token, or None."""
    if settings.access_token or is_loopback(settings.host):
        return None
    what = "read the torrent list"
    if settings.open_actions:
        what = "read the torrent list and act on torrents, delete included (open_actions)"
    return (
        f"listening on {settings.bind} without an access token: anyone who can reach this"
        f" address can {what}; set access_token (QUART_DL_ACCESS_TOKEN) to require one"
    )


def is_loopback(host: str) -> bool:
    """``host`` is ``localhost`` or a loopback address (nobody else can reach it)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
