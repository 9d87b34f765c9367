"""The capacity fit on M/M/1-like data: p95 = ln(20) / (mu - x) per replica, with multiplicative noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsmind.predict.capacity import CapacityModel, fit_capacity

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
