"""The one module that talks to qBittorrent (through qbittorrent-api, which is synchronous).

Everything here blocks, so it runs on a worker thread (``WorkerThread``), never on the event
loop. Errors are classified into the three things the rest of the service cares about:
``AuthFailed`` (wrong credentials or an IP ban: back off for long, a retry storm would get the
address banned), ``Unreachable`` (down, hung, refusing, or answering garbage) and nothing
else. Messages never hold the password.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import qbittorrentapi
import requests

T = TypeVar("T")

log = logging.getLogger("quart_dl.qbittorrent.client")


class QbtError(Exception):
    """qBittorrent could not be used; ``kind`` is ``unreachable`` or ``auth_failed``."""

    kind = "unreachable"


class Unreachable(QbtError):
    """Down, hung, refusing, or answering something that is not qBittorrent's Web API."""

    kind = "unreachable"


class AuthFailed(QbtError):
    """Wrong user name or password, or this address is banned after failed logins."""

    kind = "auth_failed"


class QbtClient:
    """A qBittorrent Web API session of its own (a sync ``rid`` is per session)."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 5.0) -> None:
        self._url = url
        self._client = qbittorrentapi.Client(
            host=url,
            username=username,
            password=password,
            REQUESTS_ARGS={"timeout": (min(3.05, timeout), timeout)},
            DISABLE_LOGGING_DEBUG_OUTPUT=True,
            VERIFY_WEBUI_CERTIFICATE=True,
            # Without these a hung qBittorrent costs ~4x the timeout per call: the library
            # re-probes http/https on retry, and urllib3 retries underneath it.
            FORCE_SCHEME_FROM_HOST=True,
            HTTPADAPTER_ARGS={"max_retries": 0},
        )
        self.rid = 0
        self._timeout = timeout

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (qbittorrentapi.LoginFailed, qbittorrentapi.Unauthorized401Error):
            raise AuthFailed("qBittorrent rejected the user name or password") from None
        except qbittorrentapi.Forbidden403Error:
            raise AuthFailed(
                "qBittorrent refused access (wrong credentials, or this address is banned"
                " after too many failed logins: restart qBittorrent to lift the ban)"
            ) from None
        except qbittorrentapi.APIConnectionError as exc:
            raise Unreachable(f"cannot reach qBittorrent at {self._url} ({_reason(exc)})") from None
        except qbittorrentapi.APIError as exc:
            raise Unreachable(f"qBittorrent answered with an error ({exc.__class__.__name__})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise Unreachable(
                f"{self._url} did not answer like qBittorrent's Web API ({exc.__class__.__name__})"
            ) from None

    def login(self) -> str:
        """Log in and return qBittorrent's version (e.g. ``v4.5.2``)."""

        def go() -> str:
            try:
                self._client.auth_log_in()
            except qbittorrentapi.LoginFailed:
                # The library says "login failed" for any answer but "Ok.": a router page or
                # another app on that port too. Only qBittorrent refuses its API to a
                # stranger with 401/403; anything else means the URL is wrong, which is
                # not worth the long auth backoff (and a misleading "wrong password").
                if not self._answers_like_qbittorrent():
                    raise Unreachable(
                        f"{self._url} does not answer like qBittorrent's Web API (is the URL right?)"
                    ) from None
                raise
            return str(self._client.app_version())

        self.rid = 0
        return self._call(go)

    def _answers_like_qbittorrent(self) -> bool:
        """An unauthenticated API call: qBittorrent answers 401 or 403, other servers don't."""
        try:
            reply = requests.get(f"{self._url}/api/v2/app/webapiVersion", timeout=self._timeout)
        except requests.RequestException:
            return True  # cannot tell: keep the library's verdict
        return reply.status_code in (401, 403)

    def maindata(self) -> dict[str, Any]:
        """One ``sync/maindata`` answer for the current rid (rid 0 → full update), as plain JSON.

        ``SIMPLE_RESPONSES``: the library hands back the decoded JSON as it is. By default it
        wraps every dict of the answer in its attribute-dict class, which we then had to turn
        back into plain dicts: two walks over each answer that cost more CPU than decoding it.
        """

        def go() -> Any:
            return self._client.sync_maindata(rid=self.rid, SIMPLE_RESPONSES=True)

        data = self._call(go)
        if not isinstance(data, dict) or not isinstance(data.get("rid"), int):
            raise Unreachable(f"{self._url} did not answer like qBittorrent's Web API (no rid)")
        if self.rid == 0:
            data["full_update"] = True
        self.rid = data["rid"]
        return data

    def torrent_count(self) -> int:
        """How many torrents qBittorrent holds (for ``quart-dl check``)."""
        return self._call(lambda: len(self._client.torrents_info()))

    def reset(self) -> None:
        """Forget the rid: the next maindata is a full update."""
        self.rid = 0

    def close(self) -> None:
        """Close the HTTP session."""
        try:
            self._client._trigger_session_initialization()
        except Exception as exc:  # noqa: BLE001 - closing must never fail the caller
            log.debug("closing the qBittorrent session: %s", exc.__class__.__name__)


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for hint, reason in (
        ("Read timed out", "timed out"),
        ("timed out", "timed out"),
        ("Connection refused", "connection refused"),
        ("Name or service not known", "unknown host"),
        ("Failed to resolve", "unknown host"),
    ):
        if hint in text:
            return reason
    return exc.__class__.__name__


class WorkerThread:
    """A single daemon thread that runs blocking calls in order.

    Daemon, so a call hung on an unresponsive qBittorrent never holds the process at exit;
    single, so calls on one session never overlap (the rid must advance in order).
    """

    def __init__(self, name: str = "quart-dl qbittorrent") -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, future = job
            loop = future.get_loop()
            try:
                result = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_set_exception, future, exc)
            else:
                if not loop.is_closed():
                    loop.call_soon_threadsafe(_set_result, future, result)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the thread and await its result."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((fn, future))
        return await future

    def close(self) -> None:
        """Let the thread finish after its current job."""
        self._jobs.put(None)


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
