"""Every action against both real qBittorrents (4.5.2 and 5.1), through a real server process.

Each test runs once per version (ids ``4.5`` and ``5.1``). One daemon and one server per
version serve the whole module (module-scoped ``lab``), so the module costs two daemon
starts, not one per test. Each test makes its own torrents, asks the server over HTTP with
the full token (as a program: Bearer, no Origin), then checks the effect twice: in
qBittorrent (its own Web API) and on the server's event stream (the ``action`` event, then
the diff that confirms it).

Differences met between the versions (also in docs/protocol.md, "Actions"):

* pause/resume are ``torrents/stop``/``start`` in 5.x: qbittorrent-api picks the endpoint by
  the Web API version; the states are ``stoppedDL``/``stoppedUP`` instead of ``pausedDL``/
  ``pausedUP``, both the phase ``paused``.
* Adding stopped: ``paused`` (4.x) or ``stopped`` (5.x) form field; the library sends both.
* With queueing off (the lab's and many users' setting) both answer 409 to queue_top and
  queue_bottom: a 409 ``qbittorrent_refused`` with qBittorrent's reason.
* The same on both: a .torrent that is not one is qBittorrent's 415, a duplicate add its
  ``Fails.`` (200), a category that does not exist or a path it cannot make its 409: each is a
  409 ``qbittorrent_refused`` here with qBittorrent's text.
"""

from __future__ import annotations

import io
import json
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import qbittorrentapi
import torf

from quart_dl.lab.qbittorrent_nox import QbtInstance, QbtNotInstalled, daemon_binary
from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.sse_reader import SSEMessage, SSEReader, apply_stream
from quart_dl.lab.transfer import make_payload, make_torrent
from quart_dl.lab.wait import wait_for

TOKEN = "real-daemon-actions-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
READ_TOKEN = "real-daemon-read-only-token-98765"
#: Stopped states by version (the phase is ``paused`` for both).
STOPPED = {"4": ("pausedDL", "pausedUP"), "5": ("stoppedDL", "stoppedUP")}
WAIT = 20.0


@dataclass
class Lab:
    """One version's daemon, the server following it, and where payloads go."""

    major: str
    daemon: QbtInstance
    qbt: qbittorrentapi.Client
    server: ServerProcess
    root: Path

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = json.dumps(body).encode()
        request = urllib.request.Request(
            self.server.url + path.lstrip("/"),
            data=data,
            method="POST",
            headers={**BEARER, "Content-Type": "application/json", **(headers or {})},
        )
        return _send(request)

    def stream(self) -> SSEReader:
        reader = SSEReader(self.server.url + "api/events", headers=BEARER)
        reader.wait(lambda m: [e for e in m if e.event == "snapshot"], 10, "a snapshot")
        return reader

    def torrent(self, *, complete: bool = True, size: int = 64 * 1024) -> tuple[str, Path]:
        """A new torrent in qBittorrent (seeding when ``complete``, else stalled at 0 %) and
        the folder its payload is in; waits until the server shows it."""
        name = f"t-{uuid.uuid4().hex[:10]}.bin"
        payloads = self.root / "payloads" / name
        payload = make_payload(payloads, name, size)
        data = make_torrent(payload)
        info_hash = torf.Torrent.read_stream(io.BytesIO(data)).infohash.lower()
        save = payloads if complete else self.root / "empty" / name
        save.mkdir(parents=True, exist_ok=True)
        self.qbt.torrents_add(torrent_files=data, save_path=str(save))

        def shown() -> bool:
            info = self.qbt.torrents_info(torrent_hashes=info_hash)
            if not info or info[0].state in ("checkingUP", "checkingDL", "checkingResumeData", "metaDL"):
                return False
            return not complete or info[0].progress >= 1

        # Not waited for on the server: actions check hashes with qBittorrent itself.
        wait_for(shown, WAIT, f"torrent {name} in qBittorrent")
        return info_hash, payloads

    def info(self, info_hash: str) -> Any:
        found = self.qbt.torrents_info(torrent_hashes=info_hash)
        return found[0] if found else None


def _send(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _rest(lab: Lab, path: str) -> Any:
    request = urllib.request.Request(lab.server.url + path, headers=BEARER)
    with urllib.request.urlopen(request, timeout=10) as reply:
        body = json.loads(reply.read())
    if "torrents" in body:
        body["torrents_by_hash"] = {t["hash"]: t for t in body["torrents"]}
    return body


def _binary(major: str) -> str:
    try:
        return daemon_binary(major)
    except QbtNotInstalled as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="module", params=["4", "5"], ids=["4.5", "5.1"])
