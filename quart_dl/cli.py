"""The ``quart-dl`` command: ``serve``, ``check`` and ``demo``.

Every setting is a flag here, generated from ``settings.SETTING_SPECS``. A bad flag or value prints
one line (``quart-dl: error: …``) and exits 2; an unreachable qBittorrent in ``check`` exits
1 (``check`` tries every configured instance and names the one that fails). No traceback
reaches the user, and the password is never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import __version__
from .instance_settings import InstanceSettings
from .settings import SETTING_SPECS, Settings, SettingsError, load_settings

log = logging.getLogger("quart_dl")

EXIT_USAGE = 2
EXIT_FAILED = 1

#: What ``quart-dl demo`` says when the ``demo`` extra (``torf``) is not installed.
DEMO_NEEDS_EXTRA = "quart-dl: error: the demo needs the 'demo' extra (torf): pip install 'quart-dl[demo]'"


class UsageError(Exception):
    """Bad command line: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line, generated from the settings table."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("settings (also QUART_DL_* variables or a TOML file)")
    group.add_argument("--config", type=Path, metavar="FILE", help="TOML file with settings")
    for name, (_, help_text) in SETTING_SPECS.items():
        group.add_argument("--" + name.replace("_", "-"), dest=name, metavar="VALUE", help=help_text)

    parser = _Parser(prog="quart-dl", description="A live download panel for qBittorrent.")
    parser.add_argument("--version", action="version", version=f"quart-dl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    commands.add_parser("serve", parents=[common], help="serve the panel and the API")
    commands.add_parser("check", parents=[common], help="check the connection to qBittorrent")
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="start a local qBittorrent pair with a sample download, and serve it",
    )
    demo.add_argument(
        "--minutes",
        type=float,
        default=4.0,
        help="how long the sample download takes (default 4)",
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags, the environment and the TOML file."""
    cli = {name: getattr(args, name) for name in SETTING_SPECS if getattr(args, name, None) is not None}
    return load_settings(cli=cli, config_file=args.config)


def setup_logging(level: str) -> None:
    """Operator logs on stderr: one line each, no heartbeat noise above DEBUG."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("tortoise", "aiosqlite", "asyncio", "urllib3", "qbittorrentapi"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``quart-dl`` command; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        settings = settings_from(args)
    except SystemExit as exc:  # --help and --version: argparse printed them
        return exc.code if isinstance(exc.code, int) else 0
    except (UsageError, SettingsError) as exc:
        print(f"quart-dl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    setup_logging(settings.log_level)
    try:
        if args.command == "serve":
            return _serve(settings)
        if args.command == "check":
            return _check(settings)
        return _demo(settings, args)
    except KeyboardInterrupt:
        return 130


def _serve(settings: Settings) -> int:
    from .server.serve import serve

    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"quart-dl: error: cannot listen on {settings.bind}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _check(settings: Settings) -> int:
    return asyncio.run(_check_instances(settings))


async def _check_instances(settings: Settings) -> int:
    """Check every instance at once, then print one line each in configured order.

    With one instance the lines are as they always were; with several each names its
    instance, so the one that fails is plain. Exit 1 if any fails.
    """
    instances = settings.instances
    results = await asyncio.gather(*(_check_instance(config) for config in instances))
    several = len(instances) > 1
    for config, (ok, line) in zip(instances, results, strict=True):
        if ok:
            print(f"{config.id}: {line}" if several else line)
        else:
            print(f"quart-dl: {config.id}: {line}" if several else f"quart-dl: {line}", file=sys.stderr)
    return 0 if all(ok for ok, _ in results) else EXIT_FAILED


async def _check_instance(config: InstanceSettings) -> tuple[bool, str]:
    """Whether one qBittorrent answers with these credentials, and the line that says so."""
    from .qbittorrent.client import QbtError

    session = config.session()
    try:
        version = await session.login()
        count = await session.torrent_count()
    except QbtError as exc:
        return False, f"{exc.kind.replace('_', ' ')}: {exc}"
    finally:
        await session.close()
    return True, f"qBittorrent {version} at {config.url}: {count} torrents"


def _demo(settings: Settings, args: Any) -> int:
    # Imported here: the demo runs on the lab (quart_dl.lab), which serve and check never load.
    try:
        from .demo import run_demo
    except ModuleNotFoundError as exc:
        if exc.name != "torf":
            raise
        print(DEMO_NEEDS_EXTRA, file=sys.stderr)
        return EXIT_USAGE

    if not 0.2 <= args.minutes <= 120:
        print("quart-dl: error: --minutes must be between 0.2 and 120", file=sys.stderr)
        return EXIT_USAGE
    return run_demo(settings, minutes=args.minutes)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
