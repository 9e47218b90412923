"""translations/en.json must be strings.json with Home Assistant's common keys resolved.

Core integrations get en.json built from strings.json by Home Assistant's own tooling; a
custom integration ships en.json itself, and a hand-kept copy drifts. This test rebuilds
it and fails on any difference. Regenerate with
``python -m tests.test_translations`` from ``integration/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import homeassistant
import voluptuous as vol
from homeassistant.helpers.entity import EntityDescription

COMPONENT = Path(__file__).parents[2] / "custom_components" / "quart_dl"
REFERENCE = re.compile(r"\[%key:([a-z0-9_:]+)%\]")


def _lookup(tree: dict[str, Any], dotted: str) -> str:
    node: Any = tree
    for part in dotted.split("::"):
        node = node[part]
    assert isinstance(node, str), dotted
    return node


def resolve_strings() -> dict[str, Any]:
    """strings.json with every ``[%key:common::…%]`` reference replaced by its text."""
    common = json.loads((Path(homeassistant.__file__).parent / "strings.json").read_text("utf-8"))
    own = json.loads((COMPONENT / "strings.json").read_text("utf-8"))

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, str):
            return REFERENCE.sub(lambda m: _lookup(common, m.group(1)), node)
        return node

    return resolve(own)


def test_en_json_matches_strings_json() -> None:
    """The shipped English translation is exactly the resolved strings.json."""
    shipped = json.loads((COMPONENT / "translations" / "en.json").read_text("utf-8"))
    assert shipped == resolve_strings()


def test_every_translation_key_is_resolved() -> None:
    """No unresolved ``[%key:…%]`` reaches a user."""
    assert "[%key:" not in json.dumps(resolve_strings())


def test_flow_errors_and_aborts_have_text() -> None:
    """Every error, abort reason and exception key the code uses has a sentence."""
    strings = resolve_strings()
    flow = (COMPONENT / "config_flow.py").read_text("utf-8")
    errors = set(re.findall(r'\{(?:"base"|CONF_URL): "([a-z_]+)"\}', flow))
    aborts = set(re.findall(r'reason="([a-z_]+)"', flow)) | {
        "already_configured",
        "reauth_successful",
        "reconfigure_successful",
    }
    assert errors >= {"cannot_connect", "invalid_auth", "invalid_url", "not_quart_dl"}
    assert errors <= set(strings["config"]["error"])
    assert aborts <= set(strings["config"]["abort"])
    exceptions: set[str] = set()
    # The modules that raise (the platforms' translation keys are entity names).
    for module in ("__init__.py", "coordinator.py", "services.py", "errors.py"):
        text = (COMPONENT / module).read_text("utf-8")
        exceptions |= set(re.findall(r'translation_key="([a-z_]+)"', text))
    assert {"cannot_connect", "entry_not_found", "invalid_hash"} <= exceptions
    assert exceptions <= set(strings["exceptions"])


def test_every_entity_has_a_name_and_an_icon() -> None:
    """Entity descriptions, strings.json and icons.json agree, on every platform."""
    from custom_components.quart_dl import PLATFORMS
    from custom_components.quart_dl.binary_sensor import BINARY_SENSORS
    from custom_components.quart_dl.button import BUTTONS
    from custom_components.quart_dl.event import DOWNLOAD_EVENT_TYPES, EVENTS
    from custom_components.quart_dl.number import NUMBERS
    from custom_components.quart_dl.sensor import SENSORS, TOTAL_SENSORS
    from custom_components.quart_dl.switch import SWITCHES

    strings = resolve_strings()["entity"]
    icons = json.loads((COMPONENT / "icons.json").read_text("utf-8"))["entity"]
    platforms: dict[str, Sequence[EntityDescription]] = {
        "sensor": (*SENSORS, *TOTAL_SENSORS),
        "binary_sensor": BINARY_SENSORS,
        "switch": SWITCHES,
        "button": BUTTONS,
        "number": NUMBERS,
        "event": EVENTS,
    }
    assert set(platforms) == {str(platform) for platform in PLATFORMS}
    for platform, descriptions in platforms.items():
        keys = {d.translation_key for d in descriptions}
        assert keys == set(strings[platform]), platform
        assert keys == set(icons[platform]), platform
        for key in keys:
            assert strings[platform][key]["name"], (platform, key)
    # Each event type has its name and icon (the entity's state attribute ``event_type``).
    for where in (strings, icons):
        types = where["event"]["downloads"]["state_attributes"]["event_type"]["state"]
        assert set(types) == set(DOWNLOAD_EVENT_TYPES)
        assert all(types.values())


def test_every_service_and_field_has_strings_and_an_icon() -> None:
    """services.yaml, strings.json's ``services`` and icons.json name the same actions,
    and every field of every action has a name and a description."""
    from homeassistant.util.yaml import load_yaml_dict

    from custom_components.quart_dl.services import _SERVICES

    described = load_yaml_dict(str(COMPONENT / "services.yaml"))
    strings = resolve_strings()["services"]
    icons = json.loads((COMPONENT / "icons.json").read_text("utf-8"))["services"]
    registered = {name for name, *_ in _SERVICES}
    assert set(described) == registered == set(strings) == set(icons)
    for service, description in described.items():
        assert strings[service]["name"], service
        assert strings[service]["description"], service
        fields = set(description["fields"])
        assert fields == set(strings[service]["fields"]), service
        for name in fields:
            field = strings[service]["fields"][name]
            assert field["name"], (service, name)
            assert field["description"], (service, name)
        schema = next(schema for name, _, schema, _ in _SERVICES if name == service)
        if isinstance(schema, vol.All):
            # An entry or a device: the fields' schema, then the at-least-one check.
            schema = schema.validators[0]
        schema_fields = {str(key) for key in schema.schema}
        assert fields == schema_fields, service
    selector = resolve_strings()["selector"]["phase"]["options"]
    from custom_components.quart_dl.services import PHASES

    assert set(selector) == set(PHASES)


def test_every_action_error_has_a_sentence_with_its_placeholders() -> None:
    """Each error an action can raise has a translated message whose placeholders are
    all given (a missing one shows as ``{name}`` to the user)."""
    from custom_components.quart_dl.api import (
        QuartDlActionError,
        QuartDlAuthError,
        QuartDlConnectionError,
        QuartDlHostNotAllowedError,
        QuartDlResponseError,
    )
    from custom_components.quart_dl.errors import action_error

    exceptions = resolve_strings()["exceptions"]
    codes = (
        "read_only",
        "actions_disabled",
        "unknown_torrents",
        "invalid_parameter",
        "invalid_body",
        "qbittorrent_refused",
        "qbittorrent_unavailable",
        "too_large",
    )
    errors = [
        *(QuartDlActionError("/p", 400, code, "m", "f", ("h",)) for code in codes),
        QuartDlAuthError("/p"),
        QuartDlHostNotAllowedError("/p", "host"),
        QuartDlConnectionError("/p", "timed out"),
        QuartDlResponseError("/p: HTTP 502"),
    ]
    keys = set()
    for err in errors:
        translated = action_error(err, "http://x")
        key = translated.translation_key
        assert key in exceptions, key
        keys.add(key)
        wanted = set(re.findall(r"\{([a-z_]+)\}", exceptions[key]["message"]))
        assert wanted <= set(translated.translation_placeholders or {}), key
    assert len(keys) >= 10


def test_every_repair_issue_has_a_title_and_a_description_with_its_placeholders() -> None:
    """Both issues have their texts, and use only the placeholders the code gives."""
    from custom_components.quart_dl.issues import TOKEN_REJECTED, UNREACHABLE

    issues = resolve_strings()["issues"]
    assert set(issues) == {TOKEN_REJECTED, UNREACHABLE}
    given = {TOKEN_REJECTED: {"title", "url"}, UNREACHABLE: {"title", "url", "minutes"}}
    for kind, texts in issues.items():
        assert texts["title"], kind
        assert texts["description"], kind
        used = set(re.findall(r"\{([a-z_]+)\}", texts["title"] + texts["description"]))
        assert used <= given[kind], kind


if __name__ == "__main__":
    (COMPONENT / "translations" / "en.json").write_text(
        json.dumps(resolve_strings(), indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
