"""OpsMind's predictive scaling policy: provision for the forecast, guard against what the forecast missed.

The HPA reacts to utilisation it has already seen, so a pod that takes minutes to start arrives after the
load it was meant for. This policy sizes the fleet for a forecast quantile of the load over a horizon that
covers the pod start-up time, plus headroom, and keeps a reactive term on the load observed now, because a
forecast that misses a burst must not leave the fleet smaller than a reactive autoscaler would make it.

``calculate`` is pure; ``PredictiveController`` adds what needs memory: scale up at once, scale down only
as far as the highest recommendation of the last ``scale_down_window_s`` (no flapping), optionally no more
than a fraction of the fleet per step.

Two ways to turn load into pods (``sizing``):

* ``"utilisation"``: ``ceil(load / (capacity_per_pod x target_utilisation))``, the HPA's arithmetic;
* ``"latency"``: the fewest pods whose modelled response-time percentile stays within
  ``latency_objective_s`` (:mod:`opsmind.predict.queue_model`, M/M/c with ``concurrency`` requests in
  flight per pod and a service time of ``concurrency / capacity_per_pod``). Loads are then request
  rates per second. Pooled pods can run hotter than few pods at the same latency, so this spends less
  at high load and more at low load than any single utilisation target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from opsmind.decide.base import ScaleDecision
from opsmind.predict.queue_model import replicas_for

# A quotient such as 77 / 7 comes out as 11.000000000000002 in floating point; without this slack the
# ceiling would ask for a twelfth pod that the arithmetic never needed.
_CEIL_SLACK = 1e-9
# Pods beyond any sane fleet; capping here keeps math.ceil away from overflow on absurd finite loads.
_POD_CAP = 1e12


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictiveSpec:
    """How full each pod may run, how much room to keep, and how cautiously to give capacity back."""

    target_utilisation: float
    headroom: float
    min_replicas: int
    max_replicas: int
    scale_down_window_s: float = 300.0
    max_scale_down_fraction_per_step: float | None = None
    sizing: Literal["utilisation", "latency"] = "utilisation"
    latency_objective_s: float | None = None
    latency_quantile: float = 0.95
    concurrency: int = 1

    def __post_init__(self) -> None:
        if self.sizing not in ("utilisation", "latency"):
            raise ValueError(f"sizing must be 'utilisation' or 'latency', got {self.sizing!r}")
        if self.sizing == "latency":
            obj = self.latency_objective_s
            if obj is None or not (math.isfinite(obj) and obj > 0):
                raise ValueError(f"latency sizing needs latency_objective_s > 0, got {obj}")
            if not 0.0 < self.latency_quantile < 1.0:
                raise ValueError(f"latency_quantile must be in (0, 1), got {self.latency_quantile}")
            if self.concurrency < 1:
                raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        t = self.target_utilisation
        if not (math.isfinite(t) and 0.0 < t <= 1.0):
            raise ValueError(f"target_utilisation must be in (0, 1], got {t}")
        if not (math.isfinite(self.headroom) and self.headroom >= 0.0):
            raise ValueError(f"headroom must be a finite fraction >= 0, got {self.headroom}")
        if self.min_replicas < 1:
            raise ValueError(f"min_replicas must be >= 1, got {self.min_replicas}")
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        if not (math.isfinite(self.scale_down_window_s) and self.scale_down_window_s >= 0.0):
            raise ValueError(f"scale_down_window_s must be finite and >= 0, got {self.scale_down_window_s}")
        f = self.max_scale_down_fraction_per_step
        if f is not None and not (math.isfinite(f) and 0.0 < f <= 1.0):
            raise ValueError(f"max_scale_down_fraction_per_step must be in (0, 1], got {f}")


def _pods_for(load: float, per_pod: float) -> int:
    raw = min(load / per_pod, _POD_CAP)
    return max(0, math.ceil(raw - _CEIL_SLACK * max(1.0, raw)))


def _usable(name: str, value: float, reasons: list[str]) -> float | None:
    """The load to use, or None when it carries no information (NaN, +/-inf)."""
    if not math.isfinite(value):
        reasons.append(f"{name} load {value} unusable")
        return None
    if value < 0.0:
        # A forecaster can dip below zero around a trough; demand cannot.
        reasons.append(f"{name} load {value:g} < 0 treated as 0")
        return 0.0
    return value


def _clamp(spec: PredictiveSpec, replicas: int, reasons: list[str]) -> int:
    if replicas > spec.max_replicas:
        reasons.append(f"clamped to max_replicas {spec.max_replicas} (wanted {replicas})")
        return spec.max_replicas
    if replicas < spec.min_replicas:
        reasons.append(f"clamped to min_replicas {spec.min_replicas} (wanted {replicas})")
        return spec.min_replicas
    return replicas


def calculate(
    spec: PredictiveSpec,
    *,
    current_replicas: int,
    forecast_load: float,
    observed_load: float,
    capacity_per_pod: float,
) -> ScaleDecision:
    """Replicas for the larger of the forecast term and the reactive term, within the bounds.

    ``forecast_load`` is a forecast quantile (e.g. the 90th percentile) over a horizon covering pod start-up;
    ``observed_load`` is the load now; ``capacity_per_pod`` is what one pod serves at 100 % utilisation, in
    the same units. Unusable inputs never raise: the decision falls back to the term that is still valid,
    or to the current replica count, and says so.
    """
    if current_replicas < 0:
        raise ValueError(f"current_replicas must be >= 0, got {current_replicas}")
    reasons: list[str] = []
    if not (math.isfinite(capacity_per_pod) and capacity_per_pod > 0.0):
        reasons.append(f"capacity_per_pod {capacity_per_pod} unusable: keep {current_replicas}")
        return ScaleDecision(_clamp(spec, current_replicas, reasons), tuple(reasons))

    forecast = _usable("forecast", forecast_load, reasons)
    observed = _usable("observed", observed_load, reasons)
    terms: dict[str, int] = {}
    if spec.sizing == "latency":
        assert spec.latency_objective_s is not None  # checked by the spec
        service_s = spec.concurrency / capacity_per_pod
        objective = spec.latency_objective_s

        def size(load: float) -> int:
            servers = replicas_for(load, service_s, objective, spec.latency_quantile)
            return math.ceil(servers / spec.concurrency)

        how = f"p{spec.latency_quantile * 100:g} <= {objective:g}s with service time {service_s:.3g}s"
        if forecast is not None:
            terms["forecast"] = size(forecast * (1.0 + spec.headroom))
            padded = forecast * (1.0 + spec.headroom)
            reasons.append(f"forecast term: {padded:g}/s needs {terms['forecast']} ({how})")
        if observed is not None:
            terms["reactive"] = size(observed)
            reasons.append(f"reactive term: {observed:g}/s needs {terms['reactive']}")
    else:
        per_pod = capacity_per_pod * spec.target_utilisation
        # The target is stated: "capacity per pod 214" then "/ 150" left the reader to guess a 70 % target.
        reasons.append(
            f"{per_pod:g}/s per pod: {capacity_per_pod:g} at 100 % x {spec.target_utilisation:g} target"
        )
        if forecast is not None:
            terms["forecast"] = _pods_for(forecast * (1.0 + spec.headroom), per_pod)
            pad = 1.0 + spec.headroom
            reasons.append(f"forecast term ceil({forecast:g} x {pad:g} / {per_pod:g}) = {terms['forecast']}")
        if observed is not None:
            terms["reactive"] = _pods_for(observed, per_pod)
            reasons.append(f"reactive term ceil({observed:g} / {per_pod:g}) = {terms['reactive']}")

    if not terms:
        reasons.append(f"no usable load: keep {current_replicas}")
        return ScaleDecision(_clamp(spec, current_replicas, reasons), tuple(reasons))
    if len(terms) == 1:
        ((name, desired),) = terms.items()
        reasons.append(f"{name} term only: {desired}")
    else:
        desired = max(terms.values())
        if terms["forecast"] == terms["reactive"]:
            reasons.append(f"forecast and reactive terms agree: {desired}")
        elif terms["forecast"] > terms["reactive"]:
            reasons.append(f"forecast term won: {desired} over reactive {terms['reactive']}")
        else:
            reasons.append(
                f"reactive term won (burst the forecast missed): {desired} over forecast {terms['forecast']}"
            )
    return ScaleDecision(_clamp(spec, desired, reasons), tuple(reasons))


@dataclass(slots=True)
class PredictiveController:
    """Call ``step`` on each decision tick; it assumes each returned replica count is applied."""

    spec: PredictiveSpec
    _history: list[tuple[float, int]] = field(default_factory=list)

    def step(
        self,
        now: float,
        current_replicas: int,
        forecast_load: float,
        observed_load: float,
        capacity_per_pod: float,
    ) -> ScaleDecision:
        spec = self.spec
        decision = calculate(
            spec,
            current_replicas=current_replicas,
            forecast_load=forecast_load,
            observed_load=observed_load,
            capacity_per_pod=capacity_per_pod,
        )
        proposed = decision.replicas
        reasons = list(decision.reasons)
        # Recommendations made on unusable inputs are kept too: they equal the current count, so bad data
        # holds the fleet where it is instead of letting it shrink.
        cutoff = now - spec.scale_down_window_s
        self._history = [(t, r) for t, r in self._history if t > cutoff]
        self._history.append((now, proposed))

        if proposed >= current_replicas:
            if proposed > current_replicas:
                reasons.append(f"scale up at once: {current_replicas} -> {proposed}")
            else:
                reasons.append(f"no change: {current_replicas} replicas")
            return ScaleDecision(proposed, tuple(reasons))

        # Scale down only to the highest recommendation of the window, never above where we are.
        highest = max(r for _, r in self._history)
        target = min(current_replicas, highest)
        if target > proposed:
            reasons.append(
                f"scale-down stabilised: highest recommendation in the last {spec.scale_down_window_s:g}s "
                f"is {highest} -> {target}"
            )
        fraction = spec.max_scale_down_fraction_per_step
        if fraction is not None:
            # At least one pod per step, or a small fleet with a small fraction could never shrink.
            floor = current_replicas - max(1, math.floor(current_replicas * fraction))
            if target < floor:
                reasons.append(f"scale-down limited to {fraction:g} of {current_replicas} per step: {floor}")
                target = floor
        target = min(max(target, spec.min_replicas), spec.max_replicas)
        if target < current_replicas:
            reasons.append(f"scale down: {current_replicas} -> {target}")
        else:
            reasons.append(f"no change: {current_replicas} replicas")
        return ScaleDecision(target, tuple(reasons))
