"""Repair issues: what the user must fix (or know) when a server stays out of reach.

Two issues per entry, in Home Assistant's repairs dashboard: the server refused the token
(besides the re-authentication Home Assistant offers, which is easy to overlook in the
integrations page), and the server has been unreachable for longer than
``UNREACHABLE_ISSUE_AFTER``. Each is deleted by itself once the server answers again,
and both with the entry. Neither is fixable through a flow here: the fix is on the
server, or in the entry's re-authentication or reconfigure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.const import CONF_URL
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry

#: The issues' translation keys (``issues`` of strings.json).
TOKEN_REJECTED = "token_rejected"  # noqa: S105 - a translation key, not a secret
UNREACHABLE = "unreachable"


def issue_id(kind: str, entry_id: str) -> str:
    """One issue of each kind per entry."""
    return f"{kind}_{entry_id}"


@callback
def async_raise(hass: HomeAssistant, entry: ConfigEntry, kind: str, **placeholders: str) -> None:
    """Create (or refresh) an issue of ``kind`` for the entry."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(kind, entry.entry_id),
        is_fixable=False,
        severity=ir.IssueSeverity.ERROR,
        translation_key=kind,
        translation_placeholders={
            "title": entry.title,
            "url": str(entry.data.get(CONF_URL, "")),
            **placeholders,
        },
    )


@callback
def async_clear(hass: HomeAssistant, entry_id: str, *kinds: str) -> None:
    """Delete the entry's issues of ``kinds`` (every kind if none is named)."""
    for kind in kinds or (TOKEN_REJECTED, UNREACHABLE):
        ir.async_delete_issue(hass, DOMAIN, issue_id(kind, entry_id))
