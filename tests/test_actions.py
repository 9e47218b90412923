"""quart_dl.web.actions (and access.py): the action routes over the real app with a FakeSession.

What is checked: every verb reaches the session with its parameters; the answers for bad
input (400 naming the field), unknown torrents or instance (404 naming them), refusals (409),
qBittorrent down (503), and never a 500; the ``action`` event, the poll at once, the metric
and the log line; and who may act (full token, read-only token, no token, other sites'
pages). The same actions against real qBittorrents are in test_actions_real.py.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fakes import H1, H2, H3, UNKNOWN_HASH, RunningApp, full_update, raw_torrent, running_app

from quart_dl.lab.wait import wait_for_async
from quart_dl.qbittorrent.client import AuthFailed, Refused, Unreachable
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.settings import SettingsError, load_settings

TOKEN = "correct-horse-battery-staple-42"
READ_TOKEN = "read-only-horse-battery-staple-7"
FULL = {"Authorization": f"Bearer {TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
ACTIONS = "/api/torrents/actions"

#: Every verb with parameters it accepts, and what the session is asked.
VERBS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("pause", {}, {}),
    ("resume", {}, {}),
    ("force_start", {"value": False}, {"value": False}),
    ("recheck", {}, {}),
    ("reannounce", {}, {}),
    ("delete", {"delete_files": True}, {"delete_files": True}),
    ("set_category", {"category": "linux", "create": True}, {"category": "linux", "create": True}),
    ("add_tags", {"tags": ["a", "b"]}, {"tags": ["a", "b"]}),
    ("remove_tags", {"tags": ["a"]}, {"tags": ["a"]}),
    ("set_limits", {"dl_limit": 1000}, {"dl_limit": 1000}),
    ("move", {"save_path": "/srv/new"}, {"save_path": "/srv/new"}),
    ("queue_top", {}, {}),
    ("queue_bottom", {}, {}),
]


def fake() -> FakeSession:
    qbt = FakeSession([full_update({H1: raw_torrent("one"), H2: raw_torrent("two")})])
    qbt.hashes = {H1, H2}
    return qbt


@pytest.fixture
async def served() -> AsyncIterator[RunningApp]:
    async with running_app(fake(), access_token=TOKEN, read_token=READ_TOKEN) as running:
        await wait_for_async(lambda: H1 in running.runtime.hub.torrents, what="the torrents")
        running.client.cookie_jar = None
        yield running


async def post(
    served: RunningApp, body: Any, path: str = ACTIONS, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    response = await served.client.post(path, json=body, headers=FULL if headers is None else headers)
    assert response.content_type == "application/json", await response.get_data(as_text=True)
    return response.status_code, await response.get_json()


def events(served: RunningApp, kind: str = "action") -> list[dict[str, Any]]:
    found = served.runtime.hub.log.replay(f"{served.runtime.hub.epoch}-0") or []
    return [e.payload for e in found if e.kind == kind]


# -- every verb ------------------------------------------------------------------------------


@pytest.mark.parametrize(("verb", "params", "asked"), VERBS, ids=[v[0] for v in VERBS])
async def test_every_verb_reaches_the_session(
    served: RunningApp, verb: str, params: dict[str, Any], asked: dict[str, Any]
) -> None:
    status, body = await post(served, {"action": verb, "hashes": [H1.upper(), H2], **params})
    assert status == 200, body
    assert body["action"] == verb
    assert body["hashes"] == [H1, H2]
    assert body["result"] == "accepted"
    assert body["instance"] == "default"
    assert served.qbt.acted == [(verb, [H1, H2], asked)]


async def test_stop_and_start_are_aliases_of_pause_and_resume(served: RunningApp) -> None:
    for alias, verb in (("stop", "pause"), ("start", "resume")):
        status, body = await post(served, {"action": alias, "hashes": [H1]})
        assert (status, body["action"]) == (200, verb)
    assert [a[0] for a in served.qbt.acted] == ["pause", "resume"]


async def test_all_means_every_torrent(served: RunningApp) -> None:
    status, body = await post(served, {"action": "pause", "hashes": "all"})
    assert status == 200
    assert served.qbt.acted == [("pause", None, {})]
    assert body["hashes"] == sorted([H1, H2])


async def test_rename_takes_one_hash_and_a_name(served: RunningApp) -> None:
    status, body = await post(served, {"action": "rename", "hashes": [H1], "name": "new name"})
    assert status == 200
    assert served.qbt.acted == [("rename", [H1], {"name": "new name"})]
    status, body = await post(served, {"action": "rename", "hashes": [H1, H2], "name": "x"})
    assert (status, body["error"], body["field"]) == (400, "invalid_parameter", "hashes")
    status, body = await post(served, {"action": "rename", "hashes": [H1]})
    assert (status, body["field"]) == (400, "name")


async def test_set_limits_changes_only_the_keys_given(served: RunningApp) -> None:
    await post(served, {"action": "set_limits", "hashes": [H1], "up_limit": None})
    assert served.qbt.acted[-1] == ("set_limits", [H1], {"up_limit": 0})
    status, body = await post(served, {"action": "set_limits", "hashes": [H1]})
    assert (status, body["field"]) == (400, "dl_limit")


# -- the event, the poll at once, the metric, the log ------------------------------------------


async def test_an_action_is_announced_polled_at_once_counted_and_logged(
    served: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    polls = served.qbt.count("maindata")
    caplog.set_level(logging.INFO, logger="quart_dl.web.actions")
    status, body = await post(served, {"action": "pause", "hashes": [H1], "client": "panel-1.x_y"})
    assert status == 200
    (event,) = events(served)
    assert event["id"] == body["id"]
    assert {k: event[k] for k in ("action", "instance", "hashes", "client", "result", "message")} == {
        "action": "pause",
        "instance": "default",
        "hashes": [H1],
        "client": "panel-1.x_y",
        "result": "accepted",
        "message": None,
    }
    assert isinstance(event["t"], float)
    # Polled at once: the idle interval is 30 s, so another maindata soon is the wake.
    await wait_for_async(lambda: served.qbt.count("maindata") > polls + 2, timeout=2, what="polls at once")
    metrics = await (await served.client.get("/metrics", headers=FULL)).get_data(as_text=True)
    assert 'quart_dl_actions_total{action="pause",result="accepted"} 1.0' in metrics
    (line,) = [r.getMessage() for r in caplog.records if r.name == "quart_dl.web.actions"]
    # The instance first: an operator following several sees where it acted.
    assert line.startswith("default: action pause"), line
    for part in ("pause", H1[:8], "panel-1.x_y", "full token", "accepted"):
        assert part in line
    assert H1 not in line  # abbreviated
    assert TOKEN not in caplog.text


async def test_the_action_event_reaches_a_per_torrent_stream_only_for_its_torrents(
    served: RunningApp,
) -> None:
    await post(served, {"action": "pause", "hashes": [H1]})
    (event,) = [
        e for e in served.runtime.hub.log.replay(f"{served.runtime.hub.epoch}-0") or [] if e.kind == "action"
    ]
    assert event.for_torrent(H1) == event.data
    assert event.for_torrent(H2) is None


# -- bad input: 400, never a 500 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode", "hashes": [H1]}, "action"),
        ({"hashes": [H1]}, "action"),
        ({"action": "pause"}, "hashes"),
        ({"action": "pause", "hashes": []}, "hashes"),
        ({"action": "pause", "hashes": ["nothex"]}, "hashes"),
        ({"action": "pause", "hashes": "some"}, "hashes"),
        ({"action": "pause", "hashes": H1}, "hashes"),
        ({"action": "pause", "hashes": [H1], "client": "has space"}, "client"),
        ({"action": "force_start", "hashes": [H1], "value": "yes"}, "value"),
        ({"action": "delete", "hashes": [H1], "delete_files": 1}, "delete_files"),
        ({"action": "set_limits", "hashes": [H1], "dl_limit": -5}, "dl_limit"),
        ({"action": "set_limits", "hashes": [H1], "dl_limit": "5"}, "dl_limit"),
        ({"action": "add_tags", "hashes": [H1]}, "tags"),
        ({"action": "add_tags", "hashes": [H1], "tags": ["a,b"]}, "tags"),
        ({"action": "move", "hashes": [H1], "save_path": ""}, "save_path"),
        ({"action": "set_category", "hashes": [H1]}, "category"),
        ({"action": "pause", "hashes": [H1], "instance": 5}, "instance"),
    ],
)
async def test_bad_bodies_are_400_naming_the_field(
    served: RunningApp, body: dict[str, Any], field: str
) -> None:
    status, answer = await post(served, body)
    assert status == 400, answer
    assert answer["error"] == "invalid_parameter"
    assert answer["field"].split(".")[0] == field
    assert served.qbt.acted == []


@pytest.mark.parametrize("raw", [b"{", b"[1]", b"\xff\xfe", b"null", b'"pause"'])
async def test_a_body_that_is_no_json_object_is_400_invalid_body(served: RunningApp, raw: bytes) -> None:
    response = await served.client.post(
        ACTIONS, data=raw, headers={**FULL, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_body"


async def test_regression_deeply_nested_json_was_a_500(served: RunningApp) -> None:
    """json.loads raises RecursionError (not a ValueError) for deep nesting."""
    response = await served.client.post(
        ACTIONS, data=b"[" * 200_000, headers={**FULL, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert (await response.get_json())["error"] == "invalid_body"
    assert served.qbt.acted == []


@pytest.mark.parametrize("origin", ["http://[oops", "http://127.0.0.1:99999", "http://127.0.0.1:x"])
async def test_regression_an_unparsable_origin_was_a_500(served: RunningApp, origin: str) -> None:
    """urlsplit raised ValueError for such an Origin: now it is simply not our own."""
    headers = {**FULL, "Origin": origin}
    status, answer = await post(served, {"action": "pause", "hashes": "all"}, headers=headers)
    assert (status, answer["error"]) == (403, "cross_site"), answer
    assert served.qbt.acted == []


async def test_a_form_post_is_refused_for_its_content_type(served: RunningApp) -> None:
    """A page can send a form cross-origin without a preflight, never application/json."""
    response = await served.client.post(ACTIONS, form={"action": "pause", "hashes": H1}, headers=FULL)
    assert response.status_code == 415
    assert (await response.get_json())["error"] == "unsupported_media_type"
    assert served.qbt.acted == []


# -- 404, 409, 503 --------------------------------------------------------------------------------


async def test_unknown_hashes_are_404_naming_them_and_nothing_is_applied(served: RunningApp) -> None:
    status, body = await post(served, {"action": "pause", "hashes": [H1, UNKNOWN_HASH, H3]})
    assert status == 404
    assert body["error"] == "unknown_torrents"
    assert body["hashes"] == [UNKNOWN_HASH, H3]
    assert served.qbt.acted == []
    assert events(served) == []


async def test_an_action_on_unknown_torrents_is_logged_with_who_asked(
    served: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the log line of an action refused for unknown hashes named the verb and
    the hashes but not who asked (client id, address, token kind), as every other one does."""
    caplog.set_level(logging.INFO, logger="quart_dl.web.actions")
    status, _ = await post(served, {"action": "delete", "hashes": [H1, UNKNOWN_HASH], "client": "script-9"})
    assert status == 404
    (line,) = [r.getMessage() for r in caplog.records if r.name == "quart_dl.web.actions"]
    assert line.startswith("default: action delete"), line
    for part in ("delete", "script-9", "full token", "unknown torrents", UNKNOWN_HASH[:8]):
        assert part in line, line
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("hashes", "field"), [(5, "hashes"), ("ALL", "hashes"), ({"a": 1}, "hashes"), ([5], "hashes.0")]
)
async def test_a_bad_hashes_value_names_the_field_hashes_not_a_union_branch(
    served: RunningApp, hashes: Any, field: str
) -> None:
    """Regression: a wrong type for ``hashes`` (a list or "all") was answered with the field
    ``hashes.list[str]``, pydantic's name for a branch of the union, not what was sent."""
    status, answer = await post(served, {"action": "pause", "hashes": hashes})
    assert (status, answer["field"]) == (400, field)
    assert "[" not in answer["message"].split(":")[0]


