"""The HPA baseline against hand-worked numbers (each expectation is derived in a comment).

Pods are ready and started long ago unless a test says otherwise; requests are 1000m, so a pod at
utilisation 0.8 uses 800m and the controller's whole-percent utilisation is sum(usage) * 100 // sum(requests).
"""

from __future__ import annotations

import math

import pytest

from opsmind.decide.hpa import HPAController, HPASpec, PodSample, ScalingPolicy, calculate

OLD = -10_000.0  # a start time far past the CPU initialisation period


def pods(n: int, utilisation: float | None, prefix: str = "p") -> list[PodSample]:
    return [PodSample(f"{prefix}{i}", utilisation, True, OLD) for i in range(n)]


def unready(n: int, started: float, prefix: str = "u") -> list[PodSample]:
    return [PodSample(f"{prefix}{i}", 0.0, False, started) for i in range(n)]


# --- the calculator ----------------------------------------------------------------------------------


def test_ratio_within_tolerance_keeps_replicas() -> None:
    spec = HPASpec(target_utilisation=0.6, max_replicas=10)
    # 63% / 60% = 1.05, inside [0.9, 1.1]: no change.
    d = calculate(spec, 3, pods(3, 0.63), now=0.0)
    assert d.replicas == 3
    assert "within tolerance" in d.explain()


def test_ratio_outside_tolerance_scales() -> None:
    spec = HPASpec(target_utilisation=0.6, max_replicas=10)
    # 72% / 60% = 1.2 -> ceil(1.2 x 3) = ceil(3.6) = 4.
    d = calculate(spec, 3, pods(3, 0.72), now=0.0)
    assert d.replicas == 4
    assert "ceil(1.200 x 3 pods) = 4" in d.explain()


def test_basic_ceil_up_and_down() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    # 80% / 50% = 1.6 -> ceil(1.6 x 4) = ceil(6.4) = 7.
    assert calculate(spec, 4, pods(4, 0.8), now=0.0).replicas == 7
    # 20% / 50% = 0.4 -> ceil(0.4 x 4) = ceil(1.6) = 2.
    assert calculate(spec, 4, pods(4, 0.2), now=0.0).replicas == 2


def test_utilisation_is_truncated_to_a_whole_percent() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=10)
    # 554m + 554m over 2000m = 55.4% -> 55% (integer division); 55 / 50 = 1.1, on the tolerance edge: keep.
    # Without the truncation the ratio would be 1.108 and the HPA would ask for ceil(2.216) = 3.
    assert calculate(spec, 2, pods(2, 0.554), now=0.0).replicas == 2


def test_deleting_and_failed_pods_are_ignored() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    gone = [
        PodSample("d", 0.0, True, OLD, deleting=True),
        PodSample("f", None, False, OLD, failed=True),
    ]
    # Only the three live pods count: 80% / 50% = 1.6 -> ceil(1.6 x 3) = ceil(4.8) = 5.
    d = calculate(spec, 5, pods(3, 0.8) + gone, now=0.0)
    assert d.replicas == 5
    assert "2 deleting/failed ignored" in d.reasons[0]


def test_unready_pods_count_as_zero_on_scale_up() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    now = 1000.0
    # Ready pods alone: 105% / 50% = 2.1, which would ask for ceil(2.1 x 5) = ceil(10.5) = 11.
    # With the 5 unready (just started) pods at 0%: 5250m / 10000m = 52% -> 1.04, within tolerance: keep 10.
    d = calculate(spec, 10, pods(5, 1.05) + unready(5, started=now - 10), now=now)
    assert d.replicas == 10
    assert "5 unready pods counted at 0%" in d.explain()


def test_unready_pods_are_dropped_on_scale_down() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    now = 1000.0
    # Ratio 20% / 50% = 0.4 < 1, so unready pods are not added back: ceil(0.4 x 2 ready pods) = ceil(0.8) = 1.
    d = calculate(spec, 4, pods(2, 0.2) + unready(2, started=now - 10), now=now)
    assert d.replicas == 1


def test_readiness_rules_of_the_cpu_initialisation_period() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    now = 1000.0
    fresh_metric = PodSample("a", 0.5, True, now - 60, ready_since_s=now - 5)  # metric < ready + 15 s window
    settled = PodSample("b", 0.5, True, now - 60, ready_since_s=now - 40)  # a full window since ready
    was_ready = PodSample("c", 0.5, False, OLD, unready_since_s=OLD + 1000)  # went unready long after start
    never_ready = PodSample("d", 0.5, False, OLD)  # unready since it started
    d = calculate(spec, 4, [fresh_metric, settled, was_ready, never_ready], now=now)
    # b and c count (c is past initialisation and was ready once, so its metric is trusted); a and d do not.
    assert d.reasons[0].startswith("4 pods: 2 counted, 2 unready set aside")
    assert d.replicas == 4  # 50% / 50% = 1.0


