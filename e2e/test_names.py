"""Torrent-supplied strings cannot rearrange the panel's own text, and a huge name cannot push
the detail view off the screen.

Names, categories, tags and save paths come from whoever made the torrent. Unicode's
directional controls reorder text: an unclosed U+202E (right-to-left override) in a name
used to reverse the rest of the tab title ("… – quart-dl"), and right-to-left words next to
each other in a composed line ("category · tag") are read as one run and swap places. The
panel isolates every such string: a ``<bdi>`` in HTML, FSI … PDI in plain text
(``document.title``, ``title`` attributes), with unbalanced controls dropped
(``format.bidiSafe``).

What the text looks like is checked where it is laid out: Chromium places every character,
and the test reads the boxes (``Range.getBoundingClientRect``), so "reversed" means what a
reader would see, not a guess about code points. The strings come from a real torrent in
the real leecher (renamed with ``torrents_rename``, given a category, tags and a moved save
path), through a real quart-dl server. The state word comes from qBittorrent's own fixed
vocabulary, so only its isolation (a ``<bdi>``, FSI … PDI in its tooltip) is checked.
"""

from __future__ import annotations

import itertools
import secrets
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from panel_driver import KiB, MiB, wait_live
from playwright.sync_api import Locator, Page, expect

from quart_dl.lab.server_process import ServerProcess
from quart_dl.lab.transfer import TransferPair
from quart_dl.lab.wait import wait_for

FSI, PDI = "\u2068", "\u2069"
OPENERS = {
    "\u202a": "embed",
    "\u202b": "embed",
    "\u202d": "embed",
    "\u202e": "embed",
    "\u2066": "isolate",
    "\u2067": "isolate",
    "\u2068": "isolate",
}
PARAGRAPH_SEPARATORS = "\n\r\x1c\x1d\x1e\x85\u2029"
HEBREW = "\u05e9\u05dc\u05d5\u05dd"  # shalom
ARABIC = "\u0633\u0644\u0627\u0645"  # salam

# One name per kind of trouble (every explicit directional control, the marks, a paragraph
# separator, right-to-left letters), each next to text of its own.
HOSTILE_NAMES: dict[str, str] = {
    "unclosed RLO (U+202E)": "clip\u202egpj.exe",
    "RLO first": "\u202eabc def",
    "unclosed LRO (U+202D)": f"{HEBREW}\u202dabc {HEBREW}",
    "unclosed RLE (U+202B)": "abc\u202b def",
    "unclosed LRE (U+202A)": f"{HEBREW}\u202a abc",
    "stray PDF (U+202C)": "abc\u202c\u202c def",
    "unclosed LRI (U+2066)": f"{HEBREW} \u2066abc",
    "unclosed RLI (U+2067)": "abc \u2067def",
    "unclosed FSI (U+2068)": f"abc \u2068{HEBREW}",
    "stray PDI (U+2069) then RLO": "abc\u2069\u202e def",
    "stray PDIs (U+2069)": "\u2069\u2069abc\u2069",
    "RLM (U+200F)": "abc\u200f 2",
    "ALM (U+061C)": "abc\u061c 3",
    "RLM first (U+200F)": "\u200fabc",
    "right-to-left letters": f"{HEBREW} {ARABIC} 12",
    "paragraph separator then RLO": "abc\u2029\u202e def\u202c",
    "balanced override": "abc \u202edef\u202c ghi",
}

# Where every character of a string lands when laid out as one left-to-right line, the way a
# tab strip shows a title: [left, right] per UTF-16 code unit, null for zero-width ones.
LAYOUT_JS = """(text) => {
  const el = document.createElement("div");
  el.dir = "ltr";
  el.style.cssText = "position:absolute;left:0;top:0;white-space:pre;font:16px sans-serif";
  el.textContent = text;
  document.body.append(el);
  const node = el.firstChild;
  const range = document.createRange();
  const boxes = [];
  for (let i = 0; i < text.length; i += 1) {
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    const r = range.getBoundingClientRect();
    boxes.push(r.width > 0 ? [r.left, r.right] : null);
  }
  el.remove();
  return boxes;
}"""

