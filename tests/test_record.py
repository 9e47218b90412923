"""The torrent record is declared once (quart_dl/record.py); what cannot be derived from it is checked.

Derived from the declaration: ``torrents.FIELDS``, the store's columns and upsert, the OpenAPI
description of a record, ``fakes.check_record``. Checked here: the Tortoise model has a column
of the right kind for every field, the OpenAPI description has a property for every field (and
for every key the server really sends in the answers that embed records and the status
object), the projection builds exactly the declared record, and docs/protocol.md lists every
field the server sends. The last test reads all of it from a real server following a real
qbittorrent-nox.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from fakes import H1, H2, check_record, full_update, raw_torrent, running_app, seeding_torrent

from quart_dl import record, torrents
from quart_dl.hub import Hub
from quart_dl.lab.server_process import ServerFactory, get_json
from quart_dl.lab.sse_reader import SSEReader
from quart_dl.lab.transfer import TransferPair, make_payload, make_torrent
from quart_dl.lab.wait import wait_for
from quart_dl.qbittorrent.fake import FakeSession
from quart_dl.record import FIELDS, TorrentRecord, base_type, nullable
from quart_dl.store.models import Torrent

PROTOCOL = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

#: The Tortoise field classes that can hold each declared base type.
COLUMN_KINDS: dict[type, set[str]] = {
    str: {"CharField", "TextField"},
    int: {"IntField", "BigIntField"},
    float: {"FloatField"},
    bool: {"BooleanField"},
    list: {"JSONField"},
}


# -- the declaration ---------------------------------------------------------------------------


def test_fields_are_the_declared_keys_in_order() -> None:
    assert tuple(TorrentRecord.__annotations__) == FIELDS
    assert FIELDS[0] == "hash"
    assert torrents.FIELDS is FIELDS


def test_every_field_has_a_comment_saying_what_it_is() -> None:
    source = Path(record.__file__).read_text(encoding="utf-8")
    (declaration,) = (
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == "TorrentRecord"
    )
    lines = source.splitlines()
    for node in declaration.body:
        if isinstance(node, ast.AnnAssign):
            above = lines[node.lineno - 2].strip()
            assert above.startswith("#: "), f"{ast.unparse(node.target)} has no comment"
            assert len(above) > 10, f"{ast.unparse(node.target)}: {above!r} says nothing"


def test_the_projection_builds_exactly_the_declared_record() -> None:
    for raw in (raw_torrent(tags="a, b"), seeding_torrent(), raw_torrent(eta=-1, ratio=float("inf"))):
        built = torrents.project(H1, raw)
        check_record(built)
        assert tuple(built) == FIELDS


def test_check_record_can_fail() -> None:
    built = torrents.project(H1, raw_torrent())
    without_eta = {k: v for k, v in built.items() if k != "eta"}
    for broken in ({**built, "complete": 1}, without_eta, {**built, "x": 1}):
        try:
            check_record(broken)
        except (AssertionError, ValueError):
            continue
        raise AssertionError(f"check_record accepted {broken}")


# -- the database ------------------------------------------------------------------------------


def test_the_database_model_has_a_column_for_every_field() -> None:
    columns = Torrent._meta.fields_map
    for name in FIELDS:
        assert name in columns, f"models.Torrent has no column for the record field {name!r}"
        kind = type(columns[name]).__name__
        assert kind in COLUMN_KINDS[base_type(name)], f"{name}: a {kind} cannot hold {record.TYPES[name]}"
        assert columns[name].null == nullable(name), f"{name}: null={columns[name].null}"
    # and nothing the record does not fill, beyond the key and the bookkeeping (once Tortoise
    # was initialised in this process, the foreign key also shows as its ``instance_id``)
    assert set(columns) - set(FIELDS) - {"instance_id"} == {"id", "instance", "updated_at"}


# -- the OpenAPI description -------------------------------------------------------------------


def resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` followed and ``X | None`` reduced to ``X``."""
    while True:
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        elif "anyOf" in schema:
            (schema,) = (s for s in schema["anyOf"] if s.get("type") != "null")
        else:
            return schema


