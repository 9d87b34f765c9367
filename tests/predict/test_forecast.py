"""LoadForecaster and ForecastBank on generated series: the model chosen and why, intervals,
update between refits, and no crash on short, constant, gappy or spiky history."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.predict.base import Forecast, Forecaster
from opsmind.predict.forecast import ForecastBank, LoadForecaster, coarse_step, fill_gaps, horizon_steps

P = 48  # a "day" of 48 steps keeps MSTL fast in tests
RNG = np.random.default_rng(11)


def make(**kw: int) -> LoadForecaster:
    settings = {"candidates": (P,), "max_history": 20 * P, "refit_every": P, "ets_window": 6 * P}
    settings.update(kw)
    return LoadForecaster(**settings)  # type: ignore[arg-type]


def seasonal(n: int, noise: float = 0.5) -> np.ndarray:
    t = np.arange(n)
    return 50 + 20 * np.sin(2 * np.pi * t / P) + RNG.normal(0, noise, n)


def check(fc: Forecast, h: int, levels: tuple[int, ...] = (80, 95)) -> None:
    assert fc.mean.shape == (h,)
    assert set(fc.lo) == set(fc.hi) == set(levels)
    finite = np.isfinite(fc.mean)
    assert finite.all()
    assert (fc.mean >= 0).all()
    for lv in levels:
        assert (fc.lo[lv] <= fc.mean + 1e-9).all() and (fc.mean <= fc.hi[lv] + 1e-9).all()
        assert (fc.lo[lv] >= 0).all()
    assert fc.model


def test_satisfies_the_protocol() -> None:
    forecaster: Forecaster = make()
    forecaster.fit(seasonal(10 * P))
    check(forecaster.predict(5), 5)


def test_seasonal_series_gets_mstl_and_follows_the_cycle() -> None:
    y = seasonal(12 * P + 7)
    f = make()
    f.fit(y)
    assert f.model.startswith("MSTL(periods=[48]")
    assert f.periods == [P]
    fc = f.predict(P)
    truth = seasonal(13 * P + 7, noise=0.0)[-P:]
    assert np.abs(fc.mean - truth).mean() < 2.0
    check(fc, P)
    assert (fc.hi[95] - fc.lo[95] > fc.hi[80] - fc.lo[80]).all()


def test_no_seasonality_gets_autoets() -> None:
    f = make()
    f.fit(30 + RNG.normal(0, 1, 10 * P))
    assert f.model.startswith("AutoETS")
    check(f.predict(3), 3)


def test_update_forwards_without_refit_then_refits() -> None:
    y = seasonal(20 * P)
    f = make(refit_every=2 * P)
    f.fit(y[: 10 * P])
    assert f.fits == 1
    before = f.predict(1).mean[0]
    f.update(y[10 * P : 10 * P + 5])
    assert f.fits == 1  # no re-estimation
    after = f.predict(1).mean[0]
    assert before != after  # the new observations moved the forecast
    assert abs(after - seasonal(10 * P + 6, noise=0.0)[-1]) < 3.0
    f.update(y[10 * P + 5 : 12 * P])
    assert f.fits == 2  # 2 * P observations since the fit
    f.update(np.array([]))
    assert f.fits == 2


def test_max_history_bounds_what_is_kept() -> None:
    f = make(max_history=5 * P)
    f.fit(seasonal(9 * P))
    assert f.history.size == 5 * P
    f.update(seasonal(P))
    assert f.history.size == 5 * P


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_short_history_never_crashes(n: int) -> None:
    f = make()
    f.fit(np.arange(1.0, n + 1))
    fc = f.predict(4)
    assert fc.mean.shape == (4,)
    if n == 0:
        assert np.isnan(fc.mean).all() and fc.model.startswith("Empty")
    else:
        assert fc.model.startswith("Naive (short history")
        assert fc.mean[0] == n
        check(fc, 4)


def test_empty_then_updates_start_the_model() -> None:
    f = make()
    f.fit(np.array([]))
    f.update(np.array([5.0]))
    assert f.predict(2).mean.tolist() == [5.0, 5.0]
    f.update(RNG.normal(40, 1, 60))  # history doubled: a short-history fallback is re-estimated
    assert f.model.startswith("AutoETS")


def test_constant_history() -> None:
    f = make()
    f.fit(np.full(5 * P, 7.0))
    fc = f.predict(3)
    assert fc.model == "Naive (constant history)"
    assert fc.mean.tolist() == [7.0] * 3
    check(fc, 3)


def test_all_nan_history_is_empty() -> None:
    f = make()
    f.fit(np.full(100, np.nan))
    assert np.isnan(f.predict(2).mean).all()


def test_gappy_history_is_filled() -> None:
    y = seasonal(12 * P)
    y[RNG.choice(y.size, 80, replace=False)] = np.nan
    y[5 * P : 6 * P + 10] = np.nan  # a gap longer than a season
    y[-3:] = np.nan  # the latest minutes are missing too
    f = make()
    f.fit(y)
    assert f.model.startswith("MSTL")
    check(f.predict(6), 6)


def test_spiky_history() -> None:
    y = seasonal(10 * P)
    y[RNG.choice(y.size, 15, replace=False)] *= 40
    y[-1] = 1e6
    f = make()
    f.fit(y)
    check(f.predict(5), 5)


def test_loads_are_clipped_at_zero() -> None:
    f = make()
    f.fit(np.concatenate([np.full(P, 100.0), np.linspace(100, 0, 3 * P)]))
    fc = f.predict(60)
    assert (fc.mean >= 0).all() and all((lo >= 0).all() for lo in fc.lo.values())


def test_mstl_failure_falls_back_to_seasonal_naive(monkeypatch: pytest.MonkeyPatch) -> None:
    import opsmind.predict.forecast as mod

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(mod, "MSTL", broken)
    f = make()
    y = seasonal(10 * P)
    f.fit(y)
    assert f.model == "SeasonalNaive(48) (MSTL failed: RuntimeError: boom)"
    fc = f.predict(3)
    assert np.allclose(fc.mean, y[-P : -P + 3])
    check(fc, 3)


def test_fill_gaps() -> None:
    y = np.array([np.nan, 1.0, np.nan, 3.0, 4.0, np.nan, np.nan, np.nan, 8.0])
    assert fill_gaps(y, short_gap=2).tolist() == [1, 1, 2, 3, 4, 4, 4, 4, 8]
    assert fill_gaps(y, short_gap=3).tolist() == [1, 1, 2, 3, 4, 5, 6, 7, 8]
    season = np.array([1.0, 2.0, 3.0, 1.0, np.nan, np.nan, np.nan])
    assert fill_gaps(season, season=3, short_gap=1).tolist() == [1, 2, 3, 1, 2, 3, 1]


def test_coarse_step_and_horizon() -> None:
    assert coarse_step([1440, 10080], 336) == 30
    assert coarse_step([1440], 336, n=40320, max_coarse_points=2000) == 30
    assert coarse_step([48], 336) == 1
    assert horizon_steps(15) == 15 and horizon_steps(0.1) == 1


def test_bank_forecasts_many_series() -> None:
    bank = ForecastBank(lambda: make())
    bank.fit({"web": seasonal(8 * P), "db": np.full(50, 3.0)})
    bank.update({"web": seasonal(3), "cache": np.array([1.0, 2.0])})
    assert bank.names == ["cache", "db", "web"] and len(bank) == 3 and "web" in bank
    out = bank.predict(4, (90,))
    assert set(out) == {"cache", "db", "web"}
    assert all(fc.mean.shape == (4,) and set(fc.lo) == {90} for fc in out.values())
    assert set(bank.predict(2, names=["web", "nope"])) == {"web"}
    bank.drop("db")
    assert bank.names == ["cache", "web"]
    assert bank.get("web").model.startswith("MSTL")
