"""The predictive policy: which term wins and why, the burst safeguard, stabilisation, bounds, bad inputs.

Unless a test says otherwise a pod serves 10 units at 100 %, the target is 70 % (7 units a pod) and the
headroom is 10 %, so the forecast term is ceil(forecast x 1.1 / 7) and the reactive term ceil(observed / 7).
"""

from __future__ import annotations

import math

import pytest

from opsmind.decide.predictive import PredictiveController, PredictiveSpec, calculate


def spec(**overrides: object) -> PredictiveSpec:
    args: dict[str, object] = {
        "target_utilisation": 0.7,
        "headroom": 0.1,
        "min_replicas": 1,
        "max_replicas": 50,
        "scale_down_window_s": 300.0,
    }
    args.update(overrides)
    return PredictiveSpec(**args)  # type: ignore[arg-type]


def decide(
    s: PredictiveSpec, forecast: float, observed: float, current: int = 5, capacity: float = 10.0
) -> int:
    return calculate(
        s, current_replicas=current, forecast_load=forecast, observed_load=observed, capacity_per_pod=capacity
    ).replicas


def test_forecast_term_wins_and_is_named() -> None:
    d = calculate(spec(), current_replicas=5, forecast_load=120, observed_load=100, capacity_per_pod=10)
    # Forecast: 120 x 1.1 / 7 = 18.86 -> 19. Reactive: 100 / 7 = 14.29 -> 15.
    assert d.replicas == 19
    assert "7/s per pod: 10 at 100 % x 0.7 target" in d.explain()  # where the 7 comes from
    assert "forecast term ceil(120 x 1.1 / 7) = 19" in d.explain()
    assert "reactive term ceil(100 / 7) = 15" in d.explain()
    assert "forecast term won: 19 over reactive 15" in d.explain()


def test_reactive_safeguard_covers_a_burst_the_forecast_missed() -> None:
    d = calculate(spec(), current_replicas=5, forecast_load=50, observed_load=140, capacity_per_pod=10)
    # Forecast: 50 x 1.1 / 7 = 7.86 -> 8. Reactive: 140 / 7 = 20.
    assert d.replicas == 20
    assert "reactive term won" in d.explain()


def test_terms_that_agree_say_so() -> None:
    # Forecast 63.6 x 1.1 / 7 = 9.99 -> 10; reactive 70 / 7 = 10.
    d = calculate(spec(), current_replicas=5, forecast_load=63.6, observed_load=70, capacity_per_pod=10)
    assert d.replicas == 10
    assert "agree" in d.explain()


def test_exact_multiples_do_not_round_up_an_extra_pod() -> None:
    # 70 x 1.1 = 77.00000000000001 and 10 x 0.7 = 7.000000000000001 in floating point; 77 / 7 is 11 pods.
    assert decide(spec(), forecast=70, observed=0) == 11
    assert decide(spec(headroom=0.0), forecast=0, observed=70) == 10


def test_bounds_clamp_with_reasons() -> None:
    s = spec(min_replicas=2, max_replicas=10)
    low = calculate(s, current_replicas=5, forecast_load=1, observed_load=1, capacity_per_pod=10)
    assert low.replicas == 2
    assert "clamped to min_replicas 2 (wanted 1)" in low.explain()
    high = calculate(s, current_replicas=5, forecast_load=1e300, observed_load=1e6, capacity_per_pod=1e-300)
    assert high.replicas == 10
    assert "clamped to max_replicas 10" in high.explain()


@pytest.mark.parametrize("capacity", [0.0, -5.0, math.nan, math.inf])
def test_unusable_capacity_keeps_current(capacity: float) -> None:
    d = calculate(spec(), current_replicas=7, forecast_load=100, observed_load=100, capacity_per_pod=capacity)
    assert d.replicas == 7
    assert "capacity_per_pod" in d.explain()


def test_unusable_capacity_still_respects_bounds() -> None:
    d = calculate(
        spec(max_replicas=4), current_replicas=7, forecast_load=1, observed_load=1, capacity_per_pod=0
    )
    assert d.replicas == 4


def test_unusable_forecast_falls_back_to_reactive() -> None:
    d = calculate(spec(), current_replicas=5, forecast_load=math.nan, observed_load=100, capacity_per_pod=10)
    assert d.replicas == 15  # ceil(100 / 7)
    assert "forecast load nan unusable" in d.explain()
    assert "reactive term only: 15" in d.explain()
    assert decide(spec(), forecast=math.inf, observed=100) == 15


def test_unusable_observation_uses_the_forecast() -> None:
    d = calculate(spec(), current_replicas=5, forecast_load=120, observed_load=-math.inf, capacity_per_pod=10)
    assert d.replicas == 19
    assert "forecast term only: 19" in d.explain()


