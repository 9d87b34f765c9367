"""Capacity and cost recommendations, each with a priority, an expected effect and the reasons for it.

Four kinds, from two sources:

* from the week-ahead capacity outlook (``opsmind.predict.capacity_forecast``):
  ``raise_ceiling`` when the forecast's upper bound passes ``max_replicas x capacity_per_replica``
  within the horizon - the autoscaler cannot help past its ceiling; and ``raise_floor`` before the next
  forecast peak that needs more replicas than the floor - reactive scaling lags a steep ramp by the
  time a replica takes to start, and a known peak does not have to be met reactively;
* from plain price data (provider, region, instance type, vCPUs, USD per hour): ``change_instance_type``
  when another type in the same region packs the service's vCPUs for less, and ``move_load`` when a
  region the service may move to is cheaper still.

Priority (0-100) puts risk before savings: a ceiling that runs out scores 50-100 by urgency (how soon)
and impact (how far short); a floor 30-80 the same way; savings 10-50 by the fraction and the absolute
monthly amount saved, with moves discounted because latency, egress and migration risk are not priced.
Everything here is a pure function of its inputs; ``now`` is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opsmind.predict.capacity_forecast import WEEK, CapacityOutlook

HOURS_PER_MONTH = 730.0

RAISE_FLOOR = "raise_floor"
RAISE_CEILING = "raise_ceiling"
CHANGE_INSTANCE_TYPE = "change_instance_type"
MOVE_LOAD = "move_load"


@dataclass(frozen=True, slots=True)
class Recommendation:
    """``details`` holds the machine-readable figures behind ``action`` (e.g. ``min_replicas``, ``at``)."""

    service: str
    kind: str
    action: str
    priority: int
    expected_effect: str
    reasons: tuple[str, ...]
    details: Mapping[str, float | str] = field(default_factory=dict)

    def explain(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True, slots=True)
class InstanceOption:
    provider: str
    region: str
    instance_type: str
    vcpu: float
    usd_per_hour: float

    @property
    def usd_per_vcpu_hour(self) -> float:
        return self.usd_per_hour / self.vcpu


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a service runs now and how much of it: ``replicas`` (typical count) of ``vcpu_per_replica``
    packed onto ``instance_type``. ``allowed_regions`` ("provider/region") limits moves; empty with
    ``allow_move`` means anywhere."""

    service: str
    provider: str
    region: str
    instance_type: str
    vcpu_per_replica: float
    replicas: float
    allow_move: bool = False
    allowed_regions: tuple[str, ...] = ()


