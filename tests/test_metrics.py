"""Metrics: counters, a summary and gauges rendered as valid Prometheus text."""

from __future__ import annotations

import re

from quart_dl.metrics import HELP, Metrics

#: One sample line of the Prometheus text format (name, optional labels, value).
SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)"
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*",?)*)\})?'
    r" (?P<value>-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$"
)


def check_exposition(text: str) -> dict[str, float]:
    """Validate the text format; return ``{name{labels}: value}``."""
    assert text.endswith("\n")
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
            base = match["name"].removesuffix("_count").removesuffix("_sum")
            assert base in declared, f"{match['name']} has no TYPE line before it"
            key = match["name"] + (f"{{{match['labels']}}}" if match["labels"] else "")
            samples[key] = float(match["value"])
    return samples


def test_counters_and_labels() -> None:
    metrics = Metrics()
    metrics.inc("events_published_total", kind="diff")
    metrics.inc("events_published_total", kind="diff")
    metrics.inc("events_published_total", kind="status")
    metrics.inc("store_errors_total", 3)
    assert metrics.value("events_published_total", kind="diff") == 2
    assert metrics.value("events_published_total", kind="snapshot") == 0
    samples = check_exposition(metrics.render())
    assert samples == {
        'quart_dl_events_published_total{kind="diff"}': 2,
        'quart_dl_events_published_total{kind="status"}': 1,
        "quart_dl_store_errors_total": 3,
    }


def test_help_and_type_lines() -> None:
    metrics = Metrics()
    metrics.inc("sse_disconnects_total", reason="overflow")
    text = metrics.render()
    assert text.splitlines()[:2] == [
        "# HELP quart_dl_sse_disconnects_total SSE streams closed, by reason.",
        "# TYPE quart_dl_sse_disconnects_total counter",
    ]


def test_labels_are_escaped() -> None:
    metrics = Metrics()
    metrics.inc("sse_disconnects_total", reason='a "quoted" \\ back\nslash')
    text = metrics.render()
    assert 'reason="a \\"quoted\\" \\\\ back\\nslash"' in text
    samples = check_exposition(text)
    assert len(samples) == 1


def test_summary_renders_count_and_sum_under_one_type() -> None:
    metrics = Metrics()
    metrics.observe("poll_duration_seconds", 0.25)
    metrics.observe("poll_duration_seconds", 0.5)
    text = metrics.render()
    assert text.count("# TYPE quart_dl_poll_duration_seconds summary") == 1
    samples = check_exposition(text)
    assert samples["quart_dl_poll_duration_seconds_count"] == 2
    assert samples["quart_dl_poll_duration_seconds_sum"] == 0.75


def test_gauges_are_read_on_render() -> None:
    metrics = Metrics()
    clients = [3]
    metrics.gauges["sse_clients"] = lambda: clients[0]
    assert check_exposition(metrics.render())["quart_dl_sse_clients"] == 3
    clients[0] = 7
    text = metrics.render()
    assert "# TYPE quart_dl_sse_clients gauge" in text
    assert check_exposition(text)["quart_dl_sse_clients"] == 7


def test_integer_values_have_no_decimal_point() -> None:
    metrics = Metrics()
    metrics.inc("heartbeats_sent_total", 2.0)
    assert "quart_dl_heartbeats_sent_total 2\n" in metrics.render()


def test_every_known_series_renders_valid_text() -> None:
    metrics = Metrics()
    for name, (kind, _) in HELP.items():
        if kind == "summary":
            metrics.observe(name, 0.1)
        elif kind == "gauge":
            metrics.gauges[name] = lambda: 1.0
        else:
            metrics.inc(name, kind="x")
    samples = check_exposition(metrics.render())
    assert len(samples) == len(HELP) + 1  # a summary is two samples
