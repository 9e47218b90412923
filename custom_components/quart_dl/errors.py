"""Turn the client's errors into Home Assistant's translated errors, for actions.

An action (a service call, a switch, a button, a number) fails in front of a user, so its
error must be a sentence in the user's language, never a Python or aiohttp text. Every
error is raised with a translation key of ``strings.json``'s ``exceptions``; the server's
own sentence (qBittorrent's reason for a refusal) goes into a placeholder.
"""

from __future__ import annotations

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .api import (
    QuartDlActionError,
    QuartDlAuthError,
    QuartDlConnectionError,
    QuartDlError,
    QuartDlHostNotAllowedError,
)
from .const import DOMAIN

#: Server error codes that mean the caller asked for something wrong (its input), not that
#: something failed: Home Assistant shows these as validation errors, without a traceback.
_VALIDATION_CODES = frozenset({"invalid_parameter", "invalid_body", "unknown_torrents"})


def action_error(err: QuartDlError, url: str) -> HomeAssistantError:
    """The translated error for a failed action against the server at ``url``."""
    if isinstance(err, QuartDlActionError):
        return _refusal(err, url)
    if isinstance(err, QuartDlHostNotAllowedError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="host_not_allowed",
            translation_placeholders={"url": url, "host": err.host},
        )
    if isinstance(err, QuartDlAuthError):
        return HomeAssistantError(translation_domain=DOMAIN, translation_key="invalid_auth")
    if isinstance(err, QuartDlConnectionError):
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"url": url, "reason": err.reason},
        )
    return HomeAssistantError(
        translation_domain=DOMAIN,
        translation_key="bad_response",
        translation_placeholders={"url": url, "reason": str(err)},
    )


def _refusal(err: QuartDlActionError, url: str) -> HomeAssistantError:
    """The server answered the action with one of its JSON errors."""
    placeholders = {"url": url, "message": err.message, "code": err.code}
    if err.code in ("read_only", "actions_disabled"):
        key = err.code
    elif err.code == "unknown_torrents":
        key = "unknown_torrents"
        placeholders["hashes"] = ", ".join(err.hashes) or "?"
    elif err.code in ("invalid_parameter", "invalid_body"):
        key = "invalid_parameter"
        placeholders["field"] = err.field or "?"
    elif err.code == "qbittorrent_refused":
        key = "qbittorrent_refused"
    elif err.code == "qbittorrent_unavailable":
        key = "qbittorrent_unavailable"
    else:
        key = "action_failed"
    cls = ServiceValidationError if err.code in _VALIDATION_CODES else HomeAssistantError
    return cls(
        translation_domain=DOMAIN,
        translation_key=key,
        translation_placeholders=placeholders,
    )
