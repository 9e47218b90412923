"""Applying snapshots and diffs to the integration's view, as protocol.md defines them."""

from __future__ import annotations

from custom_components.quart_dl.models import DOWNLOADING_PHASES, ServerState

A = "a" * 40
B = "b" * 40


def _record(torrent_hash: str, **fields: object) -> dict[str, object]:
    return {"hash": torrent_hash, "name": torrent_hash[:4], "phase": "downloading", **fields}


def test_snapshot_replaces_everything() -> None:
    """A snapshot is the whole truth: torrents not in it are gone."""
    state = ServerState(torrents={B: _record(B)})
    state.apply_snapshot(
        {
            "v": 1,
            "torrents": {A: _record(A)},
            "status": {"qbittorrent": "connected"},
            "transfer": {"dl_speed": 5},
            "heartbeat": 2,
        }
    )
    assert set(state.torrents) == {A}
    assert state.qbittorrent_connected
    assert state.speed("dl_speed") == 5
    assert state.heartbeat == 2.0


def test_diff_merges_fields_and_reports_events() -> None:
    """Changed fields merge; ``added``/``completed`` come back with full records."""
    state = ServerState(torrents={A: _record(A, progress=0.5, size=10)})
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
    assert state.torrents[A]["progress"] == 1.0
    assert state.torrents[A]["size"] == 10
    assert [r["hash"] for r in result.added] == [B]
    assert result.completed[0]["name"] == A[:4]
    assert result.completed[0]["size"] == 10
    assert state.count(DOWNLOADING_PHASES) == 1


def test_unknown_hash_in_changed_is_a_new_torrent() -> None:
    """The protocol's rule: take the record as it is."""
    state = ServerState()
    state.apply_diff({"changed": {A: {"name": "late", "phase": "stalled"}}})
    assert state.torrents[A] == {"hash": A, "name": "late", "phase": "stalled"}
    assert state.count(DOWNLOADING_PHASES) == 1


def test_completed_and_removed_in_one_diff_keeps_the_name() -> None:
    """A torrent completed and removed by the same event still names itself in the event."""
    state = ServerState(torrents={A: _record(A, size=7, save_path="/d")})
    result = state.apply_diff({"changed": {}, "completed": [A], "removed": [A]})
    assert A not in state.torrents
    assert result.completed[0]["name"] == A[:4]
    assert result.completed[0]["save_path"] == "/d"


def test_from_rest() -> None:
    """The REST answers build the same view a snapshot would."""
    state = ServerState.from_rest(
        {"status": {"qbittorrent": "unreachable"}, "transfer": {"up_speed": 3},
         "heartbeat": 1.0, "version": "0.1.0", "protocol": 1},
        {"torrents": [_record(A)], "count": 1, "event_id": "x-1"},
    )
    assert set(state.torrents) == {A}
    assert not state.qbittorrent_connected
    assert state.speed("up_speed") == 3
    assert (state.heartbeat, state.version) == (1.0, "0.1.0")
    # A server without server_id or instances (protocol v1 before issue #13).
    assert state.server_id is None
    assert (state.instance_id, state.instance_name) == ("default", "qBittorrent")


def test_from_rest_takes_the_server_id_and_the_primary_instance() -> None:
    """``server_id`` and the first of ``instances`` (the primary, in configured order)."""
    state = ServerState.from_rest(
        {"status": {}, "protocol": 1, "server_id": "db1",
         "instances": {"home": {"name": "Home"}, "seedbox": {"name": "Seedbox"}}},
        {"torrents": []},
    )
    assert state.server_id == "db1"
    assert (state.instance_id, state.instance_name) == ("home", "Home")
    nameless = ServerState.from_rest(
        {"status": {}, "protocol": 1, "server_id": "", "instances": {"nas": {}}}, {"torrents": []}
    )
    assert nameless.server_id is None
    assert (nameless.instance_id, nameless.instance_name) == ("nas", "nas")
