"""Capacity a week ahead: each service's forecast daily peak against the ceiling it can scale to.

From a long history of a service's peak load (hourly peaks are typical), a forecaster with daily and
weekly seasonality predicts the next seven days. Per calendar day (UTC unless ``utc_offset_s`` says
otherwise) the outlook keeps the forecast peak, its upper bound, and the replicas that bound needs; and
for the whole week, the headroom at the ceiling (``max_replicas x capacity_per_replica``) and the first
time the upper bound crosses it. The upper bound, not the mean, is what plans against: a ceiling that
only holds on an average day runs out on the first busy one.

The forecaster comes from a factory that receives the season lengths in steps, because those depend on
the history's step (24 and 168 for hourly data, 1440 and 10080 for minutes). A season is offered only
when the history covers it at least twice; fewer cycles cannot tell a season from noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from opsmind.predict.base import Forecast, Forecaster

DAY = 86400.0
WEEK = 7 * DAY

FloatArray = npt.NDArray[np.float64]
ForecasterFactory = Callable[[tuple[int, ...]], Forecaster]


@dataclass(frozen=True, slots=True)
class ServiceLoadHistory:
    """Evenly spaced peak load of one service (oldest first) and the limits it scales within."""

    service: str
    timestamps: FloatArray
    peak_load: FloatArray
    capacity_per_replica: float
    max_replicas: int
    min_replicas: int = 1


@dataclass(frozen=True, slots=True)
class DailyPeak:
    day_start: float
    at: float
    mean: float
    upper: float
    replicas_needed: int
    headroom: float


@dataclass(frozen=True, slots=True)
class CapacityOutlook:
    """``headroom`` is the ceiling minus the week's highest upper bound, as a fraction of the ceiling
    (negative when the ceiling is too low); ``first_exceed_at`` is when the upper bound first passes
    the ceiling, or ``None``."""

    service: str
    ceiling: float
    capacity_per_replica: float
    min_replicas: int
    max_replicas: int
    days: tuple[DailyPeak, ...]
    headroom: float
    first_exceed_at: float | None
    level: int
    model: str
    start: float
    step_s: float
    forecast: Forecast

    @property
    def peak(self) -> DailyPeak | None:
        """The day with the highest upper bound."""
        return max(self.days, key=lambda d: d.upper, default=None)


def season_lengths(step_s: float, n: int) -> tuple[int, ...]:
    """Daily and weekly seasons in steps that the history (``n`` steps) covers at least twice."""
    out = []
    for period in (DAY, WEEK):
        steps = period / step_s
        if steps >= 2 and abs(steps - round(steps)) < 1e-9 and n >= 2 * round(steps):
            out.append(round(steps))
    return tuple(out)


def _step(timestamps: FloatArray) -> float:
    if timestamps.size < 2:
        raise ValueError("need at least two samples")
    diffs = np.diff(timestamps)
    step = float(np.median(diffs))
    if step <= 0 or np.any(np.abs(diffs - step) > 1e-6 * step):
        raise ValueError("timestamps must be ascending and evenly spaced (fill gaps first)")
    return step


def forecast_service(
    history: ServiceLoadHistory,
    make_forecaster: ForecasterFactory,
    horizon_s: float = WEEK,
    level: int = 95,
    utc_offset_s: float = 0.0,
) -> CapacityOutlook:
    """The week-ahead capacity outlook for one service."""
    if history.capacity_per_replica <= 0 or history.max_replicas < 1:
        raise ValueError("capacity_per_replica and max_replicas must be positive")
    t = np.asarray(history.timestamps, dtype=np.float64)
    y = np.asarray(history.peak_load, dtype=np.float64)
    if t.shape != y.shape:
        raise ValueError("timestamps and peak_load must have the same length")
    step = _step(t)
    h = math.ceil(horizon_s / step)

    forecaster = make_forecaster(season_lengths(step, y.size))
    forecaster.fit(y)
    fc = forecaster.predict(h, levels=(80, level))
    mean = np.asarray(fc.mean, dtype=np.float64)
    # A forecaster that could not produce the requested interval falls back to its widest, then the mean.
    upper_key = level if level in fc.hi else max(fc.hi, default=None)
    upper = mean if upper_key is None else np.maximum(np.asarray(fc.hi[upper_key], dtype=np.float64), mean)

    times = t[-1] + step * np.arange(1, h + 1)
    ceiling = history.max_replicas * history.capacity_per_replica
    day_index = np.floor((times + utc_offset_s) / DAY)
    days = []
    for d in np.unique(day_index):
        idx = np.flatnonzero(day_index == d)
        top = int(idx[np.argmax(upper[idx])])
        days.append(
            DailyPeak(
                day_start=float(d * DAY - utc_offset_s),
                at=float(times[top]),
                mean=float(np.max(mean[idx])),
                upper=float(upper[top]),
                replicas_needed=max(1, math.ceil(float(upper[top]) / history.capacity_per_replica)),
                headroom=1.0 - float(upper[top]) / ceiling,
            )
        )
    over = np.flatnonzero(upper > ceiling)
    return CapacityOutlook(
        service=history.service,
        ceiling=ceiling,
        capacity_per_replica=history.capacity_per_replica,
        min_replicas=history.min_replicas,
        max_replicas=history.max_replicas,
        days=tuple(days),
        headroom=1.0 - float(np.max(upper)) / ceiling if h else 1.0,
        first_exceed_at=float(times[over[0]]) if over.size else None,
        level=upper_key if upper_key is not None else 0,
        model=fc.model,
        start=float(t[-1]),
        step_s=step,
        forecast=fc,
    )


def forecast_capacity(
    histories: Sequence[ServiceLoadHistory],
    make_forecaster: ForecasterFactory,
    horizon_s: float = WEEK,
    level: int = 95,
    utc_offset_s: float = 0.0,
) -> list[CapacityOutlook]:
    """Week-ahead outlooks for many services, tightest headroom first."""
    outlooks = [forecast_service(h, make_forecaster, horizon_s, level, utc_offset_s) for h in histories]
    return sorted(outlooks, key=lambda o: o.headroom)
