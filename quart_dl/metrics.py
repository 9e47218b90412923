"""Counters and gauges for ``/metrics`` (Prometheus text format), with no dependency.

Only a handful of series exist, so a dict keyed by (name, labels) is all it takes; pulling in
prometheus_client would add a registry, threads and a second way to name things.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

HELP = {
    "sse_clients": ("gauge", "Open Server-Sent Events streams."),
    "sse_connects_total": ("counter", "SSE streams opened, by how they were opened."),
    "sse_disconnects_total": ("counter", "SSE streams closed, by reason."),
    "heartbeats_sent_total": ("counter", "Heartbeats sent to silent streams."),
    "events_published_total": ("counter", "Events published, by kind."),
    "poll_duration_seconds": ("summary", "Time spent in one poll of qBittorrent."),
    "poll_errors_total": ("counter", "Failed polls, by kind."),
    "store_errors_total": ("counter", "Failed database writes."),
}

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """A tiny registry: counters, a summary (count and sum) and gauges read on demand."""

    def __init__(self) -> None:
        self.counters: defaultdict[tuple[str, Labels], float] = defaultdict(float)
        self.gauges: dict[str, Callable[[], float]] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add to a counter."""
        self.counters[(name, tuple(sorted(labels.items())))] += amount

    def observe(self, name: str, seconds: float) -> None:
        """Record one observation of a summary."""
        self.counters[(name + "_count", ())] += 1
        self.counters[(name + "_sum", ())] += seconds

    def value(self, name: str, **labels: str) -> float:
        """Current value of a counter (0 if never touched)."""
        return self.counters.get((name, tuple(sorted(labels.items()))), 0.0)

    def render(self) -> str:
        """The Prometheus text exposition."""
        lines: list[str] = []
        by_name: defaultdict[str, list[tuple[Labels, float]]] = defaultdict(list)
        for (name, labels), value in self.counters.items():
            by_name[name].append((labels, value))
        for name, read in self.gauges.items():
            by_name[name].append(((), float(read())))
        seen: set[str] = set()
        for name in sorted(by_name):
            base = name.removesuffix("_count").removesuffix("_sum")
            metric = f"quart_dl_{name}"
            if base in HELP and base not in seen:
                kind, text = HELP[base]
                lines.append(f"# HELP quart_dl_{base} {text}")
                lines.append(f"# TYPE quart_dl_{base} {kind}")
                seen.add(base)
            for labels, value in sorted(by_name[name]):
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                shown = int(value) if float(value).is_integer() else value
                lines.append(f"{metric}{{{label_text}}} {shown}" if labels else f"{metric} {shown}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