async def test_an_unknown_instance_is_404(served: RunningApp) -> None:
    status, body = await post(served, {"action": "pause", "hashes": [H1], "instance": "other"})
    assert (status, body["error"], body["field"]) == (404, "unknown_instance", "instance")


async def test_a_refusal_is_409_with_qbittorrents_reason_and_announced(served: RunningApp) -> None:
    served.qbt.action_failure = Refused("Torrent queueing must be enabled")
    status, body = await post(served, {"action": "queue_top", "hashes": [H1]})
    assert (status, body["error"]) == (409, "qbittorrent_refused")
    assert body["message"] == "Torrent queueing must be enabled"
    (event,) = events(served)
    assert (event["result"], event["message"]) == ("refused", "Torrent queueing must be enabled")


@pytest.mark.parametrize("failure", [Unreachable("cannot reach qBittorrent"), AuthFailed("rejected")])
async def test_qbittorrent_down_is_503_and_announced(served: RunningApp, failure: Exception) -> None:
    served.qbt.action_failure = failure
    for path, body in (
        (ACTIONS, {"action": "pause", "hashes": [H1]}),
        ("/api/transfer", {"alt_speed": True}),
        ("/api/torrents/add", {"urls": ["magnet:?xt=urn:btih:" + H1]}),
    ):
        status, answer = await post(served, body, path)
        assert (status, answer["error"]) == (503, "qbittorrent_unavailable"), path
        assert "may not have been applied" in answer["message"]
    assert [e["result"] for e in events(served)] == ["unavailable"] * 3
    for path in ("/api/categories", "/api/tags"):
        response = await served.client.get(path, headers=FULL)
        assert response.status_code == 503


