"""The OpenAPI description of the HTTP API (``/openapi.json``) and the query models behind it.

quart-schema builds the description from the routes and validates every query string
against these models before a handler runs. Why it is shaped this way:

- One source of truth: a parameter's type, default and allowed values live in its model, so
  the description cannot drift from what the server accepts (the schemathesis run in
  tests/test_openapi.py holds the two together).
- Our messages, not pydantic's: each field is checked by a ``before`` validator that raises
  the sentence a person should read ("order must be 'asc' or 'desc'"); ``errors.py`` turns
  it into ``{"error": "invalid_parameter", "message": ..., "field": ...}`` with 400.
- Unknown query parameters are ignored (``extra="ignore"``), on every route: a newer client
  (the Home Assistant integration is upgraded on its own) must not break on an older server,
  and ``?token=`` and cache-busters pass through. See docs/protocol.md.
- The documentation pages quart-schema can serve (Swagger UI, ReDoc, Scalar) load their
  scripts from CDNs; the panel runs on a LAN and fetches nothing from the internet, so they
  are off and only the JSON is served.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from quart import Quart
from quart_schema import OpenAPIProvider, QuartSchema

from .. import __version__
from ..record import FIELDS
from ..record import TorrentRecord as TorrentRecord  # documented as it is declared: one source
from ..torrents import HASH_RE, PHASES

#: The paths whose 200 answer is not JSON: their content type in the description.
_NOT_JSON = {
    "/api/events": ("text/event-stream", "An endless Server-Sent Events stream (docs/protocol.md)."),
    "/api/torrents/{torrent_hash}/events": (
        "text/event-stream",
        "An endless Server-Sent Events stream of one torrent (docs/protocol.md).",
    ),
    "/metrics": ("text/plain", "Prometheus text format."),
}

_PHASE_ALTERNATIVES = "|".join(PHASES)
#: ``phase``: comma-separated phases; blanks around them and empty items are allowed.
PHASE_PATTERN = rf"^ *(?:(?:{_PHASE_ALTERNATIVES}) *)?(?:, *(?:(?:{_PHASE_ALTERNATIVES}) *)?)*$"
HASH_PATTERN = r"^(?:[0-9a-fA-F]{40}|[0-9a-fA-F]{64})$"
MAX_MINUTES = 525_600


class _Query(BaseModel):
    """Query parameters: strings in, our own error sentences out, unknown names ignored."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _once(cls, value: Any, info: ValidationInfo) -> Any:
        return _one(value, str(info.field_name))


def _one(value: Any, name: str) -> str:
    """The parameter's text. quart-schema turns a repeated parameter into a list: say so.

    Every field's own ``before`` validator calls this first: pydantic runs a subclass's
    validators before the base class's ``_once``, and ``value.lower()`` on a list was a 500
    (test_regression_repeated_parameter_is_a_400).
    """
    if isinstance(value, list):
        raise ValueError(f"{name} was given more than once")
    return str(value)


INSTANCE_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
_INSTANCE_DESCRIPTION = "A configured qBittorrent instance's id (GET /api/instances); unknown: 404."


class InstanceTorrentsQuery(_Query):
    """``GET /api/instances/<id>/torrents``."""

    phase: str = Field(
        "",
        description=f"Comma-separated phases to keep: {', '.join(PHASES)}. Empty keeps all.",
        json_schema_extra={"pattern": PHASE_PATTERN},
    )
    sort: str = Field(
        "added_at", description="A record field to sort by.", json_schema_extra={"enum": list(FIELDS)}
    )
    order: str = Field("asc", description="Sort order.", json_schema_extra={"enum": ["asc", "desc"]})

    @field_validator("phase", mode="before")
    @classmethod
    def _phase(cls, value: Any) -> str:
        text = _one(value, "phase")
        phases = {p.strip() for p in text.split(",") if p.strip()}
        unknown = sorted(phases - set(PHASES))
        if unknown:
            raise ValueError(f"unknown phase {unknown[0][:40]!r}; expected one of {', '.join(PHASES)}")
        return text

    @field_validator("sort", mode="before")
    @classmethod
    def _sort(cls, value: Any) -> str:
        text = _one(value, "sort")
        if text not in FIELDS:
            raise ValueError(
                f"cannot sort by {text[:40]!r}; expected a record field such as name or progress"
            )
        return text

    @field_validator("order", mode="before")
    @classmethod
    def _order(cls, value: Any) -> str:
        text = _one(value, "order")
        if text not in ("asc", "desc"):
            raise ValueError("order must be 'asc' or 'desc'")
        return text

    def phases(self) -> set[str]:
        """The phases asked for (empty: all)."""
        return {p.strip() for p in self.phase.split(",") if p.strip()}


