"""Metrics: counters, a poll-duration histogram and gauges, rendered as valid Prometheus text."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families

from quart_dl.metrics import POLL_BUCKETS, SERIES, Metrics

#: One sample line of the Prometheus text format (name, optional labels, value).
SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})?'
    r" (?P<value>-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$"
)

#: The series /metrics exposed before prometheus_client (the names dashboards query).
#: ``quart_dl_store_errors_total`` was declared but never counted, and is gone.
NAMES_DASHBOARDS_USE = {
    "quart_dl_sse_clients",
    "quart_dl_sse_connects_total",
    "quart_dl_sse_disconnects_total",
    "quart_dl_heartbeats_sent_total",
    "quart_dl_events_published_total",
    "quart_dl_poll_duration_seconds_count",
    "quart_dl_poll_duration_seconds_sum",
    "quart_dl_poll_errors_total",
    "quart_dl_actions_total",
    # added with the stream carriers (issue #12)
    "quart_dl_sse_streams_opened_total",
    # added with several instances (issue #13)
    "quart_dl_polls_total",
}


def check_exposition(text: str) -> dict[str, float]:
    """Validate the text format; return ``{name{labels}: value}`` of the quart_dl series."""
    assert text.endswith("\n")
    list(text_string_to_metric_families(text))  # prometheus_client's own parser accepts it
    samples: dict[str, float] = {}
    declared: dict[str, str] = {}
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helped, f"HELP twice for {name}"
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped")
            assert name not in declared, f"TYPE twice for {name}"
            declared[name] = kind
        else:
            match = SAMPLE.match(line)
            assert match, f"not a valid sample line: {line!r}"
            name = match["name"]
            base = re.sub(r"_(count|sum|bucket)$", "", name)
            assert name in declared or declared.get(base) == "histogram", f"{name} has no TYPE line"
            if name.startswith("quart_dl_"):
                key = name + (f"{{{match['labels']}}}" if match["labels"] else "")
                samples[key] = float(match["value"])
    return samples


def test_counters_and_labels() -> None:
    metrics = Metrics()
    metrics.inc("events_published_total", kind="diff")
    metrics.inc("events_published_total", kind="diff")
    metrics.inc("events_published_total", kind="status")
    metrics.inc("heartbeats_sent_total", 3)
    assert metrics.value("events_published_total", kind="diff") == 2
    assert metrics.value("events_published_total", kind="snapshot") == 0
    assert metrics.value("heartbeats_sent_total") == 3
    samples = check_exposition(metrics.render())
    assert samples['quart_dl_events_published_total{kind="diff"}'] == 2
    assert samples['quart_dl_events_published_total{kind="status"}'] == 1
    assert samples["quart_dl_heartbeats_sent_total"] == 3
    assert not any("snapshot" in key for key in samples)


def test_help_and_type_lines_keep_the_total_suffix() -> None:
    metrics = Metrics()
    metrics.inc("sse_disconnects_total", reason="overflow")
    lines = metrics.render().splitlines()
    at = lines.index("# HELP quart_dl_sse_disconnects_total SSE streams closed, by reason.")
    assert lines[at + 1] == "# TYPE quart_dl_sse_disconnects_total counter"
    assert lines[at + 2] == 'quart_dl_sse_disconnects_total{reason="overflow"} 1.0'


def test_exposed_names_are_the_ones_dashboards_use() -> None:
    metrics = Metrics()
    metrics.gauges["sse_clients"] = lambda: 0
    for name, (kind, _, labels) in SERIES.items():
        if kind == "counter":
            metrics.inc(name, **{label: "x" for label in labels})
    metrics.observe("poll_duration_seconds", 0.01)
    names = {key.partition("{")[0] for key in check_exposition(metrics.render())}
    assert names - {"quart_dl_poll_duration_seconds_bucket"} == NAMES_DASHBOARDS_USE


def test_a_labelled_gauge_is_read_when_scraped_one_sample_per_label_value() -> None:
    metrics = Metrics()
    counts = {"socket": 2.0, "quart": 1.0}
    metrics.labelled_gauges["sse_streams"] = lambda: counts
    samples = check_exposition(metrics.render())
    assert samples['quart_dl_sse_streams{carrier="socket"}'] == 2
    assert samples['quart_dl_sse_streams{carrier="quart"}'] == 1
    assert metrics.value("sse_streams", carrier="socket") == 2
    counts["socket"] = 5.0
    assert metrics.value("sse_streams", carrier="socket") == 5
    assert metrics.value("sse_streams", carrier="other") == 0
    assert "# TYPE quart_dl_sse_streams gauge" in metrics.render()


def test_no_created_series() -> None:
    metrics = Metrics()
    metrics.inc("events_published_total", kind="diff")
    metrics.observe("poll_duration_seconds", 0.01)
    assert "_created" not in metrics.render()


def test_labels_are_escaped() -> None:
    metrics = Metrics()
    metrics.inc("sse_disconnects_total", reason='a "quoted" \\ back\nslash')
    text = metrics.render()
    assert 'reason="a \\"quoted\\" \\\\ back\\nslash"' in text
    samples = check_exposition(text)
    assert [k for k in samples if k.startswith("quart_dl_sse_disconnects_total")] == [
        'quart_dl_sse_disconnects_total{reason="a \\"quoted\\" \\\\ back\\nslash"}'
    ]


def test_poll_duration_is_a_histogram_with_count_and_sum() -> None:
    metrics = Metrics()
    metrics.observe("poll_duration_seconds", 0.002)
    metrics.observe("poll_duration_seconds", 0.25)
    metrics.observe("poll_duration_seconds", 0.5)
    text = metrics.render()
    assert text.count("# TYPE quart_dl_poll_duration_seconds histogram") == 1
    samples = check_exposition(text)
    assert samples["quart_dl_poll_duration_seconds_count"] == 3
    assert samples["quart_dl_poll_duration_seconds_sum"] == 0.752
    assert samples['quart_dl_poll_duration_seconds_bucket{le="0.001"}'] == 0
    assert samples['quart_dl_poll_duration_seconds_bucket{le="0.0025"}'] == 1
    assert samples['quart_dl_poll_duration_seconds_bucket{le="0.25"}'] == 2
    assert samples['quart_dl_poll_duration_seconds_bucket{le="+Inf"}'] == 3
    assert metrics.value("poll_duration_seconds_count") == 3
    # 1 ms to 10 s: a small poll, a first full poll of 10,000 torrents, a hung qBittorrent.
    assert POLL_BUCKETS[0] == 0.001
    assert POLL_BUCKETS[-1] == 10.0


def test_gauges_are_read_on_render() -> None:
    metrics = Metrics()
    clients = [3]
    metrics.gauges["sse_clients"] = lambda: clients[0]
    assert check_exposition(metrics.render())["quart_dl_sse_clients"] == 3
    clients[0] = 7
    text = metrics.render()
    assert "# HELP quart_dl_sse_clients Open Server-Sent Events streams." in text
    assert "# TYPE quart_dl_sse_clients gauge" in text
    assert check_exposition(text)["quart_dl_sse_clients"] == 7


def test_process_and_platform_collectors() -> None:
    families = {f.name for f in text_string_to_metric_families(Metrics().render())}
    assert {"process_resident_memory_bytes", "process_cpu_seconds", "process_open_fds"} <= families
    assert "python_info" in families


def test_two_apps_in_one_process_have_their_own_registry() -> None:
    one, two = Metrics(), Metrics()
    one.inc("poll_errors_total", kind="unreachable")
    assert one.value("poll_errors_total", kind="unreachable") == 1
    assert two.value("poll_errors_total", kind="unreachable") == 0
    assert "unreachable" not in two.render()


def test_an_undeclared_counter_is_made_on_first_use() -> None:
    metrics = Metrics()
    metrics.inc("streams_refused_total", reason="cap")
    metrics.inc("streams_refused_total", reason="cap")
    assert metrics.value("streams_refused_total", reason="cap") == 2
    assert check_exposition(metrics.render())['quart_dl_streams_refused_total{reason="cap"}'] == 2


def test_every_declared_series_renders_valid_text() -> None:
    metrics = Metrics()
    for name, (kind, _, labels) in SERIES.items():
        if kind == "histogram":
            metrics.observe(name, 0.1)
        elif kind == "gauge":
            metrics.gauges[name] = lambda: 1.0
        else:
            metrics.inc(name, **{label: "x" for label in labels})
    samples = check_exposition(metrics.render())
    histograms = sum(kind == "histogram" for kind, _, _ in SERIES.values())
    # a histogram is a count, a sum and a bucket per bound (+Inf too)
    assert len(samples) == len(SERIES) + histograms * (len(POLL_BUCKETS) + 2)