# -- global limits, add, labels -------------------------------------------------------------------


async def test_a_half_done_action_says_what_was_applied_in_answer_and_event(served: RunningApp) -> None:
    """Regression: when qBittorrent went down between the calls of one action, the answer and
    the event said "may not have been applied" though part of it had been."""
    failure = Unreachable("cannot reach qBittorrent at http://127.0.0.1:1 (connection refused)")
    failure.partly = ("the download limit was set",)
    served.qbt.action_failure = failure
    body = {"action": "set_limits", "hashes": [H1], "dl_limit": 1024, "up_limit": 2048}
    status, answer = await post(served, body)
    assert (status, answer["error"]) == (503, "qbittorrent_unavailable")
    assert "half done: the download limit was set" in answer["message"]
    (event,) = events(served)
    assert event["result"] == "unavailable"
    assert event["message"] == answer["message"]


async def test_a_failed_action_on_all_is_announced_with_its_torrents(
    served: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: a refused action on "all" was announced with ``hashes: []`` and logged
    as "on all (0)", though the client had resolved "all" to the torrents it sent it for."""
    caplog.set_level(logging.INFO, logger="quart_dl.web.actions")
    failure = Refused("Torrent queueing must be enabled")
    failure.targets = (H1, H2)
    served.qbt.action_failure = failure
    status, answer = await post(served, {"action": "queue_top", "hashes": "all"})
    assert (status, answer["error"]) == (409, "qbittorrent_refused")
    (event,) = events(served)
    assert event["hashes"] == [H1, H2]
    (line,) = [r.getMessage() for r in caplog.records if r.name == "quart_dl.web.actions"]
    assert "on all (2)" in line


async def test_transfer_sets_only_what_is_given(served: RunningApp) -> None:
    status, body = await post(served, {"alt_speed": True, "dl_limit": 5000}, "/api/transfer")
    assert status == 200
    assert {k: body[k] for k in ("alt_speed", "dl_limit", "up_limit", "result")} == {
        "alt_speed": True,
        "dl_limit": 5000,
        "up_limit": 0,
        "result": "accepted",
    }
    status, body = await post(served, {}, "/api/transfer")
    assert (status, body["error"]) == (400, "invalid_parameter")
    status, body = await post(served, {"alt_speed": "on"}, "/api/transfer")
    assert (status, body["field"]) == (400, "alt_speed")
    assert [e["action"] for e in events(served)] == ["transfer"]


async def test_add_links_as_json(served: RunningApp) -> None:
    magnet = "magnet:?xt=urn:btih:" + H3
    body = {
        "urls": [magnet, "https://example.org/a.torrent"],
        "tags": ["x"],
        "stopped": True,
        "category": "c",
    }
    status, answer = await post(served, body, "/api/torrents/add")
    assert (status, answer["added"], answer["result"]) == (200, 2, "accepted")
    ((urls, files, options),) = served.qbt.added
    assert urls == [magnet, "https://example.org/a.torrent"]
    assert files == {}
    assert options == {"save_path": None, "category": "c", "tags": ["x"], "stopped": True}
    status, answer = await post(served, {"urls": ["file:///etc/passwd"]}, "/api/torrents/add")
    assert (status, answer["field"]) == (400, "urls")
    status, answer = await post(served, {"urls": []}, "/api/torrents/add")
    assert (status, answer["field"]) == (400, "urls")


@pytest.mark.parametrize("breaker", ["\n", "\r", "\x00", "\u2028", "\x85"])
async def test_a_link_with_a_line_break_cannot_smuggle_a_second_line_to_qbittorrent(
    served: RunningApp, breaker: str
) -> None:
    """Regression: qBittorrent reads the links one per line and takes a line that is no link
    for a .torrent path on its own disk; a JSON link with a line break inside passed the
    magnet/http check as one link and reached qBittorrent as two."""
    smuggled = "magnet:?xt=urn:btih:" + H3 + breaker + "/etc/secret.torrent"
    status, answer = await post(served, {"urls": [smuggled]}, "/api/torrents/add")
    assert (status, answer["error"], answer["field"]) == (400, "invalid_parameter", "urls")
    assert "line break" in answer["message"]
    assert served.qbt.added == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("save_path", "/srv/a\x00b"), ("category", "a\nb"), ("tags", ["a,b"]), ("tags", ["a\nb"])],
)
async def test_add_options_with_a_nul_line_break_or_comma_are_400_not_sent(
    served: RunningApp, field: str, value: Any
) -> None:
    """Regression: the add route checked its links but not its options: a save path with a
    NUL reached qBittorrent, and a tag ``a,b`` became two tags (the library joins them with
    commas). They are now checked as the actions route checks its own."""
    body = {"urls": ["magnet:?xt=urn:btih:" + H3], field: value}
    status, answer = await post(served, body, "/api/torrents/add")
    assert (status, answer["error"], answer["field"]) == (400, "invalid_parameter", field)
    form = {"urls": body["urls"][0], field: value[0] if isinstance(value, list) else value}
    files = {"torrents": _file("a.torrent", b"d4:infoe")}
    response = await served.client.post("/api/torrents/add", form=form, files=files, headers=FULL)
    if field != "tags" or "," not in form[field]:  # a comma splits multipart tags, by design
        assert response.status_code == 400, await response.get_data(as_text=True)
        assert (await response.get_json())["field"] == field
        assert served.qbt.added == []


async def test_a_tag_with_a_line_break_is_400_on_the_actions_route(served: RunningApp) -> None:
    """Regression: the actions route refused commas in tags but let control characters in."""
    status, answer = await post(served, {"action": "add_tags", "hashes": [H1], "tags": ["a\nb"]})
    assert (status, answer["field"]) == (400, "tags")
    assert served.qbt.acted == []


@pytest.mark.parametrize("limit", [2**31, 2**32 + 1024])
async def test_a_limit_beyond_what_qbittorrent_stores_is_400_not_wrapped(
    served: RunningApp, limit: int
) -> None:
    """Regression: qBittorrent keeps a limit's low 32 bits (measured on 4.5.2 and 5.1), so
    2**32 + 1024 bytes/s was set as 1 KiB/s and 2**31 as unlimited, and answered accepted."""
    status, answer = await post(served, {"action": "set_limits", "hashes": [H1], "dl_limit": limit})
    assert (status, answer["field"]) == (400, "dl_limit")
    status, answer = await post(served, {"up_limit": limit}, "/api/transfer")
    assert (status, answer["field"]) == (400, "up_limit")
    assert served.qbt.acted == []
    status, answer = await post(served, {"dl_limit": 2**31 - 1}, "/api/transfer")
    assert status == 200, answer


async def test_add_files_as_multipart_beyond_the_64_kib_of_other_requests(served: RunningApp) -> None:
    big = b"d4:infod" + b"x" * 200_000 + b"ee"  # the fake does not parse it; qBittorrent would
    files = {"torrents": _file("big.torrent", big)}
    response = await served.client.post(
        "/api/torrents/add",
        form={"urls": "magnet:?xt=urn:btih:" + H3, "tags": "a, b", "stopped": "true"},
        files=files,
        headers=FULL,
    )
    assert response.status_code == 200, await response.get_data(as_text=True)
    ((_, got, options),) = served.qbt.added
    assert got == {"big.torrent": big}
    assert options["tags"] == ["a", "b"]
    assert options["stopped"] is True
    # Every other route keeps its 64 KiB.
    response = await served.client.post(
        "/api/transfer",
        data=json.dumps({"alt_speed": True, "pad": "x" * 70_000}),
        headers={**FULL, "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_a_torrents_part_without_a_filename_is_400_not_left_out(served: RunningApp) -> None:
    """Regression: a ``torrents`` part without a filename is a plain field to the form parser;
    it was dropped silently and the links beside it added, answered as accepted."""
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="torrents"\r\n\r\nd4:infoe\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="urls"\r\n\r\nmagnet:?xt=urn:btih:{H3}\r\n'
        f"--{boundary}--\r\n"
    ).encode()
    response = await served.client.post(
        "/api/torrents/add",
        data=body,
        headers={**FULL, "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    answer = await response.get_json()
    assert (response.status_code, answer["field"]) == (400, "torrents"), answer
    assert served.qbt.added == []


async def test_a_selection_of_thousands_of_torrents_fits_the_actions_body(served: RunningApp) -> None:
    """64 KiB holds about 1,500 hashes: the actions route takes 1 MiB (20,000 hashes)."""
    many = [f"{n:040x}" for n in range(20_000)]
    served.qbt.hashes |= set(many)
    status, body = await post(served, {"action": "pause", "hashes": many})
    assert status == 200, body
    assert len(body["hashes"]) == 20_000
    status, body = await post(served, {"action": "pause", "hashes": [*many, "f" * 40]})
    assert (status, body["field"]) == (400, "hashes")  # over MAX_HASHES


async def test_an_upload_over_max_upload_bytes_is_413() -> None:
    async with running_app(fake(), max_upload_bytes=100_000, open_actions=True) as served:
        response = await served.client.post(
            "/api/torrents/add", files={"torrents": _file("a.torrent", b"x" * 150_000)}
        )
        assert response.status_code == 413
        answer = await response.get_json()
        assert answer["error"] == "too_large"
        assert "max_upload_bytes (100000 bytes)" in answer["message"]
        assert served.qbt.added == []


async def test_a_form_of_too_many_parts_is_413_saying_so(served: RunningApp) -> None:
    """Regression: a small form with more parts than the form parser takes (1,000) was told
    it was over max_upload_bytes (16 MiB), which it was not."""
    form = {f"f{n}": "x" for n in range(1_100)} | {"urls": "magnet:?xt=urn:btih:" + H3}
    files = {"torrents": _file("a.torrent", b"d4:infoe")}
    response = await served.client.post("/api/torrents/add", form=form, files=files, headers=FULL)
    answer = await response.get_json()
    assert (response.status_code, answer["error"]) == (413, "too_large")
    assert "more than 1000 parts" in answer["message"]
    assert served.qbt.added == []


async def test_categories_and_tags(served: RunningApp) -> None:
    served.qbt.category_list = [{"name": "linux", "save_path": "/srv/linux"}]
    served.qbt.tag_list = ["a", "b"]
    assert await (await served.client.get("/api/categories", headers=READ)).get_json() == {
        "categories": [{"name": "linux", "save_path": "/srv/linux"}]
    }
    assert await (await served.client.get("/api/tags", headers=READ)).get_json() == {"tags": ["a", "b"]}


def _file(name: str, content: bytes) -> Any:
    from io import BytesIO

    from werkzeug.datastructures import FileStorage

    return FileStorage(BytesIO(content), filename=name, content_type="application/x-bittorrent")


# -- who may act ------------------------------------------------------------------------------------

POSTS: list[tuple[str, dict[str, Any]]] = [
    (ACTIONS, {"action": "pause", "hashes": [H1]}),
    ("/api/transfer", {"alt_speed": True}),
    ("/api/torrents/add", {"urls": ["magnet:?xt=urn:btih:" + H3]}),
]


async def test_access_says_what_each_token_may_do(served: RunningApp) -> None:
    async def access(headers: dict[str, str]) -> Any:
        return await (await served.client.get("/api/access", headers=headers)).get_json()

    assert await access(FULL) == {"read": True, "act": True, "token": "full", "actions_enabled": True}
    assert await access(READ) == {"read": True, "act": False, "token": "read", "actions_enabled": True}
    assert (await served.client.get("/api/access")).status_code == 401


@pytest.mark.parametrize(("path", "body"), POSTS, ids=[p for p, _ in POSTS])
async def test_the_read_only_token_is_403_on_every_post(served: RunningApp, path: str, body: Any) -> None:
    status, answer = await post(served, body, path, headers=READ)
    assert (status, answer["error"]) == (403, "read_only")
    assert served.qbt.acted == []
    assert served.qbt.added == []


async def test_the_read_only_token_in_a_frame_url_wins_over_a_full_cookie(served: RunningApp) -> None:
    """A browser signed in with the full token that opens the read-only frame stays read-only."""
    from quart_dl.web.auth import SESSION_COOKIE, Gate

    cookie = {"Cookie": f"{SESSION_COOKIE}={Gate(TOKEN).session}"}
    body = await (await served.client.get(f"/api/access?token={READ_TOKEN}", headers=cookie)).get_json()
    assert body["token"] == "read"
    body = await (await served.client.get("/api/access", headers=cookie)).get_json()
    assert body["token"] == "full"
    read_cookie = {"Cookie": f"{SESSION_COOKIE}={Gate(READ_TOKEN).session}"}
    status, answer = await post(served, POSTS[0][1], headers={**read_cookie, "Origin": "http://localhost"})
    assert (status, answer["error"]) == (403, "read_only")


@pytest.mark.parametrize(("path", "body"), POSTS, ids=[p for p, _ in POSTS])
async def test_without_a_token_actions_are_off_unless_open_actions(path: str, body: Any) -> None:
    async with running_app(fake()) as served:
        status, answer = await post(served, body, path, headers={})
        assert (status, answer["error"]) == (403, "actions_disabled")
        access = await (await served.client.get("/api/access")).get_json()
        assert access == {"read": True, "act": False, "token": "none", "actions_enabled": False}
    async with running_app(fake(), open_actions=True) as served:
        await wait_for_async(lambda: H1 in served.runtime.hub.torrents, what="the torrents")
        status, answer = await post(served, body, path, headers={})
        assert status == 200, answer
        access = await (await served.client.get("/api/access")).get_json()
        assert access["act"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://localhost:8123"},  # Home Assistant on another port of this host
        {"Origin": "https://localhost"},  # another scheme is another origin (port 443)
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
    ],
    ids=[
        "other-site",
        "other-port",
        "other-scheme-port",
        "null",
        "cross-site",
        "same-site",
        "same-site-origin",
    ],
)
@pytest.mark.parametrize(("path", "body"), POSTS, ids=[p for p, _ in POSTS])
async def test_other_pages_are_403_cross_site_even_with_the_full_token(
    served: RunningApp, headers: dict[str, str], path: str, body: Any
) -> None:
    status, answer = await post(served, body, path, headers={**FULL, **headers})
    assert (status, answer["error"]) == (403, "cross_site"), answer
    assert served.qbt.acted == []
    assert served.qbt.added == []


async def test_a_page_posting_in_a_loop_is_logged_once_at_warning(
    served: RunningApp, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: every refused cross-site request was a WARNING line, so a hostile page
    posting in a loop flooded the operator's log; repeats within a minute are DEBUG now."""
    caplog.set_level(logging.DEBUG, logger="quart_dl.web.access")
    headers = {**FULL, "Origin": "http://localhost:8123", "Sec-Fetch-Site": "same-site"}
    for _ in range(20):
        status, body = await post(served, {"action": "pause", "hashes": "all"}, headers=headers)
        assert (status, body["error"]) == (403, "cross_site")
    refused = [r for r in caplog.records if r.name == "quart_dl.web.access"]
    assert [r.levelname for r in refused].count("WARNING") == 1
    assert len(refused) == 20
    status, _ = await post(
        served, {"action": "pause", "hashes": "all"}, headers={**FULL, "Origin": "http://evil.example"}
    )
    assert status == 403
    assert [r.levelname for r in caplog.records if r.name == "quart_dl.web.access"].count("WARNING") == 2
    assert served.qbt.acted == []


async def test_own_pages_may_act(served: RunningApp) -> None:
    for headers in (
        {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "https://localhost", "X-Forwarded-Proto": "https"},  # behind a TLS proxy
        {},  # a program
    ):
        status, _ = await post(served, POSTS[0][1], headers={**FULL, **headers})
        assert status == 200, headers


async def test_listed_origins_may_act_and_get_post_preflights() -> None:
    async with running_app(fake(), access_token=TOKEN, cors_origins="https://dash.lan") as other:
        await wait_for_async(lambda: H1 in other.runtime.hub.torrents, what="the torrents")
        listed = {**FULL, "Origin": "https://dash.lan", "Sec-Fetch-Site": "cross-site"}
        status, _ = await post(other, POSTS[0][1], headers=listed)
        assert status == 200
        response = await other.client.options(
            ACTIONS,
            headers={"Origin": "https://dash.lan", "Access-Control-Request-Method": "POST"},
        )
        assert "POST" in response.headers["Access-Control-Allow-Methods"]
        assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


async def test_a_listed_same_site_origin_cannot_act_with_the_cookie_alone() -> None:
    """Regression: an origin in ``cors_origins`` passed the same-origin check whatever the
    credential, so with Home Assistant's ``http://localhost:8123`` listed (the README's
    example), any script on Home Assistant's pages acted with the full cookie the browser
    adds to same-site requests by itself. It must present the token."""
    from quart_dl.web.auth import SESSION_COOKIE, Gate

    ha = "http://localhost:8123"
    async with running_app(fake(), access_token=TOKEN, cors_origins=ha) as other:
        await wait_for_async(lambda: H1 in other.runtime.hub.torrents, what="the torrents")
        other.client.cookie_jar = None
        cookie = {"Cookie": f"{SESSION_COOKIE}={Gate(TOKEN).session}"}
        same_site = {"Origin": ha, "Sec-Fetch-Site": "same-site"}
        for path, body in POSTS:
            status, answer = await post(other, body, path, headers={**cookie, **same_site})
            assert (status, answer["error"]) == (403, "cross_site"), path
        assert other.qbt.acted == []
        assert other.qbt.added == []
        # A wrong Bearer beside the cookie proves nothing either (the cookie admitted it).
        status, _ = await post(
            other, POSTS[0][1], headers={**cookie, **same_site, "Authorization": "Bearer x"}
        )
        assert status == 403
        # With the token it presents, the listed origin acts; and quart-dl's own pages with
        # the cookie still do.
        status, _ = await post(other, POSTS[0][1], headers={**FULL, **same_site})
        assert status == 200
        status, _ = await post(other, POSTS[0][1], headers={**cookie, **FULL, **same_site})
        assert status == 200  # a browser sends the cookie beside the Bearer it was given
        own = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
        status, _ = await post(other, POSTS[0][1], headers={**cookie, **own})
        assert status == 200


# -- settings ---------------------------------------------------------------------------------------


def test_read_token_settings() -> None:
    settings = load_settings(cli={"access_token": TOKEN, "read_token": READ_TOKEN}, environ={})
    assert settings.read_token.reveal() == READ_TOKEN
    assert READ_TOKEN not in repr(settings)
    with pytest.raises(SettingsError, match=r"^read_token: needs access_token"):
        load_settings(cli={"read_token": READ_TOKEN}, environ={})
    with pytest.raises(SettingsError, match=r"^read_token: must differ"):
        load_settings(cli={"access_token": TOKEN, "read_token": TOKEN}, environ={})
    assert load_settings(environ={"QUART_DL_OPEN_ACTIONS": "true"}).open_actions is True
    with pytest.raises(SettingsError, match=r"^open_actions:"):
        load_settings(environ={"QUART_DL_OPEN_ACTIONS": "maybe"})
    assert load_settings(environ={}).max_upload_bytes == 16 * 1024 * 1024


async def test_open_actions_still_refuses_other_pages() -> None:
    """Without a token anyone on the LAN may act with open_actions, but never through
    another site's page in their browser (the same-origin check does not need a token)."""
    async with running_app(fake(), open_actions=True) as served:
        await wait_for_async(lambda: H1 in served.runtime.hub.torrents, what="the torrents")
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "same-site"}):
            status, answer = await post(served, POSTS[0][1], headers=headers)
            assert (status, answer["error"]) == (403, "cross_site")
        assert served.qbt.acted == []


