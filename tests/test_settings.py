"""Settings: precedence, validation naming the setting, and the password never leaking."""

from __future__ import annotations

from pathlib import Path

import pytest

from quart_dl.settings import (
    SETTING_SPECS,
    TABLE_FIELDS,
    Secret,
    Settings,
    SettingsError,
    env_name,
    load_settings,
)

PASSWORD = "hunter2-s3cret"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- precedence ------------------------------------------------------------------------------


def test_defaults_without_any_source() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.qbt_url == "http://127.0.0.1:8080"
    assert settings.heartbeat == 15.0
    assert settings.poll_interval == 1.0
    assert settings.idle_poll_interval == 30.0
    assert settings.retry_ms == 3000
    assert settings.bind == "127.0.0.1:8765"
    assert settings.frame_ancestors == "auto"
    assert settings.allowed_hosts == ()
    assert not settings.qbt_password


def test_cli_beats_env_beats_toml_beats_defaults(tmp_path: Path) -> None:
    config = write(
        tmp_path / "q.toml",
        'heartbeat = 20\npoll_interval = 2\nidle_poll_interval = 40\nqbt_username = "toml"\n',
    )
    environ = {env_name("heartbeat"): "25", env_name("poll_interval"): "3"}
    settings = load_settings(cli={"heartbeat": "30"}, environ=environ, config_file=config)
    assert settings.heartbeat == 30.0  # CLI over env and TOML
    assert settings.poll_interval == 3.0  # env over TOML
    assert settings.idle_poll_interval == 40.0  # TOML over default
    assert settings.qbt_username == "toml"
    assert settings.retry_ms == 3000  # default


def test_cli_none_values_are_ignored() -> None:
    settings = load_settings(cli={"heartbeat": None}, environ={env_name("heartbeat"): "9"})
    assert settings.heartbeat == 9.0


def test_config_file_from_environment(tmp_path: Path) -> None:
    config = write(tmp_path / "q.toml", "[quart_dl]\nretry-ms = 5000\n")
    settings = load_settings(environ={env_name("config"): str(config)})
    assert settings.retry_ms == 5000


def test_toml_table_and_dashed_keys(tmp_path: Path) -> None:
    config = write(tmp_path / "q.toml", "[quart_dl]\nframe-ancestors = \"'self' https://ha.lan\"\n")
    settings = load_settings(environ={}, config_file=config)
    assert settings.frame_ancestors == "'self' https://ha.lan"


def test_every_field_has_an_env_name_and_a_parser() -> None:
    names = {f for f in Settings.__dataclass_fields__} - set(TABLE_FIELDS)
    assert set(SETTING_SPECS) == names
    assert env_name("qbt_url") == "QUART_DL_QBT_URL"


def test_values_are_parsed_to_their_types() -> None:
    settings = load_settings(
        environ={
            env_name("queue_size"): "64",
            env_name("heartbeat"): "1",
            env_name("log_level"): "debug",
            env_name("root_path"): "/qbt/",
            env_name("qbt_url"): "https://qbt.lan:8443/",
            env_name("bind"): "[::1]:9000",
        }
    )
    assert settings.queue_size == 64
    assert settings.heartbeat == 1.0
    assert settings.log_level == "DEBUG"
    assert settings.root_path == "/qbt"
    assert settings.qbt_url == "https://qbt.lan:8443"
    assert settings.host == "::1"
    assert settings.port == 9000


def test_resolved_database_url_defaults_to_data_dir(tmp_path: Path) -> None:
    settings = load_settings(environ={env_name("data_dir"): str(tmp_path)})
    assert settings.resolved_database_url() == f"sqlite://{tmp_path / 'quart-dl.sqlite3'}"
    settings = load_settings(environ={env_name("database_url"): "postgres://u@db/quart"})
    assert settings.resolved_database_url() == "postgres://u@db/quart"


