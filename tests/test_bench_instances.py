"""The several-instances benchmark's own logic (bench/instances.py, bench/fakeqbt.py).

Not the figures' values (a benchmark asserts nothing about the machine): that the arithmetic
of a window is right, that a poll per viewer would be called what it is, and that the quick
mode, against a real server process and the synthetic qBittorrents, produces every figure.
"""

from __future__ import annotations

import json
from typing import Any

from bench.instances import (
    Params,
    frame_torrents,
    one_per_interval_bounds,
    run_instances,
    snapshot_frame,
    summary,
    window_figures,
)


def readings(polls: dict[str, float], count: float, seconds_sum: float) -> dict[str, float]:
    """A ``/metrics`` reading as bench.common.scrape_metrics returns it."""
    out = {f'polls_total{{instance="{i}"}}': v for i, v in polls.items()}
    return out | {"poll_duration_seconds_count": count, "poll_duration_seconds_sum": seconds_sum}


def test_one_per_interval_bounds_cut_a_period_at_both_ends() -> None:
    # 20 s at 1 s: at most 21 polls; with 50 ms polls (+50 ms lateness) a period is 1.1 s.
    assert one_per_interval_bounds(20.0, 1.0, 0.05) == (17, 21)
    assert one_per_interval_bounds(0.5, 1.0, 0.0) == (0, 1)


def test_window_figures_per_instance_and_cpu_per_poll() -> None:
    before = readings({"default": 10, "second": 5}, 15, 0.3)
    after = readings({"default": 30, "second": 25}, 55, 1.1)
    figures = window_figures(before, after, cpu_s=0.2, seconds=20.0, ids=("default", "second"))
    assert figures["polls"] == {"default": 20, "second": 20}
    assert figures["cpu_ms_per_poll"] == 5.0  # 200 ms over 40 polls
    assert figures["polls_per_interval"] == {"default": 1.0, "second": 1.0}
    assert figures["poll_ms_mean"] == 20.0
    assert figures["one_per_interval"] is True


def test_a_poll_per_viewer_is_not_one_per_interval() -> None:
    # Three viewers each causing a poll: 60 polls in 20 s of one instance.
    before = readings({"default": 0}, 0, 0.0)
    after = readings({"default": 60}, 60, 0.6)
    figures = window_figures(before, after, cpu_s=0.3, seconds=20.0, ids=("default",))
    assert figures["polls_per_interval"] == {"default": 3.0}
    assert figures["one_per_interval"] is False


def phase(instances: int, cpu: float, rate: float = 1.0, one: bool = True) -> dict[str, Any]:
    window = {
        "cpu_ms_per_poll": cpu,
        "polls": {f"i{k}": 30 for k in range(instances)},
        "polls_per_interval": {"default": rate},
        "one_per_interval": one,
    }
    return {
        "instances": instances,
        "torrents_per_instance": 3000,
        "viewers": 10,
        "one_viewer": window,
        "many_viewers": window,
        "snapshot_v2_bytes": 3000 * instances,
        "snapshot_v2_torrents": 3000 * instances,
        "snapshot_v2_ms_p50": 10.0 * instances,
        "snapshot_v2_cached_ms_p50": 1.0,
        "snapshot_v1_bytes": 3000,
        "snapshot_v1_torrents": 3000,
        "snapshot_v1_ms_p50": 10.0,
        "snapshot_v1_cached_ms_p50": 1.0,
    }


def test_summary_takes_ratios_of_the_means_over_the_rounds() -> None:
    out = summary([phase(1, 4.0), phase(3, 4.4), phase(1, 4.4), phase(3, 4.8)])
    assert out["rounds"] == 2
    assert out["baseline_cpu_ms_per_poll_one_viewer"] == 4.2
    assert out["several_cpu_ms_per_poll_one_viewer"] == 4.6
    assert out["cpu_per_poll_ratio_one_viewer"] == 1.095
    assert out["cpu_per_poll_ratio_one_viewer_by_round"] == [1.1, 1.091]
    assert out["baseline_drift_one_viewer"] == 1.1
    assert out["cpu_target_within_10pct"] is True
    assert out["snapshot_v2_vs_v1_bytes"] == 3.0
    assert out["snapshot_v2_vs_baseline_v2_ms"] == 3.0
    assert out["baseline_snapshot_v2_vs_v1_ms"] == 1.0


