"""The forecast benchmark on small generated traces: the MASE scale, the rolling-origin loop, the
JSON shape (no warning keys faked) and the markdown file."""

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
    seasonal_naive_scale,
    train_length,
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
    assert not set(WARNING_KEYS) & set(r)


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
    assert {"mase", "mase_seasonal_naive", "coverage_80", "fit_seconds_mean"} <= set(scores)
    assert "| gen |" in out.read_text()


def test_run_without_traces_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no traces"):
        run_predict_benchmark([], tmp_path / "p.md", False, Console(quiet=True), datasets=tmp_path)
