"""The torrent table: merging partial maindata, change sets, completion, phases."""

from __future__ import annotations

import random

import pytest
from fakes import H1, H2, H3, full_update, partial_update, raw_torrent, seeding_torrent

from quart_dl.torrents import (
    ETA_INFINITY,
    FIELDS,
    PHASES,
    ChangeSet,
    TorrentTable,
    is_complete,
    phase_of,
    project,
    transfer_of,
)


def table_with(*hashes: str) -> TorrentTable:
    table = TorrentTable()
    table.apply(full_update({h: raw_torrent(f"t-{h[:4]}") for h in hashes}))
    return table


# -- projection --------------------------------------------------------------------------------


def test_project_gives_every_public_field() -> None:
    record = project(H1, raw_torrent(tags="linux, iso", category="os"))
    assert tuple(record) == FIELDS
    assert record == {
        "hash": H1,
        "name": "debian.iso",
        "state": "downloading",
        "phase": "downloading",
        "progress": 0.31,
        "complete": False,
        "size": 2_097_152,
        "downloaded": 650_117,
        "amount_left": 1_447_035,
        "dl_speed": 204_800,
        "up_speed": 0,
        "eta": 7,
        "ratio": 0.0,
        "seeds": 1,
        "peers": 0,
        "category": "os",
        "tags": ["linux", "iso"],
        "save_path": "/downloads",
        "added_at": 1_764_446_400,
        "completed_at": None,
    }


def test_eta_infinity_is_none() -> None:
    assert project(H1, raw_torrent(eta=ETA_INFINITY))["eta"] is None
    assert project(H1, raw_torrent(eta=0))["eta"] is None
    assert project(H1, raw_torrent(eta=120))["eta"] == 120


def test_bad_numbers_do_not_raise() -> None:
    record = project(H1, raw_torrent(size="lots", progress=None, eta="?"))
    assert record["size"] == 0
    assert record["progress"] == 0.0
    assert record["eta"] is None


@pytest.mark.parametrize(
    ("state", "phase"),
    [
        ("downloading", "downloading"),
        ("forcedDL", "downloading"),
        ("metaDL", "downloading"),
        ("forcedMetaDL", "downloading"),
        ("uploading", "seeding"),
        ("forcedUP", "seeding"),
        ("stalledUP", "seeding"),
        ("stalledDL", "stalled"),
        ("pausedDL", "paused"),
        ("pausedUP", "paused"),
        ("stoppedDL", "paused"),
        ("stoppedUP", "paused"),
        ("queuedDL", "queued"),
        ("queuedUP", "queued"),
        ("checkingDL", "checking"),
        ("checkingUP", "checking"),
        ("checkingResumeData", "checking"),
        ("moving", "checking"),
        ("allocating", "checking"),
        ("error", "error"),
        ("missingFiles", "error"),
        ("somethingNew", "unknown"),
        ("", "unknown"),
    ],
)
def test_phase_mapping(state: str, phase: str) -> None:
    assert phase_of(state) == phase
    assert phase in PHASES


def test_completion_needs_nothing_left_and_an_upload_state() -> None:
    assert is_complete("stalledUP", 0)
    assert is_complete("pausedUP", 0)
    assert not is_complete("stalledUP", 1)
    assert not is_complete("downloading", 0)
    # qBittorrent shows progress 1.0 while a few bytes are still missing
    record = project(H1, raw_torrent(progress=1.0, amount_left=16_384, state="uploading"))
    assert record["progress"] == 1.0
    assert record["complete"] is False
    assert record["completed_at"] is None


def test_transfer_of_server_state() -> None:
    assert transfer_of(
        {"dl_info_speed": 5, "up_info_speed": 6, "dl_info_data": 7, "up_info_data": 8, "x": 1}
    ) == {
        "dl_speed": 5,
        "up_speed": 6,
        "dl_total": 7,
        "up_total": 8,
        "alt_speed": False,
        "dl_limit": 0,
        "up_limit": 0,
    }


