"""The panel's static files, and the headers every answer carries.

The panel lives in ``panel/`` in the source tree and ships inside the wheel as
``quart_dl/panel`` (a top-level ``panel`` package would clash with a PyPI project). Files are
served only from that folder (``send_from_directory`` refuses paths outside it).
"""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Quart, Response, request, send_from_directory
from quart_schema import hide
from werkzeug.exceptions import NotFound

from .errors import api_error

bp = Blueprint("panel", __name__)


def panel_dir() -> Path:
    """The installed panel, or the source tree's when running from a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "panel", here.parent / "panel"):
        if (candidate / "index.html").is_file():
            return candidate
    return here / "panel"


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


def install_headers(app: Quart, frame_ancestors: str) -> None:
    """Security headers on every answer; ``frame-ancestors`` decides who may embed the panel."""
    csp = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        f"connect-src 'self'; frame-ancestors {frame_ancestors}"
    )

    @app.after_request
    async def headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if not request.path.startswith("/api/") and request.path not in ("/metrics", "/healthz"):
            response.headers.setdefault("Content-Security-Policy", csp)
        return response
