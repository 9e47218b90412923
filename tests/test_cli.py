"""The ``quart-dl`` command: exit codes, one-line errors, no tracebacks, no passwords."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from quart_dl import __version__
from quart_dl.cli import EXIT_FAILED, EXIT_USAGE, main
from quart_dl.qbittorrent.client import AuthFailed
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.qbittorrent.instance import InstanceSettings

PASSWORD = "hunter2-s3cret"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No QUART_DL_* variable from the developer's shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("QUART_DL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_line(text: str) -> str:
    assert "Traceback" not in text
    lines = text.splitlines()
    assert len(lines) == 1, f"expected one line, got {text!r}"
    return lines[0]


# -- usage errors: exit 2 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        [],
        ["frobnicate"],
        ["serve", "--nope"],
        ["check", "--heartbeat"],
        ["demo", "--minutes", "soon"],
    ],
)
def test_bad_command_line_exits_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err).startswith("quart-dl: error: ")


@pytest.mark.parametrize(
    ("argv", "setting"),
    [
        (["serve", "--heartbeat", "0"], "heartbeat"),
        (["serve", "--heartbeat", "-3"], "heartbeat"),
        (["check", "--qbt-url", "ftp://nas"], "qbt_url"),
        (["serve", "--bind", "127.0.0.1:99999"], "bind"),
        (["serve", "--queue-size", "many"], "queue_size"),
        (["serve", "--log-level", "chatty"], "log_level"),
    ],
)
def test_bad_setting_exits_2_naming_it(
    argv: list[str], setting: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    _, err = capsys.readouterr()
    assert one_line(err).startswith(f"quart-dl: error: {setting}: ")


def test_bad_setting_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("QUART_DL_POLL_INTERVAL", "fast")
    assert main(["check"]) == EXIT_USAGE
    assert one_line(capsys.readouterr().err).startswith("quart-dl: error: poll_interval: ")


def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "quart-dl.toml"
    config.write_text("heartbeat = 10\ncolour = 'blue'\n", encoding="utf-8")
    assert main(["serve", "--config", str(config)]) == EXIT_USAGE
    assert "unknown setting 'colour'" in one_line(capsys.readouterr().err)


def test_password_and_password_file_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pw_file = tmp_path / "pw"
    pw_file.write_text(PASSWORD, encoding="utf-8")
    code = main(["check", "--qbt-password", PASSWORD, "--qbt-password-file", str(pw_file)])
    assert code == EXIT_USAGE
    out, err = capsys.readouterr()
    assert one_line(err).startswith("quart-dl: error: qbt_password_file: ")
    assert PASSWORD not in out + err


def test_demo_minutes_out_of_range(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--minutes", "500"]) == EXIT_USAGE
    assert one_line(capsys.readouterr().err) == "quart-dl: error: --minutes must be between 0.2 and 120"


def test_demo_without_its_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # torf (for the demo's torrents) is the ``demo`` extra: without it, one line and exit 2.
    monkeypatch.setitem(sys.modules, "torf", None)  # "import torf" fails as if not installed
    for module in ("quart_dl.demo", "quart_dl.lab.transfer"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    assert main(["demo"]) == EXIT_USAGE
    assert one_line(capsys.readouterr().err) == (
        "quart-dl: error: the demo needs the 'demo' extra (torf): pip install 'quart-dl[demo]'"
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"quart-dl {__version__}\n"


# -- check -------------------------------------------------------------------------------------


def test_check_against_a_closed_port_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    code = main(["check", "--qbt-url", f"http://127.0.0.1:{port}", "--qbt-password", PASSWORD])
    assert code == EXIT_FAILED
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err) == (
        f"quart-dl: unreachable: cannot reach qBittorrent at http://127.0.0.1:{port} (connection refused)"
    )
    assert PASSWORD not in out + err


def test_check_success(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeSession(version="v4.5.2")
    seen: list[tuple[str, str, str]] = []

    def session(config: InstanceSettings) -> FakeSession:
        seen.append((config.url, config.username, config.password.reveal()))
        return fake

    monkeypatch.setattr(InstanceSettings, "session", session)
    code = main(["check", "--qbt-url", "http://qbt.lan:8080/", "--qbt-password", PASSWORD])
    assert code == 0
    out, err = capsys.readouterr()
    assert out == "qBittorrent v4.5.2 at http://qbt.lan:8080: 0 torrents\n"
    assert PASSWORD not in out + err
    assert seen == [("http://qbt.lan:8080", "admin", PASSWORD)]  # the password does reach the client
    assert fake.count("close") == 1


def test_check_auth_failed_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeSession(login_answers=[AuthFailed("qBittorrent rejected the user name or password")])
    monkeypatch.setattr(InstanceSettings, "session", lambda config: fake)
    assert main(["check", "--qbt-password", PASSWORD]) == EXIT_FAILED
    out, err = capsys.readouterr()
    assert one_line(err) == "quart-dl: auth failed: qBittorrent rejected the user name or password"
    assert PASSWORD not in out + err
    assert fake.count("close") == 1


def _two_instances(tmp_path: Path, down_port: int) -> Path:
    config = tmp_path / "q.toml"
    config.write_text(
        f"""