def lab(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    major: str = request.param
    root = tmp_path_factory.mktemp(f"actions{major}")
    with QbtInstance(root / "qbt", binary=_binary(major)) as daemon:
        server = ServerProcess(
            root / "server",
            qbt_url=daemon.url,
            qbt_username=daemon.username,
            qbt_password=daemon.password,
            # A long poll interval: a change seen within it was the poll an action asked for.
            poll_interval=5.0,
            env={"QUART_DL_ACCESS_TOKEN": TOKEN, "QUART_DL_READ_TOKEN": READ_TOKEN},
        )
        with server:
            yield Lab(major, daemon, daemon.client(), server, root)


def _record(reader: SSEReader, info_hash: str, check: Any, what: str) -> dict[str, Any]:
    def seen(messages: list[SSEMessage]) -> dict[str, Any] | None:
        record = apply_stream(messages).get(info_hash)
        return record if record is not None and check(record) else None

    result: dict[str, Any] = reader.wait(seen, WAIT, what)
    return result


def _action_event(reader: SSEReader, action_id: str) -> dict[str, Any]:
    def seen(messages: list[SSEMessage]) -> dict[str, Any] | None:
        for message in messages:
            if message.event == "action" and message.json()["id"] == action_id:
                found: dict[str, Any] = message.json()
                return found
        return None

    result: dict[str, Any] = reader.wait(seen, WAIT, f"the action event {action_id}")
    return result


def _accepted(lab: Lab, reader: SSEReader, body: dict[str, Any], path: str = "api/torrents/actions") -> Any:
    status, answer = lab.post(path, {**body, "client": "test-real"})
    assert status == 200, answer
    assert answer["result"] == "accepted"
    event = _action_event(reader, answer["id"])
    assert event["result"] == "accepted"
    assert event["client"] == "test-real"
    return answer


# -- the verbs -----------------------------------------------------------------------------------


def test_pause_and_resume_by_the_versions_verb(lab: Lab) -> None:
    first, _ = lab.torrent(complete=False)
    second, _ = lab.torrent()
    with lab.stream() as reader:
        _record(reader, second, lambda r: True, "the torrents on the stream")  # polled at least once
        answer = _accepted(lab, reader, {"action": "pause", "hashes": [first, second]})
        assert sorted(answer["hashes"]) == sorted([first, second])
        for info_hash in (first, second):
            record = _record(reader, info_hash, lambda r: r.get("phase") == "paused", "paused on the stream")
            assert record["state"] in STOPPED[lab.major]
            assert lab.info(info_hash).state in STOPPED[lab.major]
        # Confirmed by the poll the action asked for, not by the next tick (5 s away).
        messages = reader.snapshot()
        asked = next(m.at for m in messages if m.event == "action" and m.json()["id"] == answer["id"])
        confirmed = next(
            m.at
            for m in messages
            if m.event == "diff" and m.json()["changed"].get(second, {}).get("phase") == "paused"
        )
        assert confirmed - asked < 2.0, f"the paused state came {confirmed - asked:.2f} s after the action"
        _accepted(lab, reader, {"action": "start", "hashes": [first, second]})  # the 5.x name
        for info_hash in (first, second):
            _record(reader, info_hash, lambda r: r.get("phase") != "paused", "resumed on the stream")
            assert lab.info(info_hash).state not in STOPPED[lab.major]


def test_force_start_and_back(lab: Lab) -> None:
    info_hash, _ = lab.torrent()
    with lab.stream() as reader:
        _accepted(lab, reader, {"action": "force_start", "hashes": [info_hash]})
        _record(reader, info_hash, lambda r: r.get("state") == "forcedUP", "forcedUP on the stream")
        assert lab.info(info_hash).force_start is True
        _accepted(lab, reader, {"action": "force_start", "hashes": [info_hash], "value": False})
        _record(reader, info_hash, lambda r: r.get("state") != "forcedUP", "not forced on the stream")
        assert lab.info(info_hash).force_start is False


def test_recheck_finds_the_data_put_in_place(lab: Lab) -> None:
    info_hash, payloads = lab.torrent(complete=False)
    save = Path(lab.info(info_hash).save_path)
    for item in payloads.iterdir():
        shutil.copy(item, save / item.name)
    with lab.stream() as reader:
        _accepted(lab, reader, {"action": "recheck", "hashes": [info_hash]})
        _record(reader, info_hash, lambda r: r.get("complete") is True, "complete after the recheck")
    assert lab.info(info_hash).progress == 1


def test_reannounce_is_accepted(lab: Lab) -> None:
    """The lab's torrents have no tracker: what shows is qBittorrent's acceptance."""
    info_hash, _ = lab.torrent()
    with lab.stream() as reader:
        answer = _accepted(lab, reader, {"action": "reannounce", "hashes": [info_hash]})
    assert answer["hashes"] == [info_hash]


def test_delete_keeps_or_deletes_the_files(lab: Lab) -> None:
    kept, kept_dir = lab.torrent()
    gone, gone_dir = lab.torrent()
    with lab.stream() as reader:
        _accepted(lab, reader, {"action": "delete", "hashes": [kept]})
        _accepted(lab, reader, {"action": "delete", "hashes": [gone], "delete_files": True})
        reader.wait(
            lambda m: (lambda v: kept not in v and gone not in v)(apply_stream(m)) or None,
            WAIT,
            "both removed on the stream",
        )
    assert lab.info(kept) is None
    assert lab.info(gone) is None
    assert any(kept_dir.iterdir())
    wait_for(lambda: not any(gone_dir.iterdir()), WAIT, "the deleted torrent's files gone")


def test_category_created_set_and_cleared(lab: Lab) -> None:
    info_hash, _ = lab.torrent()
    name = f"cat-{lab.major}"
    with lab.stream() as reader:
        status, answer = lab.post(
            "api/torrents/actions", {"action": "set_category", "hashes": [info_hash], "category": "nope"}
        )
        assert (status, answer["error"]) == (409, "qbittorrent_refused"), answer
        assert answer["message"] == "Incorrect category name"
        _accepted(
            lab, reader, {"action": "set_category", "hashes": [info_hash], "category": name, "create": True}
        )
        _record(reader, info_hash, lambda r: r.get("category") == name, "the category on the stream")
        assert lab.info(info_hash).category == name
        assert name in [c["name"] for c in _rest(lab, "api/categories")["categories"]]
        _accepted(lab, reader, {"action": "set_category", "hashes": [info_hash], "category": ""})
        _record(reader, info_hash, lambda r: r.get("category") == "", "no category on the stream")


def test_tags_added_and_removed(lab: Lab) -> None:
    info_hash, _ = lab.torrent()
    with lab.stream() as reader:
        _accepted(lab, reader, {"action": "add_tags", "hashes": [info_hash], "tags": ["alpha", "beta"]})
        _record(reader, info_hash, lambda r: r.get("tags") == ["alpha", "beta"], "both tags on the stream")
        assert "alpha" in _rest(lab, "api/tags")["tags"]
        _accepted(lab, reader, {"action": "remove_tags", "hashes": [info_hash], "tags": ["alpha"]})
        _record(reader, info_hash, lambda r: r.get("tags") == ["beta"], "one tag left on the stream")
    assert lab.info(info_hash).tags == "beta"


def test_per_torrent_limits(lab: Lab) -> None:
    """The record has no limit fields: the effect is read from qBittorrent."""
    info_hash, _ = lab.torrent()
    with lab.stream() as reader:
        _accepted(
            lab,
            reader,
            {"action": "set_limits", "hashes": [info_hash], "dl_limit": 100_000, "up_limit": 50_000},
        )
    info = lab.info(info_hash)
    assert (info.dl_limit, info.up_limit) == (100_000, 50_000)
    with lab.stream() as reader:
        _accepted(lab, reader, {"action": "set_limits", "hashes": [info_hash], "up_limit": 0})
    info = lab.info(info_hash)
    assert info.dl_limit == 100_000
    assert info.up_limit in (0, -1)  # unlimited


def test_move_and_a_path_qbittorrent_cannot_make(lab: Lab) -> None:
    info_hash, _ = lab.torrent()
    target = lab.root / "moved" / info_hash[:8]
    with lab.stream() as reader:
        _accepted(lab, reader, {"action": "move", "hashes": [info_hash], "save_path": str(target)})
        _record(
            reader,
            info_hash,
            lambda r: r.get("save_path", "").rstrip("/") == str(target),
            "the new path on the stream",
        )
    wait_for(lambda: any(target.iterdir()) if target.exists() else None, WAIT, "the files moved")
    status, answer = lab.post(
        "api/torrents/actions",
        {"action": "move", "hashes": [info_hash], "save_path": "/proc/quart-dl-cannot"},
    )
    assert (status, answer["error"]) == (409, "qbittorrent_refused"), answer
    assert answer["message"] == "Cannot make save path"


def test_rename(lab: Lab) -> None:
    info_hash, _ = lab.torrent()
    with lab.stream() as reader:
        _accepted(lab, reader, {"action": "rename", "hashes": [info_hash], "name": "Renamed ✓"})
        _record(reader, info_hash, lambda r: r.get("name") == "Renamed ✓", "the new name on the stream")
    assert lab.info(info_hash).name == "Renamed ✓"


def test_queue_needs_queueing_on(lab: Lab) -> None:
    # Incomplete: only downloading torrents have a place in the download queue.
    first, _ = lab.torrent(complete=False)
    second, _ = lab.torrent(complete=False)
    for verb in ("queue_top", "queue_bottom"):
        status, answer = lab.post("api/torrents/actions", {"action": verb, "hashes": [first]})
        assert (status, answer["error"]) == (409, "qbittorrent_refused"), answer
        assert answer["message"] == "Torrent queueing must be enabled"
    lab.qbt.app_set_preferences({"queueing_enabled": True})
    try:
        with lab.stream() as reader:
            _accepted(lab, reader, {"action": "queue_top", "hashes": [second]})
            wait_for(lambda: lab.info(second).priority == 1, WAIT, "the second torrent first in the queue")
            _accepted(lab, reader, {"action": "queue_bottom", "hashes": [second]})
            wait_for(
                lambda: lab.info(second).priority > lab.info(first).priority, WAIT, "the second torrent last"
            )
    finally:
        lab.qbt.app_set_preferences({"queueing_enabled": False})


def test_unknown_hashes_are_404_and_nothing_is_applied(lab: Lab) -> None:
    info_hash, _ = lab.torrent()
    unknown = "e" * 40
    status, answer = lab.post("api/torrents/actions", {"action": "pause", "hashes": [info_hash, unknown]})
    assert (status, answer["error"], answer["hashes"]) == (404, "unknown_torrents", [unknown])
    assert lab.info(info_hash).state not in STOPPED[lab.major]


# -- global limits and add -------------------------------------------------------------------------


def test_alt_speed_and_global_limits(lab: Lab) -> None:
    def transfer(messages: list[SSEMessage]) -> dict[str, Any]:
        latest: dict[str, Any] = {}
        for message in messages:
            if message.event == "snapshot" or (message.event == "diff" and "transfer" in message.json()):
                latest = dict(message.json()["transfer"])
        return latest

    try:
        with lab.stream() as reader:
            answer = _accepted(lab, reader, {"alt_speed": True}, "api/transfer")
            assert answer["alt_speed"] is True
            reader.wait(
                lambda m: transfer(m).get("alt_speed") is True or None, WAIT, "alt_speed on the stream"
            )
            assert str(lab.qbt.transfer_speed_limits_mode()) == "1"
            _accepted(lab, reader, {"alt_speed": False}, "api/transfer")
            # qBittorrent keeps global limits in whole KiB/s: 2,000,000 would read 1,999,872.
            answer = _accepted(
                lab, reader, {"dl_limit": 2048 * 1024, "up_limit": 1024 * 1024}, "api/transfer"
            )
            assert (answer["alt_speed"], answer["dl_limit"], answer["up_limit"]) == (
                False,
                2048 * 1024,
                1024 * 1024,
            )
            reader.wait(
                lambda m: (
                    (lambda t: t.get("dl_limit") == 2048 * 1024 and t.get("alt_speed") is False)(transfer(m))
                    or None
                ),
                WAIT,
                "the global limit on the stream",
            )
            assert lab.qbt.transfer_download_limit() == 2048 * 1024
    finally:
        lab.qbt.transfer_set_speed_limits_mode(intended_state=False)
        lab.qbt.transfer_set_download_limit(limit=0)
        lab.qbt.transfer_set_upload_limit(limit=0)


def _big_torrent(lab: Lab) -> tuple[bytes, str, Path]:
    """A .torrent over 64 KiB (a long comment), so an upload passes the 64 KiB of other requests."""
    name = f"big-{uuid.uuid4().hex[:8]}.bin"
    folder = lab.root / "payloads" / name
    payload = make_payload(folder, name, 32 * 1024)
    torrent = torf.Torrent(path=payload, private=True, comment="x" * 100_000, creation_date=None)
    torrent.generate()
    data = torrent.dump()
    assert len(data) > 64 * 1024
    return data, str(torrent.infohash).lower(), folder


def _multipart(fields: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = "quartdl" + uuid.uuid4().hex
    parts: list[bytes] = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        )
    for filename, content in files:
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="torrents"; filename="{filename}"\r\n'
            "Content-Type: application/x-bittorrent\r\n\r\n"
        )
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _upload(lab: Lab, fields: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[int, Any]:
    body, content_type = _multipart(fields, files)
    request = urllib.request.Request(
        lab.server.url + "api/torrents/add",
        data=body,
        method="POST",
        headers={**BEARER, "Content-Type": content_type},
    )
    return _send(request)


def test_upload_over_64_kib_through_the_socket_layer_added_stopped_with_options(lab: Lab) -> None:
    data, info_hash, folder = _big_torrent(lab)
    with lab.stream() as reader:
        status, answer = _upload(
            lab,
            {
                "save_path": str(folder),
                "category": "",
                "tags": "up,loaded",
                "stopped": "true",
                "client": "test-real",
            },
            [("big.torrent", data)],
        )
        assert (status, answer.get("added")) == (200, 1), answer
        event = _action_event(reader, answer["id"])
        assert (event["action"], event["result"]) == ("add", "accepted")
        record = _record(
            reader, info_hash, lambda r: r.get("phase") == "paused", "added stopped, on the stream"
        )
        assert record["tags"] == ["loaded", "up"] or sorted(record["tags"]) == ["loaded", "up"]
    assert lab.info(info_hash).state in STOPPED[lab.major]
    # The same again is a duplicate; something that is no .torrent is refused too.
    status, answer = _upload(lab, {}, [("big.torrent", data)])
    assert (status, answer["error"]) == (409, "qbittorrent_refused"), answer
    status, answer = _upload(lab, {}, [("bad.torrent", b"not a torrent at all")])
    assert (status, answer["error"]) == (409, "qbittorrent_refused"), answer
    assert "not a valid torrent file" in answer["message"]


def test_add_a_magnet_link(lab: Lab) -> None:
    info_hash = uuid.uuid4().hex + "abcdef01"  # 40 hex: nobody has it, it stays fetching metadata
    with lab.stream() as reader:
        answer = _accepted(
            lab, reader, {"urls": [f"magnet:?xt=urn:btih:{info_hash}&dn=nobody"]}, "api/torrents/add"
        )
        assert answer["added"] == 1
        _record(reader, info_hash, lambda r: True, "the magnet on the stream")
    wait_for(lambda: lab.info(info_hash), WAIT, "the magnet in qBittorrent")
    lab.qbt.torrents_delete(delete_files=True, torrent_hashes=info_hash)


# -- access, on the real server -------------------------------------------------------------------


def test_a_link_with_a_line_break_adds_no_file_from_qbittorrents_disk(lab: Lab) -> None:
    """Regression: qBittorrent (4.5.2 and 5.1) splits ``urls`` on newlines and adds a line
    that is no link as a .torrent path on its own disk; a JSON link with ``\n/path`` inside
    passed the magnet/http check and added that file."""
    name = f"local-{uuid.uuid4().hex[:10]}.bin"
    payload = make_payload(lab.root / "local", name, 16 * 1024)
    local = lab.root / "local" / f"{name}.torrent"
    local.write_bytes(make_torrent(payload))
    local_hash = torf.Torrent.read(str(local)).infohash.lower()
    magnet = f"magnet:?xt=urn:btih:{uuid.uuid4().hex}{uuid.uuid4().hex[:8]}"
    status, answer = lab.post("api/torrents/add", {"urls": [f"{magnet}\n{local}"], "stopped": True})
    assert (status, answer["field"]) == (400, "urls"), answer
    # The answer came after anything qBittorrent would have done with it: it adds a local
    # file before it answers torrents/add.
    assert lab.info(local_hash) is None


def test_cross_site_requests_change_nothing(lab: Lab) -> None:
    info_hash, _ = lab.torrent()
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": f"http://127.0.0.1:{lab.server.port + 1}"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        status, answer = lab.post("api/torrents/actions", {"action": "pause", "hashes": [info_hash]}, headers)
        assert (status, answer["error"]) == (403, "cross_site"), headers
    status, answer = lab.post(
        "api/torrents/actions",
        {"action": "pause", "hashes": [info_hash]},
        {"Authorization": "Bearer not-the-token-at-all-000"},
    )
    assert status == 401
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    for path, body in (
        ("api/torrents/actions", {"action": "pause", "hashes": [info_hash]}),
        ("api/transfer", {"alt_speed": True}),
        ("api/torrents/add", {"urls": ["magnet:?xt=urn:btih:" + "d" * 40]}),
    ):
        status, answer = lab.post(path, body, read)
        assert (status, answer["error"]) == (403, "read_only"), path
    assert str(lab.qbt.transfer_speed_limits_mode()) == "0"
    assert lab.info("d" * 40) is None
    assert lab.info(info_hash).state not in STOPPED[lab.major]
    log = lab.server.log_text()
    assert TOKEN not in log
    assert READ_TOKEN not in log
    assert "Traceback" not in log
