"""Poll cost against a real qbittorrent-nox holding 10,000 small paused torrents.

Everything is real and in its own process: a :class:`~quart_dl.lab.qbittorrent_nox.QbtInstance`
(qbittorrent-nox on loopback, temp profile), and ``python -m quart_dl serve``
(:class:`~quart_dl.lab.server_process.ServerProcess`, 1 s poll interval, fresh SQLite database, log level
INFO) following it. Between the two sits a small counting TCP proxy in this process: it
forwards bytes untouched and splits both directions into HTTP/1.1 messages, so it knows when
each ``sync/maindata`` request went out (the start of a poll), how many bytes came back on the
wire, whether qBittorrent compressed them, and their size once decompressed.

- **Torrents**: ``n`` distinct tracker-less single-file torrents (16-32 KiB, bencoded here; the
  payload files do not exist, qBittorrent lists them as ``pausedDL`` with progress 0), added
  paused through the Web API, ``batch`` per ``torrents_add`` call, into a save path in the
  temp dir; then we wait (deadline) until our own ``sync/maindata`` session lists all ``n``.
- **First full poll**: the poller's first ``poll_duration_seconds`` (``/metrics``; login +
  full ``sync/maindata`` + merge + commit of ``n`` rows + publish), qBittorrent's part of it
  (proxy: request out → last byte back), and from process start to the end of that poll.
- **Steady state**: after ``warmup`` rounds, ``polls`` rounds in which ``changing`` torrents
  change between two polls (a fresh category, a fresh tag, or a rename, in turn; each round
  starts ``SETTLE`` s after the previous answer so the server's own poll work is done, and
  must finish before the next request goes out: late rounds are counted). One SSE client
  stays connected and counts the torrents each ``diff`` carries, which checks that the
  changes really became events, one round per poll.
- **Server CPU per poll**: the server's CPU (all threads, ``/proc/<pid>/task/*/schedstat``,
  nanoseconds) between one ``sync/maindata`` request and the next, i.e. one whole poll period:
  fetch + decode, merge, commit, publish, then the 1 s sleep (heartbeats, housekeeping) and the
  wait for qBittorrent's next answer (at 10,000 torrents that wait is seconds long). The
  same over ``idle_polls`` polls with nothing changing gives the idle figure; "above idle" is
  the difference of the medians. Cross-check: psutil user+system over the whole window ÷ the
  polls counted by ``/metrics`` (10 ms ticks).
- **Snapshot to a new client**: ``bench.pollcost._fetch_snapshot`` (raw socket, until the
  whole first ``snapshot`` frame is in). Cold: right after a diff was published (one rename),
  so the snapshot is encoded afresh; cached: immediately after, same sequence number.

qBittorrent's host-header validation is turned off through the API (the proxy's port is not
the Web UI's, and qBittorrent refuses such a Host with 401, which quart-dl reads as a wrong
password). ``server_quart_dl`` records which ``quart_dl`` the server process imported.
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from .common import cpu_ns, figure_table
from .common import scrape_metrics as _metrics
from .pollcost import _fetch_snapshot

POLL_INTERVAL = 1.0
#: Seconds after a ``sync/maindata`` answer before the next round of changes starts.
SETTLE = 0.2
PIECE = 16384
KINDS = ("category", "tags", "rename")


def _log(message: str) -> None:
    print(f"poll-real: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- torrents


def bencode(value: Any) -> bytes:
    """Bencode ints, str/bytes, lists and dicts (keys sorted, as the format requires)."""
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def tiny_torrent(i: int) -> tuple[str, bytes]:
    """(info-hash, .torrent bytes) of the i-th bench torrent: one file of 16-32 KiB, private.

    The piece hashes are made up: the payload never exists, and a paused torrent is not checked.
    """
    name = f"pollreal-{i:05d}.bin"
    length = PIECE + i % PIECE
    pieces = b"".join(hashlib.sha1(f"{name}/{p}".encode()).digest() for p in range(-(-length // PIECE)))
    info = {"length": length, "name": name, "piece length": PIECE, "pieces": pieces, "private": 1}
    return hashlib.sha1(bencode(info)).hexdigest(), bencode({"created by": "quart-dl bench", "info": info})


# ---------------------------------------------------------------------------------- proxy


@dataclass
class Exchange:
    """One request and its response, as seen on the wire by the proxy."""

    method: str
    path: str
    sent_at: float  # the request head was in (monotonic)
    first_byte_at: float = 0.0
    done_at: float = 0.0
    status: int = 0
    wire_bytes: int = 0  # status line + headers + body
    body_bytes: int = 0
    encoding: str = ""
    json_bytes: int = 0  # body decompressed (maindata only)


class _Messages:
    """Splits one direction of an HTTP/1.1 connection into messages (Content-Length bodies)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self.buf += data
        out: list[tuple[bytes, bytes]] = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return out
            head = self.buf[: end + 4]
            headers = _headers(head)
            if "chunked" in headers.get("transfer-encoding", ""):
                raise RuntimeError("the proxy does not parse chunked bodies")
            length = int(headers.get("content-length", "0"))
            if len(self.buf) < end + 4 + length:
                return out
            out.append((head, self.buf[end + 4 : end + 4 + length]))
            self.buf = self.buf[end + 4 + length :]


