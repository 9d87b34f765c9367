"""The forecast benchmark on small generated traces: the MASE scale, the rolling-origin loop, the
JSON shape and the markdown file; the bottleneck-warning scorer on hand-made sequences and the warning
replay end to end on a generated daily ramp."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from opsmind.bench.predict import (
    WARNING_KEYS,
    evaluate_trace,
    run_predict_benchmark,
    score_warnings,
    seasonal_naive_scale,
    train_length,
    warning_scores,
)
from opsmind.bench.traces import Trace
from opsmind.predict.forecast import LoadForecaster

P = 48


def trace(n: int = 12 * P, seed: int = 3) -> Trace:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = 100 + 40 * np.sin(2 * np.pi * t / P) + np.cumsum(rng.normal(0, 1.5, n)) + rng.normal(0, 2, n)
    y[200:205] = np.nan
    return Trace("gen", 60 * t, np.maximum(y, 0), missing=5)


def small() -> LoadForecaster:
    return LoadForecaster(candidates=(P,), max_history=10 * P, refit_every=2 * P, ets_window=4 * P)


def test_seasonal_naive_scale() -> None:
    y = np.array([1.0, 2.0, 4.0, np.nan, 3.0])
    assert seasonal_naive_scale(y, season=2) == pytest.approx((3 + 1) / 2)  # pairs with a NaN are skipped
    assert seasonal_naive_scale(y[:2], season=2) == pytest.approx(1.0)  # lag 1 when too short
    assert np.isnan(seasonal_naive_scale(np.array([5.0]), season=2))


def test_train_length() -> None:
    assert train_length(100) == 50
    assert train_length(10 * 1440 * 10) == 14 * 1440


def test_evaluate_trace_beats_seasonal_naive_on_a_wandering_seasonal_series() -> None:
    tr = trace()
    r = evaluate_trace(tr, horizon=5, cadence=7, season=P, factory=small)
    train = train_length(tr.y.size)
    assert r["train_points"] == train
    assert r["origins"] == len(range(train, tr.y.size - 5 + 1, 7))
    assert 0 < r["scored_points"] <= r["origins"] * 5
    assert r["mase"] is not None and r["mase_seasonal_naive"] is not None
    assert r["mase"] < r["mase_seasonal_naive"]
    assert r["mase"] == pytest.approx(r["mae"] / r["scale_q"], rel=1e-3)
    assert 0 <= r["coverage_80"] <= r["coverage_95"] <= 1
    assert r["fits"] >= 2 and sum(r["models"].values()) == r["origins"]
    assert set(WARNING_KEYS) <= set(r) and "warning_setup" in r


def test_only_points_after_training_are_scored() -> None:
    tr = trace()
    y = tr.y.copy()
    y[train_length(y.size) :] = np.nan  # nothing observed after training: nothing to score
    r = evaluate_trace(Trace("blank", tr.t, y), horizon=5, cadence=7, season=P, factory=small)
    assert r["scored_points"] == 0 and r["mase"] is None


def test_run_writes_json_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tr = trace(n=6 * 1440, seed=5)
    path = tmp_path / "gen.csv"
    path.write_text("timestamp,value\n" + "\n".join(f"{int(a)},{b}" for a, b in zip(tr.t, tr.y, strict=True)))
    out = tmp_path / "predict.md"
    result = run_predict_benchmark([path], out=out, json_out=True, console=Console(quiet=True), horizon=15)
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(result))
    scores = printed["traces"]["gen"]
    assert {"mase", "mase_seasonal_naive", "coverage_80", "fit_seconds_mean", *WARNING_KEYS} <= set(scores)
    text = out.read_text()
    assert "| gen |" in text and "## Bottleneck warnings" in text


def test_run_without_traces_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no traces"):
        run_predict_benchmark([], tmp_path / "p.md", False, Console(quiet=True), datasets=tmp_path)


def mask(n: int, *spans: tuple[int, int]) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for s, e in spans:
        m[s:e] = True
    return m


def test_score_warnings_by_hand() -> None:
    n = 130
    # Breaches 40-44 and 47-49 (a gap of 2 < 5: one episode from 40), 80-84, 120-122.
    breach = mask(n, (40, 45), (47, 50), (80, 85), (120, 123))
    # Warnings: 10 (before start=20: ignored), 30-33 (hit: breach at 40 is 10 later), 45 (inside the
    # merged breach episode: ignored), 55-56 (breach 80 is 25 later, beyond 15 + 5: false), 70 (hit:
    # breach 80 is 10 later), 125 (its window runs past the end: not scored).
    warning = mask(n, (10, 11), (30, 34), (45, 46), (55, 57), (70, 71), (125, 126))
    r = score_warnings(warning, breach, start=20, window=15, tolerance=5, detect=30, merge_gap=5)
    assert r["warning_episodes"] == 3 and r["warning_hits"] == 2
    assert r["warning_precision"] == pytest.approx(2 / 3, abs=1e-4)
    # Breach episodes from 20 + 15 on: 40 (warned at 30: lead 10), 80 (earliest warning 1-30 min before
    # is 55: lead 25), 120 (nearest warning start 70: 50 min, missed).
    assert r["breach_episodes"] == 3 and r["breach_detected"] == 2
    assert r["warning_recall"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["median_lead_minutes"] == pytest.approx(17.5)


def test_score_warnings_empty_and_mismatch() -> None:
    r = score_warnings(np.zeros(50, dtype=bool), np.zeros(50, dtype=bool))
    assert r["warning_precision"] is None and r["warning_recall"] is None and r["median_lead_minutes"] is None
    with pytest.raises(ValueError, match="same length"):
        score_warnings(np.zeros(3, dtype=bool), np.zeros(4, dtype=bool))


def ramp_trace(days: int = 8, seed: int = 1) -> Trace:
    """A generated daily cycle (period P) growing a few percent a day: the busiest minutes of the later
    days breach at a fixed replica count, after a rise the forecaster can see coming."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * P)
    phase = (t % P) / P
    daily = 100 + 100 * (0.5 - 0.5 * np.cos(2 * np.pi * phase))
    y = daily * (1 + 0.04 * t / P) + rng.normal(0, 1.0, t.size)  # and a few % more each day
    return Trace("ramp", 60 * t, y)