def _when(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def _urgency(seconds_left: float, horizon_s: float) -> float:
    return _clamp(1.0 - seconds_left / horizon_s)


def _raise_ceiling(o: CapacityOutlook, now: float, horizon_s: float) -> Recommendation | None:
    if o.first_exceed_at is None or o.peak is None:
        return None
    peak = o.peak
    needed = max(d.replicas_needed for d in o.days)
    left = o.first_exceed_at - now
    shortfall = peak.upper / o.ceiling - 1.0
    # A 25 % shortfall is as bad as it gets for ranking purposes: any more is still "raise it now".
    urgency, impact = _urgency(left, horizon_s), _clamp(shortfall / 0.25)
    return Recommendation(
        service=o.service,
        kind=RAISE_CEILING,
        action=f"raise max_replicas {o.max_replicas} -> {needed} before {_when(o.first_exceed_at)}",
        priority=round(50 + 35 * urgency + 15 * impact),
        expected_effect=(
            f"ceiling {o.ceiling:.4g} -> {needed * o.capacity_per_replica:.4g}, covering the forecast "
            f"peak {peak.upper:.4g} ({o.level}% upper bound) on {_when(peak.at)}"
        ),
        reasons=(
            f"forecast upper bound passes the ceiling {o.ceiling:.4g} "
            f"({o.max_replicas} x {o.capacity_per_replica:.4g}) in {left / 3600:.1f} h",
            f"peak {peak.upper:.4g} is {shortfall:.0%} over the ceiling",
            f"forecast by {o.model or 'the forecaster'}",
        ),
        details={"max_replicas": needed, "at": o.first_exceed_at, "peak": peak.upper},
    )


def _raise_floor(o: CapacityOutlook, now: float, prewarm_s: float, horizon_s: float) -> Recommendation | None:
    upcoming = [d for d in o.days if d.at >= now and min(d.replicas_needed, o.max_replicas) > o.min_replicas]
    if not upcoming:
        return None
    day = upcoming[0]
    floor = min(day.replicas_needed, o.max_replicas)
    start = max(now, day.at - prewarm_s)
    urgency = _urgency(start - now, horizon_s)
    impact = (floor - o.min_replicas) / floor
    others = len(upcoming) - 1
    reasons = [
        f"forecast peak {day.upper:.4g} ({o.level}% upper bound) at {_when(day.at)} needs "
        f"{day.replicas_needed} replicas of {o.capacity_per_replica:.4g}; the floor is {o.min_replicas}",
        f"replicas started {prewarm_s / 60:.0f} min ahead are ready when the ramp arrives",
    ]
    if others:
        reasons.append(f"{others} more day(s) this week need the same")
    if day.replicas_needed > o.max_replicas:
        reasons.append(f"capped at max_replicas {o.max_replicas}; see raise_ceiling")
    return Recommendation(
        service=o.service,
        kind=RAISE_FLOOR,
        action=f"set min_replicas {o.min_replicas} -> {floor} from {_when(start)} through the peak",
        priority=round(30 + 30 * urgency + 20 * impact),
        expected_effect=(
            f"{floor - o.min_replicas} replica(s) warm before the peak; capacity "
            f"{floor * o.capacity_per_replica:.4g} ready for a forecast {day.upper:.4g}"
        ),
        reasons=tuple(reasons),
        details={"min_replicas": floor, "from": start, "at": day.at},
    )


def recommend_capacity(
    outlooks: Sequence[CapacityOutlook], now: float, prewarm_s: float = 900.0, horizon_s: float = WEEK
) -> list[Recommendation]:
    """Ceiling and floor recommendations from week-ahead capacity outlooks."""
    out: list[Recommendation] = []
    for o in outlooks:
        for rec in (_raise_ceiling(o, now, horizon_s), _raise_floor(o, now, prewarm_s, horizon_s)):
            if rec is not None:
                out.append(rec)
    return _sorted(out)


def _monthly_cost(p: Placement, opt: InstanceOption) -> float:
    # Replicas pack onto whole instances, so a large instance can waste what a small one would not.
    instances = math.ceil(p.replicas * p.vcpu_per_replica / opt.vcpu - 1e-9)
    return instances * opt.usd_per_hour * HOURS_PER_MONTH


def _saving_priority(fraction: float, usd: float, usd_scale: float) -> float:
    return 10 + 25 * _clamp(fraction / 0.5) + 15 * _clamp(usd / usd_scale)


def _cheapest(p: Placement, options: Sequence[InstanceOption]) -> tuple[InstanceOption, float] | None:
    fitting = [o for o in options if o.vcpu >= p.vcpu_per_replica and o.vcpu > 0]
    if not fitting:
        return None
    best = min(fitting, key=lambda o: (_monthly_cost(p, o), o.usd_per_vcpu_hour, o.instance_type))
    return best, _monthly_cost(p, best)


def _saving(
    p: Placement,
    kind: str,
    target: InstanceOption,
    cost: float,
    baseline: float,
    current: InstanceOption,
    discount: float,
    usd_scale: float,
) -> Recommendation:
    saved = baseline - cost
    fraction = saved / baseline
    where = f"{target.provider}/{target.region}"
    reasons = [
        f"{current.instance_type} costs {current.usd_per_vcpu_hour:.4g} USD per vCPU-hour, "
        f"{target.instance_type} in {where} {target.usd_per_vcpu_hour:.4g}",
        f"{p.replicas:g} replicas x {p.vcpu_per_replica:g} vCPU packed onto whole instances",
    ]
    if kind == MOVE_LOAD:
        reasons.append("latency to users, egress and migration risk are not priced in; priority discounted")
        action = f"move {p.service} from {p.provider}/{p.region} to {where} on {target.instance_type}"
    else:
        action = f"switch {p.service} from {current.instance_type} to {target.instance_type} in {where}"
    return Recommendation(
        service=p.service,
        kind=kind,
        action=action,
        priority=round(discount * _saving_priority(fraction, saved, usd_scale)),
        expected_effect=f"saves {saved:,.0f} USD/month ({fraction:.0%}): {baseline:,.0f} -> {cost:,.0f}",
        reasons=tuple(reasons),
        details={
            "provider": target.provider,
            "region": target.region,
            "instance_type": target.instance_type,
            "usd_per_month_saved": saved,
        },
    )


def recommend_cost(
    placements: Sequence[Placement],
    options: Sequence[InstanceOption],
    min_saving: float = 0.05,
    usd_scale: float = 1000.0,
    move_discount: float = 0.8,
) -> list[Recommendation]:
    """Instance-type changes within a region and moves to allowed cheaper regions. A move is offered
    only when it beats the best option at home by ``min_saving``, so its saving is not double-counted
    with an instance-type change."""
    out: list[Recommendation] = []
    for p in placements:
        current = next(
            (
                o
                for o in options
                if (o.provider, o.region, o.instance_type) == (p.provider, p.region, p.instance_type)
            ),
            None,
        )
        if current is None or p.replicas <= 0 or p.vcpu_per_replica <= 0:
            continue
        now_cost = _monthly_cost(p, current)
        home = _cheapest(p, [o for o in options if (o.provider, o.region) == (p.provider, p.region)])
        home_opt, home_cost = home if home is not None else (current, now_cost)
        if home_cost < now_cost * (1 - min_saving):
            out.append(
                _saving(p, CHANGE_INSTANCE_TYPE, home_opt, home_cost, now_cost, current, 1.0, usd_scale)
            )
        else:
            home_opt, home_cost = current, now_cost
        if not p.allow_move:
            continue
        away = [
            o
            for o in options
            if (o.provider, o.region) != (p.provider, p.region)
            and (not p.allowed_regions or f"{o.provider}/{o.region}" in p.allowed_regions)
        ]
        best = _cheapest(p, away)
        if best is not None and best[1] < home_cost * (1 - min_saving):
            # Measured against the best at home, which is what staying would cost after a type change.
            out.append(_saving(p, MOVE_LOAD, best[0], best[1], home_cost, home_opt, move_discount, usd_scale))
    return _sorted(out)


def recommend(
    outlooks: Sequence[CapacityOutlook],
    now: float,
    placements: Sequence[Placement] = (),
    options: Sequence[InstanceOption] = (),
    prewarm_s: float = 900.0,
    min_saving: float = 0.05,
) -> list[Recommendation]:
    """All recommendations, highest priority first."""
    return _sorted(
        recommend_capacity(outlooks, now, prewarm_s=prewarm_s)
        + recommend_cost(placements, options, min_saving=min_saving)
    )


def _sorted(recs: list[Recommendation]) -> list[Recommendation]:
    return sorted(recs, key=lambda r: (-r.priority, r.service, r.kind))
