"""The panel's static files, and the headers every answer carries.

The panel lives in ``panel/`` in the source tree and ships inside the wheel as
``quart_dl/panel`` (a top-level ``panel`` package would clash with a PyPI project). Files are
served only from that folder (``send_from_directory`` refuses paths outside it).
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Quart, Response, g, request, send_from_directory
from quart_schema import hide
from werkzeug.exceptions import NotFound

from .errors import api_error

bp = Blueprint("panel", __name__)


def panel_dir() -> Path:
    """The installed panel, or the source tree's when running from a checkout."""
    package = Path(__file__).resolve().parent.parent  # quart_dl/
    for candidate in (package / "panel", package.parent / "panel"):
        if (candidate / "index.html").is_file():
            return candidate
    return package / "panel"


@bp.get("/")
@hide  # the panel is not part of the API description (/openapi.json)
async def index() -> Response:
    """The panel."""
    return await _send("index.html")


@bp.get("/<path:filename>")
@hide
async def static_file(filename: str) -> Response:
    """A panel asset (JavaScript module, stylesheet, icon)."""
    if filename.startswith("api/"):
        return api_error(404, "not_found", f"nothing at /{filename}")
    return await _send(filename)


async def _send(filename: str) -> Response:
    try:
        response = await send_from_directory(panel_dir(), filename)
    except NotFound:
        return api_error(404, "not_found", f"no panel file {filename!r}")
    # Revalidate every time: after an upgrade the browser must not mix old and new modules.
    response.headers["Cache-Control"] = "no-cache"
    return response


#: Who may frame the panel under ``frame_ancestors = "auto"`` when no token vouches for the
#: frame: the panel itself, and pages on this machine (Home Assistant on the same host, a
#: local dashboard). CSP has no syntax for IPv6 literals, so ``[::1]`` cannot be listed.
LOOPBACK_ANCESTORS = (
    "http://localhost:*",
    "https://localhost:*",
    "http://127.0.0.1:*",
    "https://127.0.0.1:*",
)


def frame_policy(setting: str, cors_origins: tuple[str, ...]) -> tuple[str, str, str]:
    """``frame-ancestors`` for (an error page, a page opened with a valid ``?token=``, any
    other page).

    An explicit setting means what it says, everywhere. ``auto`` (the default):

    - error pages, the sign-in page among them, are never framed (``'none'``): a frame
      would let another site dress it up (clickjacking, a look-alike sign-in);
    - a panel whose own address holds a valid ``?token=`` may be framed by anyone: only the
      token's holder can have put that address in a frame (Home Assistant's panel config),
      and it is how the Home Assistant sidebar works out of the box, from any origin;
    - anything else (a panel opened with the session cookie, or served without a token):
      ``'self'``, the ``cors_origins`` and loopback pages.
    """
    if setting != "auto":
        return setting, setting, setting
    others = " ".join(("'self'", *cors_origins, *LOOPBACK_ANCESTORS))
    return "'none'", "*", others


def install_headers(app: Quart, frame_ancestors: str, cors_origins: tuple[str, ...] = ()) -> None:
    """Security headers on every answer; ``frame-ancestors`` decides who may embed the panel.

    ``base-uri 'none'`` keeps an injected ``<base>`` from re-pointing the panel's relative
    URLs, ``form-action 'self'`` keeps forms (the sign-in page's) posting to this origin only,
    ``object-src 'none'`` rules out plugins.
    """
    on_error, with_token, otherwise = frame_policy(frame_ancestors, cors_origins)
    base = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors "
    )

    @app.after_request
    async def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/api/") and request.path not in ("/metrics", "/healthz"):
            if response.status_code >= 400:
                ancestors = on_error
            elif g.get("quart_dl_token_in_url"):
                ancestors = with_token
            else:
                ancestors = otherwise
            response.headers.setdefault("Content-Security-Policy", base + ancestors)
        return response
