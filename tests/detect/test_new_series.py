"""A series' first points and metrics with one bad direction: a pod that becomes ready (a new
``pod_ready`` series going 0 -> 1, or a ready replica count recovering) is not an anomaly, while a pod
that goes not-ready on an established series, and a new series that misbehaves once warmed up, are."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.detect.ensemble import WARMUP_POINTS, WARMUP_S, Ensemble
from opsmind.detect.golden import EITHER, HIGHER_IS_BETTER, LOWER_IS_BETTER, direction_of
from opsmind.detect.points import PointScorer
from opsmind.detect.stage import rounds
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, SeriesSamples
from tests.detect._synth import noisy

T0 = 1.7e9
SCRAPE_S = 5.0  # the demo fleet's scrape interval


def pod(name: str, pod_name: str = "api-5") -> Series:
    return Series.of(name, {"service": "api", "pod": pod_name, "node": "node-a"})


def scored(
    points: dict[Series, list[float]], step_s: float = SCRAPE_S, t0: float = T0, warmup_s: float = WARMUP_S
) -> list[Anomaly]:
    """Every series' values, one scrape every ``step_s`` seconds, through the detect stage's scorer, with
    the warm-up switched on (``detect.new_series_warmup_s``: 300) unless ``warmup_s`` says otherwise."""
    batch = [
        SeriesSamples(s, tuple(t0 + step_s * i for i in range(len(v))), tuple(v)) for s, v in points.items()
    ]
    scorer = PointScorer(Ensemble(warmup_s=warmup_s), Telemetry())
    found: list[Anomaly] = []
    for r in rounds(batch):
        found.extend(scorer.score_round(r, 0.0))
    return found


def _steps(found: list[Anomaly], step_s: float = SCRAPE_S, t0: float = T0) -> list[int]:
    return sorted(round((a.ts - t0) / step_s) for a in found)


@pytest.mark.parametrize("starting", [4, 18, 29, 59, 100, 400])
def test_a_new_pod_becoming_ready_is_not_an_anomaly(starting: int) -> None:
    # A new pod's readiness: 0 while it starts (the demo's pods take 90-144 s: 18-29 scrapes), then 1.
    # Before the fix this was flagged ten times (expected 0, probability 1) until relearned. A start
    # longer than the warm-up (100, 400 scrapes) is covered by the direction: ready is the good side.
    found = scored({pod("pod_ready"): [0.0] * starting + [1.0] * 120})
    assert found == []
    # The warm-up is off by default: the direction alone keeps it quiet.
    assert scored({pod("pod_ready"): [0.0] * starting + [1.0] * 120}, warmup_s=0.0) == []


def test_a_new_pod_s_startup_transient_is_learned_not_alarmed() -> None:
    # Busy while it starts (0.3), idle until ready (0.02), then its real load: the shape of the demo's
    # pod_cpu_utilisation for a new pod, which alarmed three or four times per pod at readiness.
    rng = np.random.default_rng(3)
    cpu = [0.3] * 18 + [0.02] * 3 + list(0.12 + 0.005 * rng.normal(size=120))
    assert scored({pod("pod_cpu_utilisation"): cpu}) == []


def test_a_ready_pod_going_not_ready_alarms_on_an_established_series() -> None:
    ready = [1.0] * 200 + [0.0] * 30 + [1.0] * 60
    found = scored({pod("pod_ready", "api-1"): ready})
    steps = _steps(found)
    assert steps and steps[0] == 200  # the drop is found at once ...
    assert all(200 <= s < 230 for s in steps)  # ... and the recovery (0 -> 1) is not an anomaly
    assert all(a.value == 0.0 and a.expected == pytest.approx(1.0) for a in found[:1])


def test_a_new_pod_going_not_ready_after_its_warm_up_alarms() -> None:
    # Born not ready, ready after 20 scrapes, and not ready again well after its warm-up: a real problem.
    ready = [0.0] * 20 + [1.0] * 130 + [0.0] * 5
    assert _steps(scored({pod("pod_ready"): ready}))[:1] == [150]


def test_a_new_series_that_misbehaves_after_its_warm_up_alarms_in_both_directions() -> None:
    ts, xs = noisy(200, seed=11, level=0.2, sigma=0.005)
    up, down = xs.copy(), xs.copy()
    up[120] += 0.2
    down[120] -= 0.1
    for values in (up, down):
        found = scored({pod("pod_cpu_utilisation"): list(values)})
        assert 120 in _steps(found)


def test_the_warm_up_is_defined_in_time_and_in_points() -> None:
    # Learned, not alarmed: while younger than WARMUP_S *and* short of WARMUP_POINTS; a spike in the
    # warm-up is not reported, the same spike after it is.
    s = pod("queue_depth")
    rng = np.random.default_rng(5)
    for step_s, n_warm in ((SCRAPE_S, int(WARMUP_S / SCRAPE_S)), (1.0, WARMUP_POINTS), (60.0, 5)):
        base = list(10.0 + 0.2 * rng.normal(size=n_warm + 80))
        in_warm_up = base.copy()
        in_warm_up[n_warm - 1] += 40.0
        assert scored({s: in_warm_up}, step_s) == [], step_s
        after = base.copy()
        after[n_warm + 40] += 40.0
        assert n_warm + 40 in _steps(scored({s: after}, step_s), step_s), step_s


def test_warm_up_scores_are_nan_and_every_point_is_learned() -> None:
    ens = Ensemble(warmup_s=WARMUP_S)
    ts = T0 + SCRAPE_S * np.arange(80)
    xs = np.r_[np.zeros(30), np.ones(50)]
    probs = [float(ens.step(["x"], ts[i : i + 1], xs[i : i + 1]).probability[0]) for i in range(80)]
    warm = int(WARMUP_S / SCRAPE_S)
    assert all(np.isnan(p) for p in probs[:warm])
    assert not ens.is_anomalous(np.array(probs[warm:])).any()  # 1 was learned as the new level meanwhile
    assert ens.streak[0] == 0


def test_an_infinite_value_is_still_certain_in_the_warm_up() -> None:
    ens = Ensemble(warmup_s=WARMUP_S)
    out = ens.step(["x"], np.array([T0]), np.array([np.inf]))
    assert out.probability[0] == 1.0


def test_direction_follows_the_metric_name() -> None:
    for name in (
        "pod_ready",
        "up",
        "replicas_ready",
        "kube_deployment_status_replicas_available",
        "probe_success",
        "slo_availability_ratio",
        "model_accuracy",
    ):
        assert direction_of(name) == HIGHER_IS_BETTER, name
    for name in (
        "error_ratio",
        "http_requests_error_ratio",
        "kube_deployment_status_replicas_unavailable",
        "kube_pod_container_status_not_ready",
        "envoy_cluster_membership_unhealthy",
        "model_drift_score",
    ):
        assert direction_of(name) == LOWER_IS_BETTER, name
    for name in (
        "latency_seconds",  # faster can mean failing fast: both ways are news
        "request_rate",
        "cpu_utilisation",
        "pod_cpu_utilisation",
        "replicas_desired",
        "scale_up_events_total",  # a counter's rate is a rate of events, not a state of being up
        "startup_duration_seconds",
        "queue_depth",
    ):
        assert direction_of(name) == EITHER, name


def test_a_fault_in_the_bad_direction_alarms_and_the_recovery_does_not() -> None:
    # No errors, then 5 % for 25 minutes (long enough to be learned as the new normal), then fixed: before
    # the fix the return to 0 was flagged again (several times), which kept the incident growing.
    rng = np.random.default_rng(8)
    errors = np.zeros(700)
    errors[150:450] = 0.05 + 0.002 * rng.normal(size=300)
    ok = Series.of("success_ratio", {"service": "api"})
    err = Series.of("error_ratio", {"service": "api"})
    found = scored({ok: list(1.0 - errors), err: list(errors)})
    for s in (ok, err):
        steps = _steps([a for a in found if a.series == s.key])
        assert steps and steps[0] == 150, s.key
        assert all(150 <= x < 450 for x in steps), (s.key, steps)


def test_a_pod_ready_again_after_a_long_outage_is_not_an_anomaly() -> None:
    # Not ready for over an hour (a crash loop: 0 is learned as its normal), then fixed.
    ready = [1.0] * 200 + [0.0] * 1000 + [1.0] * 100
    steps = _steps(scored({pod("pod_ready", "api-1"): ready}))
    assert steps and steps[0] == 200
    assert all(s < 1200 for s in steps)


def test_metrics_without_a_direction_still_alarm_both_ways() -> None:
    rng = np.random.default_rng(9)
    lat = list(0.1 + 0.002 * rng.normal(size=300))
    lat[150:170] = [0.05] * 20  # suddenly much faster: often a fast failure
    found = scored({Series.of("latency_seconds", {"service": "api"}): lat})
    assert 150 in _steps(found)


def test_the_warm_up_leaves_a_five_minute_series_as_it_was() -> None:
    # At 5-minute steps (NAB's files, the detect benchmark's synthetic fleet) only a series' first point is
    # younger than WARMUP_S, and the detectors are cold for their first 10 points anyway: the scores are
    # exactly those without a warm-up. (score_series has no key, so no direction either.)
    ts, xs = noisy(400, seed=12)
    xs[200] += 10.0
    xs[300:] -= 6.0
    with_warm_up = Ensemble(warmup_s=WARMUP_S).score_series(ts, xs)
    without = Ensemble(warmup_points=0).score_series(ts, xs)
    np.testing.assert_array_equal(with_warm_up, without)
    assert (
        np.isnan(with_warm_up[:10]).all()
        and Ensemble(warmup_s=WARMUP_S).is_anomalous(with_warm_up)[[200, 300]].all()
    )


def test_a_series_joining_an_established_fleet_warms_up_alone() -> None:
    # The restarted pod's series appear next to series long past their warm-up: those stay judged (a
    # spike on one of them is found while the newcomer warms up), and the newcomer gets its own warm-up.
    rng = np.random.default_rng(13)
    ens = Ensemble(warmup_s=WARMUP_S)
    old = ["a", "b"]
    t = T0
    for _ in range(200):
        t += SCRAPE_S
        ens.step(old, np.full(2, t), 10.0 + 0.2 * rng.normal(size=2))
    keys = [*old, "new"]
    probs = []
    for i in range(120):
        t += SCRAPE_S
        xs = 10.0 + 0.2 * rng.normal(size=3)
        if i == 20:
            xs[0] += 30.0  # an established series misbehaves during the newcomer's warm-up
            xs[2] += 30.0  # and so does the newcomer
        if i == 100:
            xs[2] += 30.0  # the newcomer again, once warmed up
        probs.append(ens.step(keys, np.full(3, t), xs).probability)
    p = np.array(probs)
    assert ens.is_anomalous(p[20, :1]).all() and np.isnan(p[:60, 2]).all()
    assert not ens.is_anomalous(p[60:100, 2]).any() and ens.is_anomalous(p[100:101, 2]).all()
    assert not ens.warming[:3].any()


def test_the_warm_up_is_off_by_default_and_set_by_the_detect_settings() -> None:
    # Off by default: a 5-minute warm-up missed memory leaks whose restarted pods are new series.
    from opsmind.bus.memory import MemoryBus
    from opsmind.clock import SimClock
    from opsmind.config import DetectSettings
    from opsmind.detect.stage import DetectStage
    from opsmind.store.sqlite import SqliteStore

    assert Ensemble().warmup_s == 0.0
    ts = T0 + SCRAPE_S * np.arange(40.0)
    spiky = np.r_[np.zeros(20) + 1.0 + 0.01 * np.sin(np.arange(20.0)), 50.0, np.ones(19)]
    assert Ensemble().is_anomalous(Ensemble().score_series(ts, spiky))[20]  # judged at once
    with SqliteStore(":memory:") as store:
        for value in (0.0, 300.0):
            stage = DetectStage(
                MemoryBus(), SimClock(T0), Telemetry(), store, DetectSettings(new_series_warmup_s=value)
            )
            assert stage.ensemble.warmup_s == value