# An element's pieces in DOM order with their boxes: each character of our own text, and
# each <bdi> (a torrent-supplied string) as one box. With `plain`, measured on a copy whose
# <bdi>s are plain <span>s (no isolation), laid out in the same place.
PIECES_JS = """(el, plain) => {
  if (plain) {
    const copy = el.cloneNode(true);
    for (const b of copy.querySelectorAll("bdi")) {
      const span = document.createElement("span");
      span.textContent = b.textContent;
      b.replaceWith(span);
    }
    el.after(copy);
    try {
      return measure(copy);
    } finally {
      copy.remove();
    }
  }
  return measure(el);

  function measure(el) {
  const out = [];
  const range = document.createRange();
  for (const child of el.childNodes) {
    if (child.nodeType === Node.TEXT_NODE) {
      for (let i = 0; i < child.data.length; i += 1) {
        range.setStart(child, i);
        range.setEnd(child, i + 1);
        const r = range.getBoundingClientRect();
        if (r.width > 0) out.push({ kind: "ours", text: child.data[i], left: r.left, right: r.right });
      }
    } else if (child instanceof Element) {
      const r = child.getBoundingClientRect();
      out.push({ kind: child.localName, text: child.textContent, left: r.left, right: r.right });
    }
  }
  return out;
  }
}"""


def visible(text: str) -> str:
    """``text`` without format characters and paragraph separators: what a reader sees."""
    return "".join(" " if c in PARAGRAPH_SEPARATORS else c for c in text if unicodedata.category(c) != "Cf")


def balanced(text: str) -> bool:
    """True when every directional control in ``text`` closes what it opened (UAX #9 rules
    X6a and X7), so an isolate around ``text`` ends where ``text`` ends."""
    stack: list[str] = []
    for c in text:
        if c in OPENERS:
            stack.append(OPENERS[c])
        elif c == "\u202c":
            if not stack or stack[-1] != "embed":
                return False
            stack.pop()
        elif c == PDI:
            if "isolate" not in stack:
                return False
            while stack.pop() != "isolate":
                pass
        elif c in PARAGRAPH_SEPARATORS:
            return False
    return not stack


def assert_isolated(text: str, what: str) -> str:
    """``text`` is FSI, a balanced string, PDI; returns the string inside."""
    assert text.startswith(FSI), f"{what} is not isolated: {text!r}"
    assert text.endswith(PDI), f"{what} is not isolated: {text!r}"
    inner = text[1:-1]
    assert balanced(inner), f"{what} leaks a directional control: {text!r}"
    return inner


def layout(page: Page, text: str) -> list[list[float] | None]:
    return list(page.evaluate(LAYOUT_JS, text))


def suffix_reads_in_order(page: Page, text: str, suffix: str) -> bool:
    """True when ``suffix`` (our text at the end of ``text``) is shown left to right, each
    character right of the one before and all of it right of everything before it."""
    assert text.endswith(suffix)
    boxes = layout(page, text)
    cut = len(text) - len(suffix)
    ours = [b for b in boxes[cut:] if b is not None]
    theirs = [b for b in boxes[:cut] if b is not None]
    in_order = all(a[0] < b[0] for a, b in itertools.pairwise(ours))
    after = not theirs or min(b[0] for b in ours) >= max(b[1] for b in theirs) - 0.5
    return in_order and after


def pieces(page: Page, selector: str, plain: bool = False) -> list[dict[str, Any]]:
    """The pieces of the element at ``selector`` (see PIECES_JS), in DOM order."""
    found: list[dict[str, Any]] = page.locator(selector).evaluate(PIECES_JS, plain)
    assert found, f"nothing shown in {selector}"
    return found


def in_order(found: list[dict[str, Any]]) -> bool:
    """True when the pieces are laid out left to right in DOM order."""
    lefts = [p["left"] for p in found]
    return lefts == sorted(lefts)


