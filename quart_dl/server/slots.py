"""Slots for connections starting with Hypercorn: a burst of ordinary requests waits its turn.

Why: each connection handed to Hypercorn gets its handler (h11 state, a task group, tasks)
and its first request's working memory (Quart's request, the file being sent): ~20-50 KB
while in flight. A burst of thousands of browser-like clients, each fetching a file and then
its stream on the same connection, ran them all side by side on one loop: no faster, and the
process kept that high-water mark (49 KB per idle stream at 1,000 such clients, against
6.5 KB on fresh connections; BENCHMARKS.md run 6). Here at most ``HYPERCORN_SLOTS``
connections start at once; the others wait holding only their bytes.

A slot is held until the first request is answered, the connection is lost or taken back, or
``SLOT_HOLD`` seconds have passed, whichever comes first. The time bound matters: a slow
client (a large upload, a request waiting on qBittorrent) must not hold a slot for long, or
a few of them would stall everybody's page loads. So the slots bound a burst of quick
requests, and cost a slow one at most ``SLOT_HOLD`` of one slot.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

#: Connections starting with Hypercorn at once (as ``APP_SLOTS`` for stream requests).
HYPERCORN_SLOTS = 64
#: Longest time one connection holds its slot (seconds).
SLOT_HOLD = 0.25


class Slot:
    """One connection's place: ``release`` gives it back (once; later calls do nothing)."""

    __slots__ = ("_slots", "_timer")

    def __init__(self, slots: Slots) -> None:
        self._slots: Slots | None = slots
        self._timer = asyncio.get_running_loop().call_later(SLOT_HOLD, self.release)

    def release(self) -> None:
        slots, self._slots = self._slots, None
        if slots is not None:
            self._timer.cancel()
            slots.give_back()


class Slots:
    """``HYPERCORN_SLOTS`` places, and the connections waiting for one (callbacks, no tasks)."""

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiting: deque[Callable[[Slot], None]] = deque()

    def take(self, start: Callable[[Slot], None]) -> None:
        """Call ``start(slot)`` now if a place is free, else when one is."""
        if self.free:
            self.free -= 1
            start(Slot(self))
        else:
            self._waiting.append(start)

    def forget(self, start: Callable[[Slot], None]) -> None:
        """A connection waiting for a place is gone."""
        try:
            self._waiting.remove(start)
        except ValueError:
            pass

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def give_back(self) -> None:
        if self._waiting:
            self._waiting.popleft()(Slot(self))
        else:
            self.free += 1
