"""``opsmind bench detect``: throughput and memory of the detection ensemble, river HalfSpaceTrees beside it.

Data: :func:`synthetic` generates ``series`` x ``points`` values at 5-minute steps (seeded): a level,
daily and sometimes hourly seasonality, Gaussian or heavy-tailed noise, some random walks, quantised and
constant series, and injected spikes, level shifts, variance changes and drifts (the labels are kept).

Headline ``points_per_s``: the ensemble's vectorised step (score, then learn) over all series, one time
step per call, pinned to one core. ``river_hst_points_per_s``: river's HalfSpaceTrees (river defaults behind
a MinMaxScaler, one model per series, ``score_one`` then ``learn_one``) on a subset of the same data -
river runs one point at a time in Python, so it is timed on ``river_series`` series only.
``bytes_per_series``: the growth of traced Python memory (tracemalloc) when the ensemble takes on
``series`` new keys, divided by ``series`` - the state arrays plus the key index;
``state_bytes_per_series`` is the ensemble's own ``nbytes_per_series``. The table also reports the
ensemble's event recall and false-alarm rate on the
synthetic labels (the same definition used to tune it, see :mod:`opsmind.detect.ensemble`).
"""

from __future__ import annotations

import gc
import json
import os
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from opsmind.bench.procs import pin
from opsmind.detect.ensemble import Ensemble, warm_kernels

F64 = npt.NDArray[np.float64]
STEP_S = 300.0
KINDS = ("spike", "shift", "variance", "drift")
DETECT_WITHIN = 20  # an injection counts as found when an alarm falls within this many points of its start
QUIET = 100  # false alarms are counted on points at least this far from every injection


@dataclass(frozen=True)
class Synthetic:
    ts: F64  # [points]
    values: F64  # [series, points]
    starts: npt.NDArray[np.int64]  # [series] start of the injected anomaly, -1 = none
    kinds: list[str]  # [series] its kind ("" = none)