def pieces_in_order(page: Page, selector: str) -> list[dict[str, Any]]:
    """The pieces of the element at ``selector``, asserted to be laid out in DOM order."""
    found = pieces(page, selector)
    assert in_order(found), f"{selector} is shown out of order: {found}"
    return found


def shows(locator: Locator, text: str) -> bool:
    """True when the element's text reads as ``text`` (format characters aside)."""
    return visible(locator.text_content() or "") == visible(text)


def assert_on_first_screen(page: Page, locator: Locator) -> None:
    """The element is shown whole without scrolling (at the top of the page)."""
    box = locator.bounding_box()
    assert box is not None, "not shown"
    assert page.evaluate("() => window.scrollY") == 0
    height = page.evaluate("() => innerHeight")
    assert box["y"] + box["height"] <= height, f"below the first screen ({height} px): {box}"


def wait_title(page: Page, name: str) -> str:
    """Wait until the tab title shows ``name`` (as a reader sees it); returns the title."""
    want = visible(name)

    def shown() -> str | None:
        title = str(page.evaluate("() => document.title"))
        return title if visible(title) == f"{want} – quart-dl" else None

    return wait_for(shown, 10, f"the tab title to show {name!r}")


@pytest.fixture
def leecher_labels(pair: TransferPair) -> Iterator[tuple[str, list[str]]]:
    """A category and tags of our own in the leecher, removed again afterwards (the session
    keeps one leecher, so the next test would find them)."""
    # Digits only: no left-to-right letter breaks up the right-to-left run they would form.
    token = f"{secrets.randbelow(10_000):04d}"
    category = f"{HEBREW} {token}"
    tags = [f"{ARABIC}{token}", f"\u202e{token}{HEBREW}", f"{HEBREW}{token}"]
    pair.leecher_client.torrents_create_category(name=category)
    yield category, tags
    pair.leecher_client.torrents_remove_categories(categories=category)
    pair.leecher_client.torrents_delete_tags(tags=tags)


