"""Cost-aware placement: the cheapest mix of instances across providers and regions that serves the demand.

``place`` is a pure function. It filters the priced options by what the users can tolerate (latency from
where they are to each region) and by policy (allowed providers), then solves a small integer programme:
minimise the hourly cost of whole instances such that

* the vCPUs (and, if asked, the memory) cover the demand plus headroom, and
* no provider holds more than ``max_provider_share`` of the placed vCPUs, so losing one provider leaves
  the rest standing.

The solver is HiGHS through ``scipy.optimize.milp`` with a zero optimality gap, so the plan is the true
cheapest, not a greedy guess. Every result carries reasons: what was excluded and why, what the plan
costs, and what the best plan that avoids the chosen main location would cost (the runner-up), so every
decision shows its price. "Nothing fits" is a normal answer (``feasible=False`` with the reason), not
an exception; only malformed inputs raise ``ValueError``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from opsmind.decide.prices import InstancePrice

_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class Demand:
    """What has to be served and from where the users see each region.

    ``latency_ms`` maps ``provider/region`` (see ``InstancePrice.location``) to the round-trip time from
    the users to that region; a region missing from it has no known latency and is not used.
    """

    vcpu: float
    latency_ms: Mapping[str, float]
    headroom: float = 0.2
    memory_gib: float = 0.0

    def __post_init__(self) -> None:
        if not self.vcpu > 0 or math.isinf(self.vcpu):
            raise ValueError(f"vcpu must be a positive number, got {self.vcpu!r}")
        if not 0 <= self.headroom <= 10:
            raise ValueError(f"headroom must be between 0 and 10 (a fraction), got {self.headroom!r}")
        if not 0 <= self.memory_gib < math.inf:
            raise ValueError(f"memory_gib must be zero or positive, got {self.memory_gib!r}")
        bad = [k for k, v in self.latency_ms.items() if not 0 <= v < math.inf]
        if bad:
            raise ValueError(f"latency_ms must be non-negative numbers; bad: {', '.join(sorted(bad))}")

    @property
    def required_vcpu(self) -> float:
        return self.vcpu * (1 + self.headroom)

    @property
    def required_memory_gib(self) -> float:
        return self.memory_gib * (1 + self.headroom)


@dataclass(frozen=True, slots=True)
class Limits:
    """Policy: the latency users accept, the providers allowed, and how much one provider may carry."""

    max_latency_ms: float
    allowed_providers: frozenset[str] | None = None
    max_provider_share: float = 1.0

    def __post_init__(self) -> None:
        if not self.max_latency_ms > 0:
            raise ValueError(f"max_latency_ms must be positive, got {self.max_latency_ms!r}")
        if not 0 < self.max_provider_share <= 1:
            raise ValueError(f"max_provider_share must be in (0, 1], got {self.max_provider_share!r}")


@dataclass(frozen=True, slots=True)
class Allocation:
    provider: str
    region: str
    instance_type: str
    count: int
    vcpu: int
    usd_per_hour: float

    @property
    def location(self) -> str:
        return f"{self.provider}/{self.region}"


@dataclass(frozen=True, slots=True)
class Placement:
    """The chosen plan (empty when infeasible) and why.

    ``weights`` maps ``provider/region`` to the fraction of traffic to send there (proportional to the
    vCPUs placed there, summing to 1); ``provider_weights`` sums them per provider.
    """

    feasible: bool
    allocations: tuple[Allocation, ...] = ()
    usd_per_hour: float = 0.0
    vcpu: int = 0
    weights: Mapping[str, float] = field(default_factory=dict)
    provider_weights: Mapping[str, float] = field(default_factory=dict)
    runner_up_usd_per_hour: float | None = None
    reasons: tuple[str, ...] = ()

    def explain(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True, slots=True)
class _Plan:
    counts: tuple[tuple[InstancePrice, int], ...]
    usd_per_hour: float


def _solve(options: Sequence[InstancePrice], vcpu: float, memory: float, share: float) -> _Plan | None:
    """The cheapest whole-instance plan over ``options``, or None when there is none."""
    if not options:
        return None
    n = len(options)
    cost = np.array([o.usd_per_hour for o in options])
    cpus = np.array([float(o.vcpu) for o in options])
    mems = np.array([o.memory_gib for o in options])
    rows: list[np.ndarray] = [cpus]
    lower: list[float] = [vcpu]
    upper: list[float] = [np.inf]
    if memory > 0:
        rows.append(mems)
        lower.append(memory)
        upper.append(np.inf)
    if share < 1:
        # vCPU(provider) <= share * vCPU(all)  <=>  sum_i (1[i in p] - share) * vcpu_i * x_i <= 0
        for provider in sorted({o.provider for o in options}):
            member = np.array([1.0 if o.provider == provider else 0.0 for o in options])
            rows.append((member - share) * cpus)
            lower.append(-np.inf)
            upper.append(0.0)
    # No single type needs more instances than it takes to cover everything alone; with a share cap the
    # other providers must grow with it, so allow for that.
    need = max(vcpu / cpus.min(), memory / mems.min() if memory > 0 else 0.0)
    cap = math.ceil(need / share) + 1
    result = milp(
        c=cost,
        integrality=np.ones(n),
        bounds=Bounds(np.zeros(n), np.full(n, float(cap))),
        constraints=LinearConstraint(np.vstack(rows), np.array(lower), np.array(upper)),
        options={"mip_rel_gap": 0.0, "presolve": True},
    )
    if result.status != 0 or result.x is None:
        return None
    counts = tuple(
        (o, round(float(x))) for o, x in zip(options, result.x, strict=True) if round(float(x)) > 0
    )
    return _Plan(counts, sum(o.usd_per_hour * k for o, k in counts))


def _describe(plan: _Plan) -> str:
    return ", ".join(f"{k}x {o.instance_type} in {o.location}" for o, k in plan.counts)


def _main_location(plan: _Plan) -> str:
    by_location: dict[str, int] = {}
    for o, k in plan.counts:
        by_location[o.location] = by_location.get(o.location, 0) + o.vcpu * k
    return max(sorted(by_location), key=lambda loc: by_location[loc])


def _fractions(vcpu_by_key: Mapping[str, int]) -> dict[str, float]:
    """Fractions proportional to the values, summing to exactly 1 (the last key takes the remainder)."""
    total = sum(vcpu_by_key.values())
    keys = sorted(vcpu_by_key)
    out = {k: vcpu_by_key[k] / total for k in keys[:-1]}
    out[keys[-1]] = 1.0 - sum(out.values())
    return out


def _filter(
    options: Iterable[InstancePrice], demand: Demand, limits: Limits
) -> tuple[list[InstancePrice], list[str]]:
    kept: list[InstancePrice] = []
    reasons: list[str] = []
    not_allowed: set[str] = set()
    too_far: dict[str, tuple[float, float]] = {}  # location -> (latency, cheapest $/vCPU-h there)
    unknown: set[str] = set()
    for o in options:
        if limits.allowed_providers is not None and o.provider not in limits.allowed_providers:
            not_allowed.add(o.provider)
            continue
        latency = demand.latency_ms.get(o.location)
        if latency is None:
            unknown.add(o.location)
            continue
        if latency > limits.max_latency_ms:
            prev = too_far.get(o.location)
            per_cpu = o.usd_per_vcpu_hour if prev is None else min(prev[1], o.usd_per_vcpu_hour)
            too_far[o.location] = (latency, per_cpu)
            continue
        kept.append(o)
    if not_allowed:
        reasons.append(f"providers not allowed: {', '.join(sorted(not_allowed))}")
    for loc in sorted(too_far):
        latency, per_cpu = too_far[loc]
        reasons.append(
            f"{loc} excluded: {latency:g} ms to users > limit {limits.max_latency_ms:g} ms "
            f"(from ${per_cpu:.4f}/vCPU-h)"
        )
    if unknown:
        reasons.append(f"no latency known, not used: {', '.join(sorted(unknown))}")
    return kept, reasons


def place(demand: Demand, options: Iterable[InstancePrice], limits: Limits) -> Placement:
    """Choose the cheapest feasible mix of instances for ``demand`` among ``options`` under ``limits``."""
    kept, reasons = _filter(options, demand, limits)
    need_cpu, need_mem = demand.required_vcpu, demand.required_memory_gib
    reasons.insert(
        0,
        f"need {need_cpu:g} vCPU ({demand.vcpu:g} + {demand.headroom:.0%} headroom)"
        + (f" and {need_mem:g} GiB" if need_mem > 0 else ""),
    )
    if not kept:
        reasons.append("infeasible: no priced instance type is within the latency limit and policy")
        return Placement(False, reasons=tuple(reasons))
    providers = sorted({o.provider for o in kept})
    share = limits.max_provider_share
    if share < 1 and len(providers) * share < 1 - _EPS:
        reasons.append(
            f"infeasible: at most {share:.0%} per provider needs at least {math.ceil(1 / share - _EPS)} "
            f"providers, only {len(providers)} usable ({', '.join(providers)})"
        )
        return Placement(False, reasons=tuple(reasons))
    plan = _solve(kept, need_cpu, need_mem, share)
    if plan is None:
        reasons.append("infeasible: no whole-instance mix meets capacity and the provider share cap")
        return Placement(False, reasons=tuple(reasons))

    allocations = tuple(
        Allocation(o.provider, o.region, o.instance_type, k, o.vcpu * k, o.usd_per_hour * k)
        for o, k in sorted(plan.counts, key=lambda ok: (ok[0].location, ok[0].instance_type))
    )
    by_location: dict[str, int] = {}
    by_provider: dict[str, int] = {}
    for a in allocations:
        by_location[a.location] = by_location.get(a.location, 0) + a.vcpu
        by_provider[a.provider] = by_provider.get(a.provider, 0) + a.vcpu
    total_vcpu = sum(by_location.values())
    reasons.append(
        f"chosen: {', '.join(f'{a.count}x {a.instance_type} in {a.location}' for a in allocations)}"
        f" = {total_vcpu} vCPU for ${plan.usd_per_hour:.4f}/h (${plan.usd_per_hour * 730:.2f}/month)"
    )
    if share < 1:
        shares = ", ".join(f"{p} {v / total_vcpu:.0%}" for p, v in sorted(by_provider.items()))
        reasons.append(f"provider shares {shares} (cap {share:.0%})")

    main = _main_location(plan)
    runner_up = _solve([o for o in kept if o.location != main], need_cpu, need_mem, share)
    if runner_up is None:
        reasons.append(f"runner-up: none without {main}")
    else:
        extra = runner_up.usd_per_hour - plan.usd_per_hour
        reasons.append(
            f"runner-up without {main}: {_describe(runner_up)}"
            f" for ${runner_up.usd_per_hour:.4f}/h (+${extra:.4f}/h, +{extra / plan.usd_per_hour:.1%})"
        )
    return Placement(
        feasible=True,
        allocations=allocations,
        usd_per_hour=plan.usd_per_hour,
        vcpu=total_vcpu,
        weights=_fractions(by_location),
        provider_weights=_fractions(by_provider),
        runner_up_usd_per_hour=None if runner_up is None else runner_up.usd_per_hour,
        reasons=tuple(reasons),
    )