# -- several instances ----------------------------------------------------------------------------


@pytest.fixture
async def two() -> AsyncIterator[RunningApp]:
    """Two instances, ``home`` (the primary) and ``seedbox``, both holding H1 (cross-seeding)."""
    sessions = {"home": fake(), "seedbox": fake()}
    async with running_app(instances=sessions, open_actions=True) as running:
        hub = running.runtime.hub
        await wait_for_async(
            lambda: H1 in hub.view("home").torrents and H1 in hub.view("seedbox").torrents,
            what="both instances' torrents",
        )
        yield running


def session_of(served: RunningApp, instance_id: str) -> FakeSession:
    session = served.runtime.instances[instance_id].session
    assert isinstance(session, FakeSession)
    return session


async def test_an_action_goes_to_the_instance_it_names_default_the_primary(two: RunningApp) -> None:
    status, body = await post(two, {"action": "pause", "hashes": [H1], "instance": "seedbox"}, headers={})
    assert (status, body["instance"]) == (200, "seedbox")
    assert [a[0] for a in session_of(two, "seedbox").acted] == ["pause"]
    assert session_of(two, "home").acted == []
    status, body = await post(two, {"action": "resume", "hashes": [H1]}, headers={})
    assert (status, body["instance"]) == (200, "home")
    assert [a[0] for a in session_of(two, "home").acted] == ["resume"]
    announced = [(e["action"], e["instance"]) for e in events(two)]
    assert announced == [("pause", "seedbox"), ("resume", "home")]


