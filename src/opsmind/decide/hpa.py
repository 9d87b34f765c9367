"""The Kubernetes HorizontalPodAutoscaler (autoscaling/v2, CPU utilisation, default behaviour) as a baseline.

Written from the Kubernetes documentation ("Algorithm details", "Configurable scaling behavior") and checked
against the controller's arithmetic, so a benchmark compares OpsMind with what a cluster would really do:

- ``calculate`` is the replica calculator: group the pods, compute the usage ratio from *integer* percent
  utilisation (the controller truncates ``100 * sum(usage) / sum(requests)``), apply the tolerance, then
  re-run the ratio with the set-aside pods added back conservatively.
- ``HPAController`` is the reconcile loop: it keeps the recommendations for the stabilisation windows and
  the scale events for the rate-limit policies, and clamps to ``[min_replicas, max_replicas]``.

Where the documentation and the controller differ the controller wins, and the spec says so: on a
scale-down the controller counts a pod with a missing metric at 100 % of its CPU *request*
(``missing_on_scale_down="request"``), where the page says "100 % of the desired value" (``"target"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from opsmind.decide.base import ScaleDecision

PolicyKind = Literal["Pods", "Percent"]
SelectPolicy = Literal["Max", "Min", "Disabled"]


@dataclass(frozen=True, slots=True)
class ScalingPolicy:
    """One ``behavior.scaleUp/scaleDown.policies`` entry: at most ``value`` pods (or percent) per period."""

    kind: PolicyKind
    value: int
    period_s: int

    def __post_init__(self) -> None:
        if self.kind not in ("Pods", "Percent"):
            raise ValueError(f"kind must be 'Pods' or 'Percent', got {self.kind!r}")
        if self.value <= 0:
            raise ValueError(f"value must be > 0, got {self.value}")
        if not 0 < self.period_s <= 1800:  # the API server's bounds
            raise ValueError(f"period_s must be in (0, 1800], got {self.period_s}")


DEFAULT_SCALE_UP_POLICIES = (ScalingPolicy("Percent", 100, 15), ScalingPolicy("Pods", 4, 15))
DEFAULT_SCALE_DOWN_POLICIES = (ScalingPolicy("Percent", 100, 15),)


@dataclass(frozen=True, slots=True)
class PodSample:
    """What the controller knows about one pod at a sync: its CPU metric and its readiness history.

    ``utilisation`` is CPU usage as a fraction of the pod's request (1.0 = the whole request); None, NaN or
    a negative value means the metrics API returned nothing usable for the pod. ``ready_since_s`` is when
    a ready pod last became ready (None: ready since it started); ``unready_since_s`` is when an unready pod
    last became unready (None: unready since it started, i.e. never ready, which is also how the
    controller treats a pod with no Ready condition). ``metric_time_s`` is the metric's timestamp (None:
    taken at the sync) and ``metric_window_s`` the interval the metrics API averaged it over.
    """

    name: str
    utilisation: float | None
    ready: bool
    started_s: float
    ready_since_s: float | None = None
    unready_since_s: float | None = None
    pending: bool = False
    deleting: bool = False
    failed: bool = False
    request_millicores: int = 1000
    metric_time_s: float | None = None
    metric_window_s: float = 15.0

    def __post_init__(self) -> None:
        if self.request_millicores <= 0:
            raise ValueError(f"request_millicores must be > 0 for pod {self.name!r}")

    def has_metric(self) -> bool:
        u = self.utilisation
        return u is not None and math.isfinite(u) and u >= 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HPASpec:
    """An HPA on CPU utilisation with the API's default behaviour unless overridden."""

    target_utilisation: float
    max_replicas: int
    min_replicas: int = 1
    tolerance: float = 0.1
    sync_period_s: float = 15.0
    downscale_stabilisation_s: int = 300
    upscale_stabilisation_s: int = 0
    scale_up_policies: tuple[ScalingPolicy, ...] = DEFAULT_SCALE_UP_POLICIES
    scale_up_select: SelectPolicy = "Max"
    scale_down_policies: tuple[ScalingPolicy, ...] = DEFAULT_SCALE_DOWN_POLICIES
    scale_down_select: SelectPolicy = "Max"
    cpu_initialisation_period_s: float = 300.0
    initial_readiness_delay_s: float = 30.0
    missing_on_scale_down: Literal["request", "target"] = "request"

    def __post_init__(self) -> None:
        t = self.target_utilisation
        if not (math.isfinite(t) and 0.0 < t <= 1.0):
            raise ValueError(f"target_utilisation must be in (0, 1], got {t}")
        # averageUtilization is an integer percent in the API; refuse what a cluster could not express.
        if abs(t * 100 - round(t * 100)) > 1e-9:
            raise ValueError(f"target_utilisation must be a whole percent (e.g. 0.6), got {t}")
        if self.min_replicas < 1:
            raise ValueError(f"min_replicas must be >= 1, got {self.min_replicas}")
        if self.max_replicas < self.min_replicas:
            raise ValueError(
                f"max_replicas ({self.max_replicas}) must be >= min_replicas ({self.min_replicas})"
            )
        if not (math.isfinite(self.tolerance) and 0.0 <= self.tolerance < 1.0):
            raise ValueError(f"tolerance must be in [0, 1), got {self.tolerance}")
        if not (math.isfinite(self.sync_period_s) and self.sync_period_s > 0):
            raise ValueError(f"sync_period_s must be > 0, got {self.sync_period_s}")
        for name in ("downscale_stabilisation_s", "upscale_stabilisation_s"):
            if not 0 <= getattr(self, name) <= 3600:
                raise ValueError(f"{name} must be in [0, 3600], got {getattr(self, name)}")
        for name in ("scale_up", "scale_down"):
            select = getattr(self, f"{name}_select")
            if select not in ("Max", "Min", "Disabled"):
                raise ValueError(f"{name}_select must be 'Max', 'Min' or 'Disabled', got {select!r}")
            if select != "Disabled" and not getattr(self, f"{name}_policies"):
                raise ValueError(f"{name}_policies must not be empty unless {name}_select is 'Disabled'")
        for name in ("cpu_initialisation_period_s", "initial_readiness_delay_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.missing_on_scale_down not in ("request", "target"):
            raise ValueError(
                f"missing_on_scale_down must be 'request' or 'target', got {self.missing_on_scale_down!r}"
            )

    @property
    def target_percent(self) -> int:
        return round(self.target_utilisation * 100)


# --- the replica calculator (pure) -------------------------------------------------------------------


def _set_aside_as_unready(spec: HPASpec, pod: PodSample, now: float) -> bool:
    """Whether a CPU sample must be set aside because the pod is (or only just became) ready."""
    if pod.ready:
        if pod.started_s + spec.cpu_initialisation_period_s > now:
            # Still initialising: a CPU sample taken within one metric window of becoming ready may still
            # contain start-up burn, so it does not count.
            became_ready = pod.started_s if pod.ready_since_s is None else pod.ready_since_s
            metric_time = now if pod.metric_time_s is None else pod.metric_time_s
            return metric_time < became_ready + pod.metric_window_s
        return False
    # Unready. Past the initialisation period only a pod that has never been ready is set aside; the
    # controller guesses "never ready" from the last transition being within the readiness delay of start.
    if pod.started_s + spec.cpu_initialisation_period_s > now:
        return True
    went_unready = pod.started_s if pod.unready_since_s is None else pod.unready_since_s
    return pod.started_s + spec.initial_readiness_delay_s > went_unready


def _percent(usage: dict[str, int], requests: dict[str, int]) -> int:
    # The controller's integer division: 100 * sum(usage) / sum(requests), truncated to a whole percent.
    return (sum(usage.values()) * 100) // sum(requests[name] for name in usage)


def _within(spec: HPASpec, ratio: float) -> bool:
    return 1.0 - spec.tolerance <= ratio <= 1.0 + spec.tolerance


def _calculate(
    spec: HPASpec, current_replicas: int, pods: list[PodSample], now: float
) -> tuple[int | None, list[str]]:
    """The recommendation, or None when the controller could not compute one (it then keeps its scale)."""
    if not pods:
        return None, ["no pods returned by the selector: cannot compute a replica count"]
    requests = {p.name: p.request_millicores for p in pods}
    usage: dict[str, int] = {}
    unready: list[str] = []
    missing: list[str] = []
    ignored = 0
    for pod in pods:
        if pod.deleting or pod.failed:
            ignored += 1
        elif pod.pending:
            unready.append(pod.name)
        elif not pod.has_metric():
            missing.append(pod.name)
        elif _set_aside_as_unready(spec, pod, now):
            unready.append(pod.name)
        else:
            assert pod.utilisation is not None
            usage[pod.name] = round(pod.utilisation * pod.request_millicores)
    ready_count = len(usage)
    reasons = [
        f"{len(pods)} pods: {ready_count} counted, {len(unready)} unready set aside, "
        f"{len(missing)} missing metrics set aside, {ignored} deleting/failed ignored"
    ]
    if not usage:
        reasons.append("no metrics for any ready pod: cannot compute a replica count")
        return None, reasons

    target = spec.target_percent
    percent = _percent(usage, requests)
    ratio = percent / target
    reasons.append(f"CPU {percent}% of request vs target {target}%: usage ratio {ratio:.3f}")

    rebalance_unready = bool(unready) and ratio > 1.0
    if not rebalance_unready and not missing:
        if _within(spec, ratio):
            reasons.append(f"ratio within tolerance {spec.tolerance:g}: keep {current_replicas}")
            return current_replicas, reasons
        desired = math.ceil(ratio * ready_count)
        reasons.append(f"ceil({ratio:.3f} x {ready_count} pods) = {desired}")
        return desired, reasons

    # Add the set-aside pods back as conservatively as the direction allows: a scale-down must not be
    # driven by pods we cannot see, a scale-up must not be inflated by pods that are not serving yet.
    if missing and ratio < 1.0:
        fill_percent = 100 if spec.missing_on_scale_down == "request" else target
        for name in missing:
            usage[name] = requests[name] * fill_percent // 100
        label = "100% of request" if spec.missing_on_scale_down == "request" else f"target {target}%"
        reasons.append(f"scale-down: {len(missing)} pods with missing metrics counted at {label}")
    elif missing and ratio > 1.0:
        for name in missing:
            usage[name] = 0
        reasons.append(f"scale-up: {len(missing)} pods with missing metrics counted at 0%")
    if rebalance_unready:
        for name in unready:
            usage[name] = 0
        reasons.append(f"scale-up: {len(unready)} unready pods counted at 0%")

    new_percent = _percent(usage, requests)
    new_ratio = new_percent / target
    reasons.append(f"recomputed CPU {new_percent}% over {len(usage)} pods: usage ratio {new_ratio:.3f}")
    if _within(spec, new_ratio):
        reasons.append(f"recomputed ratio within tolerance {spec.tolerance:g}: keep {current_replicas}")
        return current_replicas, reasons
    if (ratio < 1.0 < new_ratio) or (new_ratio < 1.0 < ratio):
        reasons.append(f"recomputed ratio reverses the scale direction: keep {current_replicas}")
        return current_replicas, reasons
    desired = math.ceil(new_ratio * len(usage))
    if (new_ratio < 1.0 and desired > current_replicas) or (new_ratio > 1.0 and desired < current_replicas):
        reasons.append(f"ceil({new_ratio:.3f} x {len(usage)} pods) = {desired} moves against the ratio: keep")
        return current_replicas, reasons
    reasons.append(f"ceil({new_ratio:.3f} x {len(usage)} pods) = {desired}")
    return desired, reasons


def calculate(spec: HPASpec, current_replicas: int, pods: list[PodSample], now: float) -> ScaleDecision:
    """The replica calculator's recommendation for one sync, before stabilisation, rate limits and bounds.

    When no recommendation can be computed (no pods, no ready pod with a metric) it returns
    ``current_replicas`` with the reason, as the controller leaves the scale alone in that case.
    """
    if current_replicas < 0:
        raise ValueError(f"current_replicas must be >= 0, got {current_replicas}")
    desired, reasons = _calculate(spec, current_replicas, pods, now)
    return ScaleDecision(current_replicas if desired is None else desired, tuple(reasons))


# --- the controller (stateful) ------------------------------------------------------------------------


@dataclass(slots=True)
class _Timed:
    at_s: float
    value: int


def _change_in_period(events: list[_Timed], now: float, period_s: int) -> int:
    # An event exactly one period old no longer counts (the controller uses a strict "after the cutoff").
    return sum(e.value for e in events if e.at_s > now - period_s)


@dataclass(slots=True)
class HPAController:
    """The reconcile loop: call ``step`` every ``spec.sync_period_s`` with the target's current replicas.

    It assumes each returned scale is applied, and records it as a scale event for the rate limits.
    """

    spec: HPASpec
    _recommendations: list[_Timed] = field(default_factory=list)
    _up_events: list[_Timed] = field(default_factory=list)
    _down_events: list[_Timed] = field(default_factory=list)
    _started: bool = False

    def step(self, now: float, current_replicas: int, pods: list[PodSample]) -> ScaleDecision:
        spec = self.spec
        if current_replicas < 0:
            raise ValueError(f"current_replicas must be >= 0, got {current_replicas}")
        if not self._started:
            # The controller seeds the window with the current scale, so a fresh HPA cannot scale down
            # before one stabilisation window has passed.
            self._recommendations.append(_Timed(now, current_replicas))
            self._started = True
        if current_replicas == 0:
            return ScaleDecision(0, ("scaling disabled: the target has 0 replicas",))
        if current_replicas > spec.max_replicas:
            desired = spec.max_replicas
            reasons = [f"current {current_replicas} above max_replicas: set {desired}"]
        elif current_replicas < spec.min_replicas:
            desired = spec.min_replicas
            reasons = [f"current {current_replicas} below min_replicas: set {desired}"]
        else:
            proposed, reasons = _calculate(spec, current_replicas, pods, now)
            if proposed is None:
                reasons.append(f"no recommendation this sync: keep {current_replicas}")
                return ScaleDecision(current_replicas, tuple(reasons))
            stabilised = self._stabilise(now, current_replicas, proposed, reasons)
            desired = self._limit(now, current_replicas, stabilised, reasons)
        if desired != current_replicas:
            self._record_event(now, current_replicas, desired)
            reasons.append(f"scale {current_replicas} -> {desired}")
        else:
            reasons.append(f"no change: {current_replicas} replicas")
        return ScaleDecision(desired, tuple(reasons))

    def _stabilise(self, now: float, current: int, proposed: int, reasons: list[str]) -> int:
        spec = self.spec
        up_cutoff = now - spec.upscale_stabilisation_s
        down_cutoff = now - spec.downscale_stabilisation_s
        # Scale up only to the lowest recommendation of the up window, down only to the highest of the
        # down window: a single low (or high) reading is not enough to move.
        up = min([proposed] + [r.value for r in self._recommendations if r.at_s > up_cutoff])
        down = max([proposed] + [r.value for r in self._recommendations if r.at_s > down_cutoff])
        stabilised = min(max(current, up), down)
        oldest_useful = min(up_cutoff, down_cutoff)
        self._recommendations = [r for r in self._recommendations if r.at_s >= oldest_useful]
        self._recommendations.append(_Timed(now, proposed))
        if stabilised != proposed:
            if proposed < current:
                reasons.append(
                    f"scale-down stabilised: highest recommendation in the last "
                    f"{spec.downscale_stabilisation_s}s is {down} -> {stabilised}"
                )
            else:
                reasons.append(
                    f"scale-up stabilised: lowest recommendation in the last "
                    f"{spec.upscale_stabilisation_s}s is {up} -> {stabilised}"
                )
        return stabilised

    def _period_start(self, now: float, current: int, period_s: int) -> int:
        # Rates are measured from the replica count at the start of the policy period, so a burst of
        # small changes cannot add up to more than one policy allows.
        added = _change_in_period(self._up_events, now, period_s)
        removed = _change_in_period(self._down_events, now, period_s)
        return current - added + removed

    def _limit(self, now: float, current: int, desired: int, reasons: list[str]) -> int:
        spec = self.spec
        if desired > current:
            if spec.scale_up_select == "Disabled":
                limit = current
            else:
                proposals = []
                for p in spec.scale_up_policies:
                    start = self._period_start(now, current, p.period_s)
                    if p.kind == "Pods":
                        proposals.append(start + p.value)
                    else:  # rounded up, or a small target could never grow
                        proposals.append(math.ceil(start * (1 + p.value / 100)))
                limit = max(proposals) if spec.scale_up_select == "Max" else min(proposals)
            limit = max(limit, current)
            if spec.max_replicas > limit:
                if desired > limit:
                    reasons.append(f"scale-up rate limit: at most {limit} now (wanted {desired})")
                    return limit
            elif desired > spec.max_replicas:
                reasons.append(f"clamped to max_replicas {spec.max_replicas} (wanted {desired})")
                return spec.max_replicas
        elif desired < current:
            if spec.scale_down_select == "Disabled":
                limit = current
            else:
                proposals = []
                for p in spec.scale_down_policies:
                    start = self._period_start(now, current, p.period_s)
                    if p.kind == "Pods":
                        proposals.append(start - p.value)
                    else:  # truncated toward zero, as the controller converts to an integer
                        proposals.append(int(start * (1 - p.value / 100)))
                limit = min(proposals) if spec.scale_down_select == "Max" else max(proposals)
            limit = min(limit, current)
            if spec.min_replicas < limit:
                if desired < limit:
                    reasons.append(f"scale-down rate limit: at least {limit} now (wanted {desired})")
                    return limit
            elif desired < spec.min_replicas:
                reasons.append(f"clamped to min_replicas {spec.min_replicas} (wanted {desired})")
                return spec.min_replicas
        return desired

    def _record_event(self, now: float, previous: int, new: int) -> None:
        spec = self.spec
        if new > previous:
            events, policies, change = self._up_events, spec.scale_up_policies, new - previous
        else:
            events, policies, change = self._down_events, spec.scale_down_policies, previous - new
        longest = max((p.period_s for p in policies), default=0)
        events[:] = [e for e in events if e.at_s >= now - longest]
        events.append(_Timed(now, change))
