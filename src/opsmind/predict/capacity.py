"""A service's capacity per replica, learned from observed load against latency.

Latency of a queue grows like ``base / (1 - x / mu)`` as the load per replica ``x`` approaches the
service rate ``mu``; for an M/M/1 queue the p95 sojourn time is exactly ``ln(20) / (mu - x)``, which is
this shape. Its reciprocal is a straight line, ``1 / latency = a - c * x`` with ``base = 1 / a`` and
``mu = a / c``, so the fit is a (robust, reweighted) linear regression rather than a fragile
non-linear search. The residual is scaled by the observed latency so that it is relative: noise on a
p95 is roughly multiplicative, and an absolute residual in ``1 / latency`` would let the fast, lightly
loaded samples dominate.

``capacity_per_replica`` is the load per replica at which the curve reaches the latency SLO:
``mu * (1 - base / slo)``. The model refuses, with a reason, when the data cannot support it: too few
samples, latency that does not rise with load, a service never loaded past ``min_utilisation`` of its
estimated saturation (the curve's bend was never seen, so ``mu`` would be extrapolated), a curve that
explains the log latency no better than its mean (R2 below ``MIN_R2``), or a bootstrap interval wider
than ``max_relative_uncertainty``.

A fit or a configured figure can be too high, and a saturated fleet cannot correct it: its latency is
off the curve (the fit refuses such data) and its load is capped at what its pods serve. What it does
show is an upper bound: over a step in which the service's mean CPU was at least ``SATURATED_CPU``, one
pod served no more than the step's load per replica. :class:`SaturationBound` keeps the lowest such
figure for ``SATURATED_MEMORY_S`` and bounds a model with it (:meth:`SaturationBound.apply`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

NAN = float("nan")
# A service's mean CPU at which its pods count as saturated: they serve all they can, not all they are
# offered (the autoscale benchmark's policy uses the same threshold).
SATURATED_CPU = 0.95
# How long a saturated fleet's bound is kept after it was last seen: as long as the capacity fit looks
# back by default (predict.capacity_lookback_s). Kept for ever, one bad step (a CPU-hungry neighbour)
# would understate the capacity for good; forgotten at once, a capacity that is too high would be
# claimed again, and a fleet scaled by it saturated again, as soon as it was out of saturation.
SATURATED_MEMORY_S = 6 * 3600.0
# A fit that explains less of the log latency than its mean does is no model of the service: in the demo a
# cache's fit of R2 -43.8 (samples of its outage among them, 102 % of the saturation it implied) was used,
# and predicted its saturation "in 1 minute" every minute for a quarter of an hour after it had recovered.
MIN_R2 = 0.0


@dataclass(frozen=True, slots=True)
class CapacityModel:
    """Per-replica capacity of one service. When ``ok`` is false ``capacity_per_replica`` is NaN and
    ``reason`` says why (the other figures are kept where they were estimated, for display); when true,
    ``reason`` summarises the fit."""

    ok: bool
    reason: str
    latency_slo: float
    base_latency: float = NAN
    saturation_per_replica: float = NAN
    capacity_per_replica: float = NAN
    capacity_lo: float = NAN
    capacity_hi: float = NAN
    r2: float = NAN
    max_utilisation: float = NAN
    n_samples: int = 0

    @classmethod
    def known(
        cls, capacity_per_replica: float, saturation_per_replica: float, latency_slo: float = NAN
    ) -> CapacityModel:
        """A model from known figures (configuration, a load test) rather than a fit."""
        if not 0 < capacity_per_replica <= saturation_per_replica:
            raise ValueError("need 0 < capacity_per_replica <= saturation_per_replica")
        return cls(
            ok=True,
            reason="given",
            latency_slo=latency_slo,
            saturation_per_replica=saturation_per_replica,
            capacity_per_replica=capacity_per_replica,
            capacity_lo=capacity_per_replica,
            capacity_hi=capacity_per_replica,
        )

    def latency_at(self, load_per_replica: float) -> float:
        """The fitted latency at a per-replica load; infinite at or past saturation."""
        if load_per_replica >= self.saturation_per_replica:
            return math.inf
        return self.base_latency / (1.0 - load_per_replica / self.saturation_per_replica)

    def capacity(self, replicas: float) -> float:
        """Total load ``replicas`` can serve within the latency SLO."""
        return replicas * self.capacity_per_replica


def _robust_line(x: FloatArray, lat: FloatArray, iterations: int = 10) -> tuple[float, float]:
    """Fit ``lat * (a - c x) ~ 1`` by least squares reweighted with Huber weights, so a few
    outliers (a GC pause, a cold cache) do not bend the curve."""
    design = np.column_stack((lat, -lat * x))
    w = np.ones_like(x)
    a = c = 0.0
    for _ in range(iterations):
        sw = np.sqrt(w)
        coef = np.linalg.lstsq(design * sw[:, None], sw, rcond=None)[0]
        a, c = float(coef[0]), float(coef[1])
        r = design @ coef - 1.0
        scale = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        if scale <= 1e-12:
            break
        k = 1.345 * scale
        w = np.minimum(1.0, k / np.maximum(np.abs(r), 1e-12))
    return a, c


def _capacity(a: float, c: float, slo: float) -> float:
    if a <= 0 or c <= 0:
        return NAN
    return (a / c) * (1.0 - (1.0 / a) / slo)


def fit_capacity(
    load: npt.ArrayLike,
    latency_p95: npt.ArrayLike,
    replicas: npt.ArrayLike,
    latency_slo: float,
    min_samples: int = 12,
    min_utilisation: float = 0.2,
    max_relative_uncertainty: float = 0.5,
    bootstrap: int = 200,
    seed: int = 0,
) -> CapacityModel:
    """Fit the capacity of one service from samples of total load, latency p95 and replica count."""
    if latency_slo <= 0:
        raise ValueError("latency_slo must be positive")
    load_a = np.asarray(load, dtype=np.float64)
    lat = np.asarray(latency_p95, dtype=np.float64)
    rep = np.asarray(replicas, dtype=np.float64)
    if not load_a.shape == lat.shape == rep.shape:
        raise ValueError("load, latency_p95 and replicas must have the same shape")
    keep = np.isfinite(load_a) & np.isfinite(lat) & np.isfinite(rep) & (rep > 0) & (lat > 0) & (load_a >= 0)
    x, lat = load_a[keep] / rep[keep], lat[keep]
    n = int(x.size)

    def refuse(reason: str, **extra: float) -> CapacityModel:
        return CapacityModel(ok=False, reason=reason, latency_slo=latency_slo, n_samples=n, **extra)

    if n < min_samples:
        return refuse(f"{n} usable samples, need at least {min_samples}")
    if float(np.ptp(x)) <= 1e-9 * max(1.0, float(np.max(x))):
        return refuse("the load per replica never varied")

    a, c = _robust_line(x, lat)
    if a <= 0 or c <= 0:
        return refuse("latency does not rise with load in the observed range")
    base, mu = 1.0 / a, a / c
    utilisation = float(np.max(x)) / mu
    if utilisation < min_utilisation:
        return refuse(
            f"never loaded above {utilisation:.0%} of the estimated saturation ({mu:.3g}/replica); "
            f"need {min_utilisation:.0%} to see the curve bend",
            base_latency=base,
            saturation_per_replica=mu,
            max_utilisation=utilisation,
        )
    if base >= latency_slo:
        return refuse(
            f"the no-load latency {base:.3g} already meets or exceeds the SLO {latency_slo:.3g}",
            base_latency=base,
            saturation_per_replica=mu,
        )
    cap = _capacity(a, c, latency_slo)

    # Bootstrap over samples for the capacity's uncertainty; a resample whose curve does not bend
    # upward counts as "unbounded", which widens the interval instead of being silently dropped.
    rng = np.random.default_rng(seed)
    caps = np.empty(bootstrap)
    for i in range(bootstrap):
        idx = rng.integers(0, n, n)
        caps[i] = _capacity(*_robust_line(x[idx], lat[idx], iterations=3), latency_slo)
    caps[~np.isfinite(caps)] = np.inf
    lo, hi = (float(v) for v in np.quantile(caps, [0.05, 0.95]))

    predicted = np.log(base) - np.log(np.clip(1.0 - x / mu, 1e-9, None))
    resid = np.log(lat) - predicted
    total = float(np.sum((np.log(lat) - np.mean(np.log(lat))) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / total if total > 0 else NAN

    model = CapacityModel(
        ok=True,
        reason=(
            f"{cap:.3g}/replica within a {latency_slo:.3g} p95 (90% interval {lo:.3g}..{hi:.3g}), "
            f"saturation {mu:.3g}/replica, base latency {base:.3g}, R2 {r2:.2f}, {n} samples up to "
            f"{utilisation:.0%} utilisation"
        ),
        latency_slo=latency_slo,
        base_latency=base,
        saturation_per_replica=mu,
        capacity_per_replica=cap,
        capacity_lo=lo,
        capacity_hi=hi,
        r2=r2,
        max_utilisation=utilisation,
        n_samples=n,
    )
    if not r2 >= MIN_R2:  # NaN too: latency that never varied
        reason = (
            f"the latency curve does not fit the samples (R2 {r2:.2f}: no better than their mean); "
            f"{n} samples up to {utilisation:.0%} of the saturation it implies"
        )
        return replace(model, ok=False, reason=reason, capacity_per_replica=NAN)
    spread = (hi - lo) / cap if cap > 0 else math.inf
    if cap <= 0 or spread > max_relative_uncertainty:
        reason = f"capacity {cap:.3g}/replica too uncertain (90% interval {lo:.3g}..{hi:.3g})"
        return replace(model, ok=False, reason=reason, capacity_per_replica=NAN)
    return model


@dataclass(slots=True)
class SaturationBound:
    """The lowest load per replica a service's fleet served over a step in which it was saturated (mean
    CPU at least ``SATURATED_CPU``), kept until ``memory_s`` after the last such step. Fed the steps in
    time order with :meth:`observe`."""

    memory_s: float = SATURATED_MEMORY_S
    per_replica: float = math.inf
    seen_at: float = -math.inf  # the end of the last saturated step

    def observe(self, end: float, load: float, replicas: float, cpu: float) -> bool:
        """Take the step ending at ``end`` (its mean load, replicas and mean CPU); whether it counted."""
        if not (cpu >= SATURATED_CPU and load > 0 and replicas > 0):  # false for NaN too
            return False
        if end - self.seen_at > self.memory_s:  # the bound held was forgotten before this step
            self.per_replica = math.inf
        self.per_replica = min(self.per_replica, load / replicas)
        self.seen_at = max(self.seen_at, end)
        return True

    def at(self, now: float) -> float | None:
        """The bound on the load per replica as of ``now``; None when none is held."""
        if now - self.seen_at > self.memory_s or not math.isfinite(self.per_replica):
            return None
        return self.per_replica

    def apply(self, model: CapacityModel | None, now: float, latency_slo: float) -> CapacityModel | None:
        """``model`` with its saturation and SLO capacity per replica (and the interval) no higher than the
        bound, the reason saying so; without a usable model, a model of the bound alone (the best figure
        there is: a fleet sized by none at all stays saturated). ``model`` as it is when no bound is
        held or the model is within it."""
        bound = self.at(now)
        if bound is None:
            return model
        why = (
            f"at most {bound:.4g}/replica: a saturated fleet served no more per replica "
            f"(mean CPU >= {SATURATED_CPU:g}, {now - self.seen_at:.0f}s ago)"
        )
        if model is None or not model.ok:
            return replace(CapacityModel.known(bound, bound, latency_slo), reason=why)
        if model.saturation_per_replica <= bound:
            return model
        # The SLO capacity is clipped, not scaled with the saturation: the bound says what a pod cannot
        # serve, not where its latency curve bends.
        return replace(
            model,
            reason=f"{why}, not {model.reason}",
            saturation_per_replica=bound,
            capacity_per_replica=min(model.capacity_per_replica, bound),
            capacity_lo=min(model.capacity_lo, bound),
            capacity_hi=min(model.capacity_hi, bound),
        )
