"""SSE framing: one data line per event whatever the payload, per-torrent filtering, heartbeats."""

from __future__ import annotations

import json

import pytest
from fakes import H1, H2, parse_frames

from quart_dl.hub.frames import (
    HEARTBEAT_COMMENT,
    Event,
    dumps,
    frame,
    heartbeat_event,
    retry_frame,
)

NASTY_NAMES = [
    "line one\nline two",
    "carriage\rreturn\r\nand crlf",
    'quotes " and \\ backslash',
    "data: fake\n\nevent: snapshot\nid: 0-999",
    "emoji 🎬🍿 and ünïcødé",
    "separators \u2028 and \u2029 and \u0085",
    "nul \x00 and bell \x07",
    "x" * 10_000,
]


@pytest.mark.parametrize("name", NASTY_NAMES, ids=range(len(NASTY_NAMES)))
def test_frame_is_one_data_line_whatever_the_name(name: str) -> None:
    payload = {"changed": {H1: {"name": name}}}
    data = frame("diff", payload, "ab12cd34-7")
    assert data.endswith(b"\n\n")
    assert data.count(b"\n") == 4  # id, event, data lines, then the blank line
    assert b"\r" not in data
    lines = data.decode().split("\n")
    assert lines[0] == "id: ab12cd34-7"
    assert lines[1] == "event: diff"
    assert lines[2].startswith("data: ")
    assert lines[3:] == ["", ""]
    assert json.loads(lines[2].removeprefix("data: ")) == payload
    (parsed,) = parse_frames(data)
    assert parsed["id"] == "ab12cd34-7"
    assert json.loads(parsed["data"])["changed"][H1]["name"] == name


def test_frame_without_id() -> None:
    assert frame("heartbeat", {"t": 1}) == b'event: heartbeat\ndata: {"t":1}\n\n'


def test_dumps_is_compact_and_keeps_unicode() -> None:
    assert dumps({"a": [1, 2], "n": "é"}) == '{"a":[1,2],"n":"é"}'


def test_dumps_refuses_nan() -> None:
    with pytest.raises(ValueError, match="Out of range float"):
        dumps({"ratio": float("nan")})


def test_retry_frame() -> None:
    assert retry_frame(3000) == b"retry: 3000\n\n"


def test_heartbeat_frames() -> None:
    assert HEARTBEAT_COMMENT == b": heartbeat\n\n"
    (parsed,) = parse_frames(HEARTBEAT_COMMENT)
    assert parsed == {"comment": "heartbeat"}
    data = heartbeat_event(1_764_446_400.12345)
    assert data == b'event: heartbeat\ndata: {"t":1764446400.123}\n\n'


def test_event_encodes_once_with_epoch_id() -> None:
    event = Event(41, "9f2c4e00", "status", {"qbittorrent": "connected"})
    assert event.id == "9f2c4e00-41"
    assert event.seq == 41
    assert event.data == b'id: 9f2c4e00-41\nevent: status\ndata: {"qbittorrent":"connected"}\n\n'


def test_for_torrent_non_diff_is_the_shared_frame() -> None:
    event = Event(1, "e", "status", {"qbittorrent": "unreachable"})
    assert event.for_torrent(H1) is event.data


def test_for_torrent_filters_a_diff() -> None:
    payload = {
        "changed": {H1: {"progress": 0.5}, H2: {"name": "other"}},
        "added": [H2],
        "completed": [H1],
        "removed": ["dead" * 10],
        "transfer": {"dl_speed": 1, "up_speed": 0, "dl_total": 2, "up_total": 0},
    }
    event = Event(7, "e", "diff", payload)
    (mine,) = parse_frames(event.for_torrent(H1) or b"")
    assert mine["id"] == "e-7"
    assert mine["event"] == "diff"
    assert json.loads(mine["data"]) == {"changed": {H1: {"progress": 0.5}}, "completed": [H1]}
    (theirs,) = parse_frames(event.for_torrent(H2) or b"")
    assert json.loads(theirs["data"]) == {"changed": {H2: {"name": "other"}}, "added": [H2]}


def test_for_torrent_removed_only() -> None:
    event = Event(3, "e", "diff", {"changed": {}, "removed": [H1]})
    (parsed,) = parse_frames(event.for_torrent(H1) or b"")
    assert json.loads(parsed["data"]) == {"changed": {}, "removed": [H1]}


def test_for_torrent_says_nothing_of_other_torrents() -> None:
    event = Event(2, "e", "diff", {"changed": {H2: {"progress": 0.1}}, "transfer": {"dl_speed": 3}})
    assert event.for_torrent(H1) is None
    assert event.for_torrent(H1) is None  # cached as "nothing"


def test_for_torrent_is_cached() -> None:
    event = Event(5, "e", "diff", {"changed": {H1: {"progress": 0.7}, H2: {"progress": 0.2}}})
    first = event.for_torrent(H1)
    assert first is not None
    assert event.for_torrent(H1) is first
    assert event.for_torrent(H2) is not first
    assert event.for_torrent(H2) is event.for_torrent(H2)


def test_the_v2_frame_names_the_instance_first_and_v1_bytes_stay_as_they_were() -> None:
    event = Event(7, "e", "diff", {"changed": {H1: {"progress": 0.5}}}, instance="box")
    assert event.data == Event(7, "e", "diff", {"changed": {H1: {"progress": 0.5}}}).data
    (parsed,) = parse_frames(event.data_v2)
    assert parsed["data"].startswith('{"instance":"box",')
    assert json.loads(parsed["data"]) == {"instance": "box", "changed": {H1: {"progress": 0.5}}}
    assert event.chunk_v2.endswith(event.data_v2 + b"\r\n")


def test_a_server_wide_event_or_one_naming_its_instance_is_the_same_in_v2() -> None:
    server = Event(1, "e", "status", {"qbittorrent": "connected"})
    action = Event(2, "e", "action", {"instance": "home", "action": "stop"}, instance="home")
    assert server.data_v2 is server.data
    assert action.data_v2 is action.data