def test_transfer_carries_alt_speed_and_global_limits_through_partial_updates() -> None:
    table = TorrentTable()
    state = {"dl_info_data": 1, "use_alt_speed_limits": True, "dl_rate_limit": 1000, "up_rate_limit": -1}
    table.apply({"rid": 1, "full_update": True, "torrents": {}, "server_state": state})
    limits = (table.transfer["alt_speed"], table.transfer["dl_limit"], table.transfer["up_limit"])
    assert limits == (True, 1000, 0)
    # A partial server_state names only what changed: the rest is kept.
    changes = table.apply({"rid": 2, "server_state": {"use_alt_speed_limits": False}})
    assert changes.transfer is not None
    assert changes.transfer["alt_speed"] is False
    assert changes.transfer["dl_limit"] == 1000


# -- merging -----------------------------------------------------------------------------------


def test_first_full_update_adds_full_records() -> None:
    table = TorrentTable()
    changes = table.apply(full_update({H1: raw_torrent("a"), H2: raw_torrent("b")}))
    assert sorted(changes.added) == sorted([H1, H2])
    assert changes.changed[H1] == project(H1, raw_torrent("a"))
    assert changes.changed[H2]["name"] == "b"
    assert set(table.records) == {H1, H2}
    assert changes.removed == []


def test_partial_update_is_merged_into_the_full_record() -> None:
    table = table_with(H1, H2)
    changes = table.apply(partial_update({H1: {"progress": 0.5, "amount_left": 1_048_576}}))
    assert changes.changed == {H1: {"progress": 0.5, "amount_left": 1_048_576}}
    assert changes.added == []
    record = table.records[H1]
    assert record["progress"] == 0.5
    assert record["name"] == f"t-{H1[:4]}"  # untouched fields kept from the full update
    assert record["size"] == 2_097_152
    assert table.records[H2]["progress"] == 0.31


def test_change_set_has_only_changed_public_fields() -> None:
    table = table_with(H1)
    changes = table.apply(partial_update({H1: {"dlspeed": 100, "progress": 0.31, "state": "stalledDL"}}))
    assert changes.changed == {H1: {"dl_speed": 100, "state": "stalledDL", "phase": "stalled"}}


def test_raw_only_churn_yields_no_change() -> None:
    table = table_with(H1)
    changes = table.apply(partial_update({H1: {"last_activity": 1_764_449_999, "time_active": 99}}))
    assert not changes
    assert changes.changed == {}
    assert changes.as_event() == {"changed": {}}


def test_unchanged_full_update_yields_no_change() -> None:
    table = table_with(H1, H2)
    changes = table.apply(full_update({h: raw_torrent(f"t-{h[:4]}") for h in (H1, H2)}, rid=9))
    assert not changes


def test_full_update_resets_and_removes_vanished_torrents() -> None:
    table = table_with(H1, H2, H3)
    # A qBittorrent restart: unknown rid → full update without H2; H1 changed meanwhile.
    changes = table.apply(
        full_update({H1: raw_torrent(f"t-{H1[:4]}", progress=0.9), H3: raw_torrent(f"t-{H3[:4]}")})
    )
    assert changes.removed == [H2]
    assert changes.changed == {H1: {"progress": 0.9}}
    assert set(table.records) == {H1, H3}
    # the raw state was reset too: a later partial for H2 is a new torrent
    changes = table.apply(partial_update({H2: {"name": "back"}}))
    assert changes.added == [H2]


def test_full_update_does_not_keep_stale_raw_keys() -> None:
    table = TorrentTable()
    table.apply(full_update({H1: raw_torrent(category="old")}))
    changes = table.apply(full_update({H1: {k: v for k, v in raw_torrent().items() if k != "category"}}))
    assert changes.changed == {H1: {"category": ""}}


def test_torrents_removed() -> None:
    table = table_with(H1, H2)
    changes = table.apply(partial_update(removed=[H1, H3]))
    assert changes.removed == [H1]  # H3 was never known: nothing to remove
    assert set(table.records) == {H2}
    event = changes.as_event()
    assert event["changed"] == {}
    assert event["removed"] == [H1]
    # the removed torrent's speed leaves the total
    assert event["transfer"]["dl_speed"] == table.records[H2]["dl_speed"]


def test_added_torrent_in_a_partial_update_carries_its_full_record() -> None:
    table = table_with(H1)
    changes = table.apply(partial_update({H2: raw_torrent("new.iso")}))
    assert changes.added == [H2]
    assert changes.changed[H2] == project(H2, raw_torrent("new.iso"))
    assert changes.as_event()["added"] == [H2]


