"""The panel's static files, and the headers every answer carries.

The panel lives in ``panel/`` in the source tree and ships inside the wheel as
``quart_dl/panel`` (a top-level ``panel`` package would clash with a PyPI project). Files are
served only from that folder (``safe_join`` refuses paths outside it), from memory
(``PanelFiles``).
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from quart import Blueprint, Quart, Response, g, request
from quart_schema import hide
from werkzeug.security import safe_join

from .errors import api_error

bp = Blueprint("panel", __name__)


@functools.cache
def panel_dir() -> Path:
    """The installed panel, or the source tree's when running from a checkout (found once:
    the layout does not change while the server runs, and this was a path resolution and
    up to two stats on every request for a panel file)."""
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


@dataclass(frozen=True, slots=True)
class PanelFile:
    """One file's bytes and what its answers say of it."""

    body: bytes
    mimetype: str
    #: A hash of the bytes: the same file gets the same tag after a restart or a reinstall.
    etag: str
    #: ``(st_ino, st_mtime_ns, st_size)`` when it was read: a change on disk (an edit, or a
    #: file replaced by an upgrade) reads it again.
    stamp: tuple[int, int, int]
    modified: datetime


class PanelFiles:
    """The panel's files, read once and kept in memory while they are unchanged on disk.

    Why: ``send_from_directory`` stats a file four times and sends it through a file body
    read in a worker thread, for every request: 3.3 ms of CPU for a 10 KB module on a
    keep-alive connection, against 0.8 ms for ``/healthz``. A page load fetches about twenty of
    them (Home Assistant's sidebar loads the panel each time it is opened), and a reload storm
    thousands. One ``stat`` per request still notices a file edited in a checkout or replaced
    by an upgrade. What is kept is bounded by the folder: only files that exist are read.
    """

    def __init__(self) -> None:
        self._files: dict[str, PanelFile] = {}

    def get(self, root: Path, name: str) -> PanelFile | None:
        """The file ``name`` under ``root``, or None if there is none (or it is outside)."""
        path = safe_join(str(root), name)
        if path is None:
            return None
        try:
            info = os.stat(path)
        except (OSError, ValueError):  # ValueError: a NUL in the name
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        cached = self._files.get(path)
        if cached is not None and cached.stamp == stamp:
            return cached
        try:
            body = Path(path).read_bytes()  # small files, once per change: not worth a thread
        except OSError:
            return None
        found = PanelFile(
            body=body,
            mimetype=mimetypes.guess_type(path)[0] or "application/octet-stream",
            etag=hashlib.blake2b(body, digest_size=12).hexdigest(),
            stamp=stamp,
            modified=datetime.fromtimestamp(info.st_mtime, UTC),
        )
        self._files[path] = found
        return found


_files = PanelFiles()


async def _send(filename: str) -> Response:
    found = _files.get(panel_dir(), filename)
    if found is None:
        return api_error(404, "not_found", f"no panel file {filename!r}")
    response = Response(found.body, mimetype=found.mimetype)
    response.set_etag(found.etag)
    response.last_modified = found.modified
    # Revalidate every time: after an upgrade the browser must not mix old and new modules.
    # A 304 for what it has (If-None-Match, If-Modified-Since), and ranges, as before.
    response.headers["Cache-Control"] = "no-cache"
    await response.make_conditional(request, accept_ranges=True, complete_length=len(found.body))
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
