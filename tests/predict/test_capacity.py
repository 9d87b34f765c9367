"""The capacity fit on M/M/1-like data: p95 = ln(20) / (mu - x) per replica, with multiplicative noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsmind.predict.capacity import CapacityModel, SaturationBound, fit_capacity

MU = 100.0  # requests per second one replica can serve
SLO = 0.1  # p95 seconds


def mm1(
    n: int = 300, max_util: float = 0.9, noise: float = 0.05, seed: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    replicas = rng.integers(1, 6, n).astype(float)
    x = rng.uniform(0.05 * MU, max_util * MU, n)
    p95 = math.log(20) / (MU - x) * rng.lognormal(0.0, noise, n)
    return x * replicas, p95, replicas


def expected_capacity() -> float:
    base = math.log(20) / MU
    return MU * (1 - base / SLO)  # ~70 per replica


def test_recovers_mu_and_the_slo_capacity() -> None:
    model = fit_capacity(*mm1(), latency_slo=SLO)
    assert model.ok, model.reason
    assert model.saturation_per_replica == pytest.approx(MU, rel=0.1)
    assert model.capacity_per_replica == pytest.approx(expected_capacity(), rel=0.1)
    assert model.capacity_lo <= model.capacity_per_replica <= model.capacity_hi
    assert model.r2 > 0.9
    assert model.latency_at(model.capacity_per_replica) == pytest.approx(SLO)
    assert model.capacity(3) == pytest.approx(3 * model.capacity_per_replica)
    assert "replica" in model.reason


def test_outliers_do_not_bend_the_curve() -> None:
    load, p95, replicas = mm1()
    p95[::25] *= 8  # a few GC pauses
    model = fit_capacity(load, p95, replicas, latency_slo=SLO)
    assert model.ok, model.reason
    assert model.saturation_per_replica == pytest.approx(MU, rel=0.1)


def test_moderate_load_still_recovers_mu() -> None:
    model = fit_capacity(*mm1(max_util=0.6, noise=0.03), latency_slo=SLO)
    assert model.ok, model.reason
    assert model.saturation_per_replica == pytest.approx(MU, rel=0.1)


def test_refuses_when_never_loaded() -> None:
    model = fit_capacity(*mm1(max_util=0.15), latency_slo=SLO)
    assert not model.ok
    assert math.isnan(model.capacity_per_replica)
    assert "never loaded above 15%" in model.reason


def test_refuses_an_uncertain_capacity() -> None:
    model = fit_capacity(*mm1(max_util=0.3, noise=0.1), latency_slo=SLO, max_relative_uncertainty=0.05)
    assert not model.ok and "too uncertain" in model.reason
    assert math.isnan(model.capacity_per_replica)
    assert model.saturation_per_replica == pytest.approx(MU, rel=0.1)  # kept for display


def test_refuses_a_curve_that_does_not_fit() -> None:
    # An outage among the samples (requests failing at a fixed timeout whatever the load, and load past the
    # curve): the demo's cache was given a capacity from an R2 -43.8 fit and warned of saturation every
    # minute after it had recovered.
    rng = np.random.default_rng(1)
    x = np.linspace(10, 99, 60)
    lat = 0.01 / (1 - x / 100.0) * np.exp(rng.normal(0, 0.05, x.size))
    assert fit_capacity(x, lat, np.ones_like(x), 0.5).ok
    outage_x, outage_lat = rng.uniform(20, 130, 60), 0.05 * np.exp(rng.normal(0, 0.02, 60))
    load, p95 = np.r_[x, outage_x], np.r_[lat, outage_lat]
    m = fit_capacity(load, p95, np.ones_like(load), 0.5)
    assert not m.ok and m.r2 < 0 and "does not fit the samples" in m.reason, m.reason
    assert math.isnan(m.capacity_per_replica)


def test_refuses_too_few_samples() -> None:
    model = fit_capacity(*mm1(n=5), latency_slo=SLO)
    assert not model.ok and "5 usable samples" in model.reason


def test_refuses_flat_latency() -> None:
    rng = np.random.default_rng(3)
    load = rng.uniform(10, 90, 100)
    model = fit_capacity(load, 0.03 * rng.lognormal(0, 0.05, 100), np.ones(100), latency_slo=SLO)
    assert not model.ok


def test_refuses_an_slo_below_the_base_latency() -> None:
    model = fit_capacity(*mm1(), latency_slo=0.01)
    assert not model.ok and "no-load latency" in model.reason


def test_known_model() -> None:
    model = CapacityModel.known(70.0, 100.0)
    assert model.ok and model.capacity(2) == 140.0
    with pytest.raises(ValueError):
        CapacityModel.known(120.0, 100.0)


def test_the_saturation_bound_takes_saturated_steps_only_and_forgets_after_its_memory() -> None:
    bound = SaturationBound(memory_s=3600.0)
    assert not bound.observe(60.0, 40.0, 4, 0.9)  # not saturated: says nothing about a pod's limit
    assert not bound.observe(120.0, 40.0, 4, math.nan)  # no CPU: neither
    assert not bound.observe(180.0, 40.0, 0, 1.0)
    assert bound.at(180.0) is None
    assert bound.observe(240.0, 40.0, 4, 0.96) and bound.observe(300.0, 48.0, 4, 1.0)
    assert bound.at(300.0) == 10.0  # the lowest: one pod served no more than that
    assert bound.at(300.0 + 3600.0) == 10.0
    assert bound.at(301.0 + 3600.0) is None
    # Saturated again after the memory: the old figure is not carried over.
    assert bound.observe(8000.0, 60.0, 4, 1.0) and bound.at(8000.0) == 15.0


def test_the_saturation_bound_caps_a_model_above_it_and_leaves_one_within_it_alone() -> None:
    bound = SaturationBound()
    bound.observe(600.0, 40.0, 4, 1.0)
    fitted = CapacityModel(
        ok=True,
        reason="the fit",
        latency_slo=0.5,
        base_latency=0.1,
        saturation_per_replica=30.0,
        capacity_per_replica=24.0,
        capacity_lo=8.0,
        capacity_hi=26.0,
        n_samples=100,
    )
    capped = bound.apply(fitted, 660.0, 0.5)
    assert capped is not None and capped.ok and capped.n_samples == 100
    assert (capped.saturation_per_replica, capped.capacity_per_replica) == (10.0, 10.0)
    assert (capped.capacity_lo, capped.capacity_hi) == (8.0, 10.0)
    assert capped.reason.startswith("at most 10/replica: a saturated fleet") and "60s ago" in capped.reason
    assert capped.reason.endswith("not the fit")
    within = CapacityModel.known(6.0, 8.0, 0.5)
    assert bound.apply(within, 660.0, 0.5) is within
    # No usable model: the bound is the best figure there is.
    for none in (None, CapacityModel(ok=False, reason="too few samples", latency_slo=0.5)):
        alone = bound.apply(none, 660.0, 0.5)
        assert alone is not None and alone.ok and alone.capacity_per_replica == 10.0
        assert alone.latency_slo == 0.5 and "saturated fleet" in alone.reason
    assert SaturationBound().apply(fitted, 660.0, 0.5) is fitted  # nothing saturated, nothing changed
