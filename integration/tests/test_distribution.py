"""What HACS and Home Assistant's brand loader read: the layout, hacs.json, the manifest,
brand images.

HACS validates a repository with its own schemas (``custom_components/hacs/utils/validate.py``
in HACS): they are written out here so that a typo'd or unknown key fails in this suite, not
only when someone tries to add the repository.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import voluptuous as vol
from awesomeversion import AwesomeVersion

COMPONENT = Path(__file__).parents[2] / "custom_components" / "quart_dl"
REPO = Path(__file__).parents[2]

#: HACS's schema of hacs.json: ``name`` is required, and any key it does not know is refused.
HACS_JSON = vol.Schema(
    {
        vol.Required("name"): str,
        vol.Optional("content_in_root"): bool,
        vol.Optional("country"): vol.Any(str, [str]),
        vol.Optional("filename"): str,
        vol.Optional("hacs"): str,
        vol.Optional("hide_default_branch"): bool,
        vol.Optional("homeassistant"): str,
        vol.Optional("persistent_directory"): str,
        vol.Optional("render_readme"): bool,
        vol.Optional("zip_release"): bool,
    },
    extra=vol.PREVENT_EXTRA,
)

#: The manifest keys HACS requires of an integration (Home Assistant's own are many more).
HACS_MANIFEST = vol.Schema(
    {
        vol.Required("codeowners"): [vol.Match(r"^@")],
        vol.Required("documentation"): vol.Match(r"^https://"),
        vol.Required("domain"): "quart_dl",
        vol.Required("issue_tracker"): vol.Match(r"^https://github\.com/quart-dl/quart-dl/"),
        vol.Required("name"): str,
        vol.Required("version"): vol.Coerce(AwesomeVersion),
    },
    extra=vol.ALLOW_EXTRA,
)


def test_layout_is_what_hacs_downloads() -> None:
    """HACS takes the one folder under ``custom_components/`` at the repository's root
    (not with ``content_in_root``): there must be exactly ours, and no second copy."""
    folders = [path.name for path in (REPO / "custom_components").iterdir() if path.is_dir()]
    assert folders == ["quart_dl"]
    assert (COMPONENT / "manifest.json").is_file()
    assert not (REPO / "integration" / "custom_components").exists()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (checking it is a PNG at all)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_hacs_json_and_manifest_have_what_hacs_requires() -> None:
    """hacs.json names the integration; the manifest has every key HACS checks."""
    hacs = HACS_JSON(json.loads((REPO / "hacs.json").read_text("utf-8")))
    assert hacs["name"] == "quart-dl"
    assert not hacs.get("content_in_root", False)
    # The oldest Home Assistant the tests run against (requirements-test.txt).
    assert hacs["homeassistant"] == "2025.4.0"
    manifest = HACS_MANIFEST(json.loads((COMPONENT / "manifest.json").read_text("utf-8")))
    assert manifest["codeowners"]


def test_brand_images() -> None:
    """icon.png is square 256 px (icon@2x 512 px); logo.png is 256 px high."""
    brand = COMPONENT / "brand"
    assert png_size(brand / "icon.png") == (256, 256)
    assert png_size(brand / "icon@2x.png") == (512, 512)
    width, height = png_size(brand / "logo.png")
    assert height == 256
    assert width >= height


#: Every rule of Home Assistant's quality scale, Bronze to Platinum (2025.4).
QUALITY_RULES = {
    "action-setup",
    "appropriate-polling",
    "brands",
    "common-modules",
    "config-flow-test-coverage",
    "config-flow",
    "dependency-transparency",
    "docs-actions",
    "docs-high-level-description",
    "docs-installation-instructions",
    "docs-removal-instructions",
    "entity-event-setup",
    "entity-unique-id",
    "has-entity-name",
    "runtime-data",
    "test-before-configure",
    "test-before-setup",
    "unique-config-entry",
    "action-exceptions",
    "config-entry-unloading",
    "docs-configuration-parameters",
    "docs-installation-parameters",
    "entity-unavailable",
    "integration-owner",
    "log-when-unavailable",
    "parallel-updates",
    "reauthentication-flow",
    "test-coverage",
    "devices",
    "diagnostics",
    "discovery-update-info",
    "discovery",
    "docs-data-update",
    "docs-examples",
    "docs-known-limitations",
    "docs-supported-devices",
    "docs-supported-functions",
    "docs-troubleshooting",
    "docs-use-cases",
    "dynamic-devices",
    "entity-category",
    "entity-device-class",
    "entity-disabled-by-default",
    "entity-translations",
    "exception-translations",
    "icon-translations",
    "reconfiguration-flow",
    "repair-issues",
    "stale-devices",
    "async-dependency",
    "inject-websession",
    "strict-typing",
}


def test_quality_scale_names_every_rule_and_explains_each_exemption() -> None:
    """quality_scale.yaml scores every rule; an exempt or todo rule says why."""
    from homeassistant.util.yaml import load_yaml_dict

    rules = load_yaml_dict(str(COMPONENT / "quality_scale.yaml"))["rules"]
    assert set(rules) == QUALITY_RULES
    for name, rule in rules.items():
        status = rule if isinstance(rule, str) else rule["status"]
        assert status in ("done", "exempt", "todo"), name
        if status != "done":
            assert isinstance(rule, dict), name
            assert rule.get("comment"), name