def test_isolate_keeps_every_kind_of_directional_control_inside_the_name(
    page: Page, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server()
    page.goto(server.url)
    wait_live(page)
    page.evaluate("async () => { window.__fmt = await import(new URL('format.js', document.baseURI)); }")

    # The measurement sees a leak: the name as is reverses the title's own words after it.
    raw = HOSTILE_NAMES["unclosed RLO (U+202E)"]
    assert not suffix_reads_in_order(page, f"{raw} – quart-dl", " – quart-dl")

    for what, name in HOSTILE_NAMES.items():
        isolated = page.evaluate("(n) => window.__fmt.isolate(n)", name)
        inner = assert_isolated(isolated, what)
        assert visible(inner) == visible(name), (what, inner)
        assert page.evaluate("(n) => window.__fmt.bidiSafe(n)", name) == inner, what
        for suffix in (" – quart-dl", " (2 of 3) done"):
            assert suffix_reads_in_order(page, isolated + suffix, suffix), (
                f"{what}: {name!r} reorders the text after it: {isolated + suffix!r}"
            )
    # Ordinary names pass through untouched.
    for name in ("ubuntu-24.04.iso", f"{HEBREW} {ARABIC}", "emoji 🎉 and \u00e9"):
        assert page.evaluate("(n) => window.__fmt.bidiSafe(n)", name) == name


def test_regression_unclosed_rlo_in_a_torrent_name_does_not_reverse_the_tab_title(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess]
) -> None:
    server = make_server()
    # The classic spoof, "clip<RLO>gpj.exe". As the torrent's file name it never reaches
    # qBittorrent's list (libtorrent drops directional controls from file paths), but a
    # torrent's name is whatever it was renamed to.
    first = HOSTILE_NAMES["unclosed RLO (U+202E)"]
    torrent_hash = pair.add_transfer("names.bin", size=1 * MiB, rate=4 * KiB)
    pair.leecher_client.torrents_rename(torrent_hash=torrent_hash, new_torrent_name=first)
    page.goto(server.url)
    wait_live(page)
    row = page.locator(f'[data-testid=torrent-row][data-hash="{torrent_hash}"]')
    name = row.get_by_test_id("torrent-name")
    expect(name).to_be_visible(timeout=10_000)
    wait_for(lambda: shows(name, first), 10, "the row to show the renamed torrent")
    assert name.locator("bdi").count() == 1, "the row's name is not isolated"
    assert_isolated(name.get_attribute("title") or "", "the row name's tooltip")
    state_tip = row.get_by_test_id("torrent-state").get_attribute("title") or ""
    assert state_tip.startswith("qBittorrent state: "), state_tip
    assert_isolated(state_tip.removeprefix("qBittorrent state: "), "the state's tooltip")

    name.click()
    detail_name = page.get_by_test_id("detail-name")
    for what, hostile in HOSTILE_NAMES.items():
        pair.leecher_client.torrents_rename(torrent_hash=torrent_hash, new_torrent_name=hostile)
        title = wait_title(page, hostile)
        assert suffix_reads_in_order(page, title, " – quart-dl"), f"{what}: reversed title {title!r}"
        assert_isolated(title.removesuffix(" – quart-dl"), f"{what}: the tab title's name")
        assert shows(detail_name, hostile), (what, detail_name.text_content())
        shown = detail_name.locator("bdi").text_content() or ""
        assert balanced(shown), f"{what}: the detail title leaks a control: {shown!r}"
        # A short name is not clamped: nothing to unfold.
        expect(page.get_by_test_id("detail-name-toggle")).to_be_hidden()
        state_dd = page.get_by_test_id("field-state")
        assert state_dd.locator("bdi").count() == 1, "the state word is not isolated"

    # The completion notice names the torrent, isolated, in its text and its tooltip.
    page.get_by_test_id("back").click()
    wait_live(page)
    pair.set_rate(torrent_hash, 0)
    toast = page.get_by_test_id("toast")
    expect(toast).to_be_visible(timeout=30_000)
    last = list(HOSTILE_NAMES.values())[-1]
    assert shows(toast, f"Finished: {last}"), toast.text_content()
    assert toast.locator("bdi").count() == 1
    assert_isolated(toast.get_attribute("title") or "", "the notice's tooltip")
    pieces_in_order(page, "[data-testid=toast]")


def test_right_to_left_category_and_tags_keep_their_order_in_row_and_detail_view(
    page: Page,
    pair: TransferPair,
    make_server: Callable[..., ServerProcess],
    leecher_labels: tuple[str, list[str]],
    artifacts: Path,
) -> None:
    category, tags = leecher_labels
    server = make_server()
    torrent_hash = pair.add_transfer("labels.bin", size=1 * MiB, rate=4 * KiB)
    client = pair.leecher_client
    client.torrents_set_category(category=category, torrent_hashes=torrent_hash)
    client.torrents_add_tags(tags=tags, torrent_hashes=torrent_hash)
    save_path = pair.leecher.downloads / f"{HEBREW}\u202e {ARABIC}"
    client.torrents_set_location(location=str(save_path), torrent_hashes=torrent_hash)
    client.torrents_rename(torrent_hash=torrent_hash, new_torrent_name=f"{ARABIC} {HEBREW}")

    page.goto(server.url)
    wait_live(page)
    meta = f'[data-testid=torrent-row][data-hash="{torrent_hash}"] [data-testid=torrent-meta]'
    wait_for(lambda: page.locator(meta).locator("bdi").count() == 1 + len(tags), 15, "category and tags")
    shown = pieces_in_order(page, meta)
    assert next(p["text"] for p in shown if p["kind"] == "bdi") == category
    # The same words without isolation are reordered: the check above can fail.
    assert not in_order(pieces(page, meta, plain=True))
    page.screenshot(path=artifacts / "dashboard-right-to-left-labels.png")

    page.goto(server.url + f"#/torrent/{torrent_hash}")
    wait_live(page)
    tags_dd = page.get_by_test_id("field-tags")
    expect(tags_dd.locator("bdi")).to_have_count(len(tags), timeout=10_000)
    pieces_in_order(page, "[data-testid=field-tags]")
    assert not in_order(pieces(page, "[data-testid=field-tags]", plain=True))
    for field, want in (("category", category), ("save_path", str(save_path))):
        dd = page.get_by_test_id(f"field-{field}")
        expect(dd.locator("bdi")).to_have_count(1)
        assert shows(dd, want), (field, dd.text_content())
        assert balanced(dd.text_content() or "")
    title = wait_title(page, f"{ARABIC} {HEBREW}")
    assert suffix_reads_in_order(page, title, " – quart-dl"), title


