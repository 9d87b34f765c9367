"""A service health score, 0-100, from the four golden signals, an ML service's model signals and the
detectors' anomaly probabilities.

The calculator is a pure function: :func:`health_score` takes one :class:`SignalReading` per golden
signal (its current value, its baseline and the highest anomaly probability on its series) and returns a
:class:`HealthScore` that says how much each signal cost and why. Reading the store is the caller's job.

**Penalties.** Each signal is compared with its own reference and gets a penalty in [0, 1]:

- *errors* (a ratio of failed requests) against an objective: no penalty up to
  ``max(error_objective, baseline)`` (the baseline can excuse at most ``error_baseline_cap``, so a
  service that has been failing for the whole window is not called normal), full penalty
  ``error_span`` above it. A value above 1 cannot be a ratio and is compared relatively, like latency.
- *latency* relative to its baseline: no penalty within ``latency_tolerance`` times the baseline, full at
  ``latency_full`` times; with a ``latency_objective`` the worse of the two comparisons counts.
- *saturation* (a fraction of capacity) against fixed thresholds: none up to ``saturation_warn``, full at
  ``saturation_full``; a value above 1.5 is not a fraction (CPU cores, say) and is compared relatively.
- *traffic* relative to its baseline, in both directions: a collapse often means an outage upstream and a
  surge means load; none within a factor of ``traffic_tolerance``, full at a factor of ``traffic_full``.

An ML service is also judged by what it serves (ML-model health), when it exposes it:

- *model_quality* (a quality metric where higher is better: accuracy, AUC, F1, NDCG ...) relative to its
  baseline: no penalty for a drop within ``model_drop_tolerance`` of the baseline, full penalty at a
  drop of ``model_drop_full``. A model serving worse answers harms users without an error or a slow
  request, so the golden signals alone would call such a service healthy.
- *model_drift* (a drift score where 0 is none and 1 is as bad as it gets): none up to ``drift_warn``,
  full at ``drift_full``; a value above 1 is not such a score (a PSI or a divergence, say) and is
  compared relatively to its baseline, like latency.

These two are optional: a service without model metrics is scored on the golden signals alone and is
not listed as missing them.

An anomaly on a signal's series raises its penalty to at least ``anomaly_weight`` times the anomaly's
probability; anomalies on the service's other series count as one more contribution, ``anomalies``.

**Weights.** Errors 0.35 and latency 0.30 are what users feel (a failed request is worse than a slow
one); saturation 0.20 is a leading indicator, not yet felt; traffic 0.15 is the most ambiguous, since a
change of load is often nobody's fault. Other anomalies weigh 0.10. Model quality weighs 0.30 (users
feel worse answers as they feel slow ones), model drift 0.15 (a leading indicator of it).

**Score.** ``100 * (1 - weighted mean penalty) * (1 - worst_factor * worst signal penalty)``. The weighted
mean alone would let a service failing every request score 65 because its other signals look fine; the
second factor makes one fully broken signal halve the score, so any one golden or model signal at its
worst makes the service critical. The worst is taken over those signals only, not over ``anomalies``:
that contribution says that series of unknown meaning (a queue depth, a GC count) look unusual, not that
users are hurt, so it counts through the weighted mean alone and costs at most its share of the weights
present: 9 points beside the four golden signals, 40 beside a lone 0.15 signal, so with the default
weights it never makes a service critical on its own (halving the score for it made a service whose every
signal sat at its baseline "critical" at 47). Status: ``ok`` from ``ok_at`` (80),
``degraded`` from ``critical_below`` (50), ``critical`` under it. Missing signals are listed, never
invented: the mean runs over the signals present, and with none at all the score is ``None`` (status
``unknown``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from opsmind.detect.base import F64

ERRORS = "errors"
LATENCY = "latency"
SATURATION = "saturation"
TRAFFIC = "traffic"
OTHER = "anomalies"
GOLDEN_SIGNALS = (ERRORS, LATENCY, SATURATION, TRAFFIC)
MODEL_QUALITY = "model_quality"
MODEL_DRIFT = "model_drift"
MODEL_SIGNALS = (MODEL_QUALITY, MODEL_DRIFT)  # an ML service's own; optional (see the module docstring)
SIGNALS = (*GOLDEN_SIGNALS, *MODEL_SIGNALS)
STATUSES = ("ok", "degraded", "critical", "unknown")  # every HealthScore.status, best first

#: Metric names mapped to golden signals: the simulator's names and common Prometheus ones.
DEFAULT_SIGNAL_MAP: dict[str, str] = {
    **dict.fromkeys(
        (
            "latency_seconds",
            "request_latency_seconds",
            "request_duration_seconds",
            "http_request_duration_seconds",
            "http_server_request_duration_seconds",
            "http_server_requests_seconds",
        ),
        LATENCY,
    ),
    **dict.fromkeys(
        (
            "request_rate",
            "requests_per_second",
            "requests_total",
            "http_requests_total",
            "http_server_requests_total",
            "grpc_server_handled_total",
        ),
        TRAFFIC,
    ),
    **dict.fromkeys(
        ("error_ratio", "error_rate", "errors_ratio", "http_error_ratio", "http_requests_error_ratio"), ERRORS
    ),
    **dict.fromkeys(
        (
            "cpu_utilisation",
            "cpu_utilization",
            "cpu_usage",
            "cpu_usage_ratio",
            "memory_utilisation",
            "memory_utilization",
            "pool_in_use_ratio",
            "disk_used_ratio",
            "process_cpu_seconds_total",
        ),
        SATURATION,
    ),
    **dict.fromkeys(
        (
            "model_accuracy",
            "model_auc",
            "model_roc_auc",
            "model_f1",
            "model_f1_score",
            "model_precision",
            "model_recall",
            "model_ndcg",
            "model_hit_rate",
        ),
        MODEL_QUALITY,
    ),
    **dict.fromkeys(
        (
            "model_drift_score",
            "model_drift",
            "prediction_drift_score",
            "data_drift_score",
            "feature_drift_score",
        ),
        MODEL_DRIFT,
    ),
}

#: Which latency quantile speaks for the service when a summary exposes several, best first.
LATENCY_QUANTILES = ("0.95", "0.99", "0.9", "0.5")


def signal_of(metric_name: str, mapping: Mapping[str, str] | None = None) -> str | None:
    """The golden signal a metric measures, or None when the mapping does not know it."""
    return (DEFAULT_SIGNAL_MAP if mapping is None else mapping).get(metric_name)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Weights, objectives and thresholds of the score (see the module docstring)."""

    weights: Mapping[str, float] = field(
        default_factory=lambda: {
            ERRORS: 0.35,
            LATENCY: 0.30,
            SATURATION: 0.20,
            TRAFFIC: 0.15,
            OTHER: 0.10,
            MODEL_QUALITY: 0.30,
            MODEL_DRIFT: 0.15,
        }
    )
    error_objective: float = 0.01
    error_baseline_cap: float = 0.05
    error_span: float = 0.10
    latency_tolerance: float = 1.2
    latency_full: float = 3.0
    latency_objective: float | None = None
    saturation_warn: float = 0.75
    saturation_full: float = 0.95
    traffic_tolerance: float = 1.5
    traffic_full: float = 4.0
    model_drop_tolerance: float = 0.02  # relative drop of a model quality metric below its baseline
    model_drop_full: float = 0.15
    drift_warn: float = 0.25
    drift_full: float = 1.0
    anomaly_weight: float = 0.6
    worst_factor: float = 0.5
    ok_at: float = 80.0
    critical_below: float = 50.0


