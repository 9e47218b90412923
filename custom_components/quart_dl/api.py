"""A small async client for one quart-dl server (REST and the event stream).

It takes Home Assistant's shared aiohttp session instead of opening its own (a session per
integration wastes connections and file descriptors), which is also why every request
carries its own timeout: the shared session's default is ``ClientTimeout(total=300)``, and
an event stream that lives for days must not inherit a five-minute total.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
from yarl import URL

from .const import REQUEST_TIMEOUT
from .sse import SseEvent, SseLineTooLong, SseParser


class QuartDlError(Exception):
    """Base class for every error the client raises."""


class QuartDlConnectionError(QuartDlError):
    """The server could not be reached, timed out or broke off.

    ``reason`` is a short phrase for people ("connection refused", "timed out"), made from
    the aiohttp or OS error by :func:`connection_reason`: the UI shows it, and an aiohttp
    repr (``ClientConnectorError(ConnectionKey(host=..., ...))``) means nothing to a user.
    """

    def __init__(self, path: str, reason: str) -> None:
        """Name the request and why it failed."""
        super().__init__(f"{path}: {reason}")
        self.reason = reason


class QuartDlAuthError(QuartDlError):
    """The server refused our credentials (401, or 403 for any other reason than the host)."""


class QuartDlHostNotAllowedError(QuartDlError):
    """The server does not answer to the host name in our URL (403 ``host_not_allowed``).

    Without an access token, quart-dl answers only IP addresses, ``localhost``, dotless and
    ``.local`` names and the names in its ``allowed_hosts`` setting (a DNS-rebinding guard).
    Not an auth error: a new token would not help when the server has ``allowed_hosts``
    set, so Home Assistant must not ask for one. ``host`` is the name we used.
    """

    def __init__(self, path: str, host: str) -> None:
        """Name the request and the refused host name."""
        super().__init__(f"{path}: the server does not answer to the host name {host!r}")
        self.host = host


class QuartDlRateLimitedError(QuartDlConnectionError):
    """The server refuses us for a while after too many wrong tokens (429).

    A connection error, not an auth error: it passes by itself, and retrying later with the
    same (possibly right) token is exactly what to do.
    """

    def __init__(self, path: str) -> None:
        """Name the refused request."""
        super().__init__(path, "too many wrong access tokens, wait a minute")


class QuartDlResponseError(QuartDlError):
    """The server answered, but not like a quart-dl server of our protocol version.

    ``status`` is the HTTP status when that was the problem: a 404 from ``/api/instances``
    or a 400 from ``/api/events?v=2`` is an older server (protocol 1 only), not a fault.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        """Keep the message and the HTTP status, if any."""
        super().__init__(message)
        self.status = status