# -- each invalid value names its setting ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("qbt_url", "ftp://127.0.0.1:8080"),
        ("qbt_url", "127.0.0.1:8080"),
        ("qbt_url", "http://"),
        ("qbt_url", "http://127.0.0.1:99999"),
        ("qbt_url", "http://127.0.0.1:port"),
        ("qbt_url", "http://admin:pw@127.0.0.1:8080"),
        ("bind", "8765"),
        ("bind", ":8765"),
        ("bind", "127.0.0.1:65536"),
        ("bind", "127.0.0.1:http"),
        ("heartbeat", "-5"),
        ("heartbeat", "0"),
        ("heartbeat", "0.5"),
        ("heartbeat", "nan"),
        ("heartbeat", "inf"),
        ("heartbeat", "often"),
        ("poll_interval", "0"),
        ("retry_ms", "3.5"),
        ("retry_ms", "50"),
        ("queue_size", "-1"),
        ("replay_size", "lots"),
        ("database_url", "mysql://db/quart"),
        ("root_path", "qbt"),
        ("root_path", "/qbt?x=1"),
        ("frame_ancestors", "'self'; script-src *"),
        ("frame_ancestors", "https://a.lan,https://b.lan"),
        ("frame_ancestors", "auto 'self'"),
        ("allowed_hosts", "http://quart.lan"),
        ("allowed_hosts", "quart.lan:8765"),
        ("allowed_hosts", "quart.lan/panel"),
        ("allowed_hosts", "*.lan"),
        ("allowed_hosts", "bad_host!"),
        ("allowed_hosts", "caf\u00e9.lan"),
        ("log_level", "LOUD"),
    ],
)
def test_invalid_value_raises_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={env_name(name): value})
    assert str(info.value).startswith(f"{name}: ")
    assert "\n" not in str(info.value)


def test_allowed_hosts_from_flag_environment_and_toml(tmp_path: Path) -> None:
    assert load_settings(
        cli={"allowed_hosts": "Quart.Lan., proxy.example.org"}, environ={}
    ).allowed_hosts == (
        "quart.lan",
        "proxy.example.org",
    )
    assert load_settings(environ={env_name("allowed_hosts"): "quart.lan *"}).allowed_hosts == (
        "quart.lan",
        "*",
    )
    config = write(tmp_path / "q.toml", 'allowed_hosts = ["quart.lan", "QUART.lan"]\n')
    assert load_settings(environ={}, config_file=config).allowed_hosts == ("quart.lan",)
    assert load_settings(cli={"allowed_hosts": "quart.lan"}, environ={}).allowed_hosts == ("quart.lan",)


def test_frame_ancestors_auto_or_sources() -> None:
    assert load_settings(environ={}).frame_ancestors == "auto"
    assert load_settings(environ={env_name("frame_ancestors"): "*"}).frame_ancestors == "*"
    explicit = load_settings(environ={env_name("frame_ancestors"): "'self'  https://ha.lan:8123"})
    assert explicit.frame_ancestors == "'self' https://ha.lan:8123"


def test_invalid_value_from_cli_names_the_setting() -> None:
    with pytest.raises(SettingsError, match=r"^heartbeat: must be between 1 and 300, got -1$"):
        load_settings(cli={"heartbeat": "-1"}, environ={})


def test_invalid_value_from_toml_names_the_setting(tmp_path: Path) -> None:
    config = write(tmp_path / "q.toml", "queue_size = true\n")
    with pytest.raises(SettingsError, match=r"^queue_size: "):
        load_settings(environ={}, config_file=config)


def test_idle_interval_shorter_than_poll_interval() -> None:
    with pytest.raises(SettingsError, match=r"^idle_poll_interval: must not be shorter"):
        load_settings(cli={"poll_interval": "5", "idle_poll_interval": "2"}, environ={})


def test_unknown_toml_key(tmp_path: Path) -> None:
    config = write(tmp_path / "q.toml", "heartbeat = 10\nhaertbeat = 10\n")
    with pytest.raises(SettingsError, match=r"^config: unknown setting 'haertbeat'"):
        load_settings(environ={}, config_file=config)


def test_bad_toml(tmp_path: Path) -> None:
    config = write(tmp_path / "q.toml", "heartbeat = = 10\n")
    with pytest.raises(SettingsError, match=r"^config: .* is not valid TOML"):
        load_settings(environ={}, config_file=config)


def test_missing_toml_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^config: file .* does not exist$"):
        load_settings(environ={}, config_file=tmp_path / "nope.toml")


def test_toml_quart_dl_not_a_table(tmp_path: Path) -> None:
    config = write(tmp_path / "q.toml", 'quart_dl = "yes"\n')
    with pytest.raises(SettingsError, match=r"^config: \[quart_dl\] must be a table$"):
        load_settings(environ={}, config_file=config)


# -- the password ------------------------------------------------------------------------------


def test_password_and_password_file_both(tmp_path: Path) -> None:
    pw_file = write(tmp_path / "pw", PASSWORD)
    with pytest.raises(SettingsError, match=r"^qbt_password_file: give either") as info:
        load_settings(
            environ={env_name("qbt_password"): PASSWORD, env_name("qbt_password_file"): str(pw_file)}
        )
    assert PASSWORD not in str(info.value)


