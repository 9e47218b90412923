"""One qBittorrent's status record and its transitions, in one place (a model module, like
``torrents.py``: the poller drives it, the hub publishes it, the REST API reads it).

The status is part of the protocol (``status`` events, the snapshot's ``status``, REST
``/api/status``): ``qbittorrent`` is ``connecting``, ``connected``, ``unreachable`` or
``auth_failed``; ``since`` is when it last changed; ``message`` says why it is not
connected; ``version`` is qBittorrent's; ``last_poll`` the time of the last good poll;
``database`` the store's health (docs/protocol.md).

``last_poll`` changes on every poll: it is kept current for REST answers and snapshots but is
not worth an event, so ``update`` reports only changes to the other fields.
"""

from __future__ import annotations

import time
from typing import Any

from .torrents import Record

#: Status fields whose change is announced with a ``status`` event.
_QUIET = "last_poll"


class InstanceStatus:
    """The status record of one instance; the poller drives it, the hub publishes it."""

    def __init__(self, now: float | None = None) -> None:
        self.record: Record = {
            "qbittorrent": "connecting",
            "message": None,
            "since": time.time() if now is None else now,
            "version": None,
            "last_poll": None,
            "database": {"ok": True, "last_error": None},
        }

    @property
    def state(self) -> str:
        """``connecting``, ``connected``, ``unreachable`` or ``auth_failed``."""
        return str(self.record["qbittorrent"])

    def connected(self, *, version: str | None, database: dict[str, Any], now: float) -> tuple[bool, bool]:
        """A good poll. Returns (visible change, newly connected).

        "Connected" only once data came back: a login that works while sync fails must not
        make the panel blink connected/unreachable on every retry.
        """
        newly = self.state != "connected"
        visible = self._update(
            qbittorrent="connected",
            message=None,
            last_poll=now,
            version=version,
            # The database's health rides on the status object (an added field, protocol 1):
            # a status event tells the stream when it fails and when it is caught up again.
            database=database,
            **({"since": now} if newly else {}),
        )
        return visible, newly

    def failed(self, kind: str, message: str, now: float) -> bool:
        """A failed poll (``unreachable`` or ``auth_failed``); True when that is news."""
        return self._update(
            qbittorrent=kind,
            message=message,
            **({"since": now} if self.state != kind else {}),
        )

    def _update(self, **fields: Any) -> bool:
        before = {k: v for k, v in self.record.items() if k != _QUIET}
        self.record.update(fields)
        return any(before.get(k) != v for k, v in fields.items() if k != _QUIET)