def test_transfer_partial_server_state_is_merged() -> None:
    table = TorrentTable()
    first = table.apply(
        full_update(
            server_state={"dl_info_speed": 100, "up_info_speed": 5, "dl_info_data": 1000, "up_info_data": 50}
        )
    )
    limits = {"alt_speed": False, "dl_limit": 0, "up_limit": 0}
    assert first.transfer == {"dl_speed": 0, "up_speed": 0, "dl_total": 1000, "up_total": 50, **limits}
    changes = table.apply(partial_update(server_state={"dl_info_data": 2000}))
    assert changes.transfer == {"dl_speed": 0, "up_speed": 0, "dl_total": 2000, "up_total": 50, **limits}
    assert table.transfer == changes.transfer
    # a server_state that repeats what is known is no change
    assert table.apply(partial_update(server_state={"dl_info_data": 2000})).transfer is None
    # a server_state with only keys quart-dl does not use is no change either
    assert not table.apply(partial_update(server_state={"free_space_on_disk": 1}))


def test_regression_global_speed_reads_zero_while_torrents_download() -> None:
    # qBittorrent 4.5.2's dl_info_speed swung between 0 and bursts during a steady
    # throttled download: the panel header and Home Assistant's sensor showed 0 B/s.
    table = TorrentTable()
    table.apply(full_update({H1: raw_torrent(dlspeed=150_000, upspeed=10), H2: raw_torrent(dlspeed=50_000)}))
    changes = table.apply(partial_update({H1: {"dlspeed": 160_000}}, server_state={"dl_info_speed": 0}))
    assert changes.transfer is not None
    assert changes.transfer["dl_speed"] == 210_000
    assert table.transfer["up_speed"] == 10
    # a removed torrent no longer counts
    gone = table.apply(partial_update(removed=[H2]))
    assert gone.transfer is not None
    assert gone.transfer["dl_speed"] == 160_000


def test_speed_sums_and_active_torrents_follow_every_kind_of_update() -> None:
    # The sums and the active set are kept torrent by torrent (not recounted over the whole
    # table each poll): after any mix of partial updates, removals, re-adds and full updates
    # they must equal a recount.
    rng = random.Random(5)
    hashes = [f"{i:040x}" for i in range(1, 31)]
    known = {h: project(h, raw_torrent(dlspeed=7, upspeed=1)) for h in hashes[:5]}
    table = TorrentTable(known)
    assert set(table.active()) == set(hashes[:5])
    for step in range(300):
        if step % 50 == 49:
            answer = full_update(
                {h: raw_torrent(dlspeed=rng.choice((0, 5)), upspeed=rng.choice((0, 3))) for h in hashes[::2]}
            )
        else:
            picked = rng.sample(hashes, 6)
            answer = partial_update(
                {
                    h: {"dlspeed": rng.choice((0, 0, 10, 999)), "upspeed": rng.choice((0, 2))}
                    for h in picked[:4]
                }
                | {picked[4]: raw_torrent(dlspeed=rng.choice((0, 40)))},
                removed=[picked[5]] if rng.random() < 0.3 else [],
            )
        table.apply(answer)
        assert table.transfer["dl_speed"] == sum(r["dl_speed"] for r in table.records.values())
        assert table.transfer["up_speed"] == sum(r["up_speed"] for r in table.records.values())
        assert table.active() == {h: r for h, r in table.records.items() if r["dl_speed"] or r["up_speed"]}


def test_as_event_leaves_out_empty_parts() -> None:
    changes = ChangeSet(changed={H1: {"progress": 1.0}}, completed=[H1])
    assert changes.as_event() == {"changed": {H1: {"progress": 1.0}}, "completed": [H1]}


# -- completion --------------------------------------------------------------------------------


def test_completion_is_reported_once() -> None:
    table = table_with(H1)
    almost = table.apply(partial_update({H1: {"progress": 1.0, "amount_left": 4096}}))
    assert almost.completed == []
    assert table.records[H1]["complete"] is False
    done = table.apply(
        partial_update({H1: {"amount_left": 0, "state": "stalledUP", "completion_on": 1_764_446_999}})
    )
    assert done.completed == [H1]
    assert done.changed[H1]["complete"] is True
    assert done.changed[H1]["completed_at"] == 1_764_446_999
    assert done.changed[H1]["phase"] == "seeding"
    later = table.apply(partial_update({H1: {"state": "uploading", "upspeed": 10}}))
    assert later.completed == []
    paused = table.apply(partial_update({H1: {"state": "pausedUP", "upspeed": 0}}))
    assert paused.completed == []
    again = table.apply(full_update({H1: seeding_torrent(f"t-{H1[:4]}", completion_on=1_764_446_999)}))
    assert again.completed == []