def test_missing_password_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^qbt_password_file: file .* does not exist$"):
        load_settings(environ={env_name("qbt_password_file"): str(tmp_path / "missing")})


def test_password_file_is_read_and_stripped(tmp_path: Path) -> None:
    pw_file = write(tmp_path / "pw", PASSWORD + "\r\n")
    settings = load_settings(environ={env_name("qbt_password_file"): str(pw_file)})
    assert settings.qbt_password.reveal() == PASSWORD
    assert settings.qbt_password == Secret(PASSWORD)


def test_password_never_in_repr_or_str(tmp_path: Path) -> None:
    settings = load_settings(
        environ={
            env_name("qbt_password"): PASSWORD,
            env_name("database_url"): "postgres://quart:dbpass99@db.lan:5432/quart",
        }
    )
    assert settings.qbt_password.reveal() == PASSWORD
    for text in (repr(settings), str(settings), f"{settings}", f"{settings.qbt_password}"):
        assert PASSWORD not in text


def test_empty_password_shows_empty() -> None:
    settings = load_settings(environ={})
    assert not settings.qbt_password
    assert repr(settings.qbt_password) == "Secret('')"
    assert repr(Secret("x")) == "Secret('********')"


@pytest.mark.parametrize("name", ["access_token", "read_token"])
def test_a_token_given_as_a_number_in_toml_is_refused_without_repeating_it(tmp_path: Path, name: str) -> None:
    """Regression: a token written unquoted in the TOML file (a number) was refused with
    "expected text, got 123456…", the secret in the error (and the log or terminal)."""
    secret = "98765432109876543210"
    extra = 'access_token = "a-full-token-of-sixteen-chars"\n' if name == "read_token" else ""
    config = write(tmp_path / "q.toml", f"{extra}{name} = {secret}\n")
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, config_file=config)
    assert name in str(info.value)
    assert secret not in str(info.value)


def test_regression_a_qbt_password_given_as_a_number_is_refused_without_repeating_it(
    tmp_path: Path,
) -> None:
    """Regression: ``qbt_password = 12345678`` (unquoted) was refused with "expected text,
    got 12345678": the password in the error, the terminal and the service's log."""
    config = write(tmp_path / "q.toml", "qbt_password = 9876543210123\n")
    with pytest.raises(SettingsError, match=r"^qbt_password: expected text") as info:
        load_settings(environ={}, config_file=config)
    assert "9876543210123" not in str(info.value)


# -- several instances -------------------------------------------------------------------------

TWO_INSTANCES = f"""
[[instances]]
id = "home"
name = "Home"
url = "http://127.0.0.1:8080/"
password = "{PASSWORD}"

[[instances]]
id = "seedbox"
url = "https://seedbox.example:8443"
username = "me"
poll_interval = 2
idle_poll_interval = 60
"""


def test_instances_from_toml_in_order(tmp_path: Path) -> None:
    config = write(tmp_path / "q.toml", TWO_INSTANCES)
    settings = load_settings(environ={}, config_file=config)
    home, seedbox = settings.instances
    assert (home.id, home.name, home.url, home.username) == ("home", "Home", "http://127.0.0.1:8080", "admin")
    assert home.password.reveal() == PASSWORD
    assert (home.poll_interval, home.idle_poll_interval) == (1.0, 30.0)  # the flat settings'
    assert (seedbox.id, seedbox.name, seedbox.username) == ("seedbox", "seedbox", "me")
    assert (seedbox.poll_interval, seedbox.idle_poll_interval) == (2.0, 60.0)
    assert not seedbox.password
    assert PASSWORD not in repr(settings) + repr(settings.instances)


def test_instances_inside_a_quart_dl_table(tmp_path: Path) -> None:
    text = '[quart_dl]\nheartbeat = 5\n\n[[quart_dl.instances]]\nid = "a"\nurl = "http://10.0.0.1:8080"\n'
    settings = load_settings(environ={}, config_file=write(tmp_path / "q.toml", text))
    assert [i.id for i in settings.instances] == ["a"]
    assert settings.heartbeat == 5


def test_instances_after_a_quart_dl_table_are_not_ignored_silently(tmp_path: Path) -> None:
    text = '[quart_dl]\nheartbeat = 5\n\n[[instances]]\nid = "a"\nurl = "http://10.0.0.1:8080"\n'
    with pytest.raises(SettingsError, match=r"write \[\[quart_dl\.instances\]\], not \[\[instances\]\]$"):
        load_settings(environ={}, config_file=write(tmp_path / "q.toml", text))