def synthetic(series: int, points: int, seed: int, anomaly_share: float = 0.5) -> Synthetic:
    """Seeded synthetic fleet; about ``anomaly_share`` of the series get one injected anomaly."""
    rng = np.random.default_rng(seed)
    t: F64 = np.arange(points, dtype=np.float64) * STEP_S + 1.7e9
    day = 2 * np.pi * t / 86400.0
    level = np.exp(rng.normal(3.0, 2.0, series))[:, None]
    sigma = level * rng.uniform(0.01, 0.1, (series, 1))
    amp_d = np.where(rng.random((series, 1)) < 0.6, rng.uniform(2, 10, (series, 1)), 0.0) * sigma
    amp_h = np.where(rng.random((series, 1)) < 0.15, rng.uniform(1, 4, (series, 1)), 0.0) * sigma
    phase = rng.uniform(0, 2 * np.pi, (series, 1))
    x = level + amp_d * np.sin(day + phase) + amp_h * np.sin(24 * day)
    heavy = rng.random((series, 1)) < 0.3
    noise = np.where(
        heavy, rng.standard_t(4, (series, points)) / np.sqrt(2.0), rng.normal(size=(series, points))
    )
    walk = rng.random((series, 1)) < 0.1
    noise = np.where(walk, np.cumsum(noise, axis=1) * 0.2 + noise, noise)
    x = x + sigma * noise
    quant = rng.random(series) < 0.1
    x[quant] = np.round(x[quant] / sigma[quant]) * sigma[quant]
    const = rng.random(series) < 0.03
    x[const] = level[const]
    starts = np.full(series, -1, dtype=np.int64)
    kinds = [""] * series
    lo = min(300, points // 2)
    for i in np.flatnonzero(rng.random(series) < anomaly_share):
        s = int(rng.integers(lo, max(lo + 1, points - 50)))
        kind = KINDS[int(rng.integers(len(KINDS)))]
        size = float(rng.uniform(5, 10)) * float(sigma[i, 0]) * float(rng.choice((-1.0, 1.0)))
        if kind == "spike":
            x[i, s] += 2 * size
        elif kind == "shift":
            x[i, s:] += size
        elif kind == "variance":
            x[i, s : s + 100] += rng.normal(0, 4 * float(sigma[i, 0]), len(x[i, s : s + 100]))
        else:
            ramp = np.minimum(np.arange(points - s) / 50.0, 1.0)
            x[i, s:] += ramp * size
        starts[i], kinds[i] = s, kind
    return Synthetic(t, x, starts, kinds)


def run_ensemble(data: Synthetic, ensemble: Ensemble | None = None) -> tuple[F64, float]:
    """Probabilities [series, points] of the vectorised ensemble and the seconds spent in its steps."""
    ens = ensemble or Ensemble()
    warm_kernels()  # compilation (a machine's first run) is not throughput
    n, p = data.values.shape
    rows = ens.index.rows([f"s{i}" for i in range(n)])
    # Results are kept one time step per row and transposed at the end: writing a step into a column of
    # a [series, points] array would touch one cache line per series inside the timed section.
    by_step = np.empty((p, n))
    columns = np.ascontiguousarray(data.values.T)
    ts = np.empty(n)
    spent = 0.0
    for j in range(p):
        ts.fill(data.ts[j])
        start = time.perf_counter()
        out = ens.step_rows(rows, ts, columns[j])
        spent += time.perf_counter() - start
        by_step[j] = out.probability
    return np.ascontiguousarray(by_step.T), spent


def quality(data: Synthetic, prob: F64, threshold: float) -> dict[str, float]:
    """Event recall per kind and the false-alarm rate on quiet points (see module)."""
    alarm: npt.NDArray[np.bool_] = np.asarray(np.nan_to_num(prob) >= threshold)
    n, p = prob.shape
    idx = np.arange(p)[None, :]
    s = data.starts[:, None]
    quiet = (s < 0) | (idx < s - QUIET)
    out = {"false_alarm_rate": float(alarm[quiet].sum() / max(quiet.sum(), 1))}
    found: npt.NDArray[np.bool_] = alarm & (idx >= s) & (idx < s + DETECT_WITHIN) & (s >= 0)
    hit: npt.NDArray[np.bool_] = np.asarray(found.any(axis=1))
    kinds = np.array(data.kinds)
    for k in KINDS:
        m = kinds == k
        out[f"recall_{k}"] = float(hit[m].mean()) if m.any() else float("nan")
    has = data.starts >= 0
    out["recall"] = float(hit[has].mean()) if has.any() else float("nan")
    return out


def river_points_per_s(data: Synthetic, series: int) -> float:
    from river import anomaly, preprocessing

    n = min(series, data.values.shape[0])
    start = time.perf_counter()
    for i in range(n):
        model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
        for v in data.values[i].tolist():
            x = {"value": v}
            model.score_one(x)
            model.learn_one(x)
    return float(n * data.values.shape[1]) / (time.perf_counter() - start)


def measured_bytes_per_series(series: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    ens = Ensemble()
    keys = [f"host-{i:06d}/cpu" for i in range(series)]
    ens.step(keys, np.zeros(series), np.ones(series))
    del keys
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return float(after - before) / series


def run_detect_benchmark(
    series: int,
    points: int,
    out: Path,
    json_out: bool,
    console: Console,
    river_series: int = 50,
    seed: int = 7,
) -> dict[str, object]:
    pin(os.getpid(), 0)
    data = synthetic(series, points, seed)
    console.print(f"ensemble: {series:,} series x {points:,} points ...")
    ens = Ensemble()
    prob, spent = run_ensemble(data, ens)
    pps = series * points / spent
    qual = quality(data, prob, ens.threshold)
    console.print(f"river HalfSpaceTrees: {min(river_series, series)} series x {points:,} points ...")
    river = river_points_per_s(data, river_series)
    measured = measured_bytes_per_series(series)
    result: dict[str, object] = {
        "points_per_s": round(pps),
        "river_hst_points_per_s": round(river),
        "bytes_per_series": round(measured),
        "state_bytes_per_series": ens.nbytes_per_series,
        "series": series,
        "points": points,
        "river_series": min(river_series, series),
        "ms_per_step": round(spent / points * 1e3, 3),
        "threshold": ens.threshold,
        **{k: round(v, 5) for k, v in qual.items()},
    }
    rows = [
        [
            "opsmind ensemble (vectorised step, all series)",
            f"{series:,} x {points:,}",
            f"{pps:,.0f}",
            f"{measured:,.0f}",
        ],
        [
            "river HalfSpaceTrees (one point at a time)",
            f"{min(river_series, series)} x {points:,}",
            f"{river:,.0f}",
            "-",
        ],
    ]
    header = ["detector", "series x points timed", "points/s (one core)", "bytes/series"]
    lines = [
        "# Detection engine benchmark",
        "",
        f"`opsmind bench detect` - {series:,} synthetic series x {points:,} points (5-minute steps, seed "
        f"{seed}: daily/hourly seasonality, Gaussian and heavy-tailed noise, random walks, quantised and "
        "constant series; half get one injected spike, level shift, variance change or drift), pinned to "
        "one core. The ensemble steps every series at once per time step; river runs one point at a time, "
        f"so it is timed on {min(river_series, series)} series only.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|---|---:|---:|",
        *["| " + " | ".join(r) + " |" for r in rows],
        "",
        f"- {spent / points * 1e3:.2f} ms per step of {series:,} series; state "
        f"{ens.nbytes_per_series:,} bytes/series (`nbytes_per_series`), {measured:,.0f} bytes/series "
        "measured with tracemalloc (state arrays with their doubling slack, plus the key index).",
        f"- Quality on the same data at the ensemble's threshold {ens.threshold}: event recall "
        f"{qual['recall']:.3f} (spike {qual['recall_spike']:.3f}, shift {qual['recall_shift']:.3f}, variance "
        f"{qual['recall_variance']:.3f}, drift {qual['recall_drift']:.3f}; found = an alarm within "
        f"{DETECT_WITHIN} points of the start), false-alarm rate {qual['false_alarm_rate']:.5f} on points "
        f"more than {QUIET} points before any injection.",
        "- Goals: >= 1,000,000 points/s on one core, <= ~4 KB per series.",
        "",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if json_out:
        print(json.dumps(result))
        return result
    t = Table(title="opsmind bench detect")
    for col in header:
        t.add_column(col)
    for r in rows:
        t.add_row(*r)
    Console().print(t)
    console.print("\n".join(lines[-5:-1]))
    console.print(f"written to {out}")
    return result
