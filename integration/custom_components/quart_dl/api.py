"""A small async client for one quart-dl server (REST and the event stream).

It takes Home Assistant's shared aiohttp session instead of opening its own (a session per
integration wastes connections and file descriptors), which is also why every request
carries its own timeout: the shared session's default is ``ClientTimeout(total=300)``, and
an event stream that lives for days must not inherit a five-minute total.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
from yarl import URL

from .const import REQUEST_TIMEOUT
from .sse import SseEvent, SseLineTooLong, SseParser


class QuartDlError(Exception):
    """Base class for every error the client raises."""


class QuartDlConnectionError(QuartDlError):
    """The server could not be reached, timed out or broke off."""


class QuartDlAuthError(QuartDlError):
    """The server refused our credentials (401/403)."""


class QuartDlRateLimitedError(QuartDlConnectionError):
    """The server refuses us for a while after too many wrong tokens (429).

    A connection error, not an auth error: it passes by itself, and retrying later with the
    same (possibly right) token is exactly what to do.
    """


class QuartDlResponseError(QuartDlError):
    """The server answered, but not like a quart-dl server of our protocol version."""


def _check_status(path: str, status: int) -> None:
    """Map an HTTP status that is not 200 to the matching error."""
    if status in (401, 403):
        raise QuartDlAuthError(f"{path}: HTTP {status}")
    if status == 429:
        raise QuartDlRateLimitedError(f"{path}: too many wrong access tokens, wait a minute")
    if status != 200:
        raise QuartDlResponseError(f"{path}: HTTP {status}")


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
                _check_status(path, response.status)
                try:
                    payload = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError) as err:
                    raise QuartDlResponseError(f"{path}: not JSON") from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise QuartDlConnectionError(f"{path}: {err!r}") from err
        if not isinstance(payload, dict):
            raise QuartDlResponseError(f"{path}: not a JSON object")
        return payload

    async def status(self) -> dict[str, Any]:
        """``GET /api/status``, checked to come from a quart-dl server."""
        answer = await self._get_json("/api/status")
        if not isinstance(answer.get("status"), dict) or "protocol" not in answer:
            raise QuartDlResponseError("/api/status: not a quart-dl status answer")
        return answer

    async def torrents(self) -> dict[str, Any]:
        """``GET /api/torrents``: every torrent record."""
        answer = await self._get_json("/api/torrents")
        if not isinstance(answer.get("torrents"), list):
            raise QuartDlResponseError("/api/torrents: no torrent list")
        return answer

    async def events(
        self,
        *,
        last_event_id: str | None,
        read_timeout: float,
        parser: SseParser,
    ) -> AsyncGenerator[SseEvent]:
        """Yield the events of ``GET /api/events`` until the stream ends or fails.

        ``read_timeout`` bounds the silence between two chunks (the server sends a
        heartbeat comment when idle, so silence means a dead peer); there is no total
        timeout. The caller owns ``parser`` so that the last event id and the ``retry``
        hint survive the end of this generator. A normal end (the server closed the
        stream) is just the end of iteration; everything else raises a
        :class:`QuartDlError`.
        """
        parser.reset()
        headers = self._headers({"Accept": "text/event-stream", "Cache-Control": "no-cache"})
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = aiohttp.ClientTimeout(
            total=None, connect=REQUEST_TIMEOUT, sock_read=read_timeout
        )
        try:
            async with self._session.get(
                self.url("/api/events"),
                headers=headers,
                timeout=timeout,
                # Never let a compressed stream reach us: compression holds events back.
                auto_decompress=False,
            ) as response:
                _check_status("/api/events", response.status)
                content_type = response.headers.get("Content-Type", "")
                if not content_type.startswith("text/event-stream"):
                    raise QuartDlResponseError(
                        f"/api/events: unexpected content type {content_type!r}"
                    )
                async for chunk in response.content.iter_any():
                    for event in parser.feed(chunk):
                        yield event
        except SseLineTooLong as err:
            raise QuartDlResponseError(str(err)) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise QuartDlConnectionError(f"/api/events: {err!r}") from err


def decode_event(event: SseEvent) -> dict[str, Any]:
    """The JSON object an event carries; ``QuartDlResponseError`` if it is not one."""
    try:
        payload = json.loads(event.data)
    except ValueError as err:
        raise QuartDlResponseError(f"{event.event} event: not JSON") from err
    if not isinstance(payload, dict):
        raise QuartDlResponseError(f"{event.event} event: not a JSON object")
    return payload
