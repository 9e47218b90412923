"""The running service's parts, reachable from request handlers through the app."""

from __future__ import annotations

from dataclasses import dataclass

from quart import Quart, current_app

from ..hub import Hub
from ..metrics import Metrics
from ..qbittorrent.instance import DEFAULT_ID, Instance
from ..settings import Settings


@dataclass
class Runtime:
    """What ``create_app`` wires together; one per app."""

    settings: Settings
    hub: Hub
    instances: dict[str, Instance]
    metrics: Metrics

    @property
    def default(self) -> Instance:
        """The instance the flat ``qbt_*`` settings describe (the only one, for now)."""
        return self.instances[DEFAULT_ID]


def runtime(app: Quart | None = None) -> Runtime:
    """The runtime of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    rt = target.extensions["quart_dl"]
    assert isinstance(rt, Runtime)
    return rt
