"""Waiting on a condition with a deadline: the one loop every test, demo and bench shares.

Tests must wait for what they expect, never sleep and hope. Both helpers poll a predicate
until it returns something truthy and hand that value back (so a wait can also fetch), and
fail with :class:`TimeoutError` naming what was awaited. The predicate is always tried at
least once, also with ``timeout=0``. An exception from the predicate counts as "not yet"
(a server that is still starting refuses connections) and is quoted in the timeout message.

:func:`wait_for` blocks the calling thread; :func:`wait_for_async` sleeps on the event loop,
for a predicate over state that the loop itself changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_for", "wait_for_async"]

T = TypeVar("T")


class _Deadline:
    """The bookkeeping both helpers share: the clock, the last error, the failure message."""

    def __init__(self, timeout: float, what: str) -> None:
        self.timeout = timeout
        self.what = what
        self.at = time.monotonic() + timeout
        self.last_error: BaseException | None = None

    def attempt(self, predicate: Callable[[], T | None]) -> T | None:
        try:
            return predicate()
        except Exception as exc:  # noqa: BLE001 - kept for the failure message
            self.last_error = exc
            return None

    def pause(self, interval: float) -> float:
        """How long to sleep before the next try; raises :class:`TimeoutError` when past."""
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            suffix = f" (last error: {self.last_error!r})" if self.last_error else ""
            raise TimeoutError(f"timed out after {self.timeout:g} s waiting for {self.what}{suffix}")
        return min(interval, remaining)


def wait_for(
    predicate: Callable[[], T | None], timeout: float, what: str = "condition", interval: float = 0.05
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that."""
    deadline = _Deadline(timeout, what)
    while True:
        value = deadline.attempt(predicate)
        if value:
            return value
        time.sleep(deadline.pause(interval))


async def wait_for_async(
    predicate: Callable[[], T | None], timeout: float = 3.0, what: str = "condition", interval: float = 0.005
) -> T:
    """:func:`wait_for` on the event loop: ``await asyncio.sleep`` between tries."""
    deadline = _Deadline(timeout, what)
    while True:
        value = deadline.attempt(predicate)
        if value:
            return value
        await asyncio.sleep(deadline.pause(interval))
