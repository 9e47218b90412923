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


if __name__ == "__main__":
    (COMPONENT / "translations" / "en.json").write_text(
        json.dumps(resolve_strings(), indent=2, ensure_ascii=False) + "\n", "utf-8"
    )