class TorrentsQuery(InstanceTorrentsQuery):
    """``GET /api/torrents``: every instance's torrents, or one instance's."""

    instance: str | None = Field(None, description=_INSTANCE_DESCRIPTION + " Default: every instance.")


class TorrentQuery(_Query):
    """``GET /api/torrents/<hash>``."""

    instance: str | None = Field(
        None,
        description=_INSTANCE_DESCRIPTION
        + " Default: the primary instance's torrent, else the first instance holding the hash.",
    )


class InstanceQuery(_Query):
    """``GET /api/categories`` and ``GET /api/tags``."""

    instance: str | None = Field(None, description=_INSTANCE_DESCRIPTION + " Default: the primary.")


class InstanceHistoryQuery(_Query):
    """``GET /api/instances/<id>/history``."""

    minutes: float = Field(60.0, gt=0, le=MAX_MINUTES, description="How far back, in minutes.")
    hash: str | None = Field(
        None, description="One torrent's samples instead of the global ones.", pattern=HASH_PATTERN
    )

    @field_validator("minutes", mode="before")
    @classmethod
    def _minutes(cls, value: Any) -> float:
        text = _one(value, "minutes")
        try:
            minutes = float(text)
        except ValueError:
            raise ValueError(f"minutes must be a number, got {text[:40]!r}") from None
        if not (math.isfinite(minutes) and 0 < minutes <= MAX_MINUTES):
            raise ValueError(f"minutes must be between 0 and {MAX_MINUTES}")
        return minutes

    @field_validator("hash", mode="before")
    @classmethod
    def _hash(cls, value: Any) -> str:
        text = _one(value, "hash").lower()
        if not HASH_RE.match(text):
            raise ValueError("the hash must be 40 or 64 hexadecimal characters")
        return text


class HistoryQuery(InstanceHistoryQuery):
    """``GET /api/history``."""

    instance: str | None = Field(None, description=_INSTANCE_DESCRIPTION + " Default: the primary.")


class StreamQuery(_Query):
    """``GET /api/events`` and ``GET /api/torrents/<hash>/events``."""

    heartbeat: str = Field(
        "comment",
        description="'comment' (`: heartbeat`) or 'event' (an `event: heartbeat`, visible to EventSource).",
        json_schema_extra={"enum": ["comment", "event"]},
    )
    lastEventId: str | None = Field(
        None, description="Resume after this event id (the `Last-Event-ID` header wins)."
    )
    v: int = Field(
        1,
        description="Protocol version: 1 (one instance, as before) or 2 (every instance, each event"
        " naming its instance; docs/protocol.md).",
        json_schema_extra={"enum": [1, 2]},
    )
    instance: str | None = Field(
        None, description="Follow this instance only (protocol 1: default the primary, the first configured)."
    )

    @field_validator("heartbeat", mode="before")
    @classmethod
    def _heartbeat(cls, value: Any) -> str:
        text = _one(value, "heartbeat")
        if text not in ("comment", "event"):
            raise ValueError("heartbeat must be 'comment' or 'event'")
        return text

    @field_validator("v", mode="before")
    @classmethod
    def _version(cls, value: Any) -> int:
        text = _one(value, "v")
        if text not in ("1", "2"):
            raise ValueError("v must be 1 or 2")
        return int(text)

    @field_validator("instance", mode="before")
    @classmethod
    def _instance(cls, value: Any) -> str:
        return _one(value, "instance")


# -- answers (documentation only: nothing is validated on the way out) ------------------------
# A torrent is ``record.TorrentRecord``, documented as declared (imported above).


class ErrorBody(BaseModel):
    """An error: a code, a sentence, and the parameter at fault when there is one."""

    error: str
    message: str
    field: str | None = None


class InstanceTorrentRecord(TorrentRecord):
    """A torrent record as REST lists it: with the id of the instance that holds it."""

    instance: str


