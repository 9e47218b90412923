"""Applying snapshots and diffs to the integration's view, as protocol.md defines them
(version 1 for one instance, version 2 for several)."""

from __future__ import annotations

from custom_components.quart_dl.models import DOWNLOADING_PHASES, InstanceState, ServerState

A = "a" * 40
B = "b" * 40


def _record(torrent_hash: str, **fields: object) -> dict[str, object]:
    return {"hash": torrent_hash, "name": torrent_hash[:4], "phase": "downloading", **fields}


def _one(**torrents: dict[str, object]) -> ServerState:
    """A protocol 1 view of the instance ``default`` holding ``torrents`` (hash → record)."""
    return ServerState(instances={"default": InstanceState(torrents=dict(torrents))})


def test_snapshot_replaces_everything() -> None:
    """A snapshot is the whole truth: torrents not in it are gone."""
    state = _one(**{B: _record(B)})
    state.apply_snapshot(
        {
            "v": 1,
            "torrents": {A: _record(A)},
            "status": {"qbittorrent": "connected"},
            "transfer": {"dl_speed": 5},
            "heartbeat": 2,
        }
    )
    assert set(state.primary.torrents) == {A}
    assert state.primary.qbittorrent_connected
    assert state.primary.speed("dl_speed") == 5
    assert state.heartbeat == 2.0


def test_diff_merges_fields_and_reports_events() -> None:
    """Changed fields merge; ``added``/``completed`` come back with full records."""
    state = _one(**{A: _record(A, progress=0.5, size=10)})
    result = state.apply_diff(
        {
            "changed": {
                A: {"progress": 1.0, "phase": "seeding", "complete": True},
                B: _record(B, size=3),
            },
            "added": [B],
            "completed": [A],
            "transfer": {"dl_speed": 0},
        }
    )
    torrents = state.primary.torrents
    assert torrents[A]["progress"] == 1.0
    assert torrents[A]["size"] == 10
    assert [r["hash"] for r in result.added] == [B]
    assert result.completed[0]["name"] == A[:4]
    assert result.completed[0]["size"] == 10
    assert result.instance_id == "default"
    assert state.primary.count(DOWNLOADING_PHASES) == 1


def test_unknown_hash_in_changed_is_a_new_torrent() -> None:
    """The protocol's rule: take the record as it is."""
    state = ServerState()
    state.apply_diff({"changed": {A: {"name": "late", "phase": "stalled"}}})
    assert state.primary.torrents[A] == {"hash": A, "name": "late", "phase": "stalled"}
    assert state.primary.count(DOWNLOADING_PHASES) == 1


def test_completed_and_removed_in_one_diff_keeps_the_name() -> None:
    """A torrent completed and removed by the same event still names itself in the event."""
    state = _one(**{A: _record(A, size=7, save_path="/d")})
    result = state.apply_diff({"changed": {}, "completed": [A], "removed": [A]})
    assert A not in state.primary.torrents
    assert result.completed[0]["name"] == A[:4]
    assert result.completed[0]["save_path"] == "/d"


def test_from_rest() -> None:
    """The REST answers of an older server build one instance, ``default``."""
    state = ServerState.from_rest(
        {
            "status": {"qbittorrent": "unreachable"},
            "transfer": {"up_speed": 3},
            "heartbeat": 1.0,
            "version": "0.1.0",
            "protocol": 1,
        },
        {"torrents": [_record(A)], "count": 1, "event_id": "x-1"},
    )
    assert set(state.primary.torrents) == {A}
    assert not state.primary.qbittorrent_connected
    assert state.primary.speed("up_speed") == 3
    assert (state.heartbeat, state.version) == (1.0, "0.1.0")
    # A server without server_id or instances (protocol v1 before issue #13).
    assert state.server_id is None
    assert state.protocol == 1
    assert (state.primary.id, state.primary.name) == ("default", "qBittorrent")


def test_from_rest_takes_the_server_id_and_the_primary_instance() -> None:
    """``server_id`` and the first of ``instances`` (the primary, in configured order)."""
    state = ServerState.from_rest(
        {
            "status": {},
            "protocol": 1,
            "server_id": "db1",
            "instances": {"home": {"name": "Home"}, "seedbox": {"name": "Seedbox"}},
        },
        {"torrents": []},
    )
    assert state.server_id == "db1"
    assert (state.primary.id, state.primary.name) == ("home", "Home")
    nameless = ServerState.from_rest(
        {"status": {}, "protocol": 1, "server_id": "", "instances": {"nas": {}}}, {"torrents": []}
    )
    assert nameless.server_id is None
    assert (nameless.primary.id, nameless.primary.name) == ("nas", "nas")


