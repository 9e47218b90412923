"""Actions (services) of the ``quart_dl`` domain: add, remove, start, stop, label, list.

Registered once in ``async_setup``, not per entry (Home Assistant's rule: an action exists
even while its entry is not loaded, and then says so in a translated error rather than
"unknown action"). Each call names a qBittorrent instance's device by ``device_id`` (that
instance), or its config entry by ``entry_id`` as transmission's do (the server's primary
instance, its first); the entry's client does the request. Torrents are named by
info-hash, or ``all``.

``get_torrents`` reads ``GET /api/torrents`` rather than the pushed state: right after an
action the push may still be one qBittorrent refresh behind, and an automation that
stopped a torrent and then lists torrents must see it stopped.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final, cast

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr

from .api import QuartDlClient, QuartDlError
from .const import DOMAIN, LOGGER
from .device import instance_of
from .errors import action_error

SERVICE_ADD_TORRENT: Final = "add_torrent"
SERVICE_REMOVE_TORRENT: Final = "remove_torrent"
SERVICE_START_TORRENT: Final = "start_torrent"
SERVICE_STOP_TORRENT: Final = "stop_torrent"
SERVICE_SET_CATEGORY: Final = "set_category"
SERVICE_SET_TAGS: Final = "set_tags"
SERVICE_GET_TORRENTS: Final = "get_torrents"

ATTR_ENTRY_ID: Final = "entry_id"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_HASHES: Final = "hashes"
ATTR_URLS: Final = "urls"
ATTR_SAVE_PATH: Final = "save_path"
ATTR_CATEGORY: Final = "category"
ATTR_TAGS: Final = "tags"
ATTR_TAG: Final = "tag"
ATTR_STOPPED: Final = "stopped"
ATTR_DELETE_FILES: Final = "delete_files"
ATTR_CREATE: Final = "create"
ATTR_PHASE: Final = "phase"

#: The phases of the protocol (docs/protocol.md, "Torrent record").
PHASES: Final = (
    "downloading",
    "seeding",
    "stalled",
    "paused",
    "queued",
    "checking",
    "error",
    "unknown",
)
#: The word that names every torrent instead of a list of hashes.
ALL: Final = "all"
_HASH = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")

_ENTRY: dict[vol.Marker, Any] = {
    vol.Optional(ATTR_ENTRY_ID): cv.string,
    vol.Optional(ATTR_DEVICE_ID): cv.string,
}


def _targeted(fields: dict[vol.Marker, Any]) -> vol.All:
    """A schema of ``fields`` that names an entry, a device, or both."""
    return vol.All(vol.Schema(fields), cv.has_at_least_one_key(ATTR_ENTRY_ID, ATTR_DEVICE_ID))


_TARGET: dict[vol.Marker, Any] = {
    **_ENTRY,
    vol.Required(ATTR_HASHES): vol.All(cv.ensure_list, [cv.string]),
}
_STRING_LIST = vol.All(cv.ensure_list, [cv.string])

ADD_SCHEMA = _targeted(
    {
        **_ENTRY,
        vol.Required(ATTR_URLS): vol.All(_STRING_LIST, vol.Length(min=1)),
        vol.Optional(ATTR_SAVE_PATH): cv.string,
        vol.Optional(ATTR_CATEGORY): cv.string,
        vol.Optional(ATTR_TAGS): _STRING_LIST,
        vol.Optional(ATTR_STOPPED, default=False): cv.boolean,
    }
)
REMOVE_SCHEMA = _targeted({**_TARGET, vol.Optional(ATTR_DELETE_FILES, default=False): cv.boolean})
TARGET_SCHEMA = _targeted(_TARGET)
CATEGORY_SCHEMA = _targeted(
    {
        **_TARGET,
        vol.Required(ATTR_CATEGORY): vol.Any(cv.string, None),
        vol.Optional(ATTR_CREATE, default=True): cv.boolean,
    }
)
TAGS_SCHEMA = _targeted({**_TARGET, vol.Required(ATTR_TAGS): vol.Any(_STRING_LIST, None)})
GET_SCHEMA = _targeted(
    {
        **_ENTRY,
        vol.Optional(ATTR_PHASE): vol.All(cv.ensure_list, [vol.In(PHASES)]),
        vol.Optional(ATTR_CATEGORY): cv.string,
        vol.Optional(ATTR_TAG): cv.string,
    }
)


def _client(hass: HomeAssistant, call: ServiceCall) -> tuple[QuartDlClient, str | None]:
    """The client of the loaded quart-dl entry the call names, and the ``instance`` to
    send: the device's instance, or the primary's for an entry (or the server's device).

    ``None`` as the instance for a server of protocol 1 (one instance, no such field).
    """
    entry_id: str | None = call.data.get(ATTR_ENTRY_ID)
    instance: str | None = None
    device: dr.DeviceEntry | None = None
    if device_id := call.data.get(ATTR_DEVICE_ID):
        device = dr.async_get(hass).async_get(device_id)
        ours = [
            found.entry_id
            for candidate in (device.config_entries if device else ())
            if (found := hass.config_entries.async_get_entry(candidate)) is not None
            and found.domain == DOMAIN
        ]
        if device is None or not ours or (entry_id is not None and entry_id not in ours):
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="device_not_found",
                translation_placeholders={"device_id": device_id},
            )
        entry_id = ours[0]
        instance = instance_of(entry_id, device)
    assert entry_id is not None  # the schema wants an entry or a device
    entry = hass.config_entries.async_get_entry(entry_id)
    if entry is None or entry.domain != DOMAIN:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_found",
            translation_placeholders={"entry_id": entry_id},
        )
    if entry.state is not ConfigEntryState.LOADED:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="entry_not_loaded",
            translation_placeholders={"title": entry.title},
        )
    client: QuartDlClient = entry.runtime_data.client
    coordinator = entry.runtime_data.coordinator
    state = coordinator.data
    if instance is None:
        instance = state.primary.id
    elif instance not in state.instances:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="instance_gone",
            translation_placeholders={
                "name": (device.name_by_user or device.name or instance) if device else instance
            },
        )
    param: str | None = coordinator.instance_param(instance)
    return client, param


def _hashes(call: ServiceCall) -> list[str] | str:
    """The call's torrents: ``"all"``, or info-hashes checked here for a translated error."""
    given: list[str] = call.data[ATTR_HASHES]
    if [value.strip().lower() for value in given] == [ALL]:
        return ALL
    bad = [value for value in given if not _HASH.fullmatch(value.strip())]
    if bad or not given:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_hash",
            translation_placeholders={"value": ", ".join(bad) or "[]"},
        )
    return [value.strip().lower() for value in given]