def test_regression_10000_character_name_leaves_the_progress_bar_on_the_first_screen(
    page: Page, pair: TransferPair, make_server: Callable[..., ServerProcess], artifacts: Path
) -> None:
    server = make_server()
    torrent_hash = pair.add_transfer("long.bin", size=1 * MiB, rate=4 * KiB)
    long_name = "x" * 9000 + ("word " * 200)[:999] + "!"  # 9,000 without a break, then words
    assert len(long_name) == 10_000
    pair.leecher_client.torrents_rename(torrent_hash=torrent_hash, new_torrent_name=long_name)
    page.goto(server.url)
    wait_live(page)

    # The table: the name wraps inside its cell (two lines at most), nothing scrolls sideways.
    row = page.locator(f'[data-testid=torrent-row][data-hash="{torrent_hash}"]')
    expect(row.get_by_test_id("torrent-name")).to_have_text(long_name, timeout=15_000)
    box = row.bounding_box()
    assert box is not None
    assert box["height"] < 120, box
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    assert row.get_by_test_id("torrent-name").get_attribute("title") == FSI + long_name + PDI
    page.screenshot(path=artifacts / "dashboard-long-name.png")

    row.get_by_test_id("torrent-name").click()
    detail_name = page.get_by_test_id("detail-name")
    expect(detail_name).to_have_text(long_name, timeout=10_000)
    bar = page.get_by_test_id("detail-progress")
    expect(bar).to_be_visible()
    assert_on_first_screen(page, bar)
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    page.screenshot(path=artifacts / "detail-long-name.png")

    # The full name, from the keyboard: Tab from the back link reaches the toggle.
    toggle = page.get_by_test_id("detail-name-toggle")
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    page.get_by_test_id("back").focus()
    page.keyboard.press("Tab")
    expect(toggle).to_be_focused()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(toggle).to_have_text("Show less")
    assert detail_name.evaluate("(el) => getComputedStyle(el).webkitLineClamp") == "none"
    # Unfolded, the name scrolls in a box of its own, from the keyboard too: Shift+Tab goes
    # back to it, End scrolls to its last word, which is then inside the box.
    page.keyboard.press("Shift+Tab")
    expect(detail_name).to_be_focused()
    page.keyboard.press("End")
    last_shown = """(el) => {
      const text = el.querySelector("bdi").firstChild;
      const range = document.createRange();
      range.setStart(text, text.length - 1);
      range.setEnd(text, text.length);
      const r = range.getBoundingClientRect();
      const box = el.getBoundingClientRect();
      return r.height > 0 && r.top >= box.top && r.bottom <= box.bottom + 1;
    }"""
    wait_for(lambda: detail_name.evaluate(last_shown), 5, "the name's end to scroll into view")
    assert_on_first_screen(page, bar)
    page.screenshot(path=artifacts / "detail-long-name-expanded.png")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    assert detail_name.evaluate("(el) => el.scrollTop") == 0, "folded, the name does not start at its start"
    assert_on_first_screen(page, bar)

    # The width of a phone, or of Home Assistant's sidebar panel on one.
    page.set_viewport_size({"width": 390, "height": 700})
    expect(toggle).to_be_visible()
    assert_on_first_screen(page, bar)
    assert page.evaluate("() => document.documentElement.scrollWidth <= innerWidth")
    page.screenshot(path=artifacts / "detail-long-name-phone.png")