def test_the_marginal_cost_of_the_added_polls_leaves_the_fixed_costs_out() -> None:
    # Baseline 30 polls for 126 ms (mean), three instances 90 polls for 414 ms: the 60 added
    # polls cost 288 ms, 4.8 ms each, against 4.2 ms per poll with the fixed costs in.
    out = summary([phase(1, 4.0), phase(3, 4.4), phase(1, 4.4), phase(3, 4.8)])
    assert out["marginal_cpu_ms_per_added_poll_one_viewer"] == 4.8
    assert out["marginal_ratio_one_viewer"] == 1.143


def test_summary_says_when_a_target_is_missed() -> None:
    out = summary([phase(1, 4.0), phase(3, 4.6, rate=2.0, one=False)])
    assert out["cpu_per_poll_ratio_many_viewers"] == 1.15
    assert out["cpu_target_within_10pct"] is False
    assert out["polls_per_interval_max"] == 2.0
    assert out["one_poll_per_instance_per_interval"] is False


def test_snapshot_frame_and_its_torrents_per_instance() -> None:
    v2 = {"v": 2, "torrents": {"default": {"a": {}, "b": {}}, "second": {}}}
    buf = b"HTTP/1.1 200 OK\r\n\r\nretry: 3000\n\nid: 7\nevent: snapshot\ndata: " + json.dumps(v2).encode()
    frame = snapshot_frame(buf + b"\n\nevent: heartbeat\n")
    assert frame.startswith(b"event: snapshot\n")
    assert frame.endswith(b"\n\n")
    assert frame_torrents(frame) == {"default": 2, "second": 0}
    v1 = b"event: snapshot\ndata: " + json.dumps({"torrents": {"a": {}}}).encode() + b"\n\n"
    assert frame_torrents(snapshot_frame(v1)) == {"": 1}


def test_quick_mode_produces_every_figure() -> None:
    # A real server process following 1, then 3 synthetic qBittorrents (own processes) of 100.
    params = Params(**{**Params.quick(torrents=100).__dict__, "window": 3.0, "samples": 2})
    result = run_instances(params)
    assert [(p["phase"], p["instances"]) for p in result["phases"]] == [("baseline-1", 1), ("several-1", 3)]
    ids = {1: {"default"}, 3: {"default", "second", "third"}}
    for p in result["phases"]:
        for window in ("one_viewer", "many_viewers"):
            figures = p[window]
            assert set(figures["polls"]) == ids[p["instances"]]
            assert all(n > 0 for n in figures["polls"].values())
            assert set(figures["maindata_requests"]) == ids[p["instances"]]
            assert figures["cpu_ms_per_poll"] > 0
            assert set(figures["diffs_per_poll"]) == ids[p["instances"]]
            assert all(v > 0 for v in figures["diffs_per_poll"].values())  # the polls became events
        assert p["snapshot_v2_torrents"] == 100 * p["instances"]
        assert p["snapshot_v1_torrents"] == 100
        assert p["snapshot_v2_bytes"] > p["snapshot_v1_bytes"] or p["instances"] == 1
        assert p["poll_errors_total"] == 0
        assert p["viewer_bytes_min"] > 0
    s = result["summary"]
    for key in (
        "cpu_per_poll_ratio_one_viewer",
        "cpu_per_poll_ratio_many_viewers",
        "polls_per_interval_min",
        "polls_per_interval_max",
        "marginal_cpu_ms_per_added_poll_one_viewer",
        "event_loop_cpu_per_poll_ratio_one_viewer",
        "snapshot_v2_ms_p50",
        "snapshot_v1_ms_p50",
        "snapshot_v2_vs_v1_bytes",
    ):
        assert isinstance(s[key], float), key
    assert isinstance(s["one_poll_per_instance_per_interval"], bool)
    assert s["snapshot_v2_torrents"] == 300