def test_warning_scores_end_to_end_on_a_daily_ramp() -> None:
    tr = ramp_trace()
    r = warning_scores(tr, horizon=15, factory=small)
    setup = r["warning_setup"]
    assert setup["replicas"] >= 1 and 0 < setup["breach_minutes_share_scored"] < 0.5
    assert setup["capacity"]["ok"] and abs(setup["capacity"]["capacity_error"]) < 0.1
    assert r["breach_episodes"] >= 3  # one a day after the warm-up (half the trace)
    assert r["warning_episodes"] >= 1
    assert r["warning_recall"] is not None and r["warning_recall"] >= 0.75
    assert r["warning_precision"] is not None and r["warning_precision"] >= 0.5
    assert r["median_lead_minutes"] is not None and r["median_lead_minutes"] >= 3
    assert set(setup["fit_capacity"]) >= set(WARNING_KEYS)
    # The gate alone is scored beside the learned rule; on a few days the learner is still warming up,
    # so the gate decides and both agree.
    gate = setup["gate_only"]
    assert set(gate) >= set(WARNING_KEYS)
    assert gate["warning_episodes"] == r["warning_episodes"] and gate["warning_recall"] == r["warning_recall"]


def test_run_on_a_trace_too_short_for_the_horizon_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("timestamp,value\n" + "".join(f"{60 * i},{i}\n" for i in range(100)))
    with pytest.raises(ValueError, match="short.csv: 100 minutes is too short for a 60-minute horizon"):
        run_predict_benchmark([path], tmp_path / "p.md", False, Console(quiet=True), horizon=60)
    assert not (tmp_path / "p.md").exists()