@dataclass(frozen=True, slots=True)
class SignalReading:
    """What the caller knows about one signal of a service (:data:`SIGNALS`)."""

    signal: str
    value: float
    baseline: float | None = None
    anomaly_probability: float = 0.0
    series: str | None = None


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one signal cost: its penalty in [0, 1], its weight, and the comparison behind it."""

    signal: str
    value: float | None
    baseline: float | None
    penalty: float
    weight: float
    anomaly_probability: float = 0.0
    series: str | None = None
    note: str = ""

    @property
    def impact(self) -> float:
        return self.penalty * self.weight


@dataclass(frozen=True, slots=True)
class HealthScore:
    service: str
    score: float | None
    status: str
    contributions: tuple[Contribution, ...]
    missing: tuple[str, ...]
    explanation: str


def _clip(x: float) -> float:
    return 0.0 if not x > 0.0 else (1.0 if not x < 1.0 else x)  # NaN counts as no evidence: 0


def _relative(value: float, baseline: float | None, tolerance: float, full: float) -> tuple[float, str]:
    if baseline is None or not baseline > 0.0:
        return 0.0, "no baseline yet"
    r = value / baseline
    return _clip((r - tolerance) / (full - tolerance)), f"{r:.2f}x baseline"


def _penalty(r: SignalReading, p: HealthPolicy) -> tuple[float, str]:
    v, b = r.value, r.baseline
    if r.signal == ERRORS:
        if v > 1.0:
            return _relative(v, b, p.latency_tolerance, p.latency_full)
        allowed = max(p.error_objective, min(b if b is not None else 0.0, p.error_baseline_cap))
        return _clip((v - allowed) / p.error_span), f"{v:.2%} failed, {allowed:.2%} allowed"
    if r.signal == LATENCY:
        pen, note = _relative(v, b, p.latency_tolerance, p.latency_full)
        if p.latency_objective is not None and p.latency_objective > 0:
            slo = _clip((v / p.latency_objective - 1.0) / (p.latency_full - 1.0))
            if slo > pen:
                return slo, f"{v / p.latency_objective:.2f}x the objective"
        return pen, note
    if r.signal == SATURATION:
        if v > 1.5:
            return _relative(v, b, p.latency_tolerance, p.latency_full)
        return _clip((v - p.saturation_warn) / (p.saturation_full - p.saturation_warn)), f"{v:.0%} used"
    if r.signal == TRAFFIC:
        if b is None or not b > 0.0:
            return 0.0, "no baseline yet"
        if not v > 0.0:
            return 1.0, "traffic stopped"
        d = abs(math.log(v / b))
        lo, hi = math.log(p.traffic_tolerance), math.log(p.traffic_full)
        return _clip((d - lo) / (hi - lo)), f"{v / b:.2f}x baseline"
    if r.signal == MODEL_QUALITY:
        if b is None or not b > 0.0:
            return 0.0, "no baseline yet"
        drop = (b - v) / b
        pen = _clip((drop - p.model_drop_tolerance) / (p.model_drop_full - p.model_drop_tolerance))
        return pen, (f"{drop:.1%} below baseline" if drop > 0 else "at or above baseline")
    if r.signal == MODEL_DRIFT:
        if v > 1.0:
            return _relative(v, b, p.latency_tolerance, p.latency_full)
        return _clip((v - p.drift_warn) / (p.drift_full - p.drift_warn)), f"drift {v:.2f} of 1"
    raise ValueError(f"unknown signal {r.signal!r}")


def health_score(
    service: str,
    readings: Iterable[SignalReading],
    other_anomaly_probability: float = 0.0,
    policy: HealthPolicy | None = None,
) -> HealthScore:
    """Score one service from its golden-signal readings; see the module docstring for the rules.

    Readings with a non-finite value are treated as missing. When a signal has several readings, the one
    with the highest penalty speaks for it."""
    p = policy or HealthPolicy()
    best: dict[str, Contribution] = {}
    for r in readings:
        if r.signal not in SIGNALS:
            raise ValueError(f"unknown signal {r.signal!r}")
        if not math.isfinite(r.value):
            continue
        base = r.baseline if r.baseline is not None and math.isfinite(r.baseline) else None
        r = SignalReading(r.signal, r.value, base, _clip(r.anomaly_probability), r.series)
        pen, note = _penalty(r, p)
        if r.anomaly_probability * p.anomaly_weight > pen:
            pen, note = r.anomaly_probability * p.anomaly_weight, f"{note}; anomalous"
        c = Contribution(
            r.signal, r.value, base, pen, p.weights[r.signal], r.anomaly_probability, r.series, note
        )
        if r.signal not in best or c.penalty > best[r.signal].penalty:
            best[r.signal] = c
    missing = tuple(s for s in GOLDEN_SIGNALS if s not in best)
    if not best:
        text = f"{service}: no golden-signal data, so no score (missing: {', '.join(missing)})"
        return HealthScore(service, None, "unknown", (), missing, text)
    other = _clip(other_anomaly_probability)
    contributions = [*best.values(), Contribution(OTHER, other, 0.0, other, p.weights[OTHER], other)]
    total_w = sum(c.weight for c in contributions)
    weighted = sum(c.impact for c in contributions) / total_w if total_w > 0 else 0.0
    worst = max(c.penalty for c in best.values())  # the signals only (see "Score" in the module docstring)
    score = round(100.0 * (1.0 - weighted) * (1.0 - p.worst_factor * worst), 1)
    status = "ok" if score >= p.ok_at else ("degraded" if score >= p.critical_below else "critical")
    contributions.sort(key=lambda c: (-c.impact, c.signal))
    return HealthScore(
        service,
        score,
        status,
        tuple(contributions),
        missing,
        _explain(service, score, status, contributions, missing),
    )


def _explain(
    service: str, score: float, status: str, cs: list[Contribution], missing: tuple[str, ...]
) -> str:
    top = [c for c in cs if c.penalty > 0.0][:3]
    head = f"{service} is {status} (score {score:.0f}/100)"
    if not top:
        body = "every signal present is within its baseline or objective"
    else:
        parts = []
        for c in top:
            if c.signal == OTHER:
                parts.append(f"anomalies on other series (probability {c.anomaly_probability:.2f})")
                continue
            base = "no baseline" if c.baseline is None else f"baseline {c.baseline:.4g}"
            parts.append(f"{c.signal} {c.value:.4g} vs {base} ({c.note}; penalty {c.penalty:.2f})")
        body = "top contributors: " + "; ".join(parts)
    tail = f"; missing signals: {', '.join(missing)}" if missing else ""
    return f"{head}: {body}{tail}."


def summarise_window(
    ts: F64, values: F64, now: float, recent_s: float, min_baseline: int = 5
) -> tuple[float, float | None]:
    """The current value and the baseline of one series over a window, for a :class:`SignalReading`.

    The current value is the median of the points in the last ``recent_s`` seconds (the last point when
    there are none); the baseline is the median of the earlier points, or None with fewer than
    ``min_baseline`` of them. Non-finite points are ignored; an empty series gives ``(nan, None)``."""
    ok = np.isfinite(ts) & np.isfinite(values)
    ts, values = ts[ok], values[ok]
    if len(values) == 0:
        return math.nan, None
    recent = ts > now - recent_s
    current = float(np.median(values[recent])) if recent.any() else float(values[-1])
    earlier = values[~recent]
    baseline = float(np.median(earlier)) if len(earlier) >= min_baseline else None
    return current, baseline