[[instances]]
id = "home"
name = "Home"
url = "http://qbt.lan:8080"
password = "{PASSWORD}"

[[instances]]
id = "seedbox"
url = "http://127.0.0.1:{down_port}"
password = "{PASSWORD}"
""",
        encoding="utf-8",
    )
    return config


def test_check_every_instance_names_the_one_that_fails(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    port = closed_port()
    fake = FakeSession(version="v5.1.0")
    real_session = InstanceSettings.session

    def session(config: InstanceSettings) -> object:
        # "home" is a fake qBittorrent; "seedbox" a real session to a closed port.
        return fake if config.id == "home" else real_session(config)

    monkeypatch.setattr(InstanceSettings, "session", session)
    code = main(["check", "--config", str(_two_instances(tmp_path, port))])
    assert code == EXIT_FAILED
    out, err = capsys.readouterr()
    assert out == "home: qBittorrent v5.1.0 at http://qbt.lan:8080: 0 torrents\n"
    assert one_line(err) == (
        f"quart-dl: seedbox: unreachable: cannot reach qBittorrent at http://127.0.0.1:{port}"
        " (connection refused)"
    )
    assert PASSWORD not in out + err
    assert fake.count("close") == 1


def test_check_every_instance_all_good(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    fakes = {"home": FakeSession(version="v5.1.0"), "seedbox": FakeSession(version="v4.5.2")}
    monkeypatch.setattr(InstanceSettings, "session", lambda config: fakes[config.id])
    assert main(["check", "--config", str(_two_instances(tmp_path, closed_port()))]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "home: qBittorrent v5.1.0 at http://qbt.lan:8080: 0 torrents"
    assert lines[1].startswith("seedbox: qBittorrent v4.5.2 at http://127.0.0.1:")
    assert err == ""


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (
            'id = "a"\nurl = "http://x:1"\n[[instances]]\nid = "a"\nurl = "http://y:1"',
            "the id is given twice",
        ),
        ('id = "A b"\nurl = "http://x:1"', "is not URL-safe"),
        (
            'id = "a"\nurl = "http://x:1"\n[[instances]]\nid = "b"\nurl = "http://X:1/"',
            "same qBittorrent URL",
        ),
        ('id = "a"', "needs a url"),
        ('id = "a"\nurl = "http://x:1"\npasswrd = "x"', "unknown key 'passwrd'"),
    ],
)
def test_bad_instances_exit_2_with_one_line(
    tables: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "q.toml"
    config.write_text("[[instances]]\n" + tables + "\n", encoding="utf-8")
    for command in ("check", "serve"):
        assert main([command, "--config", str(config)]) == EXIT_USAGE
        out, err = capsys.readouterr()
        assert out == ""
        line = one_line(err)
        assert line.startswith("quart-dl: error: ")
        assert message in line, line


# -- the real process --------------------------------------------------------------------------


def test_python_m_quart_dl_exit_code_is_real(tmp_path: Path) -> None:
    port = closed_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUART_DL_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "quart_dl",
            "check",
            "--qbt-url",
            f"http://127.0.0.1:{port}",
            "--qbt-password",
            PASSWORD,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert one_line(result.stderr).startswith("quart-dl: unreachable: cannot reach qBittorrent")
    assert PASSWORD not in result.stderr


def test_regression_serve_on_a_busy_port_hangs_after_the_error(tmp_path: Path) -> None:
    # Hypercorn runs the app's startup (database open, poller started) before it binds. When
    # the bind failed, the error was printed but after_serving never ran: aiosqlite's
    # (non-daemon) connection thread stayed alive and the process never exited.
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUART_DL_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(REPO)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = [sys.executable, "-m", "quart_dl", "serve", "--bind", f"127.0.0.1:{port}"]
        argv += ["--qbt-url", f"http://127.0.0.1:{closed_port()}", "--log-level", "ERROR"]
        try:
            result = subprocess.run(
                argv, capture_output=True, text=True, timeout=5, env=env, cwd=tmp_path, check=False
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"quart-dl serve did not exit within 5 s after failing to bind: {exc.stderr!r}")
    assert result.returncode == 1
    assert (
        one_line(result.stderr)
        == f"quart-dl: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
