"""The action routes: act on torrents, set the global limits, add torrents, list labels.

Why it is shaped this way:

- One route per kind of change (``/api/torrents/actions`` with a verb, ``/api/transfer``,
  ``/api/torrents/add``): the verbs share their targets, answers and errors, and one route
  keeps the access rule, the log line and the metric in one place.
- Each action goes through the instance's one ordered session (``QbtSession``), the one its
  poller uses: an action never lands inside a poll, and actions run in the order asked.
- After qBittorrent answered, an ``action`` event tells every viewer what was asked, by
  whom and how it went, and the instance is polled at once and then every 250 ms for a few
  seconds (``Poller.follow_up``: qBittorrent shows an effect only at its next refresh), so
  the confirming diff follows within qBittorrent's refresh interval, not at the next tick.
- Unknown hashes are a 404 naming them, and nothing is applied (the client checks them all
  before sending the verb); a refusal is a 409 with qBittorrent's reason; qBittorrent down
  or hung is a 503 saying the action may not have been applied. Never a 500.

Who may call them is ``access.py``'s business (it runs before any of these handlers).
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from quart import Blueprint, Quart, Request, Response, jsonify, request
from quart_schema import document_request, document_response, validate_querystring
from werkzeug.exceptions import RequestEntityTooLarge

from ..qbittorrent.client import QbtError, Refused, UnknownTorrents
from ..qbittorrent.instance import Instance
from ..settings import Settings
from .access import actions_enabled, may_act
from .action_models import (
    Access,
    ActionAnswer,
    ActionRequest,
    AddAnswer,
    AddRequest,
    Categories,
    Tags,
    TransferAnswer,
    TransferRequest,
    check_urls,
    params_of,
)
from .auth import token_kind
from .errors import UnknownInstance, _first_problem, api_error, unknown_instance
from .limits import client_key
from .openapi import ErrorBody, InstanceQuery
from .runtime import runtime

log = logging.getLogger("quart_dl.web.actions")

bp = Blueprint("actions", __name__)

ADD_PATH = "/api/torrents/add"
ACTIONS_PATH = "/api/torrents/actions"
#: The body limit of ``ACTIONS_PATH``: ``MAX_HASHES`` hashes of 40 hex characters, quoted.
ACTIONS_BODY_BYTES = 1024 * 1024
#: .torrent files one add may carry.
MAX_FILES = 100

M = TypeVar("M", bound=BaseModel)


class _Problem(Exception):
    """A request the handler refuses; ``response`` is its JSON answer."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


def _finish_global(
    instance: Instance, action_id: str, action: str, client: str | None, result: str, message: str | None
) -> None:
    """``_finish`` for an action on the whole instance (global limits, an add): no hashes."""
    _finish(
        instance,
        action_id=action_id,
        action=action,
        hashes=[],
        client=client,
        result=result,
        message=message,
        asked=[],
    )


def _action_id() -> str:
    return "a" + secrets.token_hex(6)


async def _json_body(model: type[M]) -> M:
    """The request's JSON body as ``model``, or a 400/415 naming the problem."""
    if request.mimetype != "application/json":
        raise _Problem(
            api_error(415, "unsupported_media_type", "the body must be JSON (Content-Type: application/json)")
        )
    raw = await request.get_data()
    try:
        data = json.loads(raw)
    except RecursionError:
        # json nests by recursion: 200,000 "[" in a 1 MiB body raised past ValueError (a 500).
        raise _Problem(api_error(400, "invalid_body", "the body is nested too deeply")) from None
    except (UnicodeDecodeError, ValueError):
        raise _Problem(api_error(400, "invalid_body", "the body is not valid JSON")) from None
    if not isinstance(data, dict):
        raise _Problem(api_error(400, "invalid_body", "the body must be a JSON object"))
    return _validated(model, data)


