"""Reading a service's load, latency, errors and replicas out of the SampleStore for prediction.

A service's series are its *service-level* ones: a ``service`` label and no ``pod`` label (a pod's
series describe one replica, not the service), as the detectors and root-cause ranking read them. The
metric names come from ``predict`` settings (the simulator's and common Prometheus names by default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from opsmind.store.protocols import RangeResult, Resolution, SampleStore
from opsmind.types import Series

FloatArray = npt.NDArray[np.float64]
HOUR = 3600.0


@dataclass(slots=True)
class ServiceSeries:
    """The series prediction reads for one service (None where the store has none)."""

    service: str
    load: Series
    latency: Series | None = None
    errors: Series | None = None
    replicas: Series | None = None
    extra: dict[str, Series] = field(default_factory=dict)


def service_level(series: Series) -> bool:
    return series.service is not None and series.label("pod") is None


def discover(
    store: SampleStore,
    load_metrics: Sequence[str],
    latency_metric: str,
    latency_quantile: str,
    error_metric: str,
    replicas_metrics: Sequence[str],
    limit: int = 500,
) -> dict[str, ServiceSeries]:
    """Every service with a service-level load series, with its other series where they exist."""
    found: dict[str, ServiceSeries] = {}
    for metric in load_metrics:
        for info in store.series({"__name__": metric}, limit):
            s = info.series
            if service_level(s) and s.service is not None and s.service not in found:
                found[s.service] = ServiceSeries(s.service, s)
    if not found:
        return found
    for info in store.series({"__name__": latency_metric}, limit * 8):
        s = info.series
        if service_level(s) and s.service in found and s.label("quantile") == latency_quantile:
            found[s.service].latency = s
    for info in store.series({"__name__": error_metric}, limit):
        s = info.series
        if service_level(s) and s.service in found:
            found[s.service].errors = s
    for metric in reversed(replicas_metrics):  # the first name listed wins
        for info in store.series({"__name__": metric}, limit):
            s = info.series
            if service_level(s) and s.service in found:
                found[s.service].replicas = s
    return found


def read(
    store: SampleStore, series: Series, start: float, end: float, resolution: Resolution = "auto"
) -> tuple[FloatArray, FloatArray]:
    """Timestamps and values (finite points only) of ``series`` in ``[start, end]``."""
    got: RangeResult = store.query(series, start, end, resolution)
    t = np.asarray(got.timestamps, dtype=np.float64)
    v = np.asarray(got.values, dtype=np.float64)
    keep = np.isfinite(v)
    return t[keep], v[keep]


def read_fresh(
    store: SampleStore, series: Series, start: float, end: float, raw_s: float = 6 * 3600.0
) -> tuple[FloatArray, FloatArray]:
    """Like :func:`read` at ``auto`` resolution, but the last ``raw_s`` seconds always from raw samples:
    a long range resolves to rollups, and the newest minutes are not rolled up until the next storage
    maintenance, so they would be missing."""
    split = max(start, end - raw_s)
    t_old, v_old = read(store, series, start, end) if split > start else (np.empty(0), np.empty(0))
    t_new, v_new = read(store, series, split, end, "raw")
    keep = t_old < split
    return np.concatenate((t_old[keep], t_new)), np.concatenate((v_old[keep], v_new))


def latest(store: SampleStore, series: Series | None, now: float, within_s: float) -> float | None:
    """The newest finite value of ``series`` within ``within_s`` before ``now``."""
    if series is None:
        return None
    _, v = read(store, series, now - within_s, now, "raw")
    return float(v[-1]) if v.size else None


def step_means(t: FloatArray, v: FloatArray, step_s: float, first: int, last: int) -> list[float]:
    """Mean value of each step ``first .. last - 1`` (step ``k`` covers ``[k step, (k + 1) step)``);
    NaN for a step without points."""
    if last <= first:
        return []
    idx = np.floor(t / step_s).astype(np.int64) - first
    inside = (idx >= 0) & (idx < last - first)
    sums = np.bincount(idx[inside], weights=v[inside], minlength=last - first)
    counts = np.bincount(idx[inside], minlength=last - first)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return [float(x) for x in means]


def align(
    store: SampleStore, series: Sequence[Series], start: float, end: float, step_s: float
) -> list[FloatArray] | None:
    """The series averaged onto common ``step_s`` steps, keeping only steps where all have a value."""
    first, last = math.floor(start / step_s), math.floor(end / step_s) + 1
    columns = []
    for s in series:
        t, v = read(store, s, start, end)
        columns.append(np.asarray(step_means(t, v, step_s, first, last)))
    if not columns:
        return None
    keep = np.all(np.isfinite(np.vstack(columns)), axis=0)
    return [c[keep] for c in columns]


def hourly_peaks(
    store: SampleStore, series: Series, start: float, end: float
) -> tuple[FloatArray, FloatArray]:
    """Evenly spaced hourly peaks (each whole hour's highest value, from whatever resolution covers the
    range), gaps interpolated. The hour still under way is left out: its peak is not known yet."""
    got = store.query(series, start, end, "auto")
    peaks = got.maximums if got.maximums else got.values
    t = np.asarray(got.timestamps, dtype=np.float64)
    v = np.asarray(peaks, dtype=np.float64)
    keep = np.isfinite(v) & (t < math.floor(end / HOUR) * HOUR)
    t, v = t[keep], v[keep]
    if t.size == 0:
        return t, v
    hours = np.floor(t / HOUR).astype(np.int64)
    first = int(hours[0])
    top = np.full(int(hours[-1]) - first + 1, -np.inf)
    np.maximum.at(top, hours - first, v)
    grid = ((first + np.arange(top.size)) * HOUR).astype(np.float64)
    seen = np.isfinite(top)
    return grid, np.asarray(np.interp(grid, grid[seen], top[seen]), dtype=np.float64)
