"""quart_dl.hub.log: event ids and replay (the in-memory EventLog)."""

from __future__ import annotations

import pytest

from quart_dl.hub.log import EventLog, MemoryEventLog


def filled(count: int, size: int = 8, epoch: str = "feed0001") -> MemoryEventLog:
    log = MemoryEventLog(size, epoch)
    for i in range(count):
        log.append("diff", {"changed": {}, "n": i})
    return log


def test_it_is_an_event_log() -> None:
    log: EventLog = MemoryEventLog()
    assert log.seq == 0
    assert log.last_id == f"{log.epoch}-0"


def test_ids_count_from_one_under_the_epoch() -> None:
    log = MemoryEventLog(epoch="feed0001")
    first = log.append("diff", {"changed": {}})
    second = log.append("status", {"qbittorrent": "connected"})
    assert (first.id, second.id) == ("feed0001-1", "feed0001-2")
    assert (log.seq, log.last_id) == (2, "feed0001-2")
    assert first.data.startswith(b"id: feed0001-1\nevent: diff\n")


def test_epochs_differ_between_logs() -> None:
    assert MemoryEventLog().epoch != MemoryEventLog().epoch


def test_replay_gives_exactly_the_events_after_the_id() -> None:
    log = filled(5)
    events = log.replay("feed0001-2")
    assert events is not None
    assert [e.seq for e in events] == [3, 4, 5]
    assert log.replay("feed0001-5") == []  # up to date


def test_replay_is_none_once_a_missed_event_is_gone() -> None:
    log = filled(10, size=4)  # keeps 7..10
    assert log.replay("feed0001-6") is not None  # 7.. still there
    assert log.replay("feed0001-5") is None  # 6 is gone: only a snapshot is honest


@pytest.mark.parametrize(
    "event_id",
    [
        None,
        "",
        "feed0002-1",  # another epoch (an earlier process)
        "feed0001-9",  # from the future
        "feed0001-x",
        "feed0001-²",  # isdigit() but not int()
        "feed0001-" + "9" * 19,  # past 64 bits
        "f" * 65,
        "feed0001",
    ],
)
def test_foreign_or_garbled_ids_get_no_replay(event_id: str | None) -> None:
    log = filled(3)
    assert log.parse(event_id) is None
    assert log.replay(event_id) is None


def test_an_event_appended_while_one_is_reserved_waits_behind_it() -> None:
    log = MemoryEventLog(epoch="feed0001")
    diff = log.reserve("diff", {"changed": {}})
    status = log.append("status", {"qbittorrent": "connected"})
    assert (diff.seq, status.seq) == (1, 2)
    assert log.seq == 0
    assert log.take_ready() == []
    log.publish(diff)
    assert [e.seq for e in log.take_ready()] == [1, 2]
    assert (log.seq, log.last_id) == (2, "feed0001-2")
    assert log.take_ready() == []  # each handed out once


def test_actions_are_lifecycle_events() -> None:
    log = MemoryEventLog(epoch="feed0001")
    action = log.append("action", {"action": "pause", "ok": True})
    assert action.lifecycle == {"data": {"action": "pause", "ok": True}}
    assert log.append("status", {}).lifecycle is None