def test_amount_left_zero_in_a_download_state_is_not_complete() -> None:
    table = table_with(H1)
    changes = table.apply(partial_update({H1: {"progress": 1.0, "amount_left": 0, "state": "checkingDL"}}))
    assert changes.completed == []
    assert table.records[H1]["complete"] is False


def test_completion_while_not_watching_is_reported_once() -> None:
    # What the database last saw: 31 %.
    known = {H1: project(H1, raw_torrent())}
    table = TorrentTable(known)
    changes = table.apply(full_update({H1: seeding_torrent("debian.iso")}))
    assert changes.completed == [H1]
    assert changes.added == []
    assert changes.changed[H1]["complete"] is True
    assert changes.changed[H1]["progress"] == 1.0
    assert table.apply(full_update({H1: seeding_torrent("debian.iso")}, rid=5)).completed == []


def test_known_completed_torrents_are_not_reported_again() -> None:
    known = {H1: project(H1, seeding_torrent("done.iso"))}
    assert known[H1]["completed_at"] == 1_764_446_500
    table = TorrentTable(known)
    changes = table.apply(full_update({H1: seeding_torrent("done.iso")}))
    assert changes.completed == []
    assert not changes


def test_regression_known_complete_torrent_without_completed_at_is_reported_again() -> None:
    # A seeding torrent whose completion time qBittorrent does not know (completion_on -1)
    # is complete, and the database knows it is (complete=True, completed_at=None): a restart
    # of quart-dl must not announce it as newly completed ("each completion is sent once").
    # The table seeds its completed set from completed_at instead of complete.
    known = {H1: project(H1, seeding_torrent("seeded.iso", completion_on=-1))}
    assert known[H1]["complete"] is True
    assert known[H1]["completed_at"] is None
    table = TorrentTable(known)
    changes = table.apply(full_update({H1: seeding_torrent("seeded.iso", completion_on=-1)}))
    assert changes.completed == []


def test_recheck_then_complete_again_is_news_again() -> None:
    table = TorrentTable({H1: project(H1, seeding_torrent())})
    assert not table.apply(full_update({H1: seeding_torrent()}))
    # files deleted and re-downloading: amount_left grows again
    table.apply(partial_update({H1: {"state": "downloading", "amount_left": 1024, "progress": 0.99}}))
    assert table.records[H1]["complete"] is False
    changes = table.apply(partial_update({H1: {"state": "stalledUP", "amount_left": 0, "progress": 1.0}}))
    assert changes.completed == [H1]


def test_completed_at_is_kept_when_the_raw_value_goes_missing() -> None:
    table = TorrentTable({H1: project(H1, seeding_torrent(completion_on=1_764_446_500))})
    changes = table.apply(full_update({H1: seeding_torrent(completion_on=0)}))
    assert table.records[H1]["completed_at"] == 1_764_446_500
    assert "completed_at" not in changes.changed.get(H1, {})


def test_regression_first_install_announces_every_existing_torrent() -> None:
    # A database that never saw this qBittorrent: its first full update is the baseline.
    # Hundreds of seeding torrents must not become hundreds of "added"/"completed" events
    # (Home Assistant automations would fire for each).
    table = TorrentTable(first_run=True)
    changes = table.apply(full_update({H1: seeding_torrent("old.iso"), H2: raw_torrent("new.iso")}))
    assert changes.added == []
    assert changes.completed == []
    assert set(changes.changed) == {H1, H2}  # the records themselves are still published
    later = table.apply(full_update({H1: seeding_torrent("old.iso"), H2: seeding_torrent("new.iso")}))
    assert later.completed == [H2]  # after the baseline, completions are news again


def test_not_a_first_run_reports_a_torrent_completed_while_unwatched() -> None:
    table = TorrentTable({})
    changes = table.apply(full_update({H1: seeding_torrent("done.iso")}))
    assert changes.added == [H1]
    assert changes.completed == [H1]
