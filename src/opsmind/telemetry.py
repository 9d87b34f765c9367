"""Self-metrics. Each engine owns a fresh ``CollectorRegistry`` (never the global one), so two engines in
one process, or two tests, never share counters; nothing is registered at import time."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Telemetry:
    """A registry plus get-or-create helpers so stages can declare the metrics they use."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self._metrics: dict[str, Counter | Gauge | Histogram] = {}

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        m = self._metrics.get(name)
        if m is None:
            m = Counter(name, doc, labels, registry=self.registry)
            self._metrics[name] = m
        assert isinstance(m, Counter), f"{name} already registered as another type"
        return m

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        m = self._metrics.get(name)
        if m is None:
            m = Gauge(name, doc, labels, registry=self.registry)
            self._metrics[name] = m
        assert isinstance(m, Gauge), f"{name} already registered as another type"
        return m

    def histogram(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Histogram:
        m = self._metrics.get(name)
        if m is None:
            m = Histogram(name, doc, labels, registry=self.registry)
            self._metrics[name] = m
        assert isinstance(m, Histogram), f"{name} already registered as another type"
        return m

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of a sample (for tests and the API); 0.0 when it was never set."""
        v = self.registry.get_sample_value(name, labels or {})
        return 0.0 if v is None else float(v)