def _headers(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


class CountingProxy:
    """127.0.0.1:<port> → qBittorrent's Web UI; records every exchange, calls hooks on maindata."""

    def __init__(
        self,
        upstream_port: int,
        on_request: Callable[[Exchange], None] | None = None,
        on_response: Callable[[Exchange], None] | None = None,
    ) -> None:
        self.upstream_port = upstream_port
        self.on_request = on_request
        self.on_response = on_response
        self.exchanges: list[Exchange] = []
        self.lock = threading.Condition()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True, name="proxy accept").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def maindata(self) -> list[Exchange]:
        """Completed ``sync/maindata`` exchanges so far, in order."""
        with self.lock:
            return [e for e in self.exchanges if "/sync/maindata" in e.path and e.done_at]

    def wait_maindata(self, count: int, timeout: float) -> list[Exchange]:
        """Wait until ``count`` maindata answers are complete; return them all."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                done = [e for e in self.exchanges if "/sync/maindata" in e.path and e.done_at]
                if len(done) >= count:
                    return done
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {len(done)} of {count} sync/maindata answers in {timeout:g} s")
                self.lock.wait(left)

    def _accept(self) -> None:
        while not self._closed:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.upstream_port))
            for s in (down, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [down, up]
            pending: collections.deque[Exchange] = collections.deque()
            threading.Thread(target=self._requests, args=(down, up, pending), daemon=True).start()
            threading.Thread(target=self._responses, args=(up, down, pending), daemon=True).start()

    def _requests(self, down: socket.socket, up: socket.socket, pending: collections.deque[Exchange]) -> None:
        parser = _Messages()
        try:
            while data := down.recv(1 << 16):
                up.sendall(data)
                for head, _body in parser.feed(data):
                    method, path, _ = head.split(b" ", 2)
                    ex = Exchange(method.decode(), path.decode(), time.monotonic())
                    with self.lock:
                        pending.append(ex)
                        self.exchanges.append(ex)
                    if self.on_request and "/sync/maindata" in ex.path:
                        self.on_request(ex)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                up.shutdown(socket.SHUT_WR)

    def _responses(
        self, up: socket.socket, down: socket.socket, pending: collections.deque[Exchange]
    ) -> None:
        parser = _Messages()
        try:
            while data := up.recv(1 << 16):
                now = time.monotonic()
                down.sendall(data)
                if pending and not pending[0].first_byte_at:
                    pending[0].first_byte_at = now
                for head, body in parser.feed(data):
                    ex = pending.popleft()
                    headers = _headers(head)
                    ex.status = int(head.split(b" ", 2)[1])
                    ex.wire_bytes = len(head) + len(body)
                    ex.body_bytes = len(body)
                    ex.encoding = headers.get("content-encoding", "")
                    if "/sync/maindata" in ex.path:
                        if ex.encoding == "gzip":
                            ex.json_bytes = len(gzip.decompress(body))
                        elif ex.encoding == "deflate":
                            ex.json_bytes = len(zlib.decompress(body))
                        else:
                            ex.json_bytes = len(body)
                    ex.done_at = time.monotonic()
                    if self.on_response and "/sync/maindata" in ex.path:
                        self.on_response(ex)
                    with self.lock:
                        self.lock.notify_all()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                down.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()


# ------------------------------------------------------------------------------------ CPU


def psutil_cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _errors(metrics: dict[str, float]) -> int:
    return int(sum(v for k, v in metrics.items() if k.startswith("poll_errors_total")))


def _ms(seconds: float, digits: int = 1) -> float:
    return round(seconds * 1000, digits)


# ------------------------------------------------------------------------------------ run


def run_pollreal(
    n: int = 10_000,
    *,
    changing: int = 300,
    polls: int = 20,
    warmup: int = 3,
    idle_polls: int = 8,
    samples: int = 5,
    batch: int = 500,
    log_dir: Path | None = None,
) -> dict[str, Any]:
    """Load ``n`` paused torrents into a real qbittorrent-nox, follow it, measure (see module doc)."""
    from quart_dl.lab.qbittorrent_nox import QbtInstance
    from quart_dl.lab.server_process import ServerProcess
    from quart_dl.lab.sse_reader import SSEReader

    changing = min(changing, n)
    base = Path(tempfile.mkdtemp(prefix="quart-dl-pollreal-"))
    out: dict[str, Any] = {"torrents": n, "changing_per_poll": changing, "poll_interval_s": POLL_INTERVAL}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, base, ignore_errors=True)  # runs last, after the daemons stopped
        qbt = QbtInstance(base / "qbt", name="pollreal")
        qbt.start()
        stack.callback(qbt.stop)
        assert qbt.pid is not None
        qbt_pid = qbt.pid
        client = qbt.client(timeout=120)
        # The server reaches qBittorrent through the proxy, whose port differs from the Web UI's:
        # qBittorrent refuses a Host header with another port unless host validation is off.
        client.app_set_preferences({"web_ui_host_header_validation_enabled": False})

        # -- load ----------------------------------------------------------------------
        started = time.monotonic()
        made = [tiny_torrent(i) for i in range(n)]
        hashes = [h for h, _ in made]
        qbt_cpu0 = psutil_cpu(qbt_pid)
        for at in range(0, n, batch):
            answer = client.torrents_add(
                torrent_files=[data for _, data in made[at : at + batch]],
                is_paused=True,
                save_path=str(base / "downloads"),
            )
            if answer != "Ok.":
                raise RuntimeError(f"torrents_add answered {answer!r} for the batch at {at}")
        calls_done = time.monotonic()
        _log(f"{n} torrents sent in {calls_done - started:.1f} s; waiting until qBittorrent lists them")
        seen: set[str] = set()
        rid = 0
        deadline = started + max(120.0, n / 20)
        while True:
            data: Any = client.sync_maindata(rid=rid)
            rid = int(data["rid"])
            seen.update((data.get("torrents") or {}).keys())
            if len(seen) >= n:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"qBittorrent lists {len(seen)} of {n} torrents after {deadline - started:.0f} s"
                )
            time.sleep(0.5)
        listed = time.monotonic()
        if set(hashes) - seen:
            raise RuntimeError(f"{len(set(hashes) - seen)} of our torrents are missing in qBittorrent")
        states = collections.Counter(t.state for t in client.torrents_info(limit=200))
        out.update(
            {
                "load_add_calls_s": round(calls_done - started, 2),
                "load_until_listed_s": round(listed - started, 2),
                "load_batch": batch,
                "qbt_cpu_load_s": round(psutil_cpu(qbt_pid) - qbt_cpu0, 2),
                "qbt_states_first_200": dict(states),
            }
        )
        _log(f"qBittorrent lists all {n} after {listed - started:.1f} s ({dict(states)})")

        # -- the server, behind the proxy -----------------------------------------------
        server = ServerProcess(
            base / "server",
            qbt_url="",
            qbt_username=qbt.username,
            qbt_password=qbt.password,
            heartbeat=15.0,
            poll_interval=POLL_INTERVAL,
            extra_args=("--log-level", "INFO"),
        )
        samples_at: dict[int, tuple[int, float, int]] = {}  # request index → (server ns, psutil s, qbt ns)
        request_index = 0

        def on_request(ex: Exchange) -> None:
            nonlocal request_index
            proc = server.proc
            if proc is not None:
                samples_at[request_index] = (cpu_ns(proc.pid), psutil_cpu(proc.pid), cpu_ns(qbt_pid))
            request_index += 1

        proxy = CountingProxy(qbt.webui_port, on_request=on_request)
        stack.callback(proxy.close)
        server.qbt_url = proxy.url
        if log_dir is not None:

            def keep_log() -> None:
                log_dir.mkdir(parents=True, exist_ok=True)
                (log_dir / "pollreal-server.log").write_text(server.log_text())

            stack.callback(keep_log)
        stack.callback(server.stop)
        process_start = time.monotonic()
        server.start(timeout=60)
        assert server.proc is not None
        server_pid = server.proc.pid
        # Which quart_dl the server runs (PYTHONPATH may point at another checkout than the bench's).
        where = subprocess.run(
            [sys.executable, "-c", "import quart_dl; print(quart_dl.__file__)"],
            cwd=server.root,
            env={**os.environ},
            capture_output=True,
            text=True,
            check=False,
        )
        out["server_quart_dl"] = str(Path(where.stdout.strip()).parent)

        # -- first full poll -----------------------------------------------------------
        second = proxy.wait_maindata(1, timeout=120)
        first = second[0]
        metrics = _metrics(server.url)
        while metrics.get("poll_duration_seconds_count", 0) < 1:
            if time.monotonic() - first.done_at > 120:
                raise TimeoutError("the first poll never ended")
            time.sleep(0.05)
            metrics = _metrics(server.url)
        first_done_seen = time.monotonic()
        first_duration = metrics["poll_duration_seconds_sum"]
        login = next(e for e in proxy.exchanges if "/auth/login" in e.path)
        proxy.wait_maindata(2, timeout=60)
        first_cpu = (samples_at[1][0] - samples_at[0][0]) / 1e9
        out.update(
            {
                "first_poll_server_ms": _ms(first_duration),
                "first_poll_qbt_answer_ms": _ms(first.done_at - first.sent_at),
                "first_poll_after_answer_ms": _ms(login.sent_at + first_duration - first.done_at),
                "first_poll_from_process_start_s": round(login.sent_at + first_duration - process_start, 2),
                "first_poll_seen_done_from_process_start_s": round(first_done_seen - process_start, 2),
                "first_poll_server_cpu_ms_incl_1s_sleep": _ms(first_cpu),
                "first_poll_wire_bytes": first.wire_bytes,
                "first_poll_json_bytes": first.json_bytes,
                "first_poll_encoding": first.encoding or "identity",
                "first_poll_errors": _errors(metrics),
            }
        )
        _log(
            f"first full poll {first_duration * 1000:.0f} ms in the server "
            f"(qBittorrent answered in {(first.done_at - first.sent_at) * 1000:.0f} ms, "
            f"{first.wire_bytes} bytes {first.encoding or 'identity'}, {first.json_bytes} decompressed)"
        )

        # -- one SSE client, for the rest of the run ---------------------------------------
        reader = SSEReader(server.url + "api/events", timeout=120)
        stack.callback(reader.close)
        opening = reader.wait(lambda ms: [m for m in ms if m.event == "snapshot"], 60, "the first snapshot")[
            0
        ]
        out["snapshot_torrents"] = len(opening.json()["torrents"])
        if out["snapshot_torrents"] != n:
            raise RuntimeError(f"the server's snapshot holds {out['snapshot_torrents']} torrents, not {n}")

        def next_answer(timeout: float = 60.0) -> int:
            """Wait for the next maindata answer; its index."""
            count = len(proxy.maindata())
            return len(proxy.wait_maindata(count + 1, timeout)) - 1

        def cycle_cpu(index: int) -> tuple[float, float]:
            """(server, qBittorrent) CPU seconds between maindata request ``index`` and the next."""
            a, b = samples_at[index], samples_at[index + 1]
            return (b[0] - a[0]) / 1e9, (b[2] - a[2]) / 1e9

        # -- idle window: polls with nothing changing ---------------------------------------
        for _ in range(2):
            next_answer()
        m0 = _metrics(server.url)
        first_idle = next_answer()
        last_idle = first_idle
        for _ in range(idle_polls):
            last_idle = next_answer()
        m1 = _metrics(server.url)
        idle_idx = list(range(first_idle, last_idle))
        answers = proxy.maindata()
        idle_server = [cycle_cpu(i)[0] for i in idle_idx]
        idle_qbt = [cycle_cpu(i)[1] for i in idle_idx]
        idle_psutil = (samples_at[last_idle][1] - samples_at[first_idle][1]) / len(idle_idx)
        idle_period = (answers[last_idle].sent_at - answers[first_idle].sent_at) / len(idle_idx)
        out.update(
            {
                "idle_polls_measured": len(idle_idx),
                "idle_server_cpu_ms_p50": _ms(statistics.median(idle_server), 2),
                "idle_server_cpu_ms_max": _ms(max(idle_server), 2),
                "idle_server_cpu_ms_psutil_mean": _ms(idle_psutil, 2),
                "idle_wire_bytes_p50": int(statistics.median(answers[i].wire_bytes for i in idle_idx)),
                "idle_qbt_answer_ms_p50": _ms(
                    statistics.median(answers[i].done_at - answers[i].sent_at for i in idle_idx)
                ),
                "idle_qbt_answer_ms_max": _ms(max(answers[i].done_at - answers[i].sent_at for i in idle_idx)),
                "idle_qbt_cpu_ms_p50": _ms(statistics.median(idle_qbt)),
                "idle_poll_period_ms": _ms(idle_period),
                "idle_poll_duration_ms_mean": _ms(
                    (m1["poll_duration_seconds_sum"] - m0["poll_duration_seconds_sum"])
                    / max(1, m1["poll_duration_seconds_count"] - m0["poll_duration_seconds_count"])
                ),
            }
        )
        _log(
            f"idle: server {out['idle_server_cpu_ms_p50']} ms CPU per poll, qBittorrent answers in "
            f"{out['idle_qbt_answer_ms_p50']} ms, period {out['idle_poll_period_ms']} ms"
        )

        # -- steady state: `changing` torrents change between two polls --------------------
        rounds: list[dict[str, Any]] = []
        changed_at = 0
        diffs_before = len(reader.events("diff"))
        m0 = _metrics(server.url)
        for r in range(warmup + polls):
            after = next_answer()
            time.sleep(SETTLE)
            kind = KINDS[r % len(KINDS)]
            chosen = [hashes[(changed_at + k) % n] for k in range(changing)]
            changed_at += changing
            began = time.monotonic()
            label = f"pr-{r:03d}"
            if kind == "category":
                client.torrents_create_category(name=label)
                client.torrents_set_category(category=label, torrent_hashes=chosen)
            elif kind == "tags":
                client.torrents_add_tags(tags=label, torrent_hashes=chosen)
            else:
                for h in chosen:
                    client.torrents_rename(torrent_hash=h, new_torrent_name=f"{label}-{h[:8]}")
            rounds.append({"kind": kind, "after": after, "began": began, "done": time.monotonic()})
        last = next_answer()
        proxy.wait_maindata(last + 2, timeout=60)  # the poll of `last` has ended: its CPU is in
        m1 = _metrics(server.url)
        answers = proxy.maindata()
        measured = rounds[warmup:]
        steady_idx = [rd["after"] + 1 for rd in measured]
        late = sum(1 for rd in measured if rd["done"] > answers[rd["after"] + 1].sent_at)
        steady_server = [cycle_cpu(i)[0] for i in steady_idx]
        steady_qbt = [cycle_cpu(i)[1] for i in steady_idx]
        first_s, last_s = steady_idx[0], steady_idx[-1] + 1
        psutil_window = samples_at[last_s][1] - samples_at[first_s][1]
        window_polls = last_s - first_s
        diffs = [len(m.json().get("changed") or {}) for m in reader.events("diff")[diffs_before:]]
        by_kind: dict[str, list[float]] = {}
        for rd, cpu in zip(measured, steady_server, strict=True):
            by_kind.setdefault(rd["kind"], []).append(cpu)
        p50 = statistics.median(steady_server)
        out.update(
            {
                "steady_polls_measured": len(steady_idx),
                "steady_rounds_late": late,
                "steady_change_call_ms_p50": _ms(
                    statistics.median(rd["done"] - rd["began"] for rd in measured)
                ),
                "steady_server_cpu_ms_p50": _ms(p50, 2),
                "steady_server_cpu_ms_max": _ms(max(steady_server), 2),
                "steady_server_cpu_ms_above_idle_p50": _ms(p50 - statistics.median(idle_server), 2),
                **{
                    f"steady_server_cpu_ms_p50_{kind}": _ms(statistics.median(v), 2)
                    for kind, v in sorted(by_kind.items())
                },
                "steady_server_cpu_ms_psutil_mean": _ms(psutil_window / window_polls, 2),
                "steady_server_cpu_ms_psutil_mean_above_idle": _ms(
                    psutil_window / window_polls - idle_psutil, 2
                ),
                "steady_wire_bytes_p50": int(statistics.median(answers[i].wire_bytes for i in steady_idx)),
                "steady_wire_bytes_max": max(answers[i].wire_bytes for i in steady_idx),
                "steady_json_bytes_p50": int(statistics.median(answers[i].json_bytes for i in steady_idx)),
                "steady_encoding": ",".join(sorted({answers[i].encoding or "identity" for i in steady_idx})),
                "steady_qbt_answer_ms_p50": _ms(
                    statistics.median(answers[i].done_at - answers[i].sent_at for i in steady_idx)
                ),
                "steady_qbt_answer_ms_max": _ms(
                    max(answers[i].done_at - answers[i].sent_at for i in steady_idx)
                ),
                "steady_qbt_cpu_ms_p50": _ms(statistics.median(steady_qbt)),
                "steady_poll_period_ms": _ms(
                    (answers[last_s].sent_at - answers[first_s].sent_at) / window_polls
                ),
                "steady_poll_duration_ms_mean": _ms(
                    (m1["poll_duration_seconds_sum"] - m0["poll_duration_seconds_sum"])
                    / max(1, m1["poll_duration_seconds_count"] - m0["poll_duration_seconds_count"])
                ),
                "steady_polls_by_metrics": int(
                    m1["poll_duration_seconds_count"] - m0["poll_duration_seconds_count"]
                ),
                "steady_diffs": len(diffs),
                "steady_torrents_per_diff_p50": statistics.median(diffs) if diffs else None,
                "steady_torrents_per_diff_min": min(diffs) if diffs else None,
                "steady_torrents_per_diff_max": max(diffs) if diffs else None,
                "poll_errors_total": _errors(m1),
            }
        )
        _log(
            f"steady: server {out['steady_server_cpu_ms_p50']} ms CPU per poll (max "
            f"{out['steady_server_cpu_ms_max']}), {out['steady_wire_bytes_p50']} bytes per answer, "
            f"{out['steady_rounds_late']} late rounds, torrents per diff {diffs}"
        )

        # -- snapshot to a new client ---------------------------------------------------------
        cold: list[float] = []
        cached: list[float] = []
        size = 0
        for k in range(samples):
            h = hashes[k]
            name = f"pr-snap-{k}-{h[:8]}"
            since = len(reader.events("diff"))
            client.torrents_rename(torrent_hash=h, new_torrent_name=name)

            def renamed(messages: list[Any], h: str = h, name: str = name, since: int = since) -> bool:
                diffs = [m for m in messages if m.event == "diff" and m.data is not None][since:]
                return any((m.json().get("changed") or {}).get(h, {}).get("name") == name for m in diffs)

            reader.wait(renamed, 30, "the rename's diff")
            cold.append(_fetch_snapshot(server.port)[1])
            _, took, size = _fetch_snapshot(server.port)
            cached.append(took)
        out.update(
            {
                "snapshot_response_bytes": size,
                "snapshot_to_new_client_cold_ms_p50": _ms(statistics.median(cold)),
                "snapshot_to_new_client_cold_ms_max": _ms(max(cold)),
                "snapshot_to_new_client_cached_ms_p50": _ms(statistics.median(cached)),
                "snapshot_to_new_client_cached_ms_max": _ms(max(cached)),
                "server_rss_mb": round(psutil.Process(server_pid).memory_info().rss / 2**20, 1),
                "qbt_rss_mb": round(psutil.Process(qbt_pid).memory_info().rss / 2**20, 1),
                "poll_errors_total": _errors(_metrics(server.url)),
            }
        )
        _log(f"snapshot cold p50 {out['snapshot_to_new_client_cold_ms_p50']} ms, size {size}")
    return out


def table(result: dict[str, Any]) -> str:
    """The figures as a markdown table."""
    if "error" in result:
        return f"\nPoll cost against a real qbittorrent-nox: {result['error']}"
    return figure_table(
        f"Poll cost against a real qbittorrent-nox ({result['torrents']:,} paused torrents, "
        f"{result['changing_per_poll']} changing per poll, poll interval {result['poll_interval_s']:g} s):",
        result,
    )


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m bench.pollreal", description=__doc__.splitlines()[0])
    parser.add_argument("--torrents", type=int, default=10_000)
    parser.add_argument("--changing", type=int, default=300)
    parser.add_argument("--polls", type=int, default=20)
    args = parser.parse_args()
    from .fanout import ROOT

    figures = run_pollreal(
        args.torrents, changing=args.changing, polls=args.polls, log_dir=ROOT / "bench" / "results" / "logs"
    )
    print(json.dumps(figures, indent=2))
    print(table(figures))