def _instances(*described: tuple[str, str]) -> dict[str, object]:
    return {
        "instances": [
            {
                "id": key,
                "name": name,
                "version": "v4.5.2",
                "status": {"qbittorrent": "connected"},
                "transfer": {"dl_speed": 1},
            }
            for key, name in described
        ]
    }


def test_from_rest_with_instances_keeps_each_instances_torrents() -> None:
    """``/api/instances`` gives every instance; ``/api/torrents`` records go to theirs, the
    same hash in two instances (cross-seeding) twice."""
    state = ServerState.from_rest(
        {"status": {}, "protocol": 1, "server_id": "db1"},
        {
            "torrents": [
                _record(A, instance="home"),
                _record(A, instance="nas"),
                _record(B, instance="nas"),
                _record(B, instance="gone"),
            ]
        },
        _instances(("home", "Home"), ("nas", "NAS")),
    )
    assert state.protocol == 2
    assert list(state.instances) == ["home", "nas"]
    assert set(state.instances["home"].torrents) == {A}
    assert set(state.instances["nas"].torrents) == {A, B}
    assert state.instances["nas"].version == "v4.5.2"
    assert state.total_torrents == 3
    assert state.total_speed("dl_speed") == 2


def test_v2_snapshot_replaces_the_instance_set() -> None:
    """A v2 snapshot names every instance: one it lacks is gone, a new one comes."""
    state = ServerState.from_rest(
        {"status": {}}, {"torrents": []}, _instances(("home", "Home"), ("old", "Old"))
    )
    state.apply_snapshot(
        {
            "v": 2,
            "heartbeat": 3,
            "instances": {
                "home": {
                    "id": "home",
                    "name": "Home",
                    "status": {"qbittorrent": "connected"},
                    "transfer": {"dl_speed": 7},
                },
                "new": {"id": "new", "name": "New", "status": {}, "transfer": {"dl_speed": 5}},
            },
            "torrents": {"home": {A: _record(A, instance="home")}, "new": {}},
            "transfer": {"dl_speed": 12},
        }
    )
    assert list(state.instances) == ["home", "new"]
    assert set(state.instances["home"].torrents) == {A}
    assert state.instances["home"].version == "v4.5.2"
    assert state.instances["new"].name == "New"
    assert state.total_speed("dl_speed") == 12
    assert state.heartbeat == 3.0


def test_v2_diff_and_status_go_to_their_instance() -> None:
    """A v2 diff or status names its instance; an instance not known yet is added."""
    state = ServerState.from_rest(
        {"status": {}}, {"torrents": []}, _instances(("home", "Home"), ("nas", "NAS"))
    )
    result = state.apply_diff(
        {"instance": "nas", "changed": {A: _record(A)}, "added": [A], "transfer": {"dl_speed": 9}}
    )
    assert result.instance_id == "nas"
    assert set(state.instances["nas"].torrents) == {A}
    assert state.instances["home"].torrents == {}
    assert state.instances["nas"].speed("dl_speed") == 9
    state.apply_status({"instance": "home", "qbittorrent": "unreachable"})
    assert state.instances["home"].status == {"qbittorrent": "unreachable"}
    assert state.instances["nas"].qbittorrent_connected
    state.apply_diff({"instance": "later", "changed": {B: _record(B)}})
    assert list(state.instances) == ["home", "nas", "later"]


def test_apply_instances_adds_drops_and_renames_but_keeps_pushed_state() -> None:
    """``/api/instances`` after a resumed stream: the set and names, not the torrents."""
    state = ServerState.from_rest(
        {"status": {}},
        {"torrents": [_record(A, instance="home")]},
        _instances(("home", "Home"), ("old", "Old")),
    )
    assert state.apply_instances(_instances(("home", "House"), ("new", "New")))
    assert list(state.instances) == ["home", "new"]
    assert state.instances["home"].name == "House"
    assert set(state.instances["home"].torrents) == {A}
    assert not state.apply_instances(_instances(("home", "House"), ("new", "New")))
