from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from opsmind.bench.nab_data import load_corpus
from opsmind.bench.nab_scorer import probation_rows
from opsmind.bench.nab_synth import SOURCES, build_corpus, inject, resample


def _traces(root: Path) -> Path:
    """Small generated stand-ins for the production traces, one per source, in their file formats."""
    rng = np.random.default_rng(3)
    t = 1_600_000_000 + 60 * np.arange(12 * 24 * 60)  # 12 days per minute
    daily = 50 + 30 * np.sin(2 * np.pi * (t % 86_400) / 86_400)
    for source in SOURCES:
        path = root / source.glob.replace("*", "0")
        path.parent.mkdir(parents=True, exist_ok=True)
        values = np.maximum(daily + rng.normal(0, 3, len(t)), 0)
        lines = ["ts,value"] + [f"{a},{b:.3f}" for a, b in zip(t, values, strict=True)]
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    return root


def test_corpus_is_in_nab_layout_seeded_and_labelled_after_probation(tmp_path: Path) -> None:
    traces = _traces(tmp_path / "traces")
    counts = build_corpus(traces, tmp_path / "a", seed=1)
    build_corpus(traces, tmp_path / "b", seed=1)
    corpus = load_corpus(tmp_path / "a")
    assert counts["files"] == len(corpus.files) >= 3
    assert counts["anomalies"] == sum(len(f.windows) for f in corpus.files)
    for f in corpus.files:
        again = (tmp_path / "b" / "data" / f.name).read_text()
        assert (tmp_path / "a" / "data" / f.name).read_text() == again  # seeded
        for left, right in f.windows:
            centre = (left + right) // 2
            assert centre >= probation_rows(len(f)), "anomalies are injected after the probation"
    kinds = json.loads((tmp_path / "a" / "labels" / "kinds.json").read_text())
    assert sum(len(k) for k in kinds.values()) == counts["anomalies"]


def test_injected_anomalies_change_the_series_where_labelled() -> None:
    rng = np.random.default_rng(5)
    base = 10 + rng.normal(0, 1, 4000)
    changed = 0
    for seed in range(20):
        x, anomalies = inject(base, np.random.default_rng(seed))
        for row, kind in anomalies:
            assert row >= 0.15 * len(base)
            assert not np.array_equal(x[row : row + 3], base[row : row + 3]), kind
            changed += 1
        first = min((r for r, _ in anomalies), default=len(base))
        np.testing.assert_array_equal(x[:first], base[:first])  # nothing before the first anomaly moves
    assert changed > 10


def test_resample_averages_buckets_and_fills_gaps() -> None:
    t = np.array([0.0, 10.0, 20.0, 200.0])
    out = resample(t, np.array([1.0, 3.0, 5.0, 7.0]), 60.0)
    np.testing.assert_allclose(out, [3.0, 3.0, 3.0, 7.0])


def test_missing_traces_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no trace files"):
        build_corpus(tmp_path, tmp_path / "out", seed=1)


def test_cli_writes_the_corpus_and_refuses_a_folder_in_use(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from opsmind.cli.main import app

    traces = _traces(tmp_path / "traces")
    runner = CliRunner()
    ok = runner.invoke(app, ["bench", "nab-corpus", "--traces", str(traces), "--out", str(tmp_path / "c")])
    assert ok.exit_code == 0, ok.output
    assert "labelled anomalies" in ok.output
    again = runner.invoke(app, ["bench", "nab-corpus", "--traces", str(traces), "--out", str(tmp_path / "c")])
    assert again.exit_code == 2 and "not empty" in again.output
    missing = runner.invoke(
        app, ["bench", "nab-corpus", "--traces", str(tmp_path), "--out", str(tmp_path / "d")]
    )
    assert missing.exit_code == 2 and "no trace files" in missing.output


def test_cli_refuses_a_file_as_out_a_negative_seed_and_a_stray_timestamp(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from opsmind.cli.main import app

    traces = _traces(tmp_path / "traces")
    runner = CliRunner()
    a_file = tmp_path / "corpus.txt"
    a_file.write_text("x")
    res = runner.invoke(app, ["bench", "nab-corpus", "--traces", str(traces), "--out", str(a_file)])
    assert res.exit_code == 2 and "not a folder" in res.output
    res = runner.invoke(
        app, ["bench", "nab-corpus", "--traces", str(traces), "--out", str(tmp_path / "c"), "--seed", "-1"]
    )
    assert res.exit_code == 2 and "--seed" in res.output
    crane = traces / SOURCES[0].glob.replace("*", "0")
    crane.write_bytes(gzip.compress(b"ts,value\n0,1\n1000000000000000,2\n"))  # would need GBs of buckets
    res = runner.invoke(app, ["bench", "nab-corpus", "--traces", str(traces), "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "a stray or mis-scaled timestamp" in " ".join(res.output.split())
