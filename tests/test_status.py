"""quart_dl.status: the status record's transitions (what is news, what stays quiet)."""

from __future__ import annotations

from quart_dl.status import InstanceStatus

DB_OK = {"ok": True, "last_error": None}


def test_a_new_status_is_connecting() -> None:
    status = InstanceStatus(now=100.0)
    assert status.state == "connecting"
    assert status.record["since"] == 100.0
    assert status.record["last_poll"] is None
    assert status.record["database"] == DB_OK


def test_first_good_poll_is_news_and_sets_since() -> None:
    status = InstanceStatus(now=100.0)
    assert status.connected(version="v4.5.2", database=DB_OK, now=101.0) == (True, True)
    assert status.record["qbittorrent"] == "connected"
    assert status.record["since"] == 101.0
    assert status.record["version"] == "v4.5.2"


def test_later_good_polls_only_move_last_poll_quietly() -> None:
    status = InstanceStatus(now=100.0)
    status.connected(version="v4.5.2", database=DB_OK, now=101.0)
    assert status.connected(version="v4.5.2", database=DB_OK, now=102.0) == (False, False)
    assert status.record["last_poll"] == 102.0  # kept current all the same
    assert status.record["since"] == 101.0


def test_a_database_fault_while_connected_is_news_but_not_a_reconnect() -> None:
    status = InstanceStatus(now=100.0)
    status.connected(version="v4.5.2", database=DB_OK, now=101.0)
    failing = {"ok": False, "last_error": "OperationalError"}
    assert status.connected(version="v4.5.2", database=failing, now=102.0) == (True, False)
    assert status.record["since"] == 101.0


def test_failure_is_news_once_and_a_new_message_again() -> None:
    status = InstanceStatus(now=100.0)
    status.connected(version="v4.5.2", database=DB_OK, now=101.0)
    assert status.failed("unreachable", "connection refused", 102.0) is True
    assert status.record["since"] == 102.0
    assert status.failed("unreachable", "connection refused", 103.0) is False
    assert status.record["since"] == 102.0  # still the same outage
    assert status.failed("unreachable", "timed out", 104.0) is True
    assert status.record["since"] == 102.0
    assert status.failed("auth_failed", "rejected", 105.0) is True
    assert status.record["since"] == 105.0


def test_back_after_a_failure_sets_since_again() -> None:
    status = InstanceStatus(now=100.0)
    status.failed("unreachable", "down", 101.0)
    assert status.connected(version="v5.1.0", database=DB_OK, now=110.0) == (True, True)
    assert status.record["since"] == 110.0
    assert status.record["message"] is None