class TorrentList(BaseModel):
    """The torrents, and the id of the newest event they reflect."""

    torrents: list[InstanceTorrentRecord]
    count: int
    event_id: str


class DatabaseState(BaseModel):
    """Whether the database keeps up."""

    ok: bool
    last_error: str | None


class StatusObject(BaseModel):
    """qBittorrent as the poller sees it, and whether the database keeps up (hub.status)."""

    qbittorrent: str
    message: str | None
    since: float
    version: str | None
    last_poll: float | None
    database: DatabaseState


class Transfer(BaseModel):
    """Global speeds, session totals and the global limits in force (0 = unlimited)."""

    dl_speed: int
    up_speed: int
    dl_total: int
    up_total: int
    alt_speed: bool
    dl_limit: int
    up_limit: int


class PollerState(BaseModel):
    """The poller's interval and errors."""

    interval: float
    errors: int
    last_error: str | None
    last_duration: float | None


class InstanceBrief(BaseModel):
    """One instance in ``/api/status``: its name, status and transfer."""

    name: str
    status: StatusObject
    transfer: Transfer


class Status(BaseModel):
    """The primary instance's poller and the server's state (protocol 1), and every
    instance's status and transfer with their total."""

    status: StatusObject
    transfer: Transfer
    poller: PollerState
    database: DatabaseState
    clients: int
    event_id: str
    epoch: str
    heartbeat: float
    version: str
    protocol: int
    server_id: str
    instances: dict[str, InstanceBrief]
    total_transfer: Transfer


class InstanceSummary(BaseModel):
    """One configured qBittorrent: status, version, torrents by phase, transfer."""

    id: str
    name: str
    status: StatusObject
    version: str | None
    counts: dict[str, int] = Field(description="`torrents` (all), then one count per phase.")
    transfer: Transfer


class Total(BaseModel):
    """Every instance together."""

    torrents: int
    transfer: Transfer


class InstanceList(BaseModel):
    """Every configured qBittorrent, in configured order (the first is the primary)."""

    instances: list[InstanceSummary]
    total: Total
    server_id: str


class InstanceStatusAnswer(BaseModel):
    """One instance's status, transfer, poller and database state."""

    id: str
    name: str
    status: StatusObject
    transfer: Transfer
    poller: PollerState
    database: DatabaseState
    event_id: str


class Sample(BaseModel):
    """One speed sample."""

    t: float
    dl_speed: int
    up_speed: int


class History(BaseModel):
    """Speed samples, oldest first."""

    samples: list[Sample]


class Health(BaseModel):
    """The server answers."""

    ok: bool


class _Provider(OpenAPIProvider):
    """quart-schema's description, with the hash in paths and the non-JSON answers described."""

    def schema(self) -> dict[str, Any]:
        spec: dict[str, Any] = super().schema()
        for operations in spec.get("paths", {}).values():
            for parameter in operations.get("get", {}).get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] == "torrent_hash":
                    parameter["schema"] = {"type": "string", "pattern": HASH_PATTERN}
                if parameter["in"] == "path" and parameter["name"] == "instance_id":
                    parameter["schema"] = {"type": "string", "pattern": INSTANCE_PATTERN}
        for path, (content_type, description) in _NOT_JSON.items():
            operation = spec.get("paths", {}).get(path, {}).get("get")
            if operation is not None:
                operation["responses"]["200"] = {
                    "description": description,
                    "content": {content_type: {"schema": {"type": "string"}}},
                }
        return spec


def install_openapi(app: Quart) -> QuartSchema:
    """Validate query strings and serve ``/openapi.json`` (no documentation UI pages)."""
    return QuartSchema(
        app,
        openapi_path="/openapi.json",
        redoc_ui_path=None,
        scalar_ui_path=None,
        swagger_ui_path=None,
        info={"title": "quart-dl", "version": __version__, "description": "See docs/protocol.md."},
        conversion_preference="pydantic",
        openapi_provider_class=_Provider,
        security_schemes={
            "bearer": {"type": "http", "scheme": "bearer"},
            "token": {"type": "apiKey", "in_": "query", "name": "token"},
        },
        # Only when the server has an access token; {} says "or nothing at all".
        security=[{"bearer": []}, {"token": []}, {}],
    )