def test_no_usable_load_keeps_current() -> None:
    d = calculate(
        spec(), current_replicas=6, forecast_load=math.nan, observed_load=math.nan, capacity_per_pod=10
    )
    assert d.replicas == 6
    assert "no usable load: keep 6" in d.explain()


def test_negative_forecast_is_treated_as_zero() -> None:
    d = calculate(spec(), current_replicas=5, forecast_load=-3, observed_load=20, capacity_per_pod=10)
    assert d.replicas == 3  # reactive ceil(20 / 7) = 3 beats forecast 0
    assert "forecast load -3 < 0 treated as 0" in d.explain()


def test_controller_scales_up_at_once_and_down_only_after_the_window() -> None:
    ctrl = PredictiveController(spec())
    up = ctrl.step(0.0, 5, 120, 100, 10)  # wants 19
    assert up.replicas == 19
    assert "scale up at once: 5 -> 19" in up.explain()
    dip = ctrl.step(60.0, 19, 50, 50, 10)  # wants max(ceil(7.86), ceil(7.14)) = 8; 19@0 is in the window
    assert dip.replicas == 19
    assert "highest recommendation in the last 300s is 19" in dip.explain()
    assert ctrl.step(120.0, 19, 76, 50, 10).replicas == 19  # wants ceil(76 x 1.1 / 7) = ceil(11.94) = 12
    # t=300: the window (0, 300] holds 8@60, 12@120 and 8 now: the highest is 12.
    assert ctrl.step(300.0, 19, 50, 50, 10).replicas == 12
    # t=420: 12@120 has left (120, 420]: 8.
    assert ctrl.step(420.0, 12, 50, 50, 10).replicas == 8


def test_stabilisation_never_scales_up() -> None:
    ctrl = PredictiveController(spec())
    assert ctrl.step(0.0, 5, 120, 100, 10).replicas == 19
    # Someone scaled to 10 by hand; the window's 19 must not push it back up when the policy wants 8.
    assert ctrl.step(30.0, 10, 50, 50, 10).replicas == 10


def test_scale_down_fraction_per_step() -> None:
    ctrl = PredictiveController(spec(scale_down_window_s=0.0, max_scale_down_fraction_per_step=0.25))
    d = ctrl.step(0.0, 20, 20, 20, 10)  # wants ceil(22 / 7) = 4; at most floor(20 x 0.25) = 5 pods go
    assert d.replicas == 15
    assert "scale-down limited to 0.25 of 20 per step: 15" in d.explain()
    # A small fleet still shrinks by at least one pod per step: floor(3 x 0.25) = 0 -> 1.
    assert ctrl.step(15.0, 3, 0, 0, 10).replicas == 2


def test_bad_inputs_hold_the_fleet_through_the_window() -> None:
    ctrl = PredictiveController(spec())
    assert ctrl.step(0.0, 10, math.nan, math.nan, 10).replicas == 10
    # A good but low reading right after does not shrink below the held 10 until the window passes.
    assert ctrl.step(15.0, 10, 10, 10, 10).replicas == 10
    assert ctrl.step(315.0, 10, 10, 10, 10).replicas == 2  # ceil(11 / 7) = 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"target_utilisation": 0.0}, "target_utilisation"),
        ({"target_utilisation": 1.2}, "target_utilisation"),
        ({"headroom": -0.1}, "headroom"),
        ({"headroom": math.nan}, "headroom"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"min_replicas": 60}, "max_replicas"),
        ({"scale_down_window_s": -1.0}, "scale_down_window_s"),
        ({"max_scale_down_fraction_per_step": 0.0}, "max_scale_down_fraction_per_step"),
        ({"max_scale_down_fraction_per_step": 1.5}, "max_scale_down_fraction_per_step"),
    ],
)
def test_invalid_spec_names_the_field(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        spec(**overrides)


def test_latency_sizing_runs_pooled_pods_hotter_than_a_utilisation_target() -> None:
    spec = PredictiveSpec(
        target_utilisation=0.7,
        headroom=0.0,
        min_replicas=1,
        max_replicas=500,
        sizing="latency",
        latency_objective_s=0.5,
    )
    big = calculate(spec, current_replicas=1, forecast_load=400.0, observed_load=400.0, capacity_per_pod=10.0)
    small = calculate(spec, current_replicas=1, forecast_load=5.0, observed_load=5.0, capacity_per_pod=10.0)
    assert 400.0 / (big.replicas * 10.0) > 0.9  # 40 pods' work fits in about 41 pods
    assert 5.0 / (small.replicas * 10.0) < 0.5  # half a pod's work needs two pods for the tail
    assert any("p95 <= 0.5s" in r for r in big.reasons)


def test_latency_sizing_needs_an_objective() -> None:
    with pytest.raises(ValueError, match="latency_objective_s"):
        PredictiveSpec(target_utilisation=0.7, headroom=0.0, min_replicas=1, max_replicas=5, sizing="latency")
