"""Golden-signal vectors per service, and the multivariate detector inside the detect stage."""

from __future__ import annotations

import numpy as np

from opsmind.bus.memory import MemoryBus
from opsmind.bus.protocols import Message
from opsmind.clock import SimClock
from opsmind.config import DetectSettings
from opsmind.detect.golden import GoldenVectors, feature_of
from opsmind.detect.stage import MULTIVARIATE, DetectStage
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, SeriesSamples


def s(name: str, **labels: str) -> Series:
    return Series.of(name, {"service": "api", **labels})


def test_features_are_service_level_golden_signals_with_quantiles_apart() -> None:
    assert feature_of(s("request_rate")) == "request_rate"
    assert feature_of(s("latency_seconds", quantile="0.95")) == "latency_seconds@0.95"
    assert feature_of(s("pod_cpu_utilisation", pod="api-1")) is None  # a replica's resource
    assert feature_of(s("cpu_utilisation", pod="api-1")) is None
    assert feature_of(s("replicas_ready")) is None  # not a golden signal
    assert feature_of(Series.of("request_rate")) is None  # no service


def test_vectors_group_by_service_and_time_and_skip_partial_ones() -> None:
    g = GoldenVectors()
    full = [
        (s("request_rate"), 10.0, 100.0),
        (s("error_ratio"), 10.0, 0.01),
        (s("replicas_ready"), 10.0, 3.0),
    ]
    (v,) = g.vectors(full)
    assert (v.service, v.ts, v.features) == ("api", 10.0, ("error_ratio", "request_rate"))
    np.testing.assert_array_equal(v.values, [0.01, 100.0])
    assert g.vectors([(s("request_rate"), 20.0, 90.0)]) == []  # one signal missing: skipped, not guessed
    other = g.vectors([(s("request_rate"), 30.0, 90.0), (s("cpu_utilisation"), 30.0, 0.5)])
    assert other == []  # the same number of features but other ones: skipped
    more = [(x, 40.0, v) for x, _, v in full] + [(s("cpu_utilisation"), 40.0, 0.5)]
    (w,) = g.vectors(more)
    assert w.features == ("cpu_utilisation", "error_ratio", "request_rate")  # a new signal widens the set


def _fleet_round(t: float, traffic: float, latency: float) -> list[SeriesSamples]:
    return [
        SeriesSamples(s("request_rate"), (t,), (traffic,)),
        SeriesSamples(s("latency_seconds", quantile="0.95"), (t,), (latency,)),
        SeriesSamples(s("error_ratio"), (t,), (0.01,)),
    ]


async def test_the_stage_reports_a_correlation_break_as_a_multivariate_anomaly() -> None:
    tel = Telemetry()
    store = SqliteStore(":memory:")
    st = DetectStage(MemoryBus(telemetry=tel), SimClock(), tel, store, DetectSettings())
    rng = np.random.default_rng(4)
    t = 1_000_000.0
    for _ in range(300):  # latency follows traffic, as a loaded service's does
        traffic = 100.0 + 15.0 * rng.standard_normal()
        latency = 0.2 + 0.002 * (traffic - 100.0) + 0.004 * rng.standard_normal()
        await st.handle(Message(1, "samples", _fleet_round(t, traffic, latency), 1))
        t += 15.0
    assert st.multivariate is not None and st.multivariate.fitted("api")
    before = {a.id for a in store.find(Anomaly)}
    # High traffic with low latency: each value within its usual range, the pair is not.
    await st.handle(Message(2, "samples", _fleet_round(t, 125.0, 0.16), 1))
    new = [a for a in store.find(Anomaly) if a.id not in before]
    multi = [a for a in new if a.detector == MULTIVARIATE]
    assert len(multi) == 1
    assert multi[0].series == 'golden_signals{service="api"}' and multi[0].ts == t
    assert multi[0].probability > 0.5


async def test_multivariate_can_be_switched_off() -> None:
    tel = Telemetry()
    st = DetectStage(
        MemoryBus(telemetry=tel), SimClock(), tel, SqliteStore(":memory:"), DetectSettings(multivariate=False)
    )
    await st.handle(Message(1, "samples", _fleet_round(1.0, 100.0, 0.2), 1))
    assert st.multivariate is None and st.scorer.golden is None


def test_a_single_signal_makes_no_vector() -> None:
    g = GoldenVectors()
    assert g.vectors([(s("request_rate"), 1.0, 100.0), (s("replicas_ready"), 1.0, 3.0)]) == []
