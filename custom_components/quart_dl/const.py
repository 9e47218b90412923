"""Constants for the quart-dl integration.

Timing constants live here (not inline) so that the tests can shorten them with a patch
and so that every number that shapes the reconnect behaviour is in one place.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Final

DOMAIN: Final = "quart_dl"
LOGGER = logging.getLogger(__package__)

#: Protocol version this integration speaks (``v`` in a snapshot, ``protocol`` in
#: ``/api/status``). A server speaking another version is refused by the config flow.
PROTOCOL_VERSION: Final = 1
#: The stream protocol asked of a server that follows several instances (it has
#: ``/api/instances``): ``GET /api/events?v=2``, every instance in one stream.
STREAM_PROTOCOL_VERSION: Final = 2

# Options (the sidebar panel).
CONF_SHOW_PANEL: Final = "show_panel"
CONF_PANEL_TITLE: Final = "panel_title"
CONF_PANEL_ICON: Final = "panel_icon"
DEFAULT_SHOW_PANEL: Final = True
DEFAULT_PANEL_TITLE: Final = "Downloads"
DEFAULT_PANEL_ICON: Final = "mdi:download"

#: Option: the speed sensors write a state at most every this many seconds (0: at every
#: change). The server pushes speeds about twice a second while a download runs, which
#: the recorder would keep as ~85,000 rows a day per sensor; counts and status are not
#: throttled.
CONF_SPEED_INTERVAL: Final = "speed_interval"
DEFAULT_SPEED_INTERVAL: Final = 10

#: The id and display name of the qBittorrent instance a server without ``instances`` in its
#: ``/api/status`` follows (the server's flat ``qbt_*`` settings, issue #13's contract).
DEFAULT_INSTANCE_ID: Final = "default"
DEFAULT_INSTANCE_NAME: Final = "qBittorrent"

#: Path of the web panel on the quart-dl server, relative to its base URL.
PANEL_PATH: Final = "/"

# Bus events for automations.
EVENT_DOWNLOAD_ADDED: Final = f"{DOMAIN}_download_added"
EVENT_DOWNLOAD_COMPLETED: Final = f"{DOMAIN}_download_completed"
EVENT_DOWNLOAD_REMOVED: Final = f"{DOMAIN}_download_removed"

#: Where each entry keeps the id of the last event it applied (Home Assistant's ``Store``).
STORAGE_VERSION: Final = 1
STORAGE_KEY: Final = f"{DOMAIN}.stream"
#: How long after the last event its id is written (any pending write is flushed when
#: Home Assistant stops); an event that fired a bus event is written at once.
STORAGE_DELAY: Final = 5.0
#: A download event that happened this long (seconds) before it is fired is marked late.
LATE_AFTER: Final = 10.0

#: How often the REST API is polled while the event stream is down. While the stream is
#: up nothing is polled: the stream is the single source of truth. A poll that finds the
#: server back after a failed one reconnects the stream at once (the stream's own backoff
#: grows to a minute in a long outage), so this is also how soon the stream is back.
FALLBACK_POLL_INTERVAL: Final = timedelta(seconds=5)

#: Seconds the server must have been unreachable (every poll failing, no stream) before
#: a repair issue says so; a restart or a short network fault passes without one.
UNREACHABLE_ISSUE_AFTER: Final = 300.0

#: Timeout of one REST request (config flow, fallback polling).
REQUEST_TIMEOUT: Final = 10.0

#: Heartbeat assumed until the server tells its own (``/api/status`` or a snapshot).
DEFAULT_HEARTBEAT: Final = 15.0

#: Extra seconds on top of twice the heartbeat before a silent stream counts as dead.
#: The protocol says a client may call a stream stale after twice the heartbeat; the
#: margin absorbs a busy event loop on either side.
STREAM_READ_MARGIN: Final = 5.0

#: Reconnect delays: the server's ``retry:`` hint (milliseconds) doubled per failed
#: attempt, up to the maximum, plus up to this much random jitter (a fraction) so that
#: many Home Assistant instances behind one server do not reconnect in lockstep.
DEFAULT_RETRY_MS: Final = 3000
MIN_RETRY_DELAY: Final = 0.1
MAX_RETRY_DELAY: Final = 60.0
RETRY_JITTER: Final = 0.2

#: Upper bound for one SSE line. Snapshots of big libraries are large (hundreds of KiB),
#: but a line that never ends would otherwise grow the buffer without bound.
MAX_LINE_BYTES: Final = 64 * 1024 * 1024
