"""Hypercorn slots: a burst of new connections starts with Hypercorn a few at a time."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from quart_dl.lab.wait import wait_for_async
from quart_dl.server import slots as slots_module
from quart_dl.server.slots import Slot, Slots


async def test_places_are_taken_then_waited_for_in_order() -> None:
    slots = Slots(2)
    started: list[tuple[str, Slot]] = []

    def starter(name: str) -> Callable[[Slot], None]:
        return lambda slot: started.append((name, slot))

    for name in "abcd":
        slots.take(starter(name))
    assert [name for name, _ in started] == ["a", "b"]
    assert slots.waiting == 2
    started[0][1].release()
    started[0][1].release()  # a second release gives nothing back twice
    assert [name for name, _ in started] == ["a", "b", "c"]
    assert slots.free == 0
    for _, slot in list(started):
        slot.release()
    assert [name for name, _ in started] == ["a", "b", "c", "d"]
    started[3][1].release()
    assert slots.free == 2
    assert slots.waiting == 0


async def test_a_connection_gone_while_waiting_is_forgotten() -> None:
    slots = Slots(1)
    started: list[Slot] = []
    slots.take(started.append)

    def never(slot: Slot) -> None:
        raise AssertionError("a forgotten connection was started")

    slots.take(never)
    slots.forget(never)
    slots.forget(never)  # twice: nothing
    started[0].release()
    assert slots.free == 1


async def test_a_slow_request_holds_its_place_for_slot_hold_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slots_module, "SLOT_HOLD", 0.05)
    slots = Slots(1)
    started: list[Slot] = []
    slots.take(started.append)  # never released by its owner
    slots.take(started.append)
    assert len(started) == 1
    await wait_for_async(lambda: len(started) == 2, 2, "the held place to be given back", interval=0.01)
