"""Per-series load forecasts with prediction intervals (statsforecast), and a bank of them.

:class:`LoadForecaster` implements :class:`opsmind.predict.base.Forecaster` for one evenly spaced
load series (one-minute steps by default; every length below is in steps). Which model it fits:

* **MSTL + AutoETS** when :func:`~opsmind.predict.seasonality.detect_periods` finds seasonal periods
  (a day, a week) in the kept history. The seasonal decomposition (statsforecast ``MSTL``) runs on the
  series averaged over ``agg`` steps - the smallest of 1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60 that
  divides every period, makes the longest one at most ``max_coarse_period`` coarse steps and the kept
  history at most ``max_coarse_points`` (4 weeks or 1 week at one-minute steps -> 30-minute buckets),
  because STL's cost grows with the period times the length (measured on NASA with a day and a week:
  187 s for 2 weeks at one-minute steps, 7.7 s at 5-minute, 2.4 s for 4 weeks at 15-minute, and the
  whole fit takes 0.5 s for 4 weeks at 30-minute buckets). The last cycle of each seasonal component
  is linearly interpolated (periodically) back to single steps and repeated forward. The trend is an
  AutoETS (``ZZN``, no seasonal term) fitted at full resolution on the last ``ets_window`` steps of
  the series minus that seasonal profile, so the level follows the latest minutes, and its prediction
  intervals (``level=``) are the forecast's, shifted by the seasonal profile.
* **AutoETS** (``ZZN``) on the last ``ets_window`` steps when no seasonality is found.
* **SeasonalNaive** (shortest period) when the MSTL fit fails; **Naive** when AutoETS fails, when the
  history is constant or shorter than ``min_points``. ``Forecast.model`` says which model ran and,
  for a fallback, why.

``fit`` keeps the trailing ``max_history`` steps. ``update`` appends observations without
re-estimating: the next ``predict`` applies the fitted model to the extended series (``forward`` of
the statsforecast model: the fitted smoothing parameters run over the new data, the seasonal profile
keeps its phase), and every ``refit_every`` observations the model is estimated again. While the
history is short (a Naive/AutoETS fallback for lack of data), it is also re-estimated each time the
history has doubled since the last fit.

Gaps (NaN or inf) are filled before fitting or forecasting (:func:`fill_gaps`): runs up to
``short_gap`` steps by linear interpolation, longer runs by the value one season earlier (the
shortest detected period, when that value exists), otherwise the last value before the gap; leading
gaps take the first observed value. An all-NaN or empty history forecasts NaN with the model
``"Empty (no observations)"``. Loads are non-negative: means and bounds are clipped at 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from statsforecast.models import MSTL, AutoETS, Naive, SeasonalNaive

from opsmind.predict.base import Forecast
from opsmind.predict.seasonality import DEFAULT_CANDIDATES, detect_periods

STEP_CHOICES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)
SHORT_GAP = 10


def fill_gaps(y: np.ndarray, season: int | None = None, short_gap: int = SHORT_GAP) -> np.ndarray:
    """A float copy of ``y`` with NaN/inf filled as the module docstring says."""
    x = np.asarray(y, dtype=float).ravel().copy()
    bad = ~np.isfinite(x)
    if not bad.any() or bad.all():
        return x
    first = int(np.argmax(~bad))
    x[:first] = x[first]
    bad[:first] = False
    edges = np.diff(np.concatenate(([0], bad.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    for s, e in zip(starts, ends, strict=True):
        prev = x[s - 1]
        if e - s <= short_gap and e < x.size:
            x[s:e] = np.linspace(prev, x[e], e - s + 2)[1:-1]
        elif season is not None and s >= season:
            for i in range(s, e):  # one season back is filled already (s - season < s)
                x[i] = x[i - season]
        else:
            x[s:e] = prev
    return x


def coarse_step(
    periods: Sequence[int], max_coarse_period: int, n: int = 0, max_coarse_points: int = 0
) -> int:
    """The bucket size (in steps) the seasonal decomposition runs at; see the module docstring."""
    longest = max(periods)
    for step in STEP_CHOICES:
        short_enough = max_coarse_points <= 0 or n // step <= max_coarse_points
        if all(p % step == 0 for p in periods) and longest // step <= max_coarse_period and short_enough:
            return step
    for step in reversed(STEP_CHOICES):
        if all(p % step == 0 for p in periods):
            return step
    return 1


@dataclass
class _Season:
    period: int
    profile: np.ndarray  # one cycle, single steps; profile[0] applies at absolute index ``anchor``
    anchor: int

    def at(self, idx: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.profile[(idx - self.anchor) % self.period]
        return out


@dataclass
class _Fitted:
    kind: str  # "empty" | "naive" | "seasonal_naive" | "ets" (also the MSTL trend)
    label: str
    model: Any = None
    seasons: list[_Season] = field(default_factory=list)
    short: bool = False  # a fallback for lack of data: refit when the history has doubled
    fitted_len: int = 0


class LoadForecaster:
    """One series' forecaster; see the module docstring. Not thread-safe."""

    def __init__(
        self,
        candidates: Sequence[int] = DEFAULT_CANDIDATES,
        max_history: int = 28 * 1440,
        refit_every: int = 1440,
        ets_window: int = 3 * 1440,
        max_coarse_period: int = 336,
        max_coarse_points: int = 2000,
        min_points: int = 20,
        min_cycles: int = 2,
        short_gap: int = SHORT_GAP,
    ) -> None:
        if max_history < 1 or refit_every < 1 or ets_window < 2:
            raise ValueError("max_history and refit_every must be >= 1 and ets_window >= 2")
        self.candidates = tuple(candidates)
        self.max_history = max_history
        self.refit_every = refit_every
        self.ets_window = ets_window
        self.max_coarse_period = max_coarse_period
        self.max_coarse_points = max_coarse_points
        self.min_points = min_points
        self.min_cycles = min_cycles
        self.short_gap = short_gap
        self._hist = np.empty(0)
        self._n_total = 0  # observations seen since fit() began the series (absolute index of the next)
        self._since_fit = 0
        self._fitted = _Fitted("empty", "Empty (no observations)")
        self.fits = 0
        self.last_fit_seconds = 0.0
        self.total_fit_seconds = 0.0

    # -- the Forecaster protocol -------------------------------------------------------------
    def fit(self, y: np.ndarray) -> None:
        arr = np.asarray(y, dtype=float).ravel()
        self._hist = arr[-self.max_history :].copy()
        self._n_total = arr.size
        self._estimate()

    def update(self, y_new: np.ndarray) -> None:
        arr = np.asarray(y_new, dtype=float).ravel()
        if arr.size == 0:
            return
        self._hist = np.concatenate((self._hist, arr))[-self.max_history :]
        self._n_total += arr.size
        self._since_fit += arr.size
        f = self._fitted
        if (
            self._since_fit >= self.refit_every
            or f.kind == "empty"
            or (f.short and self._hist.size >= 2 * max(1, f.fitted_len))
        ):
            self._estimate()

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        h = max(0, int(h))
        lv = sorted({int(v) for v in levels})
        f = self._fitted
        if f.kind == "empty" or h == 0:
            nan = np.full(h, np.nan)
            return Forecast(nan, {v: nan.copy() for v in lv}, {v: nan.copy() for v in lv}, f.label)
        x = self._filled()
        try:
            res, seas = self._forward(f, x, h, lv)
        except Exception as exc:  # a forward that fails must not take the caller down
            fb = _Fitted("naive", f"Naive ({f.label} failed to forecast: {_short(exc)})")
            res, seas = self._forward(fb, x, h, lv)
            f = fb
        mean = _clip(res["mean"] + seas)
        lo = {v: _clip(_or(res.get(f"lo-{v}"), res["mean"]) + seas) for v in lv}
        hi = {v: _clip(_or(res.get(f"hi-{v}"), res["mean"]) + seas) for v in lv}
        return Forecast(mean, lo, hi, f.label)

    # -- state --------------------------------------------------------------------------------
    @property
    def model(self) -> str:
        return self._fitted.label

    @property
    def history(self) -> np.ndarray:
        """The kept history, raw (gaps still NaN)."""
        return self._hist.copy()

    @property
    def periods(self) -> list[int]:
        return [s.period for s in self._fitted.seasons]

    # -- internals ----------------------------------------------------------------------------
    def _season_for_fill(self) -> int | None:
        return min(self.periods) if self._fitted.seasons else None

    def _filled(self) -> np.ndarray:
        return fill_gaps(self._hist, self._season_for_fill(), self.short_gap)

    def _estimate(self) -> None:
        started = time.perf_counter()
        self._since_fit = 0
        self._fitted = self._choose()
        self._fitted.fitted_len = self._hist.size
        self.fits += 1
        self.last_fit_seconds = time.perf_counter() - started
        self.total_fit_seconds += self.last_fit_seconds

    def _choose(self) -> _Fitted:
        raw = self._hist
        n = raw.size
        if n == 0 or not np.isfinite(raw).any():
            return _Fitted("empty", "Empty (no observations)")
        periods = detect_periods(raw, self.candidates, self.min_cycles)
        x = fill_gaps(raw, min(periods) if periods else None, self.short_gap)
        if n < self.min_points:
            return _Fitted("naive", f"Naive (short history: {n} points < {self.min_points})", short=True)
        if float(np.ptp(x)) == 0.0:
            return _Fitted("naive", "Naive (constant history)")
        if periods:
            try:
                return self._fit_mstl(x, periods)
            except Exception as exc:
                p = min(periods)
                return _Fitted(
                    "seasonal_naive",
                    f"SeasonalNaive({p}) (MSTL failed: {_short(exc)})",
                    SeasonalNaive(season_length=p),
                )
        need = self.min_cycles * min(self.candidates) if self.candidates else 0
        why = f"no seasonality in {n} points" + (f", a cycle test needs {need}" if n < need else "")
        try:
            ets = AutoETS(model="ZZN").fit(x[-self.ets_window :])
            return _Fitted("ets", f"AutoETS {ets.model_['method']} ({why})", ets, short=n < need)
        except Exception as exc:
            return _Fitted("naive", f"Naive (AutoETS failed: {_short(exc)})", short=n < need)

    def _fit_mstl(self, x: np.ndarray, periods: list[int]) -> _Fitted:
        step = coarse_step(periods, self.max_coarse_period, x.size, self.max_coarse_points)
        m = (x.size // step) * step
        coarse = x[x.size - m :].reshape(-1, step).mean(axis=1)
        cps = [p // step for p in periods]
        decomposition = MSTL(season_length=cps, trend_forecaster=Naive()).fit(coarse).model_
        seasons = []
        for p, cp in zip(periods, cps, strict=True):
            column = f"seasonal{cp}" if len(cps) > 1 else "seasonal"
            last = decomposition[column].to_numpy(dtype=float)[-cp:]
            centres = np.arange(cp) * step + (step - 1) / 2.0
            profile = np.interp(np.arange(p, dtype=float), centres, last, period=p)
            seasons.append(_Season(p, profile, self._n_total - p))
        d = self._deseasonalise(x, seasons)
        ets = AutoETS(model="ZZN").fit(d)
        label = f"MSTL(periods={periods}, step={step})+AutoETS {ets.model_['method']}"
        return _Fitted("ets", label, ets, seasons)

    def _deseasonalise(self, x: np.ndarray, seasons: list[_Season]) -> np.ndarray:
        w = x[-self.ets_window :]
        idx = np.arange(self._n_total - w.size, self._n_total)
        out: np.ndarray = w - self._seasonal(seasons, idx)
        return out

    @staticmethod
    def _seasonal(seasons: list[_Season], idx: np.ndarray) -> np.ndarray:
        total = np.zeros(idx.size)
        for s in seasons:
            total += s.at(idx)
        return total

    def _forward(
        self, f: _Fitted, x: np.ndarray, h: int, lv: list[int]
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        level = lv or None
        future = np.arange(self._n_total, self._n_total + h)
        if f.kind == "ets":
            d = self._deseasonalise(x, f.seasons)
            return f.model.forward(y=d, h=h, level=level), self._seasonal(f.seasons, future)
        if f.kind == "seasonal_naive" and x.size >= f.model.season_length:
            tail = x[-max(self.ets_window, 2 * f.model.season_length) :]
            return f.model.forward(y=tail, h=h, level=level), np.zeros(h)
        tail = x[-self.ets_window :]
        if tail.size < 2:  # Naive's intervals need a residual; a single point has none
            return {"mean": np.full(h, tail[-1])}, np.zeros(h)
        return Naive().forward(y=tail, h=h, level=level), np.zeros(h)


def _or(a: np.ndarray | None, default: np.ndarray) -> np.ndarray:
    """``a`` with missing or non-finite entries taken from ``default`` (zero-width intervals)."""
    if a is None:
        return np.asarray(default, dtype=float)
    arr = np.asarray(a, dtype=float)
    return np.where(np.isfinite(arr), arr, default)


def _clip(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.maximum(np.asarray(a, dtype=float), 0.0)
    return out


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return text[:120]


class ForecastBank:
    """One :class:`LoadForecaster` per series name; fits, updates and forecasts many at once.

    ``factory`` makes the forecaster for a name seen for the first time (default settings)."""

    def __init__(self, factory: Callable[[], LoadForecaster] = LoadForecaster) -> None:
        self._factory = factory
        self._forecasters: dict[str, LoadForecaster] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._forecasters

    def __len__(self) -> int:
        return len(self._forecasters)

    @property
    def names(self) -> list[str]:
        return sorted(self._forecasters)

    def get(self, name: str) -> LoadForecaster:
        return self._forecasters[name]

    def drop(self, name: str) -> None:
        self._forecasters.pop(name, None)

    def fit(self, series: Mapping[str, np.ndarray]) -> None:
        """(Re)fit the named series from scratch on the given histories."""
        for name, y in series.items():
            fc = self._forecasters.get(name) or self._factory()
            fc.fit(y)
            self._forecasters[name] = fc

    def update(self, series: Mapping[str, np.ndarray]) -> None:
        """Append new observations per name; an unknown name starts a forecaster on them."""
        for name, y in series.items():
            if name in self._forecasters:
                self._forecasters[name].update(y)
            else:
                fc = self._factory()
                fc.fit(y)
                self._forecasters[name] = fc

    def predict(
        self, h: int, levels: tuple[int, ...] = (80, 95), names: Iterable[str] | None = None
    ) -> dict[str, Forecast]:
        """Forecasts for ``names`` (default: every series held); unknown names are skipped."""
        wanted = self.names if names is None else [n for n in names if n in self._forecasters]
        return {n: self._forecasters[n].predict(h, levels) for n in wanted}


def horizon_steps(minutes: float, step_s: float = 60.0) -> int:
    """Forecast steps covering ``minutes`` at ``step_s`` seconds per step (at least 1)."""
    return max(1, math.ceil(minutes * 60.0 / step_s))
