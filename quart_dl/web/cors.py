"""CORS: off unless ``cors_origins`` lists the origins whose scripts may read the API.

Off by default because the panel and the Home Assistant integration need none of it: the
panel is served from the same origin as the API, and the integration is a server-side
program that CORS does not concern. Turning it on for named origins (a dashboard on another
host) adds ``Access-Control-Allow-Origin`` for exactly those origins, with credentials, on
the API, the streams and ``/metrics`` only; never ``*`` (which browsers refuse together with
credentials anyway). Preflights are answered before access control runs: they never carry
credentials, and the answer holds no data.
"""

from __future__ import annotations

from quart import Quart, Response, request

from .auth import is_api

#: POST for the actions (``actions.py``): only listed origins ever get these answers.
ALLOW_METHODS = "GET, HEAD, POST, OPTIONS"
ALLOW_HEADERS = "Authorization, Last-Event-ID, Cache-Control, Content-Type"
MAX_AGE = "600"


def install_cors(app: Quart, origins: tuple[str, ...]) -> None:
    """Answer preflights and add CORS headers for ``origins`` (nothing when it is empty)."""
    if not origins:
        return
    allowed = frozenset(o.lower() for o in origins)

    def allowed_origin() -> str | None:
        origin = request.headers.get("Origin")
        if origin is None or not is_api(request.path) or origin.lower() not in allowed:
            return None
        return origin

    @app.before_request
    async def preflight() -> Response | None:
        origin = allowed_origin()
        if request.method != "OPTIONS" or origin is None:
            return None
        if "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response("", status=204)
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        response.headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        response.headers["Access-Control-Max-Age"] = MAX_AGE
        return response

    @app.after_request
    async def cors_headers(response: Response) -> Response:
        if is_api(request.path):
            response.vary.add("Origin")
        origin = allowed_origin()
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response
