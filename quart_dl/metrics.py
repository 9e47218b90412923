"""``/metrics``: quart-dl's counters, a poll-duration histogram and gauges, via prometheus_client.

Why it is shaped this way:

- One ``CollectorRegistry`` per ``Metrics`` (one per app), never the library's global one:
  tests build many apps in one process, and two apps registering the same name in one
  registry would collide.
- The callers name a series by its short name and labels (``inc("events_published_total",
  kind="diff")``), as they did before this module used prometheus_client; ``SERIES`` declares
  each one once (kind, help, label names). The exposed names are the same as before
  (``quart_dl_<name>``): prometheus_client appends ``_total`` to a counter itself, so the
  declared name loses its ``_total`` on the way in and gets it back on the way out.
- The poll duration is a histogram (buckets for 1 ms – 10 s polls), so a dashboard can read
  quantiles, not only the mean a count and a sum give.
- Gauges are read when scraped (``gauges[name] = callable``), not kept up to date by the
  code they describe: the hub need not know it is being measured.
- The standard process, platform and garbage-collector collectors are on the same registry
  (``process_*``, ``python_info``, ``python_gc_*``), as any Prometheus-instrumented Python
  process exposes them.
- The ``*_created`` series prometheus_client adds for every counter and histogram are left
  out of the text: they doubled the series count for a start time no dashboard here reads.
  (Its own switch for that, ``disable_created_metrics()``, is process-wide; this is not.)

The fan-out loop calls ``inc`` once per *event*, never per subscriber; one ``inc`` costs
about a microsecond (a cached child and prometheus_client's lock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Every name is exposed as ``quart_dl_<name>``.
NAMESPACE = "quart_dl"

#: The Prometheus text format 0.0.4, which every Prometheus server reads (what
#: ``generate_latest`` writes; newer prometheus_client releases name it CONTENT_TYPE_PLAIN_0_0_4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Poll-duration buckets (seconds): a poll of a small qBittorrent takes a few ms, the first
#: full poll of 10,000 torrents about a second, a hung qBittorrent ~10 s (the library retries).
POLL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

#: name → (kind, help, label names). The name is the exposed one without ``quart_dl_``.
SERIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "sse_clients": ("gauge", "Open Server-Sent Events streams.", ()),
    "sse_connects_total": ("counter", "SSE streams opened, by how they were opened.", ("opened_with",)),
    "sse_streams": (
        "gauge",
        "Open SSE streams, by carrier: socket (the socket layer's fast path) or quart (Quart's path).",
        ("carrier",),
    ),
    "sse_streams_opened_total": (
        "counter",
        "SSE streams opened, by carrier (socket or quart).",
        ("carrier",),
    ),
    "sse_disconnects_total": ("counter", "SSE streams closed, by reason.", ("reason",)),
    "heartbeats_sent_total": ("counter", "Heartbeats sent to silent streams.", ()),
    "events_published_total": ("counter", "Events published, by kind.", ("kind",)),
    "poll_duration_seconds": ("histogram", "Time spent in one poll of qBittorrent.", ()),
    "poll_errors_total": ("counter", "Failed polls, by kind.", ("kind",)),
    "polls_total": (
        "counter",
        "Polls of qBittorrent (sync/maindata), by instance: one per instance per interval,"
        " however many viewers.",
        ("instance",),
    ),
    "actions_total": ("counter", "Actions asked of qBittorrent, by verb and result.", ("action", "result")),
}

Labels = tuple[tuple[str, str], ...]


class Metrics:
    """One app's registry, behind the small interface its callers use: inc, observe, gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        #: name → callable read at every scrape (a ``gauge`` declared in ``SERIES``, or any
        #: other name: it is exposed with its name as its help).
        self.gauges: dict[str, Callable[[], float]] = {}
        #: name → callable read at every scrape, giving a value per label value (a ``gauge``
        #: declared in ``SERIES`` with one label name).
        self.labelled_gauges: dict[str, Callable[[], dict[str, float]]] = {}
        self._counters: dict[str, Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        #: (name, labels) → the labelled child: ``Counter.labels()`` takes a lock and builds a
        #: key on every call; the hub counts every event.
        self._children: dict[tuple[str, Labels], Counter] = {}
        for name, (kind, text, labels) in SERIES.items():
            if kind == "counter":
                self._counter(name, text, labels)
            elif kind == "histogram":
                self._histograms[name] = Histogram(
                    name, text, namespace=NAMESPACE, buckets=POLL_BUCKETS, registry=self.registry
                )
        self.registry.register(_Gauges(self.gauges, self.labelled_gauges))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)  # registers nothing outside CPython

    def _counter(self, name: str, text: str, labels: Iterable[str]) -> Counter:
        counter = Counter(
            name.removesuffix("_total"), text, tuple(labels), namespace=NAMESPACE, registry=self.registry
        )
        self._counters[name] = counter
        return counter

    def inc(self, name: str, amount: float = 1.0, /, **labels: str) -> None:
        """Add to a counter (declared in ``SERIES``, or made on first use with these labels)."""
        key = (name, tuple(labels.items()) if len(labels) < 2 else tuple(sorted(labels.items())))
        child = self._children.get(key)
        if child is None:
            counter = self._counters.get(name) or self._counter(name, name, sorted(labels))
            child = counter.labels(**labels) if labels else counter
            self._children[key] = child
        child.inc(amount)

    def observe(self, name: str, seconds: float) -> None:
        """Record one observation of a histogram (``poll_duration_seconds``)."""
        self._histograms[name].observe(seconds)

    def value(self, name: str, /, **labels: str) -> float:
        """Current value of one sample by its exposed name without ``quart_dl_`` (0 if absent).

        ``value("poll_errors_total", kind="unreachable")``, ``value("poll_duration_seconds_count")``.
        """
        if name in self.labelled_gauges:
            (label,) = SERIES[name][2]
            return float(self.labelled_gauges[name]().get(labels.get(label, ""), 0.0))
        family = self._family(name)
        if family is not None:
            for sample in next(iter(family.collect())).samples:
                if sample.name == f"{NAMESPACE}_{name}" and sample.labels == labels:
                    return float(sample.value)
        return 0.0

    def _family(self, name: str) -> Counter | Histogram | None:
        if name in self._counters:
            return self._counters[name]
        for suffix in ("_count", "_sum", "_bucket"):
            if name.endswith(suffix) and name.removesuffix(suffix) in self._histograms:
                return self._histograms[name.removesuffix(suffix)]
        return None

    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4)."""
        return generate_latest(_WithoutCreated(self.registry)).decode()


class _Gauges(Collector):
    """The gauges, each read when scraped."""

    def __init__(
        self, gauges: dict[str, Callable[[], float]], labelled: dict[str, Callable[[], dict[str, float]]]
    ) -> None:
        self._gauges = gauges
        self._labelled = labelled

    def collect(self) -> Iterator[Metric]:
        for name, read in list(self._gauges.items()):
            text = SERIES[name][1] if name in SERIES else name
            yield GaugeMetricFamily(f"{NAMESPACE}_{name}", text, value=float(read()))
        for name, read_all in list(self._labelled.items()):
            _, text, labels = SERIES[name]
            family = GaugeMetricFamily(f"{NAMESPACE}_{name}", text, labels=labels)
            for value, reading in sorted(read_all().items()):
                family.add_metric([value], float(reading))
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())  # names come and go with the dict: nothing to check at registration


class _WithoutCreated(Collector):
    """A registry's families without the ``*_created`` samples (see the module docstring)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            # Each collect() builds fresh families: filtering them changes nothing kept.
            family.samples = [s for s in family.samples if not s.name.endswith("_created")]
            yield family
