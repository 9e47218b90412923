"""Draw the integration's brand images from the panel's icon (panel/icon.svg).

HACS validates, and Home Assistant 2026.3+ serves, ``brand/icon.png`` (square, 256 px)
and ``brand/logo.png`` from the integration itself. The design is the panel's: a blue
rounded square with a white download arrow onto a line, drawn here at 4x and scaled down
for smooth edges (Pillow has no SVG renderer). Run from ``integration/`` with a Python
that has Pillow (the ha tox env does): ``../.tox/ha/bin/python scripts/make_brand.py``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

BLUE = "#2563eb"
WHITE = "#ffffff"
OUT = Path(__file__).parents[2] / "custom_components" / "quart_dl" / "brand"
SCALE = 4


def icon(size: int) -> Image.Image:
    """The panel icon (a 32-unit design) at ``size`` pixels."""
    big = size * SCALE
    unit = big / 32
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=8 * unit, fill=BLUE)
    width = round(3 * unit)

    def line(*points: tuple[float, float]) -> None:
        scaled = [(x * unit, y * unit) for x, y in points]
        draw.line(scaled, fill=WHITE, width=width, joint="curve")
        for x, y in scaled:  # round caps
            r = width / 2
            draw.ellipse((x - r, y - r, x + r, y + r), fill=WHITE)

    line((16, 7), (16, 20))
    line((10, 14), (16, 20), (22, 14))
    line((9, 25), (23, 25))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def logo(height: int) -> Image.Image:
    """The icon with the name beside it."""
    mark = icon(height)
    font = ImageFont.load_default(size=round(height * 0.5))
    text = "quart-dl"
    left, top, right, bottom = font.getbbox(text)
    gap = height // 4
    image = Image.new("RGBA", (height + gap + right - left + gap, height), (0, 0, 0, 0))
    image.paste(mark, (0, 0), mark)
    draw = ImageDraw.Draw(image)
    draw.text((height + gap - left, (height - (bottom - top)) / 2 - top), text, font=font, fill=BLUE)
    return image


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    icon(256).save(OUT / "icon.png", optimize=True)
    icon(512).save(OUT / "icon@2x.png", optimize=True)
    logo(256).save(OUT / "logo.png", optimize=True)