def test_the_flat_settings_alone_describe_instance_default() -> None:
    settings = load_settings(cli={"qbt_url": "http://10.0.0.2:8080", "qbt_name": "Box"}, environ={})
    (only,) = settings.instances
    assert (only.id, only.name, only.url) == ("default", "Box", "http://10.0.0.2:8080")
    assert load_settings(environ={}).instances[0].name == "qBittorrent"
    assert Settings().instances == (Settings().default_instance(),)


@pytest.mark.parametrize(
    "source",
    ["toml", "env", "cli"],
)
def test_a_qbt_setting_next_to_tables_follows_default_first(tmp_path: Path, source: str) -> None:
    text = TWO_INSTANCES
    environ: dict[str, str] = {}
    cli: dict[str, str] = {}
    if source == "toml":
        text = 'qbt_url = "http://10.0.0.9:8080"\n' + text
    elif source == "env":
        environ[env_name("qbt_url")] = "http://10.0.0.9:8080"
    else:
        cli["qbt_url"] = "http://10.0.0.9:8080"
    settings = load_settings(cli=cli, environ=environ, config_file=write(tmp_path / "q.toml", text))
    assert [i.id for i in settings.instances] == ["default", "home", "seedbox"]
    assert settings.instances[0].url == "http://10.0.0.9:8080"


def test_an_instance_password_file(tmp_path: Path) -> None:
    pw_file = write(tmp_path / "pw", PASSWORD + "\n")
    text = f'[[instances]]\nid = "a"\nurl = "http://10.0.0.1:8080"\npassword_file = "{pw_file}"\n'
    (only,) = load_settings(environ={}, config_file=write(tmp_path / "q.toml", text)).instances
    assert only.password.reveal() == PASSWORD


def _table(**keys: object) -> str:
    lines = ["[[instances]]"]
    for key, value in keys.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n".join(lines) + "\n"


A = _table(id="a", url="http://10.0.0.1:8080")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (A + A, r"^instance 'a': the id is given twice; each instance needs its own$"),
        (
            'qbt_url = "http://10.0.0.5:8080"\n' + _table(id="default", url="http://10.0.0.1:8080"),
            r"^instance 'default': the id is taken by the qbt_\* settings",
        ),
        (
            _table(id="Home", url="http://10.0.0.1:8080"),
            r"^\[\[instances\]\] table 1: id 'Home' is not URL-safe",
        ),
        (
            A + _table(id="a/b", url="http://10.0.0.2:8080"),
            r"^\[\[instances\]\] table 2: id 'a/b' is not URL-safe",
        ),
        (
            _table(id="x" * 33, url="http://10.0.0.1:8080"),
            r"^\[\[instances\]\] table 1: id 'x+' is not URL-safe",
        ),
        (_table(id="-a", url="http://10.0.0.1:8080"), r"is not URL-safe"),
        (
            _table(id="a\n", url="http://10.0.0.1:8080"),
            r"^\[\[instances\]\] table 1: id 'a\\n' is not URL-safe",
        ),
        (_table(id=7, url="http://10.0.0.1:8080"), r"^\[\[instances\]\] table 1: id '7' is not URL-safe"),
        # A regression guard: the panel lists instances in a JavaScript object, which puts
        # all-digit keys first whatever the configured order.
        (_table(id="1", url="http://10.0.0.1:8080"), r"^\[\[instances\]\] table 1: id '1' is not URL-safe"),
        (_table(url="http://10.0.0.1:8080"), r"^\[\[instances\]\] table 1: needs an id"),
        (_table(id="a"), r"^instance 'a': needs a url"),
        (_table(id="a", url="ftp://x"), r"^instance 'a': url: expected an http:// or https:// URL"),
        (
            _table(id="a", url="http://u:p@x:8080"),
            r"^instance 'a': url: put credentials in username/password",
        ),
        (
            _table(id="a", url="http://x:8080", pasword="x"),
            r"^instance 'a': unknown key 'pasword' \(expected id, name",
        ),
        (_table(id="a", url="http://x:8080", name=""), r"^instance 'a': name: expected a display name"),
        (_table(id="a", url="http://x:8080", username=3), r"^instance 'a': username: expected text"),
        (
            _table(id="a", url="http://x:8080", poll_interval=0),
            r"^instance 'a': poll_interval: must be between",
        ),
        (
            _table(id="a", url="http://x:8080", poll_interval=5, idle_poll_interval=2),
            r"^instance 'a': idle_poll_interval must not be shorter than poll_interval \(2 < 5\)$",
        ),
        (
            _table(id="a", url="http://x:8080", password="p", password_file="/p"),
            r"^instance 'a': give either password or password_file, not both$",
        ),
        (
            _table(id="a", url="http://x:8080", password_file="/nonexistent/pw"),
            r"^instance 'a': password_file: file '/nonexistent/pw' does not exist$",
        ),
        ("instances = 3\n", r"^config: instances must be \[\[instances\]\] tables$"),
        ('instances = ["a"]\n', r"^config: instances must be \[\[instances\]\] tables$"),
    ],
)
def test_bad_instance_tables_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    config = write(tmp_path / "q.toml", text)
    with pytest.raises(SettingsError, match=message) as info:
        load_settings(environ={}, config_file=config)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("http://10.0.0.1:8080", "http://10.0.0.1:8080/"),
        ("http://QBT.lan", "http://qbt.lan:80"),
        ("HTTPS://qbt.lan/", "https://qbt.lan:443"),
        ("http://qbt.lan:8080/qbt", "http://qbt.lan:8080/qbt/"),
    ],
)
def test_two_instances_with_the_same_url(tmp_path: Path, first: str, second: str) -> None:
    text = _table(id="a", url=first) + _table(id="b", url=second)
    with pytest.raises(
        SettingsError, match=r"^instance 'b': same qBittorrent URL as instance 'a' \("
    ) as info:
        load_settings(environ={}, config_file=write(tmp_path / "q.toml", text))
    assert "\n" not in str(info.value)


