"""Recommendations from hand-made capacity outlooks and a small price table."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.decide.recommend import (
    CHANGE_INSTANCE_TYPE,
    MOVE_LOAD,
    RAISE_CEILING,
    RAISE_FLOOR,
    InstanceOption,
    Placement,
    recommend,
    recommend_capacity,
    recommend_cost,
)
from opsmind.predict.base import Forecast
from opsmind.predict.capacity_forecast import DAY, CapacityOutlook, DailyPeak

NOW = 1705881600.0  # 2024-01-22 00:00 UTC
HOUR = 3600.0


def outlook(
    uppers: list[float], service: str = "api", min_replicas: int = 1, max_replicas: int = 3, cap: float = 70.0
) -> CapacityOutlook:
    """One day per entry, each peaking at 14:00 with the given upper bound."""
    ceiling = max_replicas * cap
    days = tuple(
        DailyPeak(
            day_start=NOW + i * DAY,
            at=NOW + i * DAY + 14 * HOUR,
            mean=u / 1.1,
            upper=u,
            replicas_needed=int(np.ceil(u / cap)),
            headroom=1 - u / ceiling,
        )
        for i, u in enumerate(uppers)
    )
    over = [d.at for d in days if d.upper > ceiling]
    return CapacityOutlook(
        service=service,
        ceiling=ceiling,
        capacity_per_replica=cap,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        days=days,
        headroom=1 - max(uppers) / ceiling,
        first_exceed_at=over[0] if over else None,
        level=95,
        model="test",
        start=NOW,
        step_s=HOUR,
        forecast=Forecast(np.zeros(1)),
    )


def test_ceiling_before_floor_with_hand_computed_priorities() -> None:
    recs = recommend_capacity([outlook([165, 165, 220, 165])], now=NOW)
    assert [r.kind for r in recs] == [RAISE_CEILING, RAISE_FLOOR]
    ceiling, floor = recs
    # Exceeds in 62 h of 168: urgency 1 - 62/168; 220 is 4.8 % over 210, impact 0.048 / 0.25.
    assert ceiling.priority == round(50 + 35 * (1 - 62 / 168) + 15 * (220 / 210 - 1) / 0.25)
    assert ceiling.action.startswith("raise max_replicas 3 -> 4 before 2024-01-24 14:00")
    assert ceiling.details["max_replicas"] == 4
    assert "4.8 %" not in ceiling.explain() and "5% over the ceiling" in ceiling.explain()
    # The first peak (today 14:00, 165 -> 3 replicas) is pre-warmed from 13:45; floor 1 -> 3.
    assert floor.details == {"min_replicas": 3, "from": NOW + 13.75 * HOUR, "at": NOW + 14 * HOUR}
    assert floor.priority == round(30 + 30 * (1 - 13.75 / 168) + 20 * 2 / 3)
    assert "3 more day(s)" in floor.explain()


def test_a_comfortable_service_gets_nothing() -> None:
    assert recommend_capacity([outlook([150, 160], min_replicas=3, max_replicas=5)], now=NOW) == []


def test_floor_is_capped_at_the_ceiling() -> None:
    [ceiling, floor] = recommend_capacity([outlook([300])], now=NOW)
    assert ceiling.details["max_replicas"] == 5
    assert floor.details["min_replicas"] == 3
    assert "see raise_ceiling" in floor.explain()


def test_past_peaks_are_skipped() -> None:
    [floor] = recommend_capacity([outlook([150, 160], max_replicas=5)], now=NOW + 15 * HOUR)
    assert floor.details["at"] == NOW + DAY + 14 * HOUR


def test_sooner_exhaustion_ranks_higher() -> None:
    soon, late = outlook([250], service="soon"), outlook([165] * 6 + [250], service="late")
    ceilings = [r for r in recommend_capacity([late, soon], now=NOW) if r.kind == RAISE_CEILING]
    assert [r.service for r in ceilings] == ["soon", "late"]


OPTIONS = [
    InstanceOption("aws", "us-east-1", "m5.xlarge", 4, 0.192),
    InstanceOption("aws", "us-east-1", "c6a.large", 2, 0.0765),
    InstanceOption("aws", "us-east-1", "m6a.4xlarge", 16, 0.6912),  # cheapest per vCPU, but packs badly
    InstanceOption("aws", "eu-north-1", "c6a.large", 2, 0.0688),
    InstanceOption("hetzner", "fsn1", "cpx31", 4, 0.03),
]


def placement(**kw: object) -> Placement:
    base: dict[str, object] = {
        "service": "api",
        "provider": "aws",
        "region": "us-east-1",
        "instance_type": "m5.xlarge",
        "vcpu_per_replica": 1.0,
        "replicas": 10,
    }
    base.update(kw)
    return Placement(**base)  # type: ignore[arg-type]


def test_cheaper_instance_type_in_the_same_region_accounts_for_packing() -> None:
    [rec] = recommend_cost([placement()], OPTIONS)
    # 10 vCPU: 3 x m5.xlarge = 0.576/h; 5 x c6a.large = 0.3825/h; 1 x m6a.4xlarge = 0.6912/h.
    assert rec.kind == CHANGE_INSTANCE_TYPE
    assert rec.details["instance_type"] == "c6a.large"
    saved = (0.576 - 0.3825) * 730
    assert rec.details["usd_per_month_saved"] == pytest.approx(saved)
    fraction = saved / (0.576 * 730)
    assert rec.priority == round(10 + 25 * fraction / 0.5 + 15 * saved / 1000)
    assert "34%" in rec.expected_effect


def test_moves_only_where_allowed_and_against_the_best_at_home() -> None:
    recs = recommend_cost([placement(allow_move=True, allowed_regions=("aws/eu-north-1",))], OPTIONS)
    assert [r.kind for r in recs] == [CHANGE_INSTANCE_TYPE, MOVE_LOAD]
    move = recs[1]
    assert move.details["region"] == "eu-north-1"
    # Against 5 x c6a.large at home, not the current m5.xlarge.
    assert move.details["usd_per_month_saved"] == pytest.approx(5 * (0.0765 - 0.0688) * 730)
    assert "not priced" in move.explain()

    anywhere = recommend_cost([placement(allow_move=True)], OPTIONS)
    assert [r.details["provider"] for r in anywhere if r.kind == MOVE_LOAD] == ["hetzner"]
    assert recommend_cost([placement()], OPTIONS)[-1].kind == CHANGE_INSTANCE_TYPE  # no move unless allowed


def test_nothing_when_already_cheapest_or_unknown() -> None:
    assert recommend_cost([placement(instance_type="c6a.large")], OPTIONS) == []
    assert recommend_cost([placement(instance_type="unknown")], OPTIONS) == []


def test_everything_sorted_risk_first() -> None:
    recs = recommend([outlook([250])], NOW, placements=[placement(allow_move=True)], options=OPTIONS)
    assert recs[0].kind == RAISE_CEILING
    assert [r.priority for r in recs] == sorted((r.priority for r in recs), reverse=True)
    assert {r.kind for r in recs} == {RAISE_CEILING, RAISE_FLOOR, CHANGE_INSTANCE_TYPE, MOVE_LOAD}
