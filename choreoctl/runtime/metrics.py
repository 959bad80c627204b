"""Prometheus metrics in text exposition format, for the health port's ``/metrics``.

A dozen series do not justify the prometheus_client dependency; this module holds
counters, gauges and one histogram kind, keyed by label tuples, and renders them.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    ]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text

    def lines(self) -> list[str]:
        raise NotImplementedError

    def render(self) -> str:
        head = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        return "\n".join(head + self.lines())


class Counter(_Metric):
    """A monotonically increasing count per label set."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        # on every proxied request: one label (the usual case) needs no sort
        key = tuple(labels.items()) if len(labels) < 2 else tuple(sorted(labels.items()))
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(k)} {v:g}" for k, v in sorted(self.values.items())]


class Gauge(_Metric):
    """A value read at scrape time from a callback returning ``{labels: value}``."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], dict[Labels, float]]) -> None:
        super().__init__(name, help_text)
        self.read = read

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(k)} {v:g}" for k, v in sorted(self.read().items())]


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> None:
        super().__init__(name, help_text)
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value

    def lines(self) -> list[str]:
        out, total = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            total += count
            out.append(f'{self.name}_bucket{{le="{bound:g}"}} {total}')
        total += self.counts[-1]
        out.append(f'{self.name}_bucket{{le="+Inf"}} {total}')
        out.append(f"{self.name}_sum {self.sum:g}")
        out.append(f"{self.name}_count {total}")
        return out


class Registry:
    """The metrics of one process."""

    def __init__(self) -> None:
        self.metrics: list[_Metric] = []

    def counter(self, name: str, help_text: str) -> Counter:
        m = Counter(name, help_text)
        self.metrics.append(m)
        return m

    def gauge(self, name: str, help_text: str, read: Callable[[], dict[Labels, float]]) -> Gauge:
        m = Gauge(name, help_text, read)
        self.metrics.append(m)
        return m

    def histogram(self, name: str, help_text: str) -> Histogram:
        m = Histogram(name, help_text)
        self.metrics.append(m)
        return m

    def render(self) -> str:
        """The whole exposition text."""
        return "\n".join(m.render() for m in self.metrics) + "\n"
