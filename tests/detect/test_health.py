"""The health score: healthy is high, broken is low, nothing is invented, and the explanation says why."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsmind.detect.health import (
    ERRORS,
    GOLDEN_SIGNALS,
    LATENCY,
    MODEL_DRIFT,
    MODEL_QUALITY,
    MODEL_SIGNALS,
    OTHER,
    SATURATION,
    TRAFFIC,
    Contribution,
    HealthPolicy,
    HealthScore,
    SignalReading,
    health_score,
    signal_of,
    summarise_window,
)


def healthy(**override: float) -> list[SignalReading]:
    values = {ERRORS: 0.002, LATENCY: 0.21, SATURATION: 0.45, TRAFFIC: 105.0} | override
    baselines = {ERRORS: 0.002, LATENCY: 0.20, SATURATION: 0.44, TRAFFIC: 100.0}
    return [SignalReading(s, values[s], baselines[s]) for s in GOLDEN_SIGNALS]


def test_a_healthy_service_scores_at_least_90() -> None:
    h = health_score("checkout", healthy())
    assert h.score is not None and h.score >= 90 and h.status == "ok"
    assert h.missing == ()
    assert "within its baseline" in h.explanation


def test_high_errors_drive_the_score_below_50_and_are_named_first() -> None:
    h = health_score("checkout", healthy(errors=0.30))
    assert h.score is not None and h.score < 50 and h.status == "critical"
    assert h.contributions[0].signal == ERRORS and h.contributions[0].penalty == 1.0
    assert "errors" in h.explanation.split("top contributors:")[1]


def test_moderate_latency_degrades_and_the_score_falls_monotonically() -> None:
    scores = [health_score("s", healthy(latency=0.2 * k)).score for k in (1.0, 1.5, 2.0, 2.5, 3.0, 5.0)]
    assert all(a is not None and b is not None and a >= b for a, b in zip(scores, scores[1:], strict=False))
    mid = health_score("s", healthy(latency=0.46))
    assert mid.status == "degraded"


def test_traffic_collapse_and_surge_both_count() -> None:
    assert (health_score("s", healthy(traffic=0.0)).score or 100) < 60
    assert (health_score("s", healthy(traffic=1000.0)).score or 100) < 60
    assert (health_score("s", healthy(traffic=80.0)).score or 0) >= 90


def test_saturation_is_against_capacity() -> None:
    hot = health_score("s", healthy(saturation=0.97))
    assert hot.contributions[0].signal == SATURATION and hot.status != "ok"


def test_missing_signals_are_reported_not_invented() -> None:
    only_two = [r for r in healthy() if r.signal in (ERRORS, LATENCY)]
    h = health_score("s", only_two)
    assert set(h.missing) == {SATURATION, TRAFFIC}
    assert {c.signal for c in h.contributions} == {ERRORS, LATENCY, OTHER}
    assert "missing signals: saturation, traffic" in h.explanation
    nan_value = [SignalReading(ERRORS, math.nan, 0.01)]
    assert health_score("s", nan_value).missing == GOLDEN_SIGNALS


def test_no_data_gives_no_score() -> None:
    h = health_score("ghost", [])
    assert h.score is None and h.status == "unknown" and h.missing == GOLDEN_SIGNALS


def test_no_baseline_yet_costs_nothing_for_relative_signals() -> None:
    h = health_score("s", [SignalReading(LATENCY, 5.0, None), SignalReading(TRAFFIC, 1.0, None)])
    assert h.score == 100.0


def test_a_whole_window_of_errors_is_not_excused_by_its_baseline() -> None:
    h = health_score("s", [SignalReading(ERRORS, 0.3, 0.3)])
    assert h.status == "critical"


def test_anomalies_lower_the_score() -> None:
    plain = health_score("s", healthy()).score
    on_signal = [*healthy()[:3], SignalReading(TRAFFIC, 105.0, 100.0, anomaly_probability=0.9)]
    h = health_score("s", on_signal)
    elsewhere = health_score("s", healthy(), other_anomaly_probability=0.9)
    assert plain is not None and h.score is not None and elsewhere.score is not None
    assert h.score < plain and elsewhere.score < plain
    assert "anomal" in h.explanation and "anomalies on other series" in elsewhere.explanation


def test_latency_objective_counts_when_worse_than_the_baseline() -> None:
    p = HealthPolicy(latency_objective=0.1)
    h = health_score("s", [SignalReading(LATENCY, 0.3, 0.3)], policy=p)
    assert h.contributions[0].penalty == pytest.approx(1.0)


def test_unknown_signal_is_a_caller_error() -> None:
    with pytest.raises(ValueError):
        health_score("s", [SignalReading("vibes", 1.0)])


def test_signal_mapping_defaults_and_override() -> None:
    assert signal_of("latency_seconds") == LATENCY
    assert signal_of("http_request_duration_seconds") == LATENCY
    assert signal_of("http_requests_total") == TRAFFIC
    assert signal_of("error_ratio") == ERRORS
    assert signal_of("cpu_usage") == SATURATION and signal_of("cpu_utilisation") == SATURATION
    assert signal_of("pod_memory_bytes") is None
    assert signal_of("my_p99", {"my_p99": LATENCY}) == LATENCY and signal_of("latency_seconds", {}) is None


def test_summarise_window_splits_recent_from_baseline() -> None:
    ts = np.arange(0.0, 900.0, 15.0)
    values = np.where(ts >= 800, 5.0, 1.0)
    values[3] = np.nan
    current, baseline = summarise_window(ts, values, now=900.0, recent_s=100.0)
    assert current == 5.0 and baseline == 1.0
    assert summarise_window(ts[:2], values[:2], now=900.0, recent_s=100.0) == (1.0, None)
    cur, base = summarise_window(np.empty(0), np.empty(0), now=1.0, recent_s=1.0)
    assert math.isnan(cur) and base is None


def _of(h: HealthScore, signal: str) -> Contribution:
    return next(c for c in h.contributions if c.signal == signal)


def test_a_model_serving_worse_answers_makes_an_otherwise_healthy_service_unhealthy() -> None:
    fine = health_score("recommender", [*healthy(), SignalReading(MODEL_QUALITY, 0.905, 0.91)])
    assert fine.status == "ok" and fine.missing == ()  # a 0.5 % dip is within tolerance
    worse = health_score("recommender", [*healthy(), SignalReading(MODEL_QUALITY, 0.70, 0.91, series="acc")])
    assert worse.status != "ok" and worse.contributions[0].signal == MODEL_QUALITY
    assert worse.contributions[0].penalty == 1.0 and "23.1% below baseline" in worse.explanation
    better = health_score("recommender", [*healthy(), SignalReading(MODEL_QUALITY, 0.95, 0.91)])
    assert better.status == "ok" and _of(better, MODEL_QUALITY).note == "at or above baseline"
    scores = [
        health_score("r", [*healthy(), SignalReading(MODEL_QUALITY, q, 0.9)]).score for q in (0.9, 0.85, 0.8)
    ]
    assert scores[0] is not None and scores[1] is not None and scores[2] is not None
    assert scores[0] > scores[1] > scores[2]


def test_model_drift_is_a_score_of_0_to_1_or_relative_beyond() -> None:
    calm = health_score("r", [*healthy(), SignalReading(MODEL_DRIFT, 0.1, 0.05)])
    assert calm.status == "ok" and _of(calm, MODEL_DRIFT).penalty == 0
    drifting = health_score("r", [*healthy(), SignalReading(MODEL_DRIFT, 0.9, 0.05)])
    top = drifting.contributions[0]
    assert top.signal == MODEL_DRIFT and 0.8 < top.penalty < 0.9 and "drift 0.90 of 1" in top.note
    psi = health_score("r", [*healthy(), SignalReading(MODEL_DRIFT, 6.0, 2.0)])  # not a 0-1 score
    assert _of(psi, MODEL_DRIFT).note == "3.00x baseline"


def test_model_signals_are_optional_and_never_reported_missing() -> None:
    assert health_score("api", healthy()).missing == ()
    only_model = health_score("batch-scorer", [SignalReading(MODEL_QUALITY, 0.9, 0.9)])
    assert only_model.score is not None and only_model.missing == GOLDEN_SIGNALS
    no_baseline = health_score("r", [SignalReading(MODEL_QUALITY, 0.5, None)])
    assert _of(no_baseline, MODEL_QUALITY).note == "no baseline yet"


def test_model_metric_names_map_to_the_model_signals() -> None:
    assert signal_of("model_accuracy") == MODEL_QUALITY and signal_of("model_auc") == MODEL_QUALITY
    assert signal_of("model_drift_score") == MODEL_DRIFT and signal_of("feature_drift_score") == MODEL_DRIFT


def _model_readings() -> list[SignalReading]:
    return [SignalReading(MODEL_QUALITY, 0.91, 0.91), SignalReading(MODEL_DRIFT, 0.05, 0.05)]


@pytest.mark.parametrize(
    "readings",
    [healthy(), [*healthy(), *_model_readings()], [SignalReading(TRAFFIC, 100.0, 100.0)]],
    ids=["golden", "golden+model", "traffic-only"],
)
def test_anomalies_elsewhere_alone_cannot_make_a_service_critical(readings: list[SignalReading]) -> None:
    """The demo's personalization: every signal at its baseline, anomalies on other series at 1.0, and
    a worst-penalty term applied to that 0.1-weight contribution halved the score to 46.8 "critical"."""
    h = health_score("personalization", readings, other_anomaly_probability=1.0)
    assert h.score is not None and h.status != "critical", h
    # Its cost is bounded by its share of the weights: the score agrees with the listed contributions.
    other = _of(h, OTHER)
    assert other.penalty == 1.0 and all(c.penalty == 0.0 for c in h.contributions if c.signal != OTHER)
    share = other.weight / sum(c.weight for c in h.contributions)
    assert h.score == pytest.approx(100.0 * (1.0 - share), abs=0.05)
    assert h.explanation.startswith(f"personalization is {h.status} ")
    assert "anomalies on other series (probability 1.00)" in h.explanation
    beside_golden = health_score("s", healthy(), other_anomaly_probability=1.0)
    assert beside_golden.status == "ok" and (beside_golden.score or 0) >= 90


@pytest.mark.parametrize("signal", [*GOLDEN_SIGNALS, *MODEL_SIGNALS])
@pytest.mark.parametrize("with_model", [False, True], ids=["golden", "golden+model"])
def test_one_signal_at_its_worst_makes_the_service_critical(signal: str, with_model: bool) -> None:
    """What the worst-penalty term is for: the weighted mean alone leaves a service whose traffic stopped
    at 86 ("ok"), however low the weights of the signals that are fine."""
    worst = {ERRORS: 0.5, LATENCY: 10.0, SATURATION: 1.0, TRAFFIC: 0.0, MODEL_QUALITY: 0.1, MODEL_DRIFT: 1.0}
    if signal in MODEL_SIGNALS and not with_model:
        readings = [
            *healthy(),
            SignalReading(signal, worst[signal], 0.91 if signal == MODEL_QUALITY else 0.05),
        ]
    else:
        base = [*healthy(), *_model_readings()] if with_model else healthy()
        readings = [
            r if r.signal != signal else SignalReading(signal, worst[signal], r.baseline) for r in base
        ]
    h = health_score("s", readings)
    assert _of(h, signal).penalty == 1.0
    assert all(c.penalty == 0.0 for c in h.contributions if c.signal != signal)
    assert h.score is not None and h.score < 50 and h.status == "critical", h