async def test_transfer_and_add_go_to_the_instance_they_name(two: RunningApp) -> None:
    status, body = await post(two, {"alt_speed": True, "instance": "seedbox"}, "/api/transfer", headers={})
    assert (status, body["instance"]) == (200, "seedbox")
    assert session_of(two, "seedbox").transfer["alt_speed"] is True
    assert session_of(two, "home").transfer["alt_speed"] is False
    magnet = "magnet:?xt=urn:btih:" + H3
    status, body = await post(two, {"urls": [magnet], "instance": "seedbox"}, "/api/torrents/add", headers={})
    assert (status, body["instance"]) == (200, "seedbox")
    assert len(session_of(two, "seedbox").added) == 1
    assert session_of(two, "home").added == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (ACTIONS, {"action": "pause", "hashes": [H1], "instance": "nope"}),
        ("/api/transfer", {"alt_speed": True, "instance": "nope"}),
        ("/api/torrents/add", {"urls": ["magnet:?xt=urn:btih:" + H3], "instance": "nope"}),
    ],
)
async def test_an_unknown_instance_is_a_404_naming_it_on_every_action(
    two: RunningApp, path: str, body: dict[str, Any]
) -> None:
    status, answer = await post(two, body, path, headers={})
    assert status == 404
    assert answer == {
        "error": "unknown_instance",
        "message": "no qBittorrent instance named 'nope'",
        "field": "instance",
    }
    assert events(two) == []


async def test_categories_and_tags_of_the_instance_named(two: RunningApp) -> None:
    session_of(two, "home").category_list = [{"name": "home-cat", "save_path": "/h"}]
    session_of(two, "seedbox").category_list = [{"name": "box-cat", "save_path": "/b"}]
    session_of(two, "seedbox").tag_list = ["box"]
    home = await (await two.client.get("/api/categories")).get_json()
    assert home == {"categories": [{"name": "home-cat", "save_path": "/h"}]}
    box = await (await two.client.get("/api/categories?instance=seedbox")).get_json()
    assert box == {"categories": [{"name": "box-cat", "save_path": "/b"}]}
    assert await (await two.client.get("/api/tags?instance=seedbox")).get_json() == {"tags": ["box"]}
    assert await (await two.client.get("/api/tags")).get_json() == {"tags": []}
    for path in ("/api/categories?instance=nope", "/api/tags?instance=nope"):
        response = await two.client.get(path)
        assert response.status_code == 404
        assert (await response.get_json())["error"] == "unknown_instance"
    response = await two.client.get("/api/tags?instance=home&instance=seedbox")
    assert (response.status_code, (await response.get_json())["field"]) == (400, "instance")