def test_missing_metrics_on_scale_down_count_as_full_request() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    four = pods(3, 0.1) + [PodSample("m", None, True, OLD)]
    # Ready ratio 10% / 50% = 0.2. The missing pod at 100% of its request: (300 + 1000) / 4000 = 32% -> 0.64,
    # ceil(0.64 x 4) = ceil(2.56) = 3 (ignoring it would have given ceil(0.2 x 3) = 1).
    d = calculate(spec, 4, four, now=0.0)
    assert d.replicas == 3
    assert "counted at 100% of request" in d.explain()
    # As the documentation words it (100% of the target): (300 + 500) / 4000 = 20% -> 0.4, ceil(1.6) = 2.
    as_documented = HPASpec(target_utilisation=0.5, max_replicas=20, missing_on_scale_down="target")
    assert calculate(as_documented, 4, four, now=0.0).replicas == 2


def test_missing_metrics_on_scale_up_count_as_zero() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    three = pods(2, 1.0) + [PodSample("m", math.nan, True, OLD)]  # NaN is no metric at all
    # Ratio 100% / 50% = 2.0; with the missing pod at 0%: 2000 / 3000 = 66% -> 1.32, ceil(3.96) = 4.
    d = calculate(spec, 3, three, now=0.0)
    assert d.replicas == 4
    assert "1 pods with missing metrics counted at 0%" in d.explain()


def test_direction_reversal_after_adding_back_keeps_replicas() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    # Ready ratio 60% / 50% = 1.2 (a scale-up); with three missing pods at 0%: 600 / 4000 = 15% -> 0.3 < 1.
    missing = pods(1, 0.6) + pods(3, None, prefix="m")
    d = calculate(spec, 4, missing, now=0.0)
    assert d.replicas == 4
    assert "reverses the scale direction" in d.explain()
    # The same with three unready pods instead of missing ones.
    now = 1000.0
    assert calculate(spec, 4, pods(1, 0.6) + unready(3, started=now - 10), now=now).replicas == 4


def test_replica_count_moving_against_the_ratio_keeps_replicas() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    # During a rollout 6 pods exist for a target of 3. Ready ratio 10% / 50% = 0.2; the missing pod at 100%:
    # (500 + 1000) / 6000 = 25% -> 0.5, ceil(0.5 x 6) = 3 = current, not above it: the result stands at 3.
    assert calculate(spec, 3, pods(5, 0.1) + pods(1, None, "m"), now=0.0).replicas == 3
    # Current 2: ceil(0.5 x 6) = 3 > 2 while the ratio says "down": keep 2.
    d = calculate(spec, 2, pods(5, 0.1) + pods(1, None, "m"), now=0.0)
    assert d.replicas == 2
    assert "moves against the ratio" in d.explain()


def test_no_usable_metrics_keeps_current() -> None:
    spec = HPASpec(target_utilisation=0.5, max_replicas=20)
    assert calculate(spec, 3, [], now=0.0).replicas == 3
    d = calculate(spec, 3, unready(3, started=-5.0), now=0.0)
    assert d.replicas == 3
    assert "no metrics for any ready pod" in d.explain()


# --- the controller ----------------------------------------------------------------------------------


def test_scale_up_limit_first_sync() -> None:
    ctrl = HPAController(HPASpec(target_utilisation=1.0, max_replicas=20))
    # 500% / 100% = 5 -> ceil(5 x 2) = 10, but one period allows max(ceil(2 x 2), 2 + 4) = 6.
    d = ctrl.step(0.0, 2, pods(2, 5.0))
    assert d.replicas == 6
    assert "scale-up rate limit: at most 6 now (wanted 10)" in d.explain()


def test_repeated_scale_up_over_successive_periods() -> None:
    ctrl = HPAController(HPASpec(target_utilisation=1.0, max_replicas=20))
    assert ctrl.step(0.0, 2, pods(2, 5.0)).replicas == 6  # max(4, 6) = 6, event +4 at t=0
    # t=5, same 15 s period: it started at 6 - 4 = 2 replicas, so the limit is still 6.
    assert ctrl.step(5.0, 6, pods(6, 5.0)).replicas == 6
    # t=15: the t=0 event is exactly one period old and no longer counts; start 6 -> max(12, 10) = 12.
    assert ctrl.step(15.0, 6, pods(6, 5.0)).replicas == 12
    # t=30: start 12 -> max(24, 16) = 24, above max_replicas: 20.
    d = ctrl.step(30.0, 12, pods(12, 5.0))
    assert d.replicas == 20
    assert "clamped to max_replicas 20" in d.explain()


def test_fresh_controller_waits_a_window_before_scaling_down() -> None:
    ctrl = HPAController(HPASpec(target_utilisation=0.5, max_replicas=10))
    # 10% / 50% = 0.2 -> ceil(0.8) = 1, but the window is seeded with the current 4 at t=0.
    d = ctrl.step(0.0, 4, pods(4, 0.1))
    assert d.replicas == 4
    assert "scale-down stabilised" in d.explain()


