"""The running service's parts, reachable from request handlers through the app."""

from __future__ import annotations

from dataclasses import dataclass

from quart import Quart, current_app

from ..hub import Hub
from ..metrics import Metrics
from ..qbittorrent.instance import Instance
from ..settings import Settings
from .errors import UnknownInstance


@dataclass
class Runtime:
    """What ``create_app`` wires together; one per app."""

    settings: Settings
    hub: Hub
    #: Every followed qBittorrent by id, in configured order (``settings.instances``).
    instances: dict[str, Instance]
    metrics: Metrics

    @property
    def primary(self) -> Instance:
        """The first configured instance: what protocol-1 routes without ``instance`` mean."""
        return next(iter(self.instances.values()))

    def instance(self, instance_id: str | None) -> Instance:
        """The instance a request names (``None``: the primary); ``UnknownInstance`` (a 404
        naming it) when no instance has that id."""
        if instance_id is None:
            return self.primary
        found = self.instances.get(instance_id)
        if found is None:
            raise UnknownInstance(instance_id)
        return found

    @property
    def default(self) -> Instance:
        """An alias of ``primary`` (its name from when there was one instance, ``default``)."""
        return self.primary


def runtime(app: Quart | None = None) -> Runtime:
    """The runtime of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    rt = target.extensions["quart_dl"]
    assert isinstance(rt, Runtime)
    return rt
