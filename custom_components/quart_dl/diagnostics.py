"""Diagnostics: enough to debug a stream that misbehaves, nothing that identifies a user.

Redacted: the access token, the server URL (it may hold a public host name), and per
torrent the name, hash, save path, category and tags (what someone downloads is private).
Kept: states, phases, progress and sizes, and the stream's own bookkeeping.
"""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL
from homeassistant.core import HomeAssistant

from . import QuartDlConfigEntry

TO_REDACT_ENTRY = {CONF_ACCESS_TOKEN, CONF_URL}
TO_REDACT_TORRENT = {"hash", "name", "save_path", "category", "tags"}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: QuartDlConfigEntry
) -> dict[str, Any]:
    """Return the entry's configuration, its stream's health and its state."""
    coordinator = entry.runtime_data.coordinator
    state = coordinator.data
    stream = coordinator.stream
    return {
        "entry": {
            "data": async_redact_data(dict(entry.data), TO_REDACT_ENTRY),
            "options": dict(entry.options),
        },
        "coordinator": {
            "last_update_success": coordinator.last_update_success,
            "polling_interval": (
                coordinator.update_interval.total_seconds() if coordinator.update_interval else None
            ),
        },
        "stream": {
            "connected": stream.connected,
            "connected_since": stream.connected_since,
            "connects": stream.connects,
            "failures": stream.failures,
            "events": stream.events,
            "snapshots": stream.snapshots,
            "heartbeats": coordinator.parser.comments,
            "last_event_id": stream.last_event_id,
            "retry_ms": coordinator.parser.retry_ms,
            "retry_delay": stream.retry_delay,
            "last_error": stream.last_error,
        },
        "server": {
            "version": state.version,
            "heartbeat": state.heartbeat,
            "protocol": state.protocol,
            # Instance ids and names are the user's own labels, not private: kept.
            "instances": [
                {
                    "id": instance.id,
                    "name": instance.name,
                    "version": instance.version,
                    "status": instance.status,
                    "transfer": instance.transfer,
                    "torrents": [
                        async_redact_data(record, TO_REDACT_TORRENT) for record in instance.torrents.values()
                    ],
                }
                for instance in state.instances.values()
            ],
        },
    }
