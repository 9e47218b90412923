"""The sidebar panel: an iframe pointing at the quart-dl server's own web panel.

The iframe is loaded by the user's browser, not by Home Assistant, so its URL must be one
the browser can reach; and an ``http://`` panel inside an ``https://`` Home Assistant is
blocked as mixed content (the README explains both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlencode

from homeassistant.components import frontend
from homeassistant.core import HomeAssistant, callback

from .const import (
    CONF_PANEL_ICON,
    CONF_PANEL_TITLE,
    CONF_SHOW_PANEL,
    DEFAULT_PANEL_ICON,
    DEFAULT_PANEL_TITLE,
    DEFAULT_SHOW_PANEL,
    PANEL_PATH,
)

if TYPE_CHECKING:
    from . import QuartDlConfigEntry


def panel_url_path(entry: QuartDlConfigEntry) -> str:
    """Sidebar URL path of the entry's panel (``/quart-dl-<entry id>``).

    Derived from the entry id, not the server URL: it stays the same across a
    reconfigure, so a bookmark of the panel keeps working, and two servers never clash.
    """
    return f"quart-dl-{entry.entry_id.lower()}"


def panel_target(base_url: str, token: str | None = None) -> str:
    """URL of the server's web panel, the iframe's ``src``.

    With an access token the token rides in the address (``?token=``): the frame is often
    a third-party context where the server's session cookie is never sent, so the server
    accepts the token from a framed page's address and the panel passes it on to its own
    requests. The price: every Home Assistant user who sees the panel can read the token.
    """
    url = f"{base_url.rstrip('/')}{PANEL_PATH}"
    if token:
        url += "?" + urlencode({"token": token})
    return url


@callback
def async_register_panel(
    hass: HomeAssistant, entry: QuartDlConfigEntry, base_url: str, token: str | None
) -> bool:
    """Add the entry's panel to the sidebar if the options ask for it.

    Returns whether a panel was registered (and so must be removed on unload).
    """
    options = entry.options
    if not options.get(CONF_SHOW_PANEL, DEFAULT_SHOW_PANEL):
        return False
    frontend.async_register_built_in_panel(
        hass,
        "iframe",
        sidebar_title=options.get(CONF_PANEL_TITLE) or DEFAULT_PANEL_TITLE,
        sidebar_icon=options.get(CONF_PANEL_ICON) or DEFAULT_PANEL_ICON,
        frontend_url_path=panel_url_path(entry),
        config={"url": panel_target(base_url, token)},
        require_admin=False,
        # A reload re-registers; never fail on a panel a crashed unload left behind.
        update=True,
    )
    return True


@callback
def async_remove_panel(hass: HomeAssistant, entry: QuartDlConfigEntry) -> None:
    """Take the entry's panel out of the sidebar."""
    frontend.async_remove_panel(hass, panel_url_path(entry), warn_if_unknown=False)
