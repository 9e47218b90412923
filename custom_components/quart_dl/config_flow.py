"""Config flow: add a quart-dl server by URL; options for the sidebar panel.

A server is identified by the ``server_id`` of its ``/api/status`` (stable across its
restarts: its event log's database id), and by its normalized base URL when it sends none
(older servers). So adding the same server twice is refused, under any address; a
reconfigure may move an entry to another address of the same server, and refuses an
address where another server answers (``wrong_server``: as WLED checks a device's MAC), or
one that another entry already uses. Every step that takes a URL or a token proves it by
calling ``/api/status`` first.

A server without a token answers only some host names (IP addresses, ``localhost``, dotless
and ``.local`` names, its ``allowed_hosts``). Its refusal of the name in the URL is its own
error (``host_not_allowed``, naming the host and the setting), not ``invalid_auth``: the
token is not what is wrong, and a user told so would hunt for a token that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlow,
)
from homeassistant.const import CONF_ACCESS_TOKEN, CONF_URL
from homeassistant.core import callback
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    IconSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from yarl import URL

from .api import (
    QuartDlAuthError,
    QuartDlClient,
    QuartDlConnectionError,
    QuartDlError,
    QuartDlHostNotAllowedError,
    QuartDlRateLimitedError,
    normalize_url,
)
from .const import (
    CONF_PANEL_ICON,
    CONF_PANEL_TITLE,
    CONF_SHOW_PANEL,
    CONF_SPEED_INTERVAL,
    DEFAULT_PANEL_ICON,
    DEFAULT_PANEL_TITLE,
    DEFAULT_SHOW_PANEL,
    DEFAULT_SPEED_INTERVAL,
    DOMAIN,
    LOGGER,
    PROTOCOL_VERSION,
)

SERVER_SCHEMA = vol.Schema(
    {
        vol.Required(CONF_URL): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
        vol.Optional(CONF_ACCESS_TOKEN): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD)),
    }
)
TOKEN_SCHEMA = vol.Schema(
    {vol.Optional(CONF_ACCESS_TOKEN): TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))}
)


def entry_title(base_url: str) -> str:
    """A readable title: ``quart-dl (host:port)``, plus a path prefix if there is one."""
    url = URL(base_url)
    where = f"{url.host}:{url.port}" if url.port else str(url.host)
    if url.path not in ("", "/"):
        where += url.path
    return f"quart-dl ({where})"


def entry_unique_id(base_url: str, server_id: str | None) -> str:
    """An entry's unique id: the server's id, or its URL for a server that sends none."""
    return server_id or base_url


def keyed_on_server_id(entry: ConfigEntry) -> bool:
    """Whether the entry's unique id is a server id (else it is its URL: an older server,
    or an entry made before server ids)."""
    return entry.unique_id is not None and entry.unique_id != entry.data.get(CONF_URL)


class QuartDlConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add, reconfigure and re-authenticate quart-dl servers."""

    VERSION = 1
    MINOR_VERSION = 1

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> QuartDlOptionsFlow:
        """The panel options."""
        return QuartDlOptionsFlow()

    async def _async_validate(
        self, raw_url: str, token: str | None
    ) -> tuple[str | None, dict[str, str], dict[str, str]]:
        """Check a URL and token against the server.

        Returns the normalized URL, the form errors and the placeholders those errors'
        texts use (the refused host name for ``host_not_allowed``). The server's id, if it
        sends one, is left in ``self._server_id``.
        """
        self._server_id: str | None = None
        try:
            base_url = normalize_url(raw_url)
        except ValueError:
            return None, {CONF_URL: "invalid_url"}, {}
        client = QuartDlClient(async_get_clientsession(self.hass), base_url, token)
        try:
            status = await client.status()
        except QuartDlHostNotAllowedError as err:
            return base_url, {"base": "host_not_allowed"}, {"host": err.host}
        except QuartDlAuthError:
            return base_url, {"base": "invalid_auth"}, {}
        except QuartDlRateLimitedError:
            return base_url, {"base": "too_many_attempts"}, {}
        except QuartDlConnectionError:
            return base_url, {"base": "cannot_connect"}, {}
        except QuartDlError:
            return base_url, {"base": "not_quart_dl"}, {}
        except Exception:  # noqa: BLE001 - a config flow must never crash the UI
            LOGGER.exception("Unexpected error checking %s", base_url)
            return base_url, {"base": "unknown"}, {}
        if status.get("protocol") != PROTOCOL_VERSION:
            return base_url, {"base": "unsupported_protocol"}, {}
        server_id = status.get("server_id")
        self._server_id = server_id if isinstance(server_id, str) and server_id else None
        return base_url, {}, {}

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the server's URL (and token), prove it, create the entry."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            token = user_input.get(CONF_ACCESS_TOKEN) or None
            base_url, errors, placeholders = await self._async_validate(user_input[CONF_URL], token)
            if base_url is not None:
                # An entry at this address, whatever its unique id (one made before
                # server ids is keyed on its URL).
                self._async_abort_entries_match({CONF_URL: base_url})
            if not errors and base_url is not None:
                await self.async_set_unique_id(
                    entry_unique_id(base_url, self._server_id), raise_on_progress=False
                )
                self._abort_if_unique_id_configured()
                data = {CONF_URL: base_url}
                if token:
                    data[CONF_ACCESS_TOKEN] = token
                return self.async_create_entry(title=entry_title(base_url), data=data)
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(SERVER_SCHEMA, user_input),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Point an existing entry at another URL or token, keeping its entities."""
        entry = self._get_reconfigure_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            token = user_input.get(CONF_ACCESS_TOKEN) or None
            base_url, errors, placeholders = await self._async_validate(user_input[CONF_URL], token)
            if not errors and base_url is not None:
                unique_id = self._reconfigured_unique_id(entry, base_url)
                if any(
                    other.entry_id != entry.entry_id
                    and (other.unique_id == unique_id or other.data.get(CONF_URL) == base_url)
                    for other in self._async_current_entries(include_ignore=False)
                ):
                    return self.async_abort(reason="already_configured")
                await self.async_set_unique_id(unique_id, raise_on_progress=False)
                if keyed_on_server_id(entry):
                    # Another server at the address (another id than the entry's): refused,
                    # or the entities would show another server's torrents as theirs.
                    self._abort_if_unique_id_mismatch(
                        reason="wrong_server", description_placeholders={"url": base_url}
                    )
                data = {CONF_URL: base_url}
                if token:
                    data[CONF_ACCESS_TOKEN] = token
                return self.async_update_reload_and_abort(
                    entry, unique_id=unique_id, title=entry_title(base_url), data=data
                )
        suggested = user_input or {CONF_URL: entry.data[CONF_URL]}
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(SERVER_SCHEMA, suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    def _reconfigured_unique_id(self, entry: ConfigEntry, base_url: str) -> str:
        """The unique id a reconfigured entry must have: the server's id (which must be
        the entry's own, if the entry knows its server's id), else the new URL.

        An entry keyed on a URL does not know its server: whatever answers at the new
        address is taken (its id, if it sends one, from now on). A server that sends no
        id cannot be told apart: an entry keyed on an id keeps that id.
        """
        if self._server_id is not None:
            return self._server_id
        if keyed_on_server_id(entry):
            assert entry.unique_id is not None
            return entry.unique_id
        return base_url

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The server refused our token: ask for a new one."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Take a new token and prove it against the same URL."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            token = user_input.get(CONF_ACCESS_TOKEN) or None
            _, errors, placeholders = await self._async_validate(entry.data[CONF_URL], token)
            if not errors:
                data = {CONF_URL: entry.data[CONF_URL]}
                if token:
                    data[CONF_ACCESS_TOKEN] = token
                return self.async_update_reload_and_abort(entry, data=data)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=TOKEN_SCHEMA,
            description_placeholders={
                "name": entry.title,
                "url": entry.data[CONF_URL],
                **placeholders,
            },
            errors=errors,
        )


class QuartDlOptionsFlow(OptionsFlow):
    """The sidebar panel (shown, title, icon) and how often the speed sensors write."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show and take the panel options."""
        if user_input is not None:
            data = dict(user_input)
            # The number selector hands back a float; the sensors count whole seconds.
            data[CONF_SPEED_INTERVAL] = int(data.get(CONF_SPEED_INTERVAL, DEFAULT_SPEED_INTERVAL))
            return self.async_create_entry(data=data)
        options = self.config_entry.options
        schema = vol.Schema(
            {
                vol.Required(
                    CONF_SHOW_PANEL,
                    default=options.get(CONF_SHOW_PANEL, DEFAULT_SHOW_PANEL),
                ): bool,
                vol.Required(
                    CONF_PANEL_TITLE,
                    default=options.get(CONF_PANEL_TITLE, DEFAULT_PANEL_TITLE),
                ): TextSelector(),
                vol.Required(
                    CONF_PANEL_ICON,
                    default=options.get(CONF_PANEL_ICON, DEFAULT_PANEL_ICON),
                ): IconSelector(),
                vol.Required(
                    CONF_SPEED_INTERVAL,
                    default=options.get(CONF_SPEED_INTERVAL, DEFAULT_SPEED_INTERVAL),
                ): NumberSelector(
                    NumberSelectorConfig(
                        min=0,
                        max=3600,
                        step=1,
                        mode=NumberSelectorMode.BOX,
                        unit_of_measurement="s",
                    )
                ),
            }
        )
        return self.async_show_form(step_id="init", data_schema=schema)