def assert_described(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    """Every object in ``value`` has exactly the properties its schema describes, recursively."""
    schema = resolve(schema, spec)
    if isinstance(value, dict) and "properties" in schema:
        described = set(schema["properties"])
        assert set(value) == described, (
            f"{where}: sent {sorted(set(value) - described)} undescribed, "
            f"described {sorted(described - set(value))} not sent"
        )
        for key, item in value.items():
            assert_described(item, schema["properties"][key], spec, f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            assert_described(item, schema["items"], spec, f"{where}[]")


def answer_schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    return schema


async def test_the_openapi_record_has_a_property_for_every_field() -> None:
    async with running_app() as served:
        spec = await (await served.client.get("/openapi.json")).get_json()
    # REST records are the declared record plus the instance that holds the torrent.
    described = spec["components"]["schemas"]["InstanceTorrentRecord"]
    assert list(described["properties"]) == [*FIELDS, "instance"]
    assert described["required"] == [*FIELDS, "instance"]
    assert described["properties"]["instance"]["type"] == "string"
    for name in FIELDS:
        may_be_null = {"type": "null"} in described["properties"][name].get("anyOf", [])
        assert may_be_null == nullable(name), name


async def test_regression_openapi_status_object_lacked_database() -> None:
    qbt = FakeSession([full_update({H1: raw_torrent(), H2: seeding_torrent()})])
    async with running_app(qbt) as served:
        spec = await (await served.client.get("/openapi.json")).get_json()
        answers = {
            path: await (await served.client.get(url)).get_json()
            for path, url in (
                ("/api/status", "/api/status"),
                ("/api/torrents", "/api/torrents"),
                ("/api/torrents/{torrent_hash}", f"/api/torrents/{H1}"),
            )
        }
    status = spec["components"]["schemas"]["StatusObject"]
    assert set(status["properties"]) == set(Hub().status), "the status object the hub publishes"
    assert answers["/api/torrents"]["count"] == 2
    for path, answer in answers.items():
        assert_described(answer, answer_schema(spec, path), spec, path)


# -- docs/protocol.md --------------------------------------------------------------------------


def section(title: str) -> str:
    text = PROTOCOL.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def test_protocol_md_lists_every_record_field() -> None:
    documented: list[str] = []
    for line in section("Torrent record").splitlines():
        if line.startswith("| `"):
            documented += re.findall(r"`([a-z_]+)`", line.split("|")[1])
    assert documented == list(FIELDS)


def test_protocol_md_status_object_is_the_hubs() -> None:
    example = re.search(r"```json\n(.*?)```", section("Status object"), re.S)
    assert example is not None
    documented = json.loads(example[1])
    hub_status = Hub().status
    assert set(documented) == set(hub_status)
    assert set(documented["database"]) == set(hub_status["database"])


async def test_protocol_md_api_status_row_names_every_key_sent() -> None:
    async with running_app() as served:
        answer = await (await served.client.get("/api/status")).get_json()
    (row,) = (line for line in section("REST").splitlines() if line.startswith("| `GET /api/status`"))
    for key in [*answer, *answer["poller"], *answer["database"]]:
        assert f'"{key}"' in row, f"docs/protocol.md: GET /api/status does not name {key!r}"


# -- a real server -----------------------------------------------------------------------------


def test_real_snapshot_and_answers_carry_exactly_the_declared_and_documented_fields(
    pair: TransferPair, make_server: ServerFactory, tmp_path: Path
) -> None:
    data = make_torrent(make_payload(tmp_path / "payload", "record.bin", 64 * 1024))
    pair.leecher_client.torrents_add(torrent_files=data, save_path=str(tmp_path / "dl"), is_paused=True)
    server = make_server()
    listed: list[dict[str, Any]] = wait_for(
        lambda: get_json(server.url + "api/torrents")["torrents"], 15, "the torrent to show up"
    )
    (one,) = listed
    assert one.pop("instance") == "default"
    check_record(one)
    alone = get_json(server.url + f"api/torrents/{one['hash']}")
    assert alone.pop("instance") == "default"
    check_record(alone)
    spec = get_json(server.url + "openapi.json")
    assert_described(get_json(server.url + "api/status"), answer_schema(spec, "/api/status"), spec, "status")

    with SSEReader(server.url + "api/events", timeout=10) as reader:
        snapshot = reader.wait(
            lambda messages: next((m for m in messages if m.event == "snapshot"), None), 10, "a snapshot"
        ).json()
    assert set(snapshot) == {"v", "torrents", "status", "transfer", "heartbeat"}
    for built in snapshot["torrents"].values():
        check_record(built)
    assert set(snapshot["status"]) == set(spec["components"]["schemas"]["StatusObject"]["properties"])
    assert set(snapshot["transfer"]) == set(spec["components"]["schemas"]["Transfer"]["properties"])
    events = section("Server-Sent Events")
    for key in snapshot:
        assert f'"{key}"' in events, f"docs/protocol.md: the snapshot's {key!r} is not documented"


async def test_regression_openapi_failed_on_python_3_12() -> None:
    # quart-schema recognises only typing's TypedDict from Python 3.12 on (typing.is_typeddict),
    # pydantic only typing_extensions' before 3.12: /openapi.json was a 500 on 3.12 and 3.13.
    async with running_app() as served:
        reply = await served.client.get("/openapi.json")
        assert reply.status_code == 200
        assert "InstanceTorrentRecord" in (await reply.get_json())["components"]["schemas"]
