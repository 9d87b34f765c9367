"""Bottleneck warnings minutes ahead: the chance that forecast load outgrows what the replicas can serve.

For every forecast step the load's distribution is read off the forecast's quantiles (the mean as the
median, each level's ``lo``/``hi`` as the matching lower/upper quantile) and interpolated in normal-score
space, so an asymmetric interval (load spikes up more than it drops) keeps its shape; past the widest
interval the tail is normal with the spread of that side. The probability of a breach is the mass above
the capacity at that step: replicas x ``capacity_per_replica`` for the latency SLO, replicas x the
saturation rate for saturation. Replicas already on their way (a scale-up in progress) count from the
time they are expected to be ready.

A warning is raised for the first step whose probability reaches ``threshold``. The useful lead is
5-15 minutes (enough to add replicas, short enough for the forecast to be sharp); a breach expected
sooner is still reported, flagged ``imminent``, because hiding a known breach helps nobody.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import norm

from opsmind.predict.base import Forecast
from opsmind.predict.capacity import CapacityModel

FloatArray = npt.NDArray[np.float64]

LATENCY_SLO_RISK = "latency_slo_risk"
SATURATION = "saturation"


def exceedance_probability(forecast: Forecast, threshold: npt.ArrayLike) -> FloatArray:
    """P(value > threshold) at each forecast step, from the forecast's mean and intervals."""
    mean = np.asarray(forecast.mean, dtype=np.float64)
    limit = np.broadcast_to(np.asarray(threshold, dtype=np.float64), mean.shape)
    points: list[tuple[float, FloatArray]] = [(0.0, mean)]
    for level, lo in forecast.lo.items():
        points.append((float(norm.ppf(0.5 - level / 200.0)), np.asarray(lo, dtype=np.float64)))
    for level, hi in forecast.hi.items():
        points.append((float(norm.ppf(0.5 + level / 200.0)), np.asarray(hi, dtype=np.float64)))
    points.sort(key=lambda p: p[0])
    z = np.array([p[0] for p in points])
    # Quantiles must not cross; a forecaster's rounding can make them, so force them monotone.
    values = np.maximum.accumulate(np.vstack([p[1] for p in points]), axis=0)
    # How many quantiles lie on each side of the median: a tail needs at least one to take its spread.
    below, above = int(np.sum(z < 0)), int(np.sum(z > 0))

    prob = np.empty(mean.shape)
    for i in range(mean.size):
        v, c = values[:, i], float(limit[i])
        if v[-1] - v[0] <= 0:  # no spread: the forecast is taken at its word
            prob[i] = 1.0 if c < mean[i] else 0.0
            continue
        if c < v[0]:
            sigma = (mean[i] - v[0]) / -z[0] if below else 0.0
            zc = z[0] - (v[0] - c) / sigma if sigma > 0 else -np.inf
        elif c > v[-1]:
            sigma = (v[-1] - mean[i]) / z[-1] if above else 0.0
            zc = z[-1] + (c - v[-1]) / sigma if sigma > 0 else np.inf
        else:
            zc = float(np.interp(c, v, z))
        prob[i] = float(norm.sf(zc))
    return prob


@dataclass(frozen=True, slots=True)
class BreachRisk:
    """Per forecast step: lead time, replicas expected, both capacities and both breach probabilities."""

    lead_s: FloatArray
    replicas: FloatArray
    slo_capacity: FloatArray
    saturation_capacity: FloatArray
    p_slo: FloatArray
    p_saturation: FloatArray


def replicas_over(
    h: int, step_s: float, replicas: int, scheduled: Sequence[tuple[float, int]] = ()
) -> FloatArray:
    """Replicas at each of ``h`` steps: ``replicas`` now, then each ``(ready_after_s, replicas)`` from
    the step at or after its ready time."""
    lead = step_s * np.arange(1, h + 1)
    out = np.full(h, float(replicas))
    for ready_after_s, count in sorted(scheduled):
        out[lead >= ready_after_s] = float(count)
    return out


def breach_risk(
    forecast: Forecast,
    step_s: float,
    replicas: int,
    capacity: CapacityModel,
    scheduled: Sequence[tuple[float, int]] = (),
) -> BreachRisk:
    """The probability, step by step, that forecast load exceeds the SLO capacity and saturation."""
    if not capacity.ok:
        raise ValueError(f"capacity model not usable: {capacity.reason}")
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    h = int(np.asarray(forecast.mean).size)
    reps = replicas_over(h, step_s, replicas, scheduled)
    slo_cap = reps * capacity.capacity_per_replica
    sat_cap = reps * capacity.saturation_per_replica
    return BreachRisk(
        lead_s=step_s * np.arange(1, h + 1, dtype=np.float64),
        replicas=reps,
        slo_capacity=slo_cap,
        saturation_capacity=sat_cap,
        p_slo=exceedance_probability(forecast, slo_cap),
        p_saturation=exceedance_probability(forecast, sat_cap),
    )


@dataclass(frozen=True, slots=True)
class BottleneckWarning:
    service: str
    kind: str
    at: float
    lead_s: float
    probability: float
    evidence: str
    imminent: bool


def warn(
    service: str,
    forecast: Forecast,
    step_s: float,
    now: float,
    replicas: int,
    capacity: CapacityModel,
    scheduled: Sequence[tuple[float, int]] = (),
    threshold: float = 0.5,
    min_lead_s: float = 300.0,
    max_lead_s: float = 900.0,
) -> list[BottleneckWarning]:
    """Warnings for breaches expected within ``max_lead_s``: saturation first (the worse outcome),
    then latency SLO risk; at most one of each, at the first step that reaches ``threshold``."""
    risk = breach_risk(forecast, step_s, replicas, capacity, scheduled)
    mean = np.asarray(forecast.mean, dtype=np.float64)
    widest = max(forecast.hi) if forecast.hi else None
    warnings: list[BottleneckWarning] = []
    for kind, prob, cap, what in (
        (SATURATION, risk.p_saturation, risk.saturation_capacity, "saturation"),
        (LATENCY_SLO_RISK, risk.p_slo, risk.slo_capacity, "the latency SLO capacity"),
    ):
        hits = np.flatnonzero((prob >= threshold) & (risk.lead_s <= max_lead_s))
        if hits.size == 0:
            continue
        i = int(hits[0])
        lead = float(risk.lead_s[i])
        upper = f", {widest}% up to {float(forecast.hi[widest][i]):.4g}" if widest is not None else ""
        per_replica = float(cap[i] / risk.replicas[i])
        evidence = (
            f"load forecast {mean[i]:.4g}{upper} in {lead / 60:.0f} min vs {what} {float(cap[i]):.4g} "
            f"({risk.replicas[i]:.0f} replicas x {per_replica:.4g}); P(exceed) {float(prob[i]):.0%}"
            f" [{forecast.model or 'forecast'}]"
        )
        warnings.append(
            BottleneckWarning(
                service=service,
                kind=kind,
                at=now + lead,
                lead_s=lead,
                probability=float(prob[i]),
                evidence=evidence,
                imminent=lead < min_lead_s,
            )
        )
    return warnings