def _validated(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        field, message = _first_problem(exc)
        if field is not None:
            # A union's branch tags (``hashes.list[str].0``, ``literal['all']``) name no field
            # a client sent: keep only the field's own path (``hashes.0``).
            named = ".".join(part for part in field.split(".") if "[" not in part)
            message = message.replace(field, named, 1) if message.startswith(field) else message
            field = named or None
        raise _Problem(api_error(400, "invalid_parameter", message, field)) from None


def _instance(name: str | None) -> Instance:
    """The instance a body or query names (None: the primary), or a 404 naming it."""
    try:
        return runtime().instance(name)
    except UnknownInstance:
        raise _Problem(unknown_instance(str(name))) from None


def _abbreviated(hashes: list[str] | str) -> str:
    """Hashes for a log line: the first few, 8 characters each."""
    if isinstance(hashes, str):
        return hashes
    shown = ",".join(h[:8] for h in hashes[:5])
    return shown + (f" and {len(hashes) - 5} more" if len(hashes) > 5 else "") if hashes else "-"


def _finish(
    instance: Instance,
    *,
    action_id: str,
    action: str,
    hashes: list[str],
    client: str | None,
    result: str,
    message: str | None,
    asked: list[str] | str,
) -> None:
    """Count, log and announce an action qBittorrent answered (or could not)."""
    rt = runtime()
    rt.metrics.inc("actions_total", action=action, result=result)
    log.info(
        "%s: action %s on %s (%d) by %s from %s (%s token): %s%s",
        instance.id,
        action,
        _abbreviated(asked),
        len(hashes),
        client or "-",
        client_key(request.remote_addr),
        token_kind(),
        result,
        f" ({message})" if message else "",
    )
    rt.hub.publish_action(
        {
            "id": action_id,
            "action": action,
            "instance": instance.id,
            "hashes": hashes,
            "client": client,
            "result": result,
            "message": message,
            "t": round(time.time(), 3),
        }
    )
    if result != "unavailable":
        instance.poller.follow_up()


def _failed(exc: QbtError) -> tuple[str, str, Response]:
    """The result, message and answer of a call qBittorrent refused or could not take.

    An action of several calls that failed after some of them says which were taken:
    "not applied" would be untrue, and a client retrying it should know.
    """
    partly = " and ".join(exc.partly)
    if isinstance(exc, Refused):
        message = f"{exc} (before that, {partly})" if partly else str(exc)
        return "refused", message, api_error(409, "qbittorrent_refused", message)
    if partly:
        message = f"{exc}; the action was half done: {partly}, the rest may not have been applied"
    else:
        message = f"{exc}; the action may not have been applied"
    return "unavailable", message, api_error(503, "qbittorrent_unavailable", message)


def _problems(handler: Any) -> Any:
    """Turn a ``_Problem`` raised by a handler into its answer."""

    async def wrapped(*args: Any, **kwargs: Any) -> Response:
        try:
            result: Response = await handler(*args, **kwargs)
        except _Problem as problem:
            return problem.response
        return result

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


@bp.post(ACTIONS_PATH)
@document_request(ActionRequest)
@document_response(ActionAnswer)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 403)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 409)
@document_response(ErrorBody, 415)
@document_response(ErrorBody, 503)
@_problems
async def torrent_action() -> Response:
    """Act on torrents: pause, resume, force_start, recheck, reannounce, delete, set_category,
    add_tags, remove_tags, set_limits, move, rename, queue_top, queue_bottom."""
    body = await _json_body(ActionRequest)
    action = body.action
    if action == "rename":
        if body.hashes == "all" or len(body.hashes) != 1:
            raise _Problem(api_error(400, "invalid_parameter", "rename takes exactly one hash", "hashes"))
        if not body.name or not body.name.strip():
            raise _Problem(api_error(400, "invalid_parameter", "rename needs a name", "name"))
    required = {"move": "save_path", "add_tags": "tags", "remove_tags": "tags", "set_category": "category"}
    field = required.get(action)
    if field is not None and getattr(body, field) is None:
        raise _Problem(api_error(400, "invalid_parameter", f"{action} needs {field}", field))
    if action == "move" and not (body.save_path or "").strip():
        raise _Problem(api_error(400, "invalid_parameter", "move needs a non-empty save_path", "save_path"))
    if action == "set_limits" and not {"dl_limit", "up_limit"} & body.model_fields_set:
        raise _Problem(
            api_error(400, "invalid_parameter", "set_limits needs dl_limit or up_limit", "dl_limit")
        )
    instance = _instance(body.instance)
    hashes = None if body.hashes == "all" else list(body.hashes)
    action_id = _action_id()
    try:
        applied = await instance.session.act(action, hashes, params_of(body))
    except UnknownTorrents as exc:
        runtime().metrics.inc("actions_total", action=action, result="unknown_torrents")
        log.info(
            "%s: action %s on %s by %s from %s (%s token): refused, unknown torrents %s",
            instance.id,
            action,
            _abbreviated(body.hashes),
            body.client or "-",
            client_key(request.remote_addr),
            token_kind(),
            _abbreviated(exc.hashes),
        )
        answer = jsonify(
            {
                "error": "unknown_torrents",
                "message": f"no torrent with hash {', '.join(exc.hashes[:20])}; nothing was applied",
                "field": "hashes",
                "hashes": exc.hashes,
            }
        )
        answer.status_code = 404
        return answer
    except QbtError as exc:
        result, message, response = _failed(exc)
        _finish(
            instance,
            action_id=action_id,
            action=action,
            hashes=list(exc.targets) or hashes or [],
            client=body.client,
            result=result,
            message=message,
            asked=body.hashes,
        )
        return response
    _finish(
        instance,
        action_id=action_id,
        action=action,
        hashes=applied,
        client=body.client,
        result="accepted",
        message=None,
        asked=body.hashes,
    )
    return jsonify(
        {"action": action, "instance": instance.id, "hashes": applied, "id": action_id, "result": "accepted"}
    )


