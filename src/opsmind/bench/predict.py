"""``opsmind bench predict``: how well the load forecaster predicts real traces, beside seasonal naive.

Rolling-origin evaluation per trace (:mod:`opsmind.bench.traces`, one-minute steps):

* **training part**: the first ``min(TRAIN_DAYS days, TRAIN_FRACTION of the trace)`` minutes; the
  :class:`~opsmind.predict.forecast.LoadForecaster` is fitted on it;
* **origins**: from the end of the training part, every ``cadence`` minutes (default 60) while a
  full horizon remains; at each origin the forecaster is first given the minutes since the previous
  origin (``update``: no re-estimation, except its own refit every ``refit_every`` minutes, a day by
  default), then forecasts the next ``horizon`` minutes (default 15, the scaler's look-ahead);
* **baseline**: statsforecast ``SeasonalNaive`` with the daily season (1440 minutes), given the last
  two days before the same origin (gaps filled the same way as the forecaster fills them,
  :func:`~opsmind.predict.forecast.fill_gaps`, from the whole past when those two days are all
  missing), same horizon, same run;
* **scored points**: every (origin, step) whose actual value is observed (not NaN); only minutes
  after the training part are ever scored;
* **MASE** = mean absolute error over the scored points / ``Q``, where ``Q`` is the in-sample
  seasonal-naive MAE of the training part: the mean of ``|y[t] - y[t - 1440]|`` over the training
  minutes ``t >= 1440`` whose two values are both observed (lag 1 instead when the training part is
  shorter than a day and a minute). ``mase`` (the forecaster) and ``mase_seasonal_naive`` share this
  ``Q``, so their ratio is the ratio of their MAEs;
* **coverage_80 / coverage_95**: share of scored points inside the forecaster's 80% / 95% interval.

The bottleneck-warning scores (``warning_precision``, ``warning_recall``, ``median_lead_minutes``)
belong to :func:`warning_scores`, which returns nothing yet: the keys are omitted, not faked.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from statsforecast.models import SeasonalNaive

from opsmind.bench.traces import Trace, default_traces, load_trace
from opsmind.predict.forecast import LoadForecaster, fill_gaps

DAY = 1440
TRAIN_DAYS = 14
TRAIN_FRACTION = 0.5
CADENCE = 60
HORIZON = 15
LEVELS = (80, 95)
DATASETS = Path("../shared/datasets/traces")
WARNING_KEYS = ("warning_precision", "warning_recall", "median_lead_minutes")


def train_length(n: int, train_days: int = TRAIN_DAYS, fraction: float = TRAIN_FRACTION) -> int:
    return max(1, min(train_days * DAY, int(n * fraction)))


def seasonal_naive_scale(y: np.ndarray, season: int = DAY) -> float:
    """``Q``: in-sample seasonal-naive MAE of ``y`` (lag 1 when ``y`` is not longer than ``season``);
    NaN when no pair of observed values exists."""
    lag = season if y.size > season else 1
    if y.size <= lag:
        return float("nan")
    diff = np.abs(y[lag:] - y[:-lag])
    diff = diff[np.isfinite(diff)]
    return float(diff.mean()) if diff.size else float("nan")


def warning_scores(trace: Trace) -> dict[str, float]:
    """Place for the bottleneck-warning part (``WARNING_KEYS``); not implemented here, so it adds no
    keys."""
    return {}


def evaluate_trace(
    trace: Trace,
    horizon: int = HORIZON,
    cadence: int = CADENCE,
    season: int = DAY,
    train_days: int = TRAIN_DAYS,
    factory: Callable[[], LoadForecaster] = LoadForecaster,
) -> dict[str, Any]:
    """Scores of one trace; see the module docstring."""
    started = time.perf_counter()
    y = np.asarray(trace.y, dtype=float)
    n = y.size
    train = train_length(n, train_days)
    scale = seasonal_naive_scale(y[:train], season)
    forecaster = factory()
    forecaster.fit(y[:train])
    baseline = SeasonalNaive(season_length=season)
    err = err_base = 0.0
    scored = origins = 0
    inside = dict.fromkeys(LEVELS, 0)
    models: Counter[str] = Counter()
    fit_times = [forecaster.last_fit_seconds]
    fits_seen = forecaster.fits
    last = train
    for origin in range(train, n - horizon + 1, cadence):
        forecaster.update(y[last:origin])
        last = origin
        if forecaster.fits != fits_seen:
            fits_seen = forecaster.fits
            fit_times.append(forecaster.last_fit_seconds)
        fc = forecaster.predict(horizon, LEVELS)
        actual = y[origin : origin + horizon]
        seen = np.isfinite(actual)
        origins += 1
        models[fc.model.split(" (")[0]] += 1
        if not seen.any():
            continue
        recent = fill_gaps(y[max(0, origin - 2 * season) : origin], season)
        if not np.isfinite(recent).all():  # two days all missing: fill from the whole past instead
            recent = fill_gaps(y[:origin], season)[-2 * season :]
        if recent.size >= season and np.isfinite(recent).all():
            base = baseline.forecast(y=recent, h=horizon)["mean"]
        else:  # less than a season of history: the last value
            base = np.full(horizon, recent[-1] if recent.size else np.nan)
        err += float(np.abs(fc.mean - actual)[seen].sum())
        err_base += float(np.abs(base - actual)[seen].sum())
        for lv in LEVELS:
            inside[lv] += int(((fc.lo[lv] <= actual) & (actual <= fc.hi[lv]))[seen].sum())
        scored += int(seen.sum())

    def ratio(a: float, b: float) -> float | None:
        value = a / b if b else float("nan")
        return round(value, 4) if np.isfinite(value) else None

    mae = err / scored if scored else float("nan")
    mae_base = err_base / scored if scored else float("nan")
    result: dict[str, Any] = {
        "mase": ratio(mae, scale),
        "mase_seasonal_naive": ratio(mae_base, scale),
        "mae": ratio(mae, 1.0),
        "mae_seasonal_naive": ratio(mae_base, 1.0),
        "scale_q": ratio(scale, 1.0),
        "coverage_80": ratio(inside[80], scored),
        "coverage_95": ratio(inside[95], scored),
        "points": n,
        "missing": trace.missing,
        "train_points": train,
        "origins": origins,
        "scored_points": scored,
        "horizon_minutes": horizon,
        "cadence_minutes": cadence,
        "fits": len(fit_times),
        "fit_seconds_mean": round(float(np.mean(fit_times)), 3),
        "fit_seconds_max": round(float(np.max(fit_times)), 3),
        "models": dict(models.most_common()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    result.update(warning_scores(trace))  # warning_precision, warning_recall, median_lead_minutes
    return result


COLUMNS = (
    "trace",
    "points",
    "origins",
    "MASE",
    "MASE seasonal naive",
    "cov 80",
    "cov 95",
    "fit s (mean/max)",
)


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _cells(name: str, r: dict[str, Any]) -> list[str]:
    return [
        name,
        str(r["points"]),
        str(r["origins"]),
        _fmt(r["mase"]),
        _fmt(r["mase_seasonal_naive"]),
        _fmt(r["coverage_80"]),
        _fmt(r["coverage_95"]),
        f"{r['fit_seconds_mean']:.2f} / {r['fit_seconds_max']:.2f}",
    ]


def run_predict_benchmark(
    traces: Sequence[Path],
    out: Path,
    json_out: bool,
    console: Console,
    horizon: int = HORIZON,
    datasets: Path = DATASETS,
) -> dict[str, Any]:
    paths = list(traces) if traces else default_traces(datasets)
    if not paths:
        raise FileNotFoundError(f"no traces given and none found under {datasets}")
    results: dict[str, dict[str, Any]] = {}
    for path in paths:
        trace = load_trace(path)
        console.print(f"{trace.name}: {trace.y.size} minutes ({trace.missing} missing) ...")
        results[trace.name] = evaluate_trace(trace, horizon=horizon)
    result: dict[str, Any] = {"traces": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(_markdown(results, paths, horizon)))
    if json_out:
        print(json.dumps(result))
        return result
    table = Table(title=f"opsmind bench predict (horizon {horizon} min)")
    for col in COLUMNS:
        table.add_column(col)
    for name, r in results.items():
        table.add_row(*_cells(name, r))
    Console().print(table)
    console.print(f"written to {out}")
    return result


def _markdown(results: dict[str, dict[str, Any]], paths: Sequence[Path], horizon: int) -> list[str]:
    names = ", ".join(f"`{p.name}`" for p in paths)
    lines = [
        "# Load forecasting benchmark",
        "",
        f"`opsmind bench predict --horizon {horizon}` on {names}. Rolling origin: the forecaster is "
        f"fitted on the first min({TRAIN_DAYS} days, {TRAIN_FRACTION:.0%}) of each trace, then every "
        f"{CADENCE} minutes it takes the new minutes (no re-estimation; it refits itself once a day) and "
        f"forecasts the next {horizon} minutes. Only minutes after the training part with an observed "
        "value are scored. The baseline is statsforecast `SeasonalNaive` with the daily season "
        "(1440 minutes) at the same origins and horizon, in the same run.",
        "",
        "MASE = MAE over the scored points / Q, with Q the training part's in-sample seasonal-naive MAE: "
        "mean |y[t] - y[t-1440]| over training minutes t >= 1440 with both values observed. Both "
        "columns share Q. Coverage is the share of scored points inside the forecaster's 80% / 95% "
        "interval. Definitions: `src/opsmind/bench/predict.py`; the forecaster: "
        "`src/opsmind/predict/forecast.py`.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    lines += ["| " + " | ".join(_cells(name, r)) + " |" for name, r in results.items()]
    lines += ["", "Models used at the origins (count of origins):", ""]
    for name, r in results.items():
        used = ", ".join(f"{m}: {c}" for m, c in r["models"].items())
        lines.append(f"- {name}: {used} ({r['fits']} fits, {r['seconds']:.0f} s for the trace)")
    lines += [
        "",
        "Q comes from the training part only, so a trace whose load grows after it has large MASEs in "
        "both columns (WorldCup-98: its first 14 days are before the tournament); compare the columns "
        "with each other. NASA's outage minutes (no log, hurricane shutdown) are missing, not zero: "
        "never scored, filled in the history.",
        "",
        "Goal: MASE below seasonal naive's on every trace. The bottleneck-warning scores "
        f"({', '.join(WARNING_KEYS)}) are not part of this run yet.",
        "",
    ]
    return lines