def test_scale_down_stabilisation_takes_the_max_over_the_window() -> None:
    ctrl = HPAController(HPASpec(target_utilisation=0.5, max_replicas=10))
    assert ctrl.step(0.0, 4, pods(4, 0.5)).replicas == 4  # ratio 1.0
    assert ctrl.step(15.0, 4, pods(4, 0.2)).replicas == 4  # wants ceil(0.4 x 4) = 2; 4@t=0 in the window
    assert ctrl.step(30.0, 4, pods(4, 0.3)).replicas == 4  # wants ceil(0.6 x 4) = ceil(2.4) = 3
    for t in range(45, 300, 15):
        assert ctrl.step(float(t), 4, pods(4, 0.2)).replicas == 4  # wants 2; the dip does not scale down
    # t=300: the window (0, 300] holds 2@15, 3@30, 2@45..285 and 2 now: the highest is 3.
    d = ctrl.step(300.0, 4, pods(4, 0.2))
    assert d.replicas == 3
    assert "highest recommendation in the last 300s is 3" in d.explain()
    # t=315: 3 pods at 20% want ceil(0.4 x 3) = ceil(1.2) = 2, but 3@30 is still in (15, 315].
    assert ctrl.step(315.0, 3, pods(3, 0.2)).replicas == 3
    # t=330: 3@30 has left (30, 330]; every recommendation left is 2.
    assert ctrl.step(330.0, 3, pods(3, 0.2)).replicas == 2


def test_scale_down_rate_limit_counts_from_the_period_start() -> None:
    spec = HPASpec(
        target_utilisation=0.5,
        max_replicas=10,
        downscale_stabilisation_s=0,
        scale_down_policies=(ScalingPolicy("Pods", 1, 60),),
    )
    ctrl = HPAController(spec)
    # Wants ceil(0.1 x 5) = 1; one pod per 60 s from the period start of 5: at least 4.
    d = ctrl.step(0.0, 5, pods(5, 0.05))
    assert d.replicas == 4
    assert "scale-down rate limit: at least 4" in d.explain()
    # t=15: the period started at 4 + 1 = 5 replicas: still at least 4.
    assert ctrl.step(15.0, 4, pods(4, 0.05)).replicas == 4
    # t=60: the t=0 event is a full period old; start 4 -> at least 3.
    assert ctrl.step(60.0, 4, pods(4, 0.05)).replicas == 3


def test_min_and_max_clamps() -> None:
    # 100% / 50% = 2 -> 8; the rate allows max(8, 8) = 8, max_replicas is 5.
    ctrl = HPAController(HPASpec(target_utilisation=0.5, max_replicas=5))
    assert ctrl.step(0.0, 4, pods(4, 1.0)).replicas == 5
    # 5% / 50% = 0.1 -> ceil(0.4) = 1; the 100 % policy allows 0, min_replicas is 3.
    low = HPAController(
        HPASpec(target_utilisation=0.5, min_replicas=3, max_replicas=10, downscale_stabilisation_s=0)
    )
    d = low.step(0.0, 4, pods(4, 0.05))
    assert d.replicas == 3
    assert "clamped to min_replicas 3" in d.explain()
    # Outside the bounds the controller moves to the bound without looking at metrics.
    bounded = HPAController(HPASpec(target_utilisation=0.5, min_replicas=2, max_replicas=5))
    assert bounded.step(0.0, 8, pods(8, 2.0)).replicas == 5
    assert bounded.step(15.0, 1, pods(1, 0.0)).replicas == 2


def test_controller_keeps_scale_without_metrics_or_replicas() -> None:
    ctrl = HPAController(HPASpec(target_utilisation=0.5, max_replicas=5))
    assert ctrl.step(0.0, 0, []).replicas == 0
    d = ctrl.step(15.0, 3, unready(3, started=10.0))
    assert d.replicas == 3
    assert "no recommendation this sync" in d.explain()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_utilisation": 0.0}, "target_utilisation"),
        ({"target_utilisation": 1.5}, "target_utilisation"),
        ({"target_utilisation": 0.655}, "target_utilisation"),
        ({"target_utilisation": math.nan}, "target_utilisation"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"min_replicas": 6}, "max_replicas"),
        ({"tolerance": -0.1}, "tolerance"),
        ({"sync_period_s": 0}, "sync_period_s"),
        ({"downscale_stabilisation_s": 4000}, "downscale_stabilisation_s"),
        ({"scale_up_policies": ()}, "scale_up_policies"),
        ({"scale_down_select": "Sometimes"}, "scale_down_select"),
        ({"cpu_initialisation_period_s": -1}, "cpu_initialisation_period_s"),
        ({"missing_on_scale_down": "zero"}, "missing_on_scale_down"),
    ],
)
def test_invalid_spec_names_the_field(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"target_utilisation": 0.6, "max_replicas": 5, **kwargs}
    with pytest.raises(ValueError, match=field):
        HPASpec(**args)  # type: ignore[arg-type]


def test_invalid_policy_and_pod() -> None:
    with pytest.raises(ValueError, match="period_s"):
        ScalingPolicy("Pods", 1, 0)
    with pytest.raises(ValueError, match="value"):
        ScalingPolicy("Percent", 0, 15)
    with pytest.raises(ValueError, match="request_millicores"):
        PodSample("p", 0.5, True, 0.0, request_millicores=0)
