"""``quart_dl.lab.wait``: the one wait-with-a-deadline helper, blocking and on the event loop."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from quart_dl.lab.wait import wait_for, wait_for_async


def test_wait_for_returns_the_first_truthy_value() -> None:
    answers: list[str | None] = [None, "", "", "ready", "later"]
    assert wait_for(lambda: answers.pop(0), 5, "an answer", interval=0.001) == "ready"
    assert answers == ["later"]


def test_wait_until_times_out_with_message() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="the impossible"):
        wait_for(lambda: False, 0.2, what="the impossible")
    assert 0.15 < time.monotonic() - started < 2


def test_wait_for_tries_once_even_with_no_time_left() -> None:
    calls: list[float] = []

    def ready() -> bool:
        calls.append(time.monotonic())
        return True

    assert wait_for(ready, 0, "a ready condition") is True
    assert len(calls) == 1
    with pytest.raises(TimeoutError):
        wait_for(lambda: calls.append(0.0), 0, "nothing")
    assert len(calls) == 2


def test_an_error_in_the_predicate_is_not_yet_and_quoted_at_the_deadline() -> None:
    # A server that is still starting refuses connections: that is "not yet", not a failure.
    refusals = [2]

    def probe() -> str:
        if refusals[0] > 0:
            refusals[0] -= 1
            raise ConnectionRefusedError("not up")
        return "up"

    assert wait_for(probe, 5, "the server", interval=0.001) == "up"

    def down() -> str:
        raise ConnectionRefusedError("still down")

    quoted = re.escape("the server (last error: ConnectionRefusedError('still down'))")
    with pytest.raises(TimeoutError, match=quoted):
        wait_for(down, 0.05, "the server")


async def test_wait_for_async_lets_the_loop_run_and_returns_the_value() -> None:
    box: list[str] = []

    async def later() -> None:
        await asyncio.sleep(0.05)
        box.append("done")

    task = asyncio.create_task(later())
    # A blocking wait here would never see the task run.
    assert await wait_for_async(lambda: box, 5, "the task") == ["done"]
    await task


async def test_wait_for_async_times_out_naming_what() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=re.escape("timed out after 0.1 s waiting for the impossible")):
        await wait_for_async(lambda: False, 0.1, "the impossible")
    assert 0.08 < time.monotonic() - started < 2
