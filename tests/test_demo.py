"""``quart-dl demo``: the newcomer's first command must show a live download, for real."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
from pathlib import Path

from quart_dl.lab.qbittorrent_nox import free_port
from quart_dl.lab.server_process import get_json
from quart_dl.lab.sse_reader import SSEReader
from quart_dl.lab.wait import wait_for


def qbittorrent_children(pid: int) -> list[str]:
    """qbittorrent-nox processes whose parent is ``pid``."""
    out = subprocess.run(["ps", "-o", "pid=,ppid=,comm=", "-e"], capture_output=True, text=True, check=True)
    rows = [line.split(None, 2) for line in out.stdout.splitlines()]
    return [r[0] for r in rows if len(r) == 3 and r[1] == str(pid) and r[2].startswith("qbittorrent")]


def test_demo_serves_a_download_whose_progress_rises_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUART_DL_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "quart_dl",
            "demo",
            "--minutes",
            "1",
            "--bind",
            f"127.0.0.1:{port}",
            "--data-dir",
            str(tmp_path),
            "--poll-interval",
            "0.5",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}/"
    try:
        wait_for(lambda: get_json(base + "healthz", timeout=1)["ok"], 30, "the demo server")
        daemons = qbittorrent_children(proc.pid)
        assert len(daemons) == 2, "the demo did not start its qbittorrent-nox pair"
        page = subprocess.run(["curl", "-s", base], capture_output=True, text=True, check=True).stdout
        assert "<html" in page.lower()
        # On loopback without a token the demo's own daemons may be acted on from the panel.
        assert get_json(base + "api/access")["act"] is True
        with SSEReader(base + "api/events") as stream:
            iso = wait_for(
                lambda: next(
                    (
                        t["hash"]
                        for t in get_json(base + "api/torrents")["torrents"]
                        if t["name"].endswith(".iso")
                    ),
                    None,
                ),
                40,
                "the sample download to appear",
            )

            def rises() -> int:
                values = []
                for event in stream.events():
                    payload = event.json()
                    part = (payload.get("torrents") or payload.get("changed") or {}).get(iso, {})
                    if "progress" in part:
                        values.append(part["progress"])
                return sum(1 for a, b in itertools.pairwise(values) if b > a)

            wait_for(lambda: rises() >= 3, 40, "the sample's progress to rise three times")
            assert not stream.ended.is_set()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        # The daemons went with it (once the parent is gone they would be orphans).
        for pid in daemons:
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "Traceback" not in output, output[-3000:]
