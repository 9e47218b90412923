"""translations/en.json must be strings.json with Home Assistant's common keys resolved.

Core integrations get en.json built from strings.json by Home Assistant's own tooling; a
custom integration ships en.json itself, and a hand-kept copy drifts. This test rebuilds
it and fails on any difference. Regenerate with
``python -m tests.test_translations`` from ``integration/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import homeassistant

COMPONENT = Path(__file__).parents[1] / "custom_components" / "quart_dl"
REFERENCE = re.compile(r"\[%key:([a-z0-9_:]+)%\]")


def _lookup(tree: dict[str, Any], dotted: str) -> str:
    node: Any = tree
    for part in dotted.split("::"):
        node = node[part]
    assert isinstance(node, str), dotted
    return node


def resolve_strings() -> dict[str, Any]:
    """strings.json with every ``[%key:common::…%]`` reference replaced by its text."""
    common = json.loads(
        (Path(homeassistant.__file__).parent / "strings.json").read_text("utf-8")
    )
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
    coordinator = (COMPONENT / "coordinator.py").read_text("utf-8")
    exceptions = set(re.findall(r'translation_key="([a-z_]+)"', coordinator))
    assert exceptions
    assert exceptions <= set(strings["exceptions"])


def test_every_entity_has_a_name_and_an_icon() -> None:
    """Entity descriptions, strings.json and icons.json agree."""
    from custom_components.quart_dl.binary_sensor import BINARY_SENSORS
    from custom_components.quart_dl.sensor import SENSORS

    strings = resolve_strings()["entity"]
    icons = json.loads((COMPONENT / "icons.json").read_text("utf-8"))["entity"]
    for platform, descriptions in (("sensor", SENSORS), ("binary_sensor", BINARY_SENSORS)):
        keys = {d.translation_key for d in descriptions}
        assert keys == set(strings[platform]), platform
        assert keys == set(icons[platform]), platform


if __name__ == "__main__":
    (COMPONENT / "translations" / "en.json").write_text(
        json.dumps(resolve_strings(), indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
