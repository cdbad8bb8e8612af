"""Cheap metric families: plain counters behind a tuple of label values.

prometheus-client's own Counter and Histogram take a lock on every increment and
look their child up by label values each time; on the hot path (every request, every
database transaction) that costs more than the thing measured. These families are
for one event loop: an increment is a dict lookup and an addition, label values are
kept as given (an int status code stays an int) and turned into strings only when
Prometheus scrapes. Each family yields prometheus-client metric families, with the
homeserver's ``server_name`` label added to every sample, so that several
homeservers in one process (the tests) each have their own registry.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

SERVER_NAME_LABEL = "server_name"

# prometheus-client's default buckets (as Synapse's histograms use), in seconds
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


def _label_values(key: tuple[Any, ...], server_name: str) -> list[str]:
    return [str(value) for value in key] + [server_name]


class CounterFamily:
    """A counter per tuple of label values (``inc(("GET", "SyncRestServlet"))``)."""

    __slots__ = ("documentation", "labels", "name", "values")

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.values: dict[tuple[Any, ...], float] = {}

    def inc(self, key: tuple[Any, ...] = (), amount: float = 1) -> None:
        values = self.values
        values[key] = values.get(key, 0) + amount

    def value(self, key: tuple[Any, ...] = ()) -> float:
        return self.values.get(key, 0)

    def families(self, server_name: str) -> Iterator[Metric]:
        family = CounterMetricFamily(
            self.name, self.documentation, labels=[*self.labels, SERVER_NAME_LABEL]
        )
        for key, value in list(self.values.items()):
            family.add_metric(_label_values(key, server_name), value)
        yield family


class _HistogramSeries:
    __slots__ = ("buckets", "total")

    def __init__(self, size: int) -> None:
        self.buckets = [0] * size  # not cumulative; the last one is +Inf
        self.total = 0.0


class HistogramFamily:
    """A histogram per tuple of label values."""

    __slots__ = ("bounds", "documentation", "labels", "name", "series")

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.bounds = tuple(buckets)
        self.series: dict[tuple[Any, ...], _HistogramSeries] = {}

    def observe(self, key: tuple[Any, ...], value: float) -> None:
        series = self.series.get(key)
        if series is None:
            series = self.series[key] = _HistogramSeries(len(self.bounds) + 1)
        series.buckets[bisect_left(self.bounds, value)] += 1
        series.total += value

    def count(self, key: tuple[Any, ...] = ()) -> int:
        series = self.series.get(key)
        return 0 if series is None else sum(series.buckets)

    def families(self, server_name: str) -> Iterator[Metric]:
        family = HistogramMetricFamily(
            self.name, self.documentation, labels=[*self.labels, SERVER_NAME_LABEL]
        )
        bounds = [*(repr(float(b)) for b in self.bounds), "+Inf"]
        for key, series in list(self.series.items()):
            cumulative: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip(bounds, series.buckets, strict=True):
                running += count
                cumulative.append((bound, running))
            family.add_metric(_label_values(key, server_name), cumulative, series.total)
        yield family


class GaugeFamily:
    """A gauge read when Prometheus scrapes: ``read()`` gives label values -> value."""

    __slots__ = ("documentation", "labels", "name", "read")

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        read: Callable[[], Iterable[tuple[tuple[Any, ...], float]]],
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = tuple(labels)
        self.read = read

    def families(self, server_name: str) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            self.name, self.documentation, labels=[*self.labels, SERVER_NAME_LABEL]
        )
        for key, value in self.read():
            family.add_metric(_label_values(key, server_name), value)
        yield family


Family = CounterFamily | HistogramFamily | GaugeFamily


class FamiliesCollector(Collector):
    """The prometheus-client collector of a group of families of one homeserver."""

    def __init__(self, server_name: str, families: Iterable[Family]) -> None:
        self._server_name = server_name
        self._families = list(families)

    def add(self, family: Family) -> None:
        self._families.append(family)

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield from family.families(self._server_name)


class ServerNameLabelled(Collector):
    """Another collector's metrics (process, Python platform, gc) with the
    homeserver's ``server_name`` label added to each sample."""

    def __init__(self, inner: Collector, server_name: str) -> None:
        self._inner = inner
        self._server_name = server_name

    def collect(self) -> Iterator[Metric]:
        for metric in self._inner.collect():
            labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            labelled.samples = [
                sample._replace(labels={**sample.labels, SERVER_NAME_LABEL: self._server_name})
                for sample in metric.samples
            ]
            yield labelled
