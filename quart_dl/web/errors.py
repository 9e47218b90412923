"""JSON errors for the API, and handlers that keep every failure a clear JSON answer.

Bad input is never a 500 and never a traceback: a client gets ``{"error": code, "message":
sentence}`` (plus ``field`` when one parameter is at fault). An unexpected exception is
logged for the operator and answered with a generic message.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from quart import Quart, Response, jsonify, request
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("quart_dl.web.errors")


def api_error(status: int, code: str, message: str, field: str | None = None) -> Response:
    """A JSON error response."""
    body: dict[str, str] = {"error": code, "message": message}
    if field is not None:
        body["field"] = field
    response = jsonify(body)
    response.status_code = status
    return response


class UnknownInstance(LookupError):
    """A request named a qBittorrent instance that is not configured: a 404 naming it.

    Raised by ``Runtime.instance`` from any route (REST, actions, streams); the app-wide
    handler below answers it, so every route says it the same way.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def unknown_instance(name: str) -> Response:
    """The answer to an unknown instance id (cut to 64 characters: it is the client's text)."""
    return api_error(404, "unknown_instance", f"no qBittorrent instance named {name[:64]!r}", "instance")


_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    414: "uri_too_long",
    431: "headers_too_large",
}


def install_error_handlers(app: Quart) -> None:
    """JSON for every HTTP error, on the API and elsewhere (the panel is a single page)."""

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _CODES.get(status, "http_error")
        if status == 404:
            message = f"nothing at {request.path}"
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        else:
            message = exc.description or exc.name
        response = api_error(status, code, message)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(UnknownInstance)
    async def no_such_instance(exc: UnknownInstance) -> Response:
        return unknown_instance(exc.name)

    @app.errorhandler(RequestSchemaValidationError)
    async def invalid_parameter(exc: RequestSchemaValidationError) -> Response:
        # A query string its model (openapi.py) refused: keep our format, name the field.
        field, message = _first_problem(exc.validation_error)
        return api_error(400, "invalid_parameter", message, field)

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return api_error(500, "internal_error", "the server hit an unexpected error; see its log")


def _first_problem(error: Exception) -> tuple[str | None, str]:
    """The parameter at fault and a sentence for it, from a validation error."""
    if not isinstance(error, ValidationError) or not error.errors():
        return None, "the request's parameters are not valid"
    problem = error.errors()[0]
    field = ".".join(str(part) for part in problem["loc"]) or None
    cause = problem.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        return field, str(cause)  # our validators' own sentence (openapi.py)
    return field, f"{field}: {problem['msg']}" if field else problem["msg"]
