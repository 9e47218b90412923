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
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import qbittorrentapi
import requests

T = TypeVar("T")

log = logging.getLogger("quart_dl.qbittorrent.client")


class QbtError(Exception):
    """qBittorrent could not be used; ``kind`` is ``unreachable`` or ``auth_failed``.

    ``partly`` names the steps of a several-call action (``set_limits`` with both limits, a
    category created then set, the global limits) that qBittorrent had already taken when
    a later one failed: the caller must say it was half done, not "not applied".
    """

    kind = "unreachable"
    partly: tuple[str, ...] = ()
    #: The torrents an action that failed was sent for (``"all"`` resolved to its hashes).
    targets: tuple[str, ...] = ()


class Unreachable(QbtError):
    """Down, hung, refusing, or answering something that is not qBittorrent's Web API."""

    kind = "unreachable"


class AuthFailed(QbtError):
    """Wrong user name or password, or this address is banned after failed logins."""

    kind = "auth_failed"


class Refused(QbtError):
    """qBittorrent answered an action with a refusal (queueing off, a path it cannot write,
    a bad .torrent, a duplicate): its reason is the message; nothing is wrong with the link."""

    kind = "refused"


class UnknownTorrents(QbtError):
    """Some hashes of an action are not in qBittorrent; nothing was applied."""

    kind = "unknown_torrents"

    def __init__(self, hashes: Sequence[str]) -> None:
        super().__init__(f"qBittorrent has no torrent {', '.join(hashes)}")
        self.hashes = list(hashes)


#: Action verbs and their aliases (5.x names for pause/resume).
ACTION_ALIASES = {"stop": "pause", "start": "resume"}

#: The verbs ``QbtClient.act`` knows.
ACTIONS = (
    "pause",
    "resume",
    "force_start",
    "recheck",
    "reannounce",
    "delete",
    "set_category",
    "add_tags",
    "remove_tags",
    "set_limits",
    "move",
    "rename",
    "queue_top",
    "queue_bottom",
)