@bp.post("/api/transfer")
@document_request(TransferRequest)
@document_response(TransferAnswer)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 403)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 415)
@document_response(ErrorBody, 503)
@_problems
async def set_transfer() -> Response:
    """Global limits: alternative speeds on or off, download and upload limits (bytes/s)."""
    body = await _json_body(TransferRequest)
    if not {"alt_speed", "dl_limit", "up_limit"} & body.model_fields_set:
        raise _Problem(
            api_error(400, "invalid_parameter", "give alt_speed, dl_limit or up_limit", "alt_speed")
        )
    instance = _instance(body.instance)
    action_id = _action_id()
    try:
        state = await instance.session.set_transfer(body.alt_speed, body.dl_limit, body.up_limit)
    except QbtError as exc:
        result, message, response = _failed(exc)
        _finish_global(instance, action_id, "transfer", body.client, result, message)
        return response
    _finish_global(instance, action_id, "transfer", body.client, "accepted", None)
    return jsonify({"instance": instance.id, **state, "id": action_id, "result": "accepted"})


async def _add_body() -> AddRequest:
    """The add request, from JSON or from multipart/form-data (files in ``files_of``)."""
    if request.mimetype == "multipart/form-data":
        form = await request.form
        data: dict[str, Any] = {}
        for key in ("save_path", "category", "instance", "client"):
            values = form.getlist(key)
            if len(values) > 1:
                raise _Problem(api_error(400, "invalid_parameter", f"{key} was given more than once", key))
            if values:
                data[key] = values[0]
        data["urls"] = [u for text in form.getlist("urls") for u in text.splitlines()]
        if "tags" in form:
            tags = [t.strip() for text in form.getlist("tags") for t in text.split(",")]
            data["tags"] = [t for t in tags if t] or None
        if "stopped" in form:
            text = form["stopped"].strip().lower()
            if text not in ("true", "false", "1", "0", ""):
                raise _Problem(
                    api_error(400, "invalid_parameter", "stopped must be true or false", "stopped")
                )
            data["stopped"] = text in ("true", "1")
        return _validated(AddRequest, data)
    return await _json_body(AddRequest)


async def _files_of() -> dict[str, bytes]:
    if request.mimetype != "multipart/form-data":
        return {}
    if "torrents" in await request.form:
        # A part without a filename is a plain field to the form parser: it would be left
        # out silently and the rest added, half of what was asked.
        raise _Problem(
            api_error(
                400, "invalid_parameter", "a torrents part is not a file (it has no filename)", "torrents"
            )
        )
    files = (await request.files).getlist("torrents")
    if len(files) > MAX_FILES:
        raise _Problem(api_error(400, "invalid_parameter", f"at most {MAX_FILES} files at once", "torrents"))
    out: dict[str, bytes] = {}
    for number, upload in enumerate(files):
        content = upload.read()
        if not content:
            raise _Problem(api_error(400, "invalid_parameter", "an empty .torrent file", "torrents"))
        name = (upload.filename or f"upload{number}.torrent")[-200:]
        while name in out:
            name = f"{number}-{name}"
        out[name] = content
    return out