class QuartDlActionError(QuartDlError):
    """The server refused an action with one of its JSON errors (``{"error", "message"}``).

    ``code`` is the protocol's error code (``read_only``, ``unknown_torrents``,
    ``qbittorrent_refused``, ...), ``message`` the server's sentence (qBittorrent's reason
    for a refusal), ``field`` the parameter it names, ``hashes`` the unknown torrents of a
    404 ``unknown_torrents``. The services turn these into translated errors by ``code``.
    """

    def __init__(
        self,
        path: str,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        hashes: tuple[str, ...] = (),
    ) -> None:
        """Keep what the server said."""
        super().__init__(f"{path}: HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.hashes = hashes


#: Name of this integration in the server's ``action`` events and logs (``client``).
ACTION_CLIENT = "home-assistant"


#: The most of a 403 body read to tell a host refusal from a token refusal. quart-dl's
#: answer is a few hundred bytes; a proxy's HTML error page may be bigger, and is no
#: host refusal anyway.
MAX_ERROR_BODY = 16 * 1024


async def _is_host_refusal(response: aiohttp.ClientResponse) -> bool:
    """Whether a 403 is quart-dl's ``{"error": "host_not_allowed"}``.

    Read defensively: the body may be a proxy's HTML page, not JSON, too big, or break off
    mid-way. Anything but the exact JSON error counts as a plain refusal.
    """
    body = bytearray()
    try:
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > MAX_ERROR_BODY:
                return False
        payload = json.loads(body)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False
    return isinstance(payload, dict) and payload.get("error") == "host_not_allowed"


async def _check_status(path: str, response: aiohttp.ClientResponse) -> None:
    """Map an HTTP status that is not 200 to the matching error."""
    status = response.status
    if status == 200:
        return
    if status == 403 and await _is_host_refusal(response):
        raise QuartDlHostNotAllowedError(path, response.url.host or "")
    if status in (401, 403):
        raise QuartDlAuthError(f"{path}: HTTP {status}")
    if status == 429:
        raise QuartDlRateLimitedError(path)
    raise QuartDlResponseError(f"{path}: HTTP {status}", status)


def connection_reason(err: BaseException) -> str:
    """A short phrase for why a request failed on the network, for the UI.

    The exception's own text (or repr) carries aiohttp's connection key, SSL contexts and
    errno numbers; a user needs to know only which of a few things went wrong.
    """
    if isinstance(err, TimeoutError):  # aiohttp's ServerTimeoutError included
        return "timed out"
    if isinstance(err, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate not accepted"
    if isinstance(err, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(err, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(err, aiohttp.ClientPayloadError):
        return "the answer broke off"
    if isinstance(err, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(err, aiohttp.InvalidURL):
        return "invalid address"
    if isinstance(err, aiohttp.ClientConnectorDNSError):
        return "host name not found"
    cause: BaseException | None = err
    if isinstance(err, aiohttp.ClientConnectorError):
        cause = err.os_error
    if isinstance(cause, socket.gaierror):
        return "host name not found"
    if isinstance(cause, OSError):
        # Happy eyeballs folds several attempts into one OSError that keeps a common errno.
        if isinstance(cause, ConnectionRefusedError) or cause.errno == errno.ECONNREFUSED:
            return "connection refused"
        if isinstance(cause, ConnectionResetError) or cause.errno == errno.ECONNRESET:
            return "connection reset"
        if cause.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "host unreachable"
    return "network error"


def normalize_url(raw: str) -> str:
    """Turn user input into the base URL the integration keys everything on.

    ``http://Host:8080/`` and ``http://host:8080`` are one server: lower-case the scheme
    and host, drop the query, fragment and trailing slash, keep a path prefix (a reverse
    proxy may serve quart-dl under ``/downloads``). Raises ``ValueError`` for anything
    that is not an absolute http(s) URL.
    """
    text = raw.strip()
    if "://" not in text:
        text = f"http://{text}"
    url = URL(text)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"not an http(s) URL: {raw!r}")
    base = url.with_query(None).with_fragment(None).with_user(None)
    path = base.path.rstrip("/")
    return str(base.with_path(path or "/")).rstrip("/")


class QuartDlClient:
    """Talk to one quart-dl server at ``base_url`` (as returned by :func:`normalize_url`)."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str | None = None,
    ) -> None:
        """Keep the session, the base URL and an optional bearer token."""
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._token = token or None

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (which starts with ``/``) on this server."""
        return f"{self.base_url}{path}"

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        if extra:
            headers.update(extra)
        return headers

    async def _get_json(self, path: str) -> dict[str, Any]:
        """GET ``path`` and return its JSON object, mapping failures to our errors."""
        try:
            async with self._session.get(
                self.url(path),
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
                allow_redirects=True,
            ) as response:
                await _check_status(path, response)
                try:
                    payload = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError) as err:
                    raise QuartDlResponseError(f"{path}: not JSON") from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise QuartDlConnectionError(path, connection_reason(err)) from err
        if not isinstance(payload, dict):
            raise QuartDlResponseError(f"{path}: not a JSON object")
        return payload

    async def status(self) -> dict[str, Any]:
        """``GET /api/status``, checked to come from a quart-dl server."""
        answer = await self._get_json("/api/status")
        if not isinstance(answer.get("status"), dict) or "protocol" not in answer:
            raise QuartDlResponseError("/api/status: not a quart-dl status answer")
        return answer

    async def instances(self) -> dict[str, Any] | None:
        """``GET /api/instances`` (protocol 2); ``None`` from an older server (404)."""
        try:
            answer = await self._get_json("/api/instances")
        except QuartDlResponseError as err:
            if err.status == 404:
                return None
            raise
        if not isinstance(answer.get("instances"), list):
            raise QuartDlResponseError("/api/instances: no instance list")
        return answer

    async def torrents(self, instance: str | None = None) -> dict[str, Any]:
        """``GET /api/torrents``: every torrent record (of every instance on a protocol 2
        server, each naming its ``instance``; of one with ``instance``)."""
        path = "/api/torrents" if instance is None else f"/api/torrents?instance={quote(instance)}"
        answer = await self._get_json(path)
        if not isinstance(answer.get("torrents"), list):
            raise QuartDlResponseError("/api/torrents: no torrent list")
        return answer

    async def _post_json(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST ``body`` as JSON to an action route and return the JSON answer.

        No ``Origin`` header is sent (aiohttp sends none): the server's cross-site check
        lets Bearer-authenticated programs through, as the protocol says.
        """
        try:
            async with self._session.post(
                self.url(path),
                json={**body, "client": ACTION_CLIENT},
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                error = await _action_error(path, response)
                if error is not None:
                    raise error
                try:
                    payload = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError) as err:
                    raise QuartDlResponseError(f"{path}: not JSON") from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise QuartDlConnectionError(path, connection_reason(err)) from err
        if not isinstance(payload, dict):
            raise QuartDlResponseError(f"{path}: not a JSON object")
        return payload

    async def torrent_action(
        self, action: str, hashes: list[str] | str, *, instance: str | None = None, **params: Any
    ) -> dict[str, Any]:
        """``POST /api/torrents/actions``: one verb on ``hashes`` (a list, or ``"all"``) of
        one instance (``None``: the server's primary, and no field an older server lacks)."""
        return await self._post_json(
            "/api/torrents/actions",
            {"action": action, "hashes": hashes, **_instance(instance), **params},
        )

    async def set_transfer(self, *, instance: str | None = None, **changes: Any) -> dict[str, Any]:
        """``POST /api/transfer`` (``alt_speed``, ``dl_limit``, ``up_limit``): the state after."""
        return await self._post_json("/api/transfer", {**_instance(instance), **changes})

    async def add_torrents(
        self,
        urls: list[str],
        *,
        save_path: str | None = None,
        category: str | None = None,
        tags: list[str] | None = None,
        stopped: bool = False,
        instance: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/torrents/add`` with magnet links or URLs of .torrent files."""
        body: dict[str, Any] = {"urls": urls, "stopped": stopped, **_instance(instance)}
        if save_path:
            body["save_path"] = save_path
        if category:
            body["category"] = category
        if tags:
            body["tags"] = tags
        return await self._post_json("/api/torrents/add", body)

    async def tags(self, instance: str | None = None) -> list[str]:
        """``GET /api/tags``: every tag qBittorrent knows (asked of qBittorrent, not cached)."""
        path = "/api/tags" if instance is None else f"/api/tags?instance={quote(instance)}"
        answer = await self._get_json(path)
        tags = answer.get("tags")
        if not isinstance(tags, list):
            raise QuartDlResponseError("/api/tags: no tag list")
        return [str(tag) for tag in tags]

    async def events(
        self,
        *,
        last_event_id: str | None,
        read_timeout: float,
        parser: SseParser,
        on_open: Callable[[], None] | None = None,
        version: int = 1,
    ) -> AsyncGenerator[SseEvent]:
        """Yield the events of ``GET /api/events`` until the stream ends or fails.

        ``read_timeout`` bounds the silence between two chunks (the server sends a
        heartbeat comment when idle, so silence means a dead peer); there is no total
        timeout. The caller owns ``parser`` so that the last event id and the ``retry``
        hint survive the end of this generator. A normal end (the server closed the
        stream) is just the end of iteration; everything else raises a
        :class:`QuartDlError`. ``on_open`` is called once the stream is accepted: a stream
        resumed with nothing missed sends no event until something happens. ``version`` 2
        asks for protocol 2 (every instance); an older server answers it with a 400.
        """
        parser.reset()
        headers = self._headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = aiohttp.ClientTimeout(total=None, connect=REQUEST_TIMEOUT, sock_read=read_timeout)
        try:
            async with self._session.get(
                self.url("/api/events?v=2" if version == 2 else "/api/events"),
                headers=headers,
                timeout=timeout,
                # Never let a compressed stream reach us: compression holds events back.
                auto_decompress=False,
            ) as response:
                await _check_status("/api/events", response)
                content_type = response.headers.get("Content-Type", "")
                if not content_type.startswith("text/event-stream"):
                    raise QuartDlResponseError(f"/api/events: unexpected content type {content_type!r}")
                if on_open is not None:
                    on_open()
                async for chunk in response.content.iter_any():
                    for event in parser.feed(chunk):
                        yield event
        except SseLineTooLong as err:
            raise QuartDlResponseError(str(err)) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise QuartDlConnectionError("/api/events", connection_reason(err)) from err


async def _action_error(path: str, response: aiohttp.ClientResponse) -> QuartDlError | None:
    """The error for an action's answer that is not 200, or ``None`` for a 200.

    Action routes answer refusals with JSON errors that must be told apart (a read-only
    token is not a wrong token: reauth would not help), so the body is read first; an
    answer without quart-dl's error shape falls back to :func:`_check_status`.
    """
    if response.status == 200:
        return None
    body = bytearray()
    try:
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > MAX_ERROR_BODY:
                break
        payload = json.loads(body)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        code = payload["error"]
        if response.status == 401 or code == "host_not_allowed":
            # Our token (or host name) is wrong: the same errors as every other request.
            if code == "host_not_allowed":
                return QuartDlHostNotAllowedError(path, response.url.host or "")
            return QuartDlAuthError(f"{path}: HTTP 401")
        if response.status == 429:
            return QuartDlRateLimitedError(path)
        hashes = payload.get("hashes")
        field = payload.get("field")
        return QuartDlActionError(
            path,
            response.status,
            code,
            str(payload.get("message") or code),
            field if isinstance(field, str) else None,
            tuple(str(h) for h in hashes) if isinstance(hashes, list) else (),
        )
    try:
        await _check_status(path, response)
    except QuartDlError as err:
        return err
    return QuartDlResponseError(f"{path}: HTTP {response.status}")


def _instance(instance: str | None) -> dict[str, str]:
    """The ``instance`` field of an action body, left out for the primary: an older
    server (protocol 1) knows no such field."""
    return {} if instance is None else {"instance": instance}


def decode_event(event: SseEvent) -> dict[str, Any]:
    """The JSON object an event carries; ``QuartDlResponseError`` if it is not one."""
    try:
        payload = json.loads(event.data)
    except ValueError as err:
        raise QuartDlResponseError(f"{event.event} event: not JSON") from err
    if not isinstance(payload, dict):
        raise QuartDlResponseError(f"{event.event} event: not a JSON object")
    return payload