def _refusal(exc: qbittorrentapi.HTTPError, what: str) -> Refused:
    """qBittorrent's own reason (the answer's text), or a sentence naming its status."""
    text = " ".join(str(exc).split())[:300]
    status = getattr(exc, "http_status_code", None)
    if not text or text in ("Conflict", "Bad Request", "Not Found", "Forbidden"):
        text = f"qBittorrent refused {what} (HTTP {status})"
    return Refused(text)


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

    # -- actions (issue #14) ----------------------------------------------------------------
    # Each runs as one job on the session's worker thread, between two polls, never inside
    # one. 4xx answers are refusals (``Refused`` with qBittorrent's text); a 403 on an
    # action is a refusal too when the login still works (qBittorrent answers 403 to a
    # location it cannot write), which ``_act`` tells apart by the library's re-login.

    def _act(self, what: str, fn: Callable[[], T], done: Sequence[str] = ()) -> T:
        """Run ``fn`` as an action; ``done`` is the list ``fn`` appends each step it took to
        (copied into the error's ``partly`` when a later step fails)."""

        def guarded() -> T:
            try:
                return fn()
            except qbittorrentapi.Forbidden403Error as exc:
                # The library already logged in again and retried once: a second 403 on a
                # logged-in session is qBittorrent refusing this request, not our login.
                if what == "move":
                    raise _refusal(exc, what) from None
                raise
            except (
                qbittorrentapi.Conflict409Error,
                qbittorrentapi.InvalidRequest400Error,
                qbittorrentapi.NotFound404Error,
                qbittorrentapi.UnsupportedMediaType415Error,
            ) as exc:
                raise _refusal(exc, what) from None

        try:
            return self._call(guarded)
        except QbtError as exc:
            exc.partly = tuple(done)
            raise

    def act(self, action: str, hashes: Sequence[str] | None, params: Mapping[str, Any]) -> list[str]:
        """Apply ``action`` to ``hashes`` (``None``: every torrent); the hashes applied to.

        Unknown hashes raise ``UnknownTorrents`` before anything is sent, so an action is
        applied to all it names or to none.
        """
        action = ACTION_ALIASES.get(action, action)
        c = self._client

        def known() -> list[str]:
            wanted = list(hashes) if hashes is not None else None
            info = c.torrents_info(torrent_hashes=wanted, SIMPLE_RESPONSES=True)
            found = [str(t.get("hash", "")).lower() for t in info]
            if wanted is None:
                return found
            present = set(found)
            missing = [h for h in wanted if h not in present]
            if missing:
                raise UnknownTorrents(missing)
            return wanted

        applied = self._call(known)
        if not applied:
            return []
        target: Any = "all" if hashes is None else applied
        done: list[str] = []

        def go() -> None:
            if action == "pause":
                c.torrents_stop(torrent_hashes=target)  # torrents/pause before Web API 2.11
            elif action == "resume":
                c.torrents_start(torrent_hashes=target)
            elif action == "force_start":
                c.torrents_set_force_start(enable=bool(params.get("value", True)), torrent_hashes=target)
            elif action == "recheck":
                c.torrents_recheck(torrent_hashes=target)
            elif action == "reannounce":
                c.torrents_reannounce(torrent_hashes=target)
            elif action == "delete":
                c.torrents_delete(delete_files=bool(params.get("delete_files", False)), torrent_hashes=target)
            elif action == "set_category":
                category = str(params.get("category", ""))
                if category and params.get("create") and category not in c.torrents_categories():
                    c.torrents_create_category(name=category)
                    done.append(f"the category {category!r} was created")
                c.torrents_set_category(category=category, torrent_hashes=target)
            elif action == "add_tags":
                c.torrents_add_tags(tags=list(params["tags"]), torrent_hashes=target)
            elif action == "remove_tags":
                c.torrents_remove_tags(tags=list(params["tags"]), torrent_hashes=target)
            elif action == "set_limits":
                # qBittorrent reads 0 (and -1) as "unlimited"; only given keys change.
                if "dl_limit" in params:
                    c.torrents_set_download_limit(limit=int(params["dl_limit"] or 0), torrent_hashes=target)
                    done.append("the download limit was set")
                if "up_limit" in params:
                    c.torrents_set_upload_limit(limit=int(params["up_limit"] or 0), torrent_hashes=target)
            elif action == "move":
                c.torrents_set_location(location=str(params["save_path"]), torrent_hashes=target)
            elif action == "rename":
                c.torrents_rename(torrent_hash=applied[0], new_torrent_name=str(params["name"]))
            elif action == "queue_top":
                c.torrents_top_priority(torrent_hashes=target)
            elif action == "queue_bottom":
                c.torrents_bottom_priority(torrent_hashes=target)
            else:
                raise ValueError(f"unknown action {action!r}")

        try:
            self._act(action, go, done)
        except QbtError as exc:
            exc.targets = tuple(applied)
            raise
        return applied

    def set_transfer(
        self, alt_speed: bool | None, dl_limit: int | None, up_limit: int | None
    ) -> dict[str, Any]:
        """Set the global limits given (``None``: leave as is); the state after, as
        ``{"alt_speed", "dl_limit", "up_limit"}`` (bytes/s, 0 = unlimited).

        The limits are the ones in force: with alternative speeds on, qBittorrent reads and
        writes the alternative limits through the same calls.
        """
        c = self._client
        done: list[str] = []

        def go() -> dict[str, Any]:
            if alt_speed is not None:
                c.transfer_set_speed_limits_mode(intended_state=alt_speed)
                done.append("alternative speeds were switched " + ("on" if alt_speed else "off"))
            if dl_limit is not None:
                c.transfer_set_download_limit(limit=dl_limit)
                done.append("the download limit was set")
            if up_limit is not None:
                c.transfer_set_upload_limit(limit=up_limit)
                done.append("the upload limit was set")
            info: Any = c.transfer_info(SIMPLE_RESPONSES=True)
            mode = str(c.transfer_speed_limits_mode()).strip()
            return {
                "alt_speed": mode == "1",
                "dl_limit": max(0, int(info.get("dl_rate_limit") or 0)),
                "up_limit": max(0, int(info.get("up_rate_limit") or 0)),
            }

        return self._act("the transfer limits", go, done)

    def add(self, urls: Sequence[str], files: Mapping[str, bytes], options: Mapping[str, Any]) -> int:
        """Add torrents by URL and .torrent contents; how many were sent (all or none added).

        ``options``: ``save_path``, ``category``, ``tags`` (list), ``stopped`` (bool; the
        library sends it as ``paused`` to 4.x and ``stopped`` to 5.x).
        """
        c = self._client

        def go() -> int:
            answer = c.torrents_add(
                urls=list(urls) or None,
                torrent_files=dict(files) or None,
                save_path=options.get("save_path") or None,
                category=options.get("category") or None,
                tags=list(options.get("tags") or ()) or None,
                is_stopped=options.get("stopped"),
            )
            if isinstance(answer, str) and answer.strip() != "Ok.":
                raise Refused(
                    'qBittorrent refused to add the torrent(s) ("Fails.": not a valid .torrent or'
                    " link, or already added)"
                )
            return len(urls) + len(files)

        return self._act("the torrents to add", go)

    def categories(self) -> list[dict[str, str]]:
        """The instance's categories: name and save path, by name."""

        def go() -> list[dict[str, str]]:
            found: Any = self._client.torrents_categories(SIMPLE_RESPONSES=True)
            return [
                {"name": str(name), "save_path": str((value or {}).get("savePath") or "")}
                for name, value in sorted(found.items())
            ]

        return self._call(go)

    def tags(self) -> list[str]:
        """The instance's tags, sorted."""
        return self._call(lambda: sorted(str(t) for t in self._client.torrents_tags(SIMPLE_RESPONSES=True)))

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