@bp.post(ADD_PATH)
@document_request(AddRequest)
@document_response(AddAnswer)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 403)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 409)
@document_response(ErrorBody, 413)
@document_response(ErrorBody, 415)
@document_response(ErrorBody, 503)
@_problems
async def add_torrents() -> Response:
    """Add torrents by magnet/http(s) links (JSON or multipart) and .torrent files (multipart,
    part name ``torrents``; the body may be up to ``max_upload_bytes``)."""
    try:
        body = await _add_body()
        files = await _files_of()
    except RequestEntityTooLarge:
        # The form parser raises the same for its own caps (parts, a field's size) as for
        # the body's: name them all, or a small form of many parts is told it is too big.
        limit = runtime().settings.max_upload_bytes
        message = (
            f"the upload is over max_upload_bytes ({limit} bytes), has more than"
            f" {request.max_form_parts} parts, or has a field (not a file) over"
            f" {request.max_form_memory_size} bytes"
        )
        raise _Problem(api_error(413, "too_large", message)) from None
    try:
        urls = check_urls(body.urls)
    except ValueError as exc:
        raise _Problem(api_error(400, "invalid_parameter", str(exc), "urls")) from None
    if not urls and not files:
        raise _Problem(
            api_error(400, "invalid_parameter", "nothing to add: give urls or torrents files", "urls")
        )
    instance = _instance(body.instance)
    options = {
        "save_path": body.save_path,
        "category": body.category,
        "tags": body.tags,
        "stopped": body.stopped,
    }
    action_id = _action_id()
    try:
        added = await instance.session.add(urls, files, options)
    except QbtError as exc:
        result, message, response = _failed(exc)
        _finish_global(instance, action_id, "add", body.client, result, message)
        return response
    _finish_global(instance, action_id, "add", body.client, "accepted", None)
    return jsonify({"instance": instance.id, "added": added, "id": action_id, "result": "accepted"})


@bp.get("/api/access")
@document_response(Access)
async def access() -> Response:
    """What this request's credentials may do: read always, act with the full token."""
    settings = runtime().settings
    return jsonify(
        {
            "read": True,
            "act": may_act(settings),
            "token": token_kind(),
            "actions_enabled": actions_enabled(settings),
        }
    )


@bp.get("/api/categories")
@validate_querystring(InstanceQuery)
@document_response(Categories)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 503)
@_problems
async def categories(query_args: InstanceQuery) -> Response:
    """The categories of an instance (default the primary), for editors."""
    instance = _instance(query_args.instance)
    try:
        found = await instance.session.categories()
    except QbtError as exc:
        return api_error(503, "qbittorrent_unavailable", str(exc))
    return jsonify({"categories": found})


@bp.get("/api/tags")
@validate_querystring(InstanceQuery)
@document_response(Tags)
@document_response(ErrorBody, 400)
@document_response(ErrorBody, 404)
@document_response(ErrorBody, 503)
@_problems
async def tags(query_args: InstanceQuery) -> Response:
    """The tags of an instance (default the primary), for editors."""
    instance = _instance(query_args.instance)
    try:
        found = await instance.session.tags()
    except QbtError as exc:
        return api_error(503, "qbittorrent_unavailable", str(exc))
    return jsonify({"tags": found})


def install_actions(app: Quart, settings: Settings) -> None:
    """The action routes, and their body limits: ``max_upload_bytes`` for ``POST
    /api/torrents/add``, ``ACTIONS_BODY_BYTES`` for ``POST /api/torrents/actions`` (a
    selection of up to ``MAX_HASHES`` torrents: 64 KiB holds only about 1,500 hashes).

    Quart fixes a request's body limit when it builds the request (before any hook runs),
    so the request class picks it by path: every other request keeps 64 KiB.
    """
    app.register_blueprint(bp)
    limits = {ADD_PATH: settings.max_upload_bytes, ACTIONS_PATH: ACTIONS_BODY_BYTES}

    class ActionsRequest(Request):
        def __init__(self, method: str, scheme: str, path: str, *args: Any, **kwargs: Any) -> None:
            limit = limits.get(path.rstrip("/")) if method == "POST" else None
            if limit is not None:
                kwargs["max_content_length"] = limit
            super().__init__(method, scheme, path, *args, **kwargs)
            if limit is not None:
                self.max_content_length = limit  # the form parser reads it too

    app.request_class = ActionsRequest