def test_the_flat_url_clashes_with_a_table_url(tmp_path: Path) -> None:
    text = 'qbt_password = "x"\n' + _table(id="a", url="http://127.0.0.1:8080")  # qbt_url's default
    with pytest.raises(SettingsError, match=r"^instance 'a': same qBittorrent URL as instance 'default'"):
        load_settings(environ={}, config_file=write(tmp_path / "q.toml", text))


def test_different_paths_or_ports_are_different_instances(tmp_path: Path) -> None:
    text = (
        _table(id="a", url="http://qbt.lan:8080")
        + _table(id="b", url="http://qbt.lan:8081")
        + _table(id="c", url="http://qbt.lan:8080/other")
    )
    settings = load_settings(environ={}, config_file=write(tmp_path / "q.toml", text))
    assert [i.id for i in settings.instances] == ["a", "b", "c"]


def test_an_instance_table_may_be_named_default_without_qbt_settings(tmp_path: Path) -> None:
    text = _table(id="default", url="http://10.0.0.1:8080") + _table(id="b", url="http://10.0.0.2:8080")
    settings = load_settings(environ={}, config_file=write(tmp_path / "q.toml", text))
    assert [i.id for i in settings.instances] == ["default", "b"]


def test_an_instance_password_never_in_errors(tmp_path: Path) -> None:
    text = _table(id="a", url="http://x:8080", password=12345678901234)
    with pytest.raises(SettingsError, match=r"^instance 'a': password: expected text") as info:
        load_settings(environ={}, config_file=write(tmp_path / "q.toml", text))
    assert "12345678901234" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"ftp://admin:{PASSWORD}@10.0.0.1:8080", "expected an http:// or https:// URL"),
        (f"http://admin:{PASSWORD}@10.0.0.1:99999", "the port in"),
        (f"admin:{PASSWORD}@10.0.0.1:8080", "expected an http:// or https:// URL"),
        (f"http://admin:{PASSWORD}@", "expected an http:// or https:// URL"),
    ],
)
@pytest.mark.parametrize("where", ["qbt_url", "instances"])
def test_regression_a_url_with_credentials_and_another_fault_is_refused_without_repeating_them(
    tmp_path: Path, url: str, problem: str, where: str
) -> None:
    """Regression: a URL with a password in it and a wrong scheme, port or host was refused
    with the whole URL repeated ("got 'ftp://admin:hunter2@…'"): the password in the error,
    the terminal and the service's log. Only the credentials check came after the others."""
    text = f"qbt_url = {url!r}\n" if where == "qbt_url" else _table(id="a", url=url)
    config = write(tmp_path / "q.toml", text.replace("'", '"'))
    with pytest.raises(SettingsError, match=problem) as info:
        load_settings(environ={}, config_file=config)
    assert PASSWORD not in str(info.value)
    assert "10.0.0.1" in str(info.value) or url.endswith("@")  # still says which URL
