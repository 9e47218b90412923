"""What HACS and Home Assistant's brand loader read: hacs.json, the manifest, brand images."""

from __future__ import annotations

import json
import struct
from pathlib import Path

COMPONENT = Path(__file__).parents[1] / "custom_components" / "quart_dl"
REPO = Path(__file__).parents[2]


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk (checking it is a PNG at all)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_hacs_json_and_manifest_have_what_hacs_requires() -> None:
    """hacs.json names the integration; the manifest has every key HACS checks."""
    hacs = json.loads((REPO / "hacs.json").read_text("utf-8"))
    assert hacs["name"] == "quart-dl"
    assert hacs["homeassistant"] == "2025.4.0"
    manifest = json.loads((COMPONENT / "manifest.json").read_text("utf-8"))
    for key in ("domain", "documentation", "issue_tracker", "codeowners", "name", "version"):
        assert manifest[key], key
    assert manifest["issue_tracker"].startswith("https://github.com/quart-dl/quart-dl/")
    assert all(owner.startswith("@") for owner in manifest["codeowners"])


def test_brand_images() -> None:
    """icon.png is square 256 px (icon@2x 512 px); logo.png is 256 px high."""
    brand = COMPONENT / "brand"
    assert png_size(brand / "icon.png") == (256, 256)
    assert png_size(brand / "icon@2x.png") == (512, 512)
    width, height = png_size(brand / "logo.png")
    assert height == 256
    assert width >= height