async def _run[T](client: QuartDlClient, request: Awaitable[T]) -> T:
    """Await one request, turning a failure into a translated error."""
    try:
        return await request
    except QuartDlError as err:
        raise action_error(err, client.base_url) from err


def _timestamp(value: Any) -> str | None:
    """Unix seconds as an ISO 8601 UTC time (what templates parse with ``as_datetime``)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC).isoformat()
    return None


def torrent_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of one record that automations use, under stable names."""
    return {
        "name": record.get("name"),
        "hash": record.get("hash"),
        "instance": record.get("instance"),
        "progress": record.get("progress"),
        "state": record.get("state"),
        "phase": record.get("phase"),
        "complete": record.get("complete"),
        "eta": record.get("eta"),
        "ratio": record.get("ratio"),
        "size": record.get("size"),
        "downloaded": record.get("downloaded"),
        "amount_left": record.get("amount_left"),
        "dl_speed": record.get("dl_speed"),
        "up_speed": record.get("up_speed"),
        "save_path": record.get("save_path"),
        "category": record.get("category"),
        "tags": list(record.get("tags") or []),
        "added": _timestamp(record.get("added_at")),
        "completed": _timestamp(record.get("completed_at")),
    }


def _matches(record: dict[str, Any], call: ServiceCall) -> bool:
    """Whether a record passes the call's phase, category and tag filters."""
    phases: list[str] | None = call.data.get(ATTR_PHASE)
    if phases and record.get("phase") not in phases:
        return False
    category: str | None = call.data.get(ATTR_CATEGORY)
    if category is not None and record.get("category") != category:
        return False
    tag: str | None = call.data.get(ATTR_TAG)
    return tag is None or tag in (record.get("tags") or [])


async def _add_torrent(hass: HomeAssistant, call: ServiceCall) -> None:
    client, instance = _client(hass, call)
    await _run(
        client,
        client.add_torrents(
            call.data[ATTR_URLS],
            save_path=call.data.get(ATTR_SAVE_PATH),
            category=call.data.get(ATTR_CATEGORY),
            tags=call.data.get(ATTR_TAGS),
            stopped=call.data[ATTR_STOPPED],
            instance=instance,
        ),
    )


