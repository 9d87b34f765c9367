from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from opsmind.bench.detect import quality, run_detect_benchmark, run_ensemble, synthetic


def test_synthetic_is_seeded_and_labelled() -> None:
    a, b = synthetic(50, 400, seed=1), synthetic(50, 400, seed=1)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.values.shape == (50, 400) and len(a.kinds) == 50
    assert ((a.starts >= 0) == np.array([k != "" for k in a.kinds])).all()


def test_ensemble_finds_most_injections_on_synthetic_data() -> None:
    data = synthetic(200, 600, seed=101)
    prob, spent = run_ensemble(data)
    q = quality(data, prob, 0.99999)
    assert spent > 0
    assert q["recall_spike"] > 0.9 and q["recall_shift"] > 0.8
    assert q["false_alarm_rate"] < 0.005


def test_run_prints_one_json_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "detect.md"
    run_detect_benchmark(
        series=40, points=120, out=out, json_out=True, console=Console(stderr=True), river_series=2
    )
    result = json.loads(capsys.readouterr().out)
    for key in ("points_per_s", "river_hst_points_per_s", "bytes_per_series"):
        assert result[key] > 0
    assert "river HalfSpaceTrees" in out.read_text()
