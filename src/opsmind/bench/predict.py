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

Bottleneck warnings (:func:`warning_scores`: ``warning_precision``, ``warning_recall``,
``median_lead_minutes`` and the counts behind them):

* **the world**: the trace is scaled as bench autoscale scales it (``scale_trace``: its 99.5th
  percentile needs ``PEAK_PODS`` = 40 pods at 100 % CPU, 10 rps a pod; missing minutes carry no
  traffic) and replayed through :class:`~opsmind.sim.replay.ServiceReplay` in 15 s steps at a
  **fixed** replica count, no autoscaler (a bottleneck warning is about load outgrowing the capacity in
  place): the fewest pods whose SLO capacity in the replay covers the trace's 90th-percentile load, so
  roughly the busiest tenth of the minutes breach. A minute is in breach when at least half of its
  15 s steps have a p95 above the SLO (0.5 s), as in bench autoscale; its observed p95 is the upper
  median of the four, so "p95 > SLO" is the same rule. **Breach episodes**: runs of breach minutes,
  merged across gaps shorter than ``BREACH_MERGE_GAP`` = 5 minutes.
* **the predictor** reads only what a monitoring system would have up to the current minute: load
  (NaN where the trace is missing), p95, CPU and the replica count. After the same training part as
  above (the warm-up) it fits :class:`~opsmind.predict.forecast.LoadForecaster` once on the warm-up
  load, then every minute updates it (``update``) with that minute and forecasts the next ``horizon`` (15)
  minutes with 80/95 % intervals; :func:`opsmind.predict.bottleneck.warn` (leads up to 15 minutes,
  imminent ones included) against the capacity learned in the warm-up, through a latency-SLO
  :class:`~opsmind.predict.bottleneck.WarningGate` kept across the minutes (the alerting rule: fires
  once the peak P(exceed) has been >= ``RAISE_P`` = 0.2 for 2 consecutive minutes, stays firing until it
  has been < ``CLEAR_P`` = 0.02 for 10 minutes). That gate is the input of the warning rule scored, a
  :class:`~opsmind.predict.warning_learner.WarningLearner`: an online logistic regression, refitted every
  hour on the predictor's own past minutes (the newest week of them), of P(a breach starts within 20
  minutes | features the monitoring system has at that minute: the forecast's P(exceed) near and far,
  peak forecast and upper bound / capacity, load / capacity now, over 5 and 30 minutes and its trend,
  p95 / SLO, minutes since the last breach and its length, breach starts in the last hour and six
  hours, whether and for how long the gate fires, how much the load moves minute to minute and how
  many such moves the headroom is). A minute's label is used only once known, 20
  minutes later; the warm-up minutes give it history (load, p95, breaches) but no examples. Until it
  has 720 labelled minutes with 30 positive (the learner's warm-up, about half a day after the
  forecaster's) and during breaches the gate decides; then a warning starts when the gate fires and
  that probability is >= ``START_P`` = 0.45 (or
  on the learner's word at >= ``OWN_P`` = 0.65), continues while the gate fires, and is ended after
  ``RECHECK_MINUTES`` = 10 minutes once the probability is under ``START_P``, so that a lingering risk
  does not hide the next breach under one long warning, and after ``MAX_MINUTES`` = 20 minutes without
  a breach in any case (it may start again the next minute, a new warning). A minute with the warning
  firing is a warning minute. The gate alone is scored too (``warning_setup.gate_only``).
* **the capacity** it uses: ``queue_model`` (``WARNING_CAPACITY``) - the mean service time from the
  warm-up's light-load p95s (:func:`~opsmind.predict.queue_model.fit_service_time`, CPU <= 50 %, or
  <= 70 % when the warm-up was never that light), then the exact M/M/c p95 at the replica count gives
  the SLO capacity. :func:`~opsmind.predict.capacity.fit_capacity` (load vs p95 vs replicas) is fitted
  on the same warm-up and scored the same way, reported under ``warning_setup.fit_capacity``, but not
  used for the headline: its single-server curve ``1/latency = a - c x`` does not fit the replay's
  many-server queue (flat, then a cliff near saturation; R2 below 0 on Crane input1/3/5/7, which are
  not benchmark traces), and there it was -19 %, -9 %, +2 %, -6 % off the replay's SLO capacity where
  the M/M/c estimate was +3.5 %, +1.5 %, +4.3 %, +2.1 % off (it errs high: the replay's queue uses
  Sakasegawa's approximation of Erlang C). Neither was uniformly better at warning there. When a capacity
  refuses, its scores are null and ``reason`` says why.
* **scoring** (:func:`score_warnings`): warnings inside a breach episode do not count; a **warning
  episode** is a run of consecutive counted warning minutes; it is a true positive when a breach
  episode starts ``1 .. horizon + LEAD_TOLERANCE`` (15 + 5) minutes after its first minute.
  ``warning_precision`` = true-positive warning episodes / warning episodes. A breach episode
  starting at least ``horizon`` minutes after the warm-up is **detected** when a warning episode
  started 1-30 minutes before it; ``warning_recall`` = detected / those breach episodes; its lead is
  breach start - the earliest such warning start (minutes; the breach minute is that forecast's step),
  ``median_lead_minutes`` is over the detected episodes.

The gate's constants (:mod:`opsmind.predict.bottleneck`: ``RAISE_P``, ``CLEAR_P``, ``FOR_S``,
``KEEP_S``; the raise level was chosen from 0.5 / 0.35 / 0.2 before, the rest from a small grid) were
chosen on Crane input3, input5 and input7, the learner's (``START_P``, ``OWN_P``, ``RECHECK_MINUTES``,
``MAX_MINUTES``, its regularisation and features, from small grids) on Crane input1-8 and 10-14; none
of them are benchmark traces, nothing was tuned on the scored traces, and one configuration serves
every trace.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from statsforecast.models import SeasonalNaive

from opsmind.bench.autoscale import BenchSettings, scale_trace
from opsmind.bench.traces import Trace, default_traces, load_trace
from opsmind.predict.base import Forecast
from opsmind.predict.bottleneck import (
    CLEAR_P,
    FOR_S,
    KEEP_S,
    LATENCY_SLO_RISK,
    RAISE_P,
    WarningGate,
    WarningRule,
    warn,
)
from opsmind.predict.capacity import CapacityModel, fit_capacity
from opsmind.predict.forecast import LoadForecaster, fill_gaps
from opsmind.predict.queue_model import fit_service_time, response_quantile
from opsmind.predict.track_record import DETECT, MERGE_GAP, TOLERANCE, WarningTrackRecord
from opsmind.predict.warning_learner import (
    MAX_MINUTES,
    OWN_P,
    QUIET_MINUTES,
    RECHECK_MINUTES,
    START_P,
    LearnedWarningRule,
    WarningLearner,
)
from opsmind.sim.queueing import mmc
from opsmind.sim.replay import ReplaySpec, ServiceReplay

DAY = 1440
TRAIN_DAYS = 14
TRAIN_FRACTION = 0.5
CADENCE = 60
HORIZON = 15
LEVELS = (80, 95)
DATASETS = Path("../shared/datasets/traces")
WARNING_KEYS = ("warning_precision", "warning_recall", "median_lead_minutes")
COUNT_KEYS = ("warning_episodes", "warning_hits", "breach_episodes", "breach_detected")
WARNING_CAPACITY = "queue_model"  # the capacity the reported warning scores use; see the module docstring


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
    result.update(warning_scores(trace, train_days=train_days, horizon=horizon, factory=factory))
    return result


# -- bottleneck warnings -----------------------------------------------------------------------------

PEAK_PODS = 40  # the trace is scaled as in bench autoscale: its 99.5th percentile needs 40 pods at 100 %
BREACH_QUANTILE = 90  # fixed replicas: the fewest whose SLO capacity covers this percentile of the load
STEPS_PER_MINUTE = 4  # 15 s replay steps
BREACH_MERGE_GAP = MERGE_GAP  # breach runs separated by fewer non-breach minutes are one episode
# A warning episode is a hit if a breach starts <= HORIZON + this many minutes later.
LEAD_TOLERANCE = TOLERANCE
DETECT_WINDOW = DETECT  # a breach episode is detected by a warning start 1..30 minutes before it
WARN_THRESHOLD = RAISE_P  # P(exceed) that raises a warning (the gate's; saturation warnings: ungated)
WARN_REPLAY = ReplaySpec(min_replicas=1, max_replicas=10_000)


def score_warnings(
    warning: np.ndarray,
    breach: np.ndarray,
    start: int = 0,
    window: int = HORIZON,
    tolerance: int = LEAD_TOLERANCE,
    detect: int = DETECT_WINDOW,
    merge_gap: int = BREACH_MERGE_GAP,
) -> dict[str, Any]:
    """Precision, recall and lead of per-minute warnings against per-minute breaches (the definitions of
    :class:`~opsmind.predict.track_record.WarningTrackRecord`, which computes them).

    ``warning[t]``: a warning was raised after minute ``t`` was observed (about minutes ``t + 1`` ..);
    ``breach[t]``: minute ``t`` breached the SLO. Breach episodes are the runs of ``breach`` merged
    over gaps shorter than ``merge_gap``; a warning inside a breach episode does not count. Warning
    episodes are runs of consecutive counted warning minutes starting at or after ``start`` whose lead
    window ends inside the series. A warning episode starting at ``w`` is a true positive when a breach
    episode starts at ``s`` with ``w < s <= w + window + tolerance``. A breach episode starting at
    ``s >= start + window`` (a full look-ahead of warnings was possible; episodes under way before are
    not scored) is detected when a warning episode starts at ``w`` with ``1 <= s - w <= detect``; its
    lead is ``s - w`` for the earliest such ``w`` (the breach minute is forecast step ``s - w``)."""
    w_mask = np.asarray(warning, dtype=bool)
    b_mask = np.asarray(breach, dtype=bool)
    if w_mask.size != b_mask.size:
        raise ValueError("warning and breach must have the same length")
    # The engine's own online record (predict/track_record.py), run over the whole replay: the figure the
    # engine shows for a live service and this one are the same definition, not two of them.
    record = WarningTrackRecord(start, window, tolerance, detect, merge_gap)
    for w, b in zip(w_mask.tolist(), b_mask.tolist(), strict=True):
        record.minute(w, b)
    record.close()
    r = record.record
    return {
        "warning_precision": None if r.precision is None else round(r.precision, 4),
        "warning_recall": None if r.recall is None else round(r.recall, 4),
        "median_lead_minutes": r.median_lead_minutes,
        "warning_episodes": r.warnings,
        "warning_hits": r.came_true,
        "breach_episodes": r.breaches,
        "breach_detected": r.warned_of,
    }


def _largest_load(p95_at: Callable[[float], float], top: float, slo: float) -> float:
    """The largest load in ``[0, top]`` whose p95 is within ``slo`` (bisection; p95 rises with load)."""
    lo, hi = 0.0, top
    if p95_at(hi) <= slo:
        return hi
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if p95_at(mid) <= slo else (lo, mid)
    return lo


def replay_slo_capacity(replicas: int, spec: ReplaySpec = WARN_REPLAY) -> float:
    """The replay's own SLO capacity (total rps) at ``replicas`` ready pods: the world's truth, used to
    set the world up and reported, never given to the predictor."""
    return _largest_load(
        lambda x: mmc(x, replicas, spec.service_s, spec.timeout_s).p95_s,
        replicas * spec.capacity_rps,
        spec.slo_p95_s,
    )


def fixed_replicas(load: np.ndarray, spec: ReplaySpec = WARN_REPLAY, q: float = BREACH_QUANTILE) -> int:
    """The fewest pods whose SLO capacity (in the replay) covers the ``q``-th percentile of ``load``."""
    target = float(np.percentile(load, q))
    r = max(1, math.floor(target / spec.capacity_rps))
    while replay_slo_capacity(r, spec) < target:
        r += 1
    return r


def replay_fixed(
    load: np.ndarray, replicas: int, spec: ReplaySpec = WARN_REPLAY
) -> tuple[np.ndarray, np.ndarray]:
    """Replay per-minute ``load`` at ``replicas`` pods in 15 s steps (linear within the minute, as bench
    autoscale): per minute the p95 (the upper median of its four step p95s, so ``p95 > slo`` exactly
    when at least half of the steps breach) and the mean CPU utilisation of the pods."""
    world = ServiceReplay(
        replace(spec, initial_replicas=replicas, min_replicas=min(spec.min_replicas, replicas))
    )
    n = load.size
    p95 = np.empty(n)
    cpu = np.empty(n)
    steps = np.empty(STEPS_PER_MINUTE)
    utils = np.empty(STEPS_PER_MINUTE)
    for m in range(n):
        nxt = load[m + 1] if m + 1 < n else load[m]
        for k in range(STEPS_PER_MINUTE):
            res = world.step(float(load[m] + (nxt - load[m]) * k / STEPS_PER_MINUTE), 60.0 / STEPS_PER_MINUTE)
            steps[k], utils[k] = res.p95_s, res.utilisation
        p95[m] = np.sort(steps)[STEPS_PER_MINUTE // 2]
        cpu[m] = float(utils.mean())
    return p95, cpu


def queue_capacity(p95: np.ndarray, cpu: np.ndarray, replicas: int, slo: float) -> CapacityModel:
    """Capacity from :mod:`opsmind.predict.queue_model`: the mean service time from light-load p95s
    (``fit_service_time``, CPU <= 50 %), then the exact M/M/c p95 at ``replicas`` servers gives the SLO
    capacity (bisection) and ``1 / service time`` the saturation, per replica."""
    fit = fit_service_time(p95, cpu)
    light = "CPU <= 50 %"
    if not fit.ok:  # never that light: minutes up to 70 % (some queueing: a longer, conservative estimate)
        fit, light = fit_service_time(p95, cpu, max_utilisation=0.7), "CPU <= 70 %"
    if not fit.ok:
        return CapacityModel(ok=False, reason=f"service time not learned: {fit.reason}", latency_slo=slo)
    s = fit.service_s
    if slo <= -math.log(0.05) * s:
        return CapacityModel(
            ok=False, reason=f"the service time {s:.3g}s alone breaks the SLO", latency_slo=slo
        )
    total = _largest_load(lambda x: response_quantile(0.95, x, s, replicas), replicas / s * 0.999999, slo)
    model = CapacityModel.known(total / replicas, 1.0 / s, slo)
    reason = (
        f"M/M/c: service time {s * 1000:.1f} ms from {fit.samples} light-load minutes ({light}); "
        f"{total / replicas:.3g}/replica within the SLO at {replicas} replicas"
    )
    return replace(model, reason=reason, base_latency=-math.log(0.05) * s, n_samples=fit.samples)


def _gate() -> WarningGate:
    """A fresh latency-SLO gate per trace and capacity, with the predictor's own defaults."""
    return WarningGate()


def _warns(fc: Forecast, t: int, replicas: int, capacity: CapacityModel, rule: WarningRule) -> bool:
    """Whether :func:`~opsmind.predict.bottleneck.warn` reports a latency-SLO warning after minute ``t``
    (its rule, the gate alone or the learner, kept across the minutes, decides), as the predict stage
    calls it."""
    found = warn(
        "trace",
        fc,
        60.0,
        60.0 * t,
        replicas,
        capacity,
        threshold=WARN_THRESHOLD,
        gates={LATENCY_SLO_RISK: rule},
    )
    return any(w.kind == LATENCY_SLO_RISK for w in found)


def warning_scores(
    trace: Trace,
    train_days: int = TRAIN_DAYS,
    horizon: int = HORIZON,
    factory: Callable[[], LoadForecaster] = LoadForecaster,
    spec: ReplaySpec = WARN_REPLAY,
) -> dict[str, Any]:
    """The bottleneck-warning part (``WARNING_KEYS`` and their counts); see the module docstring."""
    started = time.perf_counter()
    y = np.asarray(trace.y, dtype=float)
    n = y.size
    train = train_length(n, train_days)
    seen = np.isfinite(y)
    load = scale_trace(trace, BenchSettings(peak_pods=PEAK_PODS, replay=spec))  # missing minutes: 0
    observed = np.where(seen, load, np.nan)
    replicas = fixed_replicas(load[seen], spec)
    p95, cpu = replay_fixed(load, replicas, spec)
    breach = p95 > spec.slo_p95_s
    slo = spec.slo_p95_s
    warm = seen[:train]
    models = {
        "queue_model": queue_capacity(p95[:train][warm], cpu[:train][warm], replicas, slo),
        "fit_capacity": fit_capacity(
            load[:train][warm], p95[:train][warm], np.full(int(warm.sum()), replicas), slo
        ),
    }
    usable = {name: m for name, m in models.items() if m.ok}
    flags = {name: np.zeros(n, dtype=bool) for name in usable}
    gate_flags = {name: np.zeros(n, dtype=bool) for name in usable}
    if usable:
        forecaster = factory()
        forecaster.fit(observed[:train])
        gates = {name: _gate() for name in usable}
        learners = {name: LearnedWarningRule(WarningLearner(slo_s=slo, gate=_gate())) for name in usable}
        for rule in learners.values():  # the warm-up's monitoring: history, no forecast yet
            for t in range(train):
                rule.learner.observe(float(observed[t]), float(p95[t]))
        for t in range(train, n):
            forecaster.update(observed[t : t + 1])
            fc = forecaster.predict(horizon, LEVELS)
            for name, model in usable.items():
                gate_flags[name][t] = _warns(fc, t, replicas, model, gates[name])
                learners[name].minute(float(observed[t]), float(p95[t]))
                flags[name][t] = _warns(fc, t, replicas, model, learners[name])
    true_cap = replay_slo_capacity(replicas, spec)
    per_model: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        detail: dict[str, Any] = {
            "ok": model.ok,
            "reason": model.reason,
            "capacity_per_replica": round(model.capacity_per_replica, 4) if model.ok else None,
            "capacity_error": round(model.capacity_per_replica * replicas / true_cap - 1, 4)
            if model.ok
            else None,
        }
        scores = (
            score_warnings(flags[name], breach, start=train, window=horizon)
            if name in flags
            else dict.fromkeys((*WARNING_KEYS, *COUNT_KEYS))
        )
        gate_only = (
            score_warnings(gate_flags[name], breach, start=train, window=horizon)
            if name in gate_flags
            else dict.fromkeys((*WARNING_KEYS, *COUNT_KEYS))
        )
        per_model[name] = {**scores, "capacity": detail, "gate_only": gate_only}
    main = per_model[WARNING_CAPACITY]
    result: dict[str, Any] = {key: main[key] for key in (*WARNING_KEYS, *COUNT_KEYS)}
    result["warning_setup"] = {
        "replicas": replicas,
        "replay_slo_capacity_rps": round(true_cap, 3),
        "breach_minutes_share_scored": round(float(breach[train:].mean()), 4) if n > train else None,
        "warnings_capacity": WARNING_CAPACITY,
        "capacity": main["capacity"],
        "fit_capacity": per_model["fit_capacity"],
        "gate_only": main["gate_only"],
        "seconds": round(time.perf_counter() - started, 1),
    }
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
    "warn precision",
    "warn recall",
    "median lead min",
    "warn eps / hits",
    "breach eps / detected",
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
        _fmt(r.get("warning_precision")),
        _fmt(r.get("warning_recall")),
        _fmt(r.get("median_lead_minutes")),
        f"{_fmt(r.get('warning_episodes'))} / {_fmt(r.get('warning_hits'))}",
        f"{_fmt(r.get('breach_episodes'))} / {_fmt(r.get('breach_detected'))}",
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
        train = train_length(trace.y.size)
        if trace.y.size - horizon < train:  # no forecast origin: every score would be null
            raise ValueError(
                f"{path}: {trace.y.size} minutes is too short for a {horizon}-minute horizon after "
                f"{train} training minutes"
            )
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
        "Goal: MASE below seasonal naive's on every trace.",
        "",
        "## Bottleneck warnings",
        "",
        "Each trace is scaled as in `bench autoscale` (99.5th percentile = 40 pods at 100 % CPU) and "
        "replayed through `sim.replay` in 15 s steps at a fixed replica count, no autoscaler: the fewest "
        "pods whose SLO capacity covers the trace's 90th-percentile load. A minute breaches when at "
        "least half its steps have p95 > 0.5 s; breach episodes merge gaps under "
        f"{BREACH_MERGE_GAP} minutes. After the same warm-up as above the predictor (which sees only "
        "load, p95, CPU and replicas up to the current minute) forecasts the next "
        f"{horizon} minutes every minute (LoadForecaster, fitted once, then updated) and calls "
        "`predict.bottleneck.warn` against a capacity learned in the warm-up: an M/M/c model "
        "(`predict.queue_model`: service time from light-load p95s), through an alerting rule "
        f"(`WarningGate`): it fires once the peak P(exceed) over the horizon has been >= {RAISE_P} for "
        f"{FOR_S / 60 + 1:.0f} consecutive minutes and stays firing until it has been < {CLEAR_P} for "
        f"{KEEP_S / 60:.0f} minutes. On top of it, a rule learned online "
        "(`predict.warning_learner.WarningLearner`): a logistic regression refitted every hour on the "
        "predictor's own past minutes, of P(a breach starts within 20 minutes) given what monitoring has "
        "at that minute (the forecast's P(exceed) near and far, peak forecast / capacity, load / capacity "
        "and its trend, p95 / SLO, time since the last breach and its length, recent breach starts, "
        "whether and how long the gate fires, how much the load moves and how many such moves the "
        "headroom is); a minute's label is used only once known, 20 minutes "
        "later. Until 720 labelled minutes (30 positive) and during breaches the gate decides; then a "
        f"warning starts when the gate fires and that probability is >= {START_P} (or >= {OWN_P} alone), "
        f"continues while the gate fires and ends after {RECHECK_MINUTES} minutes once it is under "
        f"{START_P}, after {MAX_MINUTES} minutes without a breach in any case; none starts in the first "
        f"{QUIET_MINUTES} minutes after a breach minute. Minutes with the warning "
        "firing are warning minutes. Warnings "
        "inside a breach episode do not count. A warning episode (consecutive warning minutes) is a hit "
        f"if a breach episode starts 1-{horizon + LEAD_TOLERANCE} minutes after it starts; precision = "
        "hits / warning episodes. A breach episode is detected if a warning episode started "
        f"1-{DETECT_WINDOW} minutes before it; recall = detected / breach episodes; the lead is from the "
        "earliest such warning start; the median is over detected episodes. Goals: precision >= 0.8, "
        "recall >= 0.8, median lead >= 5 minutes. The gate's levels and durations were chosen on Crane "
        "input3/5/7, the learner's levels on Crane input1-8 and 10-14, not on these traces. The engine's "
        "live prediction stage (`predict.stage`) runs this same rule through the same `warn` call, one "
        "learner per service fed every complete minute of load and latency, its model saved on each refit "
        "and restored after a restart (`predict.learn_warnings`, on by default); the gate alone is scored as "
        "`gate_only`. The scoring is the engine's own `predict.track_record.WarningTrackRecord` run over the "
        "replay: what the engine shows for a live service (`warning_track_record` in "
        "`/api/v1/forecasts/{service}`) is this same measure.",
        "",
        "| trace | replicas | breach share | capacity (learned) | precision | recall | median lead "
        "| gate alone: precision | recall | median lead "
        "| fit_capacity: capacity error | precision | recall |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        setup = r.get("warning_setup")
        if not setup:
            continue
        cap, fc, gate = setup["capacity"], setup["fit_capacity"], setup.get("gate_only", {})
        err = fc["capacity"]["capacity_error"]
        lines.append(
            f"| {name} | {setup['replicas']} | {_fmt(setup['breach_minutes_share_scored'])} "
            f"| {cap['reason']} | {_fmt(r['warning_precision'])} | {_fmt(r['warning_recall'])} "
            f"| {_fmt(r['median_lead_minutes'])} | {_fmt(gate.get('warning_precision'))} "
            f"| {_fmt(gate.get('warning_recall'))} | {_fmt(gate.get('median_lead_minutes'))} "
            f"| {'-' if err is None else f'{err:+.1%}'} "
            f"| {_fmt(fc['warning_precision'])} | {_fmt(fc['warning_recall'])} |"
        )
    lines += [
        "",
        "fit_capacity (load vs p95 vs replicas, a single-server curve) is scored the same way for "
        "reference; it is not the headline because that curve does not fit the replay's many-server "
        "queue (its capacity error is shown: learned vs the replay's own SLO capacity; '-' where it "
        "refuses, e.g. a curve that explains the latency no better than its mean, R2 < 0: see "
        "warning_setup.fit_capacity.capacity.reason in --json).",
        "",
        "The alerting rule removes the flicker (one warning per fluctuation of a risk that stays up: "
        "WorldCup-98 went from 777 warning episodes to about a hundred), but a warning it holds from more "
        f"than {DETECT_WINDOW} minutes before a breach no longer starts in that breach's detection window, "
        "so recall can fall where the risk hovers for long before breaching (the learner ends such a warning "
        "once its own probability has dropped, and starts a new one when it rises again). The M/M/c "
        "service time "
        "(100 ms) is learned, not a floor: it is the replay's own (1 / 10 rps); the learned SLO capacity "
        "still errs a few per cent high (more at few replicas), the exact Erlang C against the replay's "
        "approximation of it.",
        "",
    ]
    return lines