async def _remove_torrent(hass: HomeAssistant, call: ServiceCall) -> None:
    client, instance = _client(hass, call)
    await _run(
        client,
        client.torrent_action(
            "delete", _hashes(call), instance=instance, delete_files=call.data[ATTR_DELETE_FILES]
        ),
    )


async def _start_torrent(hass: HomeAssistant, call: ServiceCall) -> None:
    client, instance = _client(hass, call)
    await _run(client, client.torrent_action("resume", _hashes(call), instance=instance))


async def _stop_torrent(hass: HomeAssistant, call: ServiceCall) -> None:
    client, instance = _client(hass, call)
    await _run(client, client.torrent_action("pause", _hashes(call), instance=instance))


async def _set_category(hass: HomeAssistant, call: ServiceCall) -> None:
    client, instance = _client(hass, call)
    await _run(
        client,
        client.torrent_action(
            "set_category",
            _hashes(call),
            instance=instance,
            category=call.data[ATTR_CATEGORY] or "",
            create=call.data[ATTR_CREATE],
        ),
    )


async def _set_tags(hass: HomeAssistant, call: ServiceCall) -> None:
    """Make the torrents' tags exactly the given ones (none: remove them all).

    The server has add and remove verbs only. Removing every other tag qBittorrent knows
    (``GET /api/tags``, asked of qBittorrent) rather than the tags our view says the
    torrents hold: right after another action that view may be one refresh behind
    (found by test_set_category_and_set_tags: a tag just added was not removed).
    Removing a tag a torrent does not have is a no-op in qBittorrent.
    """
    client, instance = _client(hass, call)
    hashes = _hashes(call)
    wanted = [tag.strip() for tag in call.data[ATTR_TAGS] or [] if tag.strip()]
    known = await _run(client, client.tags(instance))
    unwanted = sorted(set(known) - set(wanted))
    if unwanted:
        await _run(
            client,
            client.torrent_action("remove_tags", hashes, instance=instance, tags=unwanted),
        )
    if wanted:
        await _run(client, client.torrent_action("add_tags", hashes, instance=instance, tags=wanted))


async def _get_torrents(hass: HomeAssistant, call: ServiceCall) -> ServiceResponse:
    client, instance = _client(hass, call)
    answer = await _run(client, client.torrents(instance))
    torrents = [
        torrent_summary(record)
        for record in answer["torrents"]
        if isinstance(record, dict) and _matches(record, call)
    ]
    return cast(ServiceResponse, {"torrents": torrents, "count": len(torrents)})


type _Handler = Callable[[HomeAssistant, ServiceCall], Awaitable[ServiceResponse | None]]

_SERVICES: tuple[tuple[str, _Handler, vol.Schema | vol.All, SupportsResponse], ...] = (
    (SERVICE_ADD_TORRENT, _add_torrent, ADD_SCHEMA, SupportsResponse.NONE),
    (SERVICE_REMOVE_TORRENT, _remove_torrent, REMOVE_SCHEMA, SupportsResponse.NONE),
    (SERVICE_START_TORRENT, _start_torrent, TARGET_SCHEMA, SupportsResponse.NONE),
    (SERVICE_STOP_TORRENT, _stop_torrent, TARGET_SCHEMA, SupportsResponse.NONE),
    (SERVICE_SET_CATEGORY, _set_category, CATEGORY_SCHEMA, SupportsResponse.NONE),
    (SERVICE_SET_TAGS, _set_tags, TAGS_SCHEMA, SupportsResponse.NONE),
    (SERVICE_GET_TORRENTS, _get_torrents, GET_SCHEMA, SupportsResponse.ONLY),
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the domain's actions (once, whatever the number of entries)."""
    for name, handler, schema, supports in _SERVICES:

        async def _call(call: ServiceCall, handler: _Handler = handler) -> ServiceResponse:
            LOGGER.debug(
                "Action %s.%s for entry %s device %s",
                DOMAIN,
                call.service,
                call.data.get(ATTR_ENTRY_ID),
                call.data.get(ATTR_DEVICE_ID),
            )
            return await handler(hass, call)

        hass.services.async_register(DOMAIN, name, _call, schema=schema, supports_response=supports)
