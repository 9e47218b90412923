"""The OpenAPI description (``/openapi.json``) and schemathesis against a real server.

The server is a real ``python -m quart_dl serve`` process following the real qbittorrent-nox
leecher of ``pair``, which holds one torrent, so the list and record answers are real ones.
schemathesis generates requests from the description and checks every answer: never a 5xx,
only documented statuses and content types, bodies that match their schemas, and every 4xx a
JSON body naming the problem. The endless streams are left out (they never answer in full);
tests/test_hostile.py covers them.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from schemathesis.core.result import Ok

from quart_dl.lab.server_process import ServerFactory, ServerProcess, get_json
from quart_dl.lab.transfer import TransferPair, make_payload, make_torrent

STREAMS = ("/api/events", "/api/torrents/{torrent_hash}/events")
#: The action routes (POST; refused here with 403, the server has no token and
#: open_actions is off: tests/test_actions*.py act) and the label routes beside them.
ACTION_ROUTES = ("/api/torrents/actions", "/api/transfer", "/api/torrents/add")
LABEL_ROUTES = ("/api/access", "/api/categories", "/api/tags")
#: One instance's routes (instance_api.py).
INSTANCE_ROUTES = (
    "/api/instances",
    "/api/instances/{instance_id}",
    "/api/instances/{instance_id}/torrents",
    "/api/instances/{instance_id}/torrents/{torrent_hash}",
    "/api/instances/{instance_id}/status",
    "/api/instances/{instance_id}/history",
)


@pytest.fixture
def server(pair: TransferPair, make_server: ServerFactory, tmp_path: Path) -> ServerProcess:
    """A server whose qBittorrent holds one (stopped) torrent."""
    data = make_torrent(make_payload(tmp_path / "payload", "openapi.bin", 64 * 1024))
    pair.leecher_client.torrents_add(torrent_files=data, save_path=str(tmp_path / "dl"), is_paused=True)
    running = make_server()
    deadline = time.monotonic() + 15
    while get_json(running.url + "api/torrents")["count"] == 0:
        assert time.monotonic() < deadline, "the torrent never showed up"
        time.sleep(0.1)
    return running


def test_openapi_json_is_valid_and_lists_every_route(server: ServerProcess) -> None:
    spec = get_json(server.url + "openapi.json")
    assert spec["openapi"].startswith("3.")
    paths = set(spec["paths"])
    assert paths == {
        "/api/torrents",
        "/api/torrents/{torrent_hash}",
        "/api/torrents/{torrent_hash}/events",
        "/api/events",
        "/api/status",
        "/api/history",
        *INSTANCE_ROUTES,
        "/healthz",
        "/metrics",
        *ACTION_ROUTES,
        *LABEL_ROUTES,
    }
    # every operation documents its answers, and query parameters are described
    for path, methods in spec["paths"].items():
        method = "post" if path in ACTION_ROUTES else "get"
        assert set(methods) == {method}, path
        assert methods[method]["responses"], path
        if method == "post":
            assert methods[method]["requestBody"], path
            assert {"200", "400", "403"} <= set(methods[method]["responses"]), path
    params = {p["name"] for p in spec["paths"]["/api/torrents"]["get"]["parameters"]}
    assert params == {"phase", "sort", "order", "instance"}
    params = {p["name"] for p in spec["paths"]["/api/instances/{instance_id}/torrents"]["get"]["parameters"]}
    assert params == {"instance_id", "phase", "sort", "order"}
    params = {p["name"] for p in spec["paths"]["/api/history"]["get"]["parameters"]}
    assert params == {"minutes", "hash", "instance"}
    events = spec["paths"]["/api/events"]["get"]
    assert {p["name"] for p in events["parameters"]} == {"heartbeat", "lastEventId"}
    assert "text/event-stream" in events["responses"]["200"]["content"]
    # schemathesis validates it against the OpenAPI 3 meta-schema
    schemathesis.openapi.from_url(server.url + "openapi.json").validate()


def test_no_documentation_pages_that_fetch_from_a_cdn(server: ServerProcess) -> None:
    for path in ("docs", "redocs", "scalar"):
        try:
            with urllib.request.urlopen(server.url + path, timeout=5) as reply:
                body = reply.read()
                status = reply.status
        except urllib.error.HTTPError as exc:
            body, status = exc.read(), exc.code
        assert status == 404, path
        assert b"cdn" not in body.lower()


def error_body_names_the_problem(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx is JSON ``{"error": code, "message": sentence}``."""
    if 400 <= response.status_code < 500:
        headers = {k.lower(): v for k, v in response.headers.items()}
        content_type = headers.get("content-type", [""])
        content_type = content_type[0] if isinstance(content_type, list) else content_type
        assert content_type.startswith("application/json"), content_type
        body = json.loads(response.content)
        assert isinstance(body.get("error"), str), body
        assert body["error"], body
        assert isinstance(body.get("message"), str), body
        assert body["message"], body
    return None


POSITIVE_CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    error_body_names_the_problem,
]
#: Values the description forbids must be refused (a 4xx), so the description is exact.
NEGATIVE_CHECKS = [
    checks.not_a_server_error,
    checks.negative_data_rejection,
    checks.content_type_conformance,
    error_body_names_the_problem,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis(server: ServerProcess, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(server.url + "openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the schema has an operation schemathesis cannot use: {result.err()}"
        operations.append(result.ok())
    tested = []
    started = time.monotonic()
    for operation in operations:
        if operation.path in STREAMS:
            continue
        if mode == GenerationMode.NEGATIVE and not operation.definition.raw.get("parameters"):
            continue  # nothing to get wrong
        tested.append(operation.path)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=50,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            checks = POSITIVE_CHECKS if mode == GenerationMode.POSITIVE else NEGATIVE_CHECKS
            case.call_and_validate(base_url=server.url.rstrip("/"), checks=checks, timeout=10)

        run()
    with_parameters = {
        "/api/torrents",
        "/api/torrents/{torrent_hash}",
        "/api/history",
        "/api/categories",
        "/api/tags",
        *INSTANCE_ROUTES[1:],
    }
    without = {"/api/status", "/healthz", "/metrics", "/api/instances", "/api/access", *ACTION_ROUTES}
    assert set(tested) == (with_parameters | without if mode == GenerationMode.POSITIVE else with_parameters)
    assert time.monotonic() - started < 60
    assert "Traceback" not in server.log_text()
