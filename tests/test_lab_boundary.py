"""The service and the lab stay apart: ``serve`` and ``check`` load nothing from ``quart_dl.lab``.

The lab (real daemons, transfers, server processes, test readers) is scaffolding for the
tests and the demo; its ``torf`` dependency is an extra. A service that imported it would
drag both into every install, so this runs the real commands in a fresh interpreter with
``torf`` made unimportable and looks at what got loaded.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import json, socket, sys

    sys.modules["torf"] = None  # any "import torf" now fails
    import quart_dl.web.app, quart_dl.cli, quart_dl.server.serve
    from quart_dl.cli import main
    from quart_dl.web.app import create_app
    from quart_dl.settings import load_settings

    create_app(load_settings(cli={"database_url": "sqlite://:memory:"}, environ={}))
    closed = int(sys.argv[1])
    codes = {"check": main(["check", "--qbt-url", f"http://127.0.0.1:{closed}", "--log-level", "ERROR"])}
    with socket.socket() as busy:  # serve starts the whole app, then fails to bind: exit 1
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        codes["serve"] = main(
            ["serve", "--bind", f"127.0.0.1:{port}", "--qbt-url", f"http://127.0.0.1:{closed}",
             "--log-level", "ERROR"]
        )
    loaded = sorted(m for m in sys.modules if m == "quart_dl.lab" or m.startswith("quart_dl.lab."))
    print(json.dumps({"codes": codes, "lab": loaded, "torf": sys.modules.get("torf") is not None}))
    """
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_and_check_import_nothing_from_the_lab_and_need_no_torf(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUART_DL_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    env["PYTHONPATH"] = str(REPO)
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(closed_port())],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    # check: qBittorrent unreachable; serve: the port is taken. Both ran for real, without torf.
    assert report["codes"] == {"check": 1, "serve": 1}, result.stderr
    assert report["lab"] == [], f"the service imported {report['lab']}"
    assert report["torf"] is False
