"""Another web site for the browser tests: pages served from loopback by a small HTTP server.

Served for real rather than through ``page.route``: Chromium counts a routed page as a public
one, and its Private Network Access rules would then block every request to 127.0.0.1 before
quart-dl saw it (a protection Firefox and Safari do not have, and that never applies between
two LAN addresses, the ``0.0.0.0`` bind's case). Chromium maps ``rebind.test`` and
``evil.test`` to 127.0.0.1 (``--host-resolver-rules``, conftest.py), so one server here is
every other site the tests need; the ``site`` fixture (conftest.py) gives each test one.
"""

from __future__ import annotations

import http.server
import threading
from typing import Any


class Site:
    """Pages by path, served to any host name that resolves to loopback."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.get(self.path.partition("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def page(self, name: str, path: str, body: str) -> str:
        """Serve ``body`` at ``path``; its URL under the host ``name``."""
        self.pages[path] = body
        return f"http://{name}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
