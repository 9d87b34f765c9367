"""Health read from the stores for every service at once (``/metrics``) agrees with the REST route's reading
of one service, whichever way the series list was scanned."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmind.config import load_settings
from opsmind.engine import health_reading
from opsmind.store.backends import open_store
from opsmind.store.protocols import Store
from opsmind.types import Anomaly, Series, SeriesSamples

NOW = 1_800_000_000.0
STEP = 15.0
N = 60
TS = tuple(NOW - 1 - STEP * (N - 1 - i) for i in range(N))


def _samples(name: str, labels: dict[str, str], values: list[float]) -> SeriesSamples:
    return SeriesSamples(Series.of(name, labels), TS, tuple(values))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    settings = load_settings(storage={"path": str(tmp_path / "health.db")})
    s = open_store(settings.storage)
    steady = [0.002] * N
    failing = [0.002] * (N - 8) + [0.4] * 8
    batch = [
        _samples("request_rate", {"service": "cart"}, [100.0 + i % 5 for i in range(N)]),
        _samples("error_ratio", {"service": "cart"}, steady),
        _samples("latency_seconds", {"service": "cart", "quantile": "0.95"}, [0.2] * (N - 8) + [0.5] * 8),
        _samples("latency_seconds", {"service": "cart", "quantile": "0.5"}, [9.0] * N),  # not p95: unread
        _samples("request_rate", {"service": "pay", "pod": "a"}, [50.0] * N),
        _samples("request_rate", {"service": "pay", "pod": "b"}, [50.0] * N),
        _samples("error_ratio", {"service": "pay"}, failing),
        _samples("cpu_utilisation", {"service": "pay"}, [0.5] * N),
        _samples("queue_depth", {"service": "pay"}, [3.0] * N),
        _samples("queue_depth", {"service": "worker"}, [3.0] * N),  # no golden signal: unknown
        _samples("up", {"job": "node"}, [1.0] * N),  # no service label: no service
    ]
    s.append(batch)
    anomaly = Anomaly(
        at=NOW,
        service="cart",
        series='queue_depth{service="cart"}',
        ts=NOW - 10,
        value=1.0,
        score=9.0,
        probability=0.8,
        detector="ensemble",
    )
    s.put(anomaly)
    try:
        yield s
    finally:
        s.close()


def _each(store: Store) -> dict[str, object]:
    out: dict[str, object] = {}
    for name in health_reading.services(store):
        out[name] = health_reading.compute_health(store, store, NOW, name, 900.0, 120.0)
    return out


def test_compute_all_is_compute_health_of_every_service(store: Store) -> None:
    every = health_reading.compute_all(store, store, NOW, 900.0, 120.0)
    assert sorted(every) == ["cart", "pay", "worker"]
    assert every == _each(store)
    assert every["worker"].score is None and every["worker"].status == "unknown"
    assert every["pay"].status == "critical" and every["cart"].score is not None


def test_a_truncated_series_scan_reads_each_service_like_the_route(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the scan limit a service may have only some of its series in the scan (pay's error ratio,
    say): scoring those would differ from what the route answers."""
    monkeypatch.setattr(health_reading, "SERIES_SCAN_LIMIT", 5)
    every = health_reading.compute_all(store, store, NOW, 900.0, 120.0)
    assert set(every) <= {"cart", "pay", "worker"} and every
    expected = _each(store)
    for name, h in every.items():
        assert h == expected[name], name
