"""quart_dl.instance_settings: one instance's settings, its display name, URL comparison."""

from __future__ import annotations

import subprocess
import sys

import pytest

from quart_dl.instance_settings import DEFAULT_ID, ID_RE, InstanceSettings, same_url_key
from quart_dl.secret import Secret


def config(**values: object) -> InstanceSettings:
    base: dict[str, object] = {
        "id": "home",
        "url": "http://127.0.0.1:8080",
        "username": "admin",
        "password": Secret("pw-not-shown"),
        "poll_interval": 1.0,
        "idle_poll_interval": 30.0,
    }
    base.update(values)
    return InstanceSettings(**base)  # type: ignore[arg-type]


def test_the_name_defaults_to_the_id() -> None:
    assert config().name == "home"
    assert config(name="Home").name == "Home"


def test_the_password_is_not_in_the_repr() -> None:
    assert "pw-not-shown" not in repr(config())


@pytest.mark.parametrize("good", ["default", "a", "home-2", "vpn_1", "b0", "x" * 32])
def test_url_safe_ids(good: str) -> None:
    assert ID_RE.match(good)


@pytest.mark.parametrize("bad", ["", "Home", "-a", "_a", "0", "1seedbox", "a b", "a/b", "é", "x" * 33, "a\n"])
def test_ids_that_are_not_url_safe(bad: str) -> None:
    assert not ID_RE.match(bad)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://QBT.lan:8080/", "http://qbt.lan:8080"),
        ("http://qbt.lan", "http://qbt.lan:80"),
        ("https://qbt.lan/", "https://qbt.lan:443"),
        ("http://[::1]:8080", "http://[::1]:8080/"),
    ],
)
def test_the_same_url(one: str, other: str) -> None:
    assert same_url_key(one) == same_url_key(other)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://qbt.lan:8080", "http://qbt.lan:8081"),
        ("http://qbt.lan", "https://qbt.lan"),
        ("http://qbt.lan/a", "http://qbt.lan/b"),
    ],
)
def test_different_urls(one: str, other: str) -> None:
    assert same_url_key(one) != same_url_key(other)


def test_default_id() -> None:
    assert DEFAULT_ID == "default"


def test_the_settings_modules_do_not_load_the_qbittorrent_client() -> None:
    # Why the type lives outside quart_dl.qbittorrent: reading settings must stay light.
    code = (
        "import sys, quart_dl.settings, quart_dl.instance_settings;"
        "print(sorted(m for m in sys.modules if m.startswith(('quart_dl.qbittorrent', 'qbittorrentapi'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
