"""Seasonal periods found in the data itself, so a forecaster is told which cycles are real.

Each candidate period ``p`` (in steps, smallest first) is tested on what is left after the trend and
the periods already accepted are removed:

1. gaps are filled by linear interpolation (leading and trailing gaps take the nearest value);
2. the trend is a centred moving average over ``p`` steps (it flattens a cycle of length ``p`` and
   keeps slower movement), subtracted from the series;
3. the mean profile of every accepted shorter period (the average by phase ``t mod q``) is
   subtracted too, so a weekly candidate is judged on what the daily cycle does not already explain
   (a purely daily series has no weekly period, even though its autocorrelation at one week is high);
4. the autocorrelation of the remainder at lag ``p`` must reach ``threshold`` (and the large-sample
   95% bound ``1.96 / sqrt(n)``, which matters only for short series).

A candidate is only tried when the history holds at least ``min_cycles`` full cycles of it. Constant,
all-NaN and short series have no periods.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MINUTE_STEPS = {"daily": 1440, "weekly": 10080}
DEFAULT_CANDIDATES: tuple[int, ...] = (MINUTE_STEPS["daily"], MINUTE_STEPS["weekly"])
DEFAULT_THRESHOLD = 0.25


def fill_linear(y: np.ndarray) -> np.ndarray:
    """A float copy of ``y`` with NaN/inf replaced by linear interpolation between the finite
    neighbours (the nearest finite value at the ends). All-NaN input comes back as is."""
    x = np.asarray(y, dtype=float).copy()
    ok = np.isfinite(x)
    if ok.all() or not ok.any():
        return x
    idx = np.arange(x.size)
    x[~ok] = np.interp(idx[~ok], idx[ok], x[ok])
    return x


def _moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` steps; the ends use the nearest full window."""
    n = x.size
    csum = np.concatenate(([0.0], np.cumsum(x)))
    full = (csum[window:] - csum[:-window]) / window  # full[i] = mean(x[i : i + window])
    start = np.clip(np.arange(n) - window // 2, 0, n - window)
    out: np.ndarray = full[start]
    return out


def _phase_profile(x: np.ndarray, period: int) -> np.ndarray:
    """Mean of ``x`` by phase ``t mod period``, repeated over the length of ``x``."""
    phase = np.arange(x.size) % period
    sums = np.bincount(phase, weights=x, minlength=period)
    counts = np.bincount(phase, minlength=period)
    profile = sums / np.maximum(counts, 1)
    out: np.ndarray = profile[phase]
    return out


def autocorrelation(x: np.ndarray, lag: int) -> float:
    """Sample autocorrelation of ``x`` at ``lag`` (0.0 when undefined: constant or too short)."""
    n = x.size
    if lag <= 0 or lag >= n:
        return 0.0
    d = x - x.mean()
    denom = float(np.dot(d, d))
    if denom <= 1e-12 * max(1.0, float(np.abs(x).max()) ** 2 * n):
        return 0.0
    return float(np.dot(d[:-lag], d[lag:]) / denom)


def detect_periods(
    y: np.ndarray,
    candidates: Sequence[int] = DEFAULT_CANDIDATES,
    min_cycles: int = 2,
    threshold: float = DEFAULT_THRESHOLD,
) -> list[int]:
    """The candidate periods (in steps, ascending) that the series shows; see the module docstring.

    ``candidates`` are in steps of ``y`` (1440 and 10080 are a day and a week at one-minute steps);
    periods below 2 are ignored. Never raises on NaN, constant or short input: it returns ``[]``."""
    x = np.asarray(y, dtype=float).ravel()
    if x.size < 4 or not np.isfinite(x).any():
        return []
    x = fill_linear(x)
    if float(np.ptp(x)) == 0.0:
        return []
    accepted: list[int] = []
    for p in sorted({int(c) for c in candidates if int(c) >= 2}):
        if x.size < max(1, min_cycles) * p or x.size <= p + 1:
            continue
        rest = x - _moving_average(x, p)
        for q in accepted:
            rest = rest - _phase_profile(rest, q)
        bound = 1.96 / np.sqrt(x.size)
        if autocorrelation(rest, p) >= max(threshold, bound):
            accepted.append(p)
    return accepted
