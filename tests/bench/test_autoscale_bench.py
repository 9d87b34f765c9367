"""bench autoscale: the HPA frontier arithmetic, and one small replay end to end (slow)."""

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from opsmind.bench.autoscale import BenchSettings, Outcome, frontier, run_autoscale_benchmark


def _hpa(points: list[tuple[int, float]]) -> list[Outcome]:
    return [Outcome(f"hpa-{i}", v, rh, rh * 0.05, 100) for i, (v, rh) in enumerate(points)]


def test_frontier_interpolates_between_neighbouring_targets() -> None:
    hpa = _hpa([(0, 100.0), (10, 80.0), (50, 60.0)])
    # Violations at 70 replica-hours: halfway between (60, 50) and (80, 10) -> 30.
    v, note = frontier(hpa, 70.0, "replica_hours", "slo_violation_minutes", True, False)
    assert v == pytest.approx(30.0) and note == "interpolated"
    # Replica-hours at 5 violations: halfway between (0, 100) and (10, 80) -> 90.
    rh, _ = frontier(hpa, 5.0, "slo_violation_minutes", "replica_hours", True, False)
    assert rh == pytest.approx(90.0)


def test_frontier_clamps_only_in_the_direction_that_favours_the_hpa() -> None:
    hpa = _hpa([(0, 100.0), (50, 60.0)])
    low, note = frontier(hpa, 40.0, "replica_hours", "slo_violation_minutes", True, False)
    assert low == 50 and "clamped" in note
    high, note = frontier(hpa, 150.0, "replica_hours", "slo_violation_minutes", True, False)
    assert high is None and note == "outside the HPA range"


def _write_trace(path: Path, days: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = 1_600_000_000 + 60 * np.arange(days * 1440)
    daily = 1.0 + 0.8 * np.sin(2 * np.pi * np.arange(t.size) / 1440)
    y = rng.poisson(200 * daily)
    path.write_text("timestamp,value\n" + "\n".join(f"{a},{b}" for a, b in zip(t, y, strict=True)) + "\n")


@pytest.mark.slow
def test_small_replay_prints_the_issue_keys(tmp_path: Path) -> None:
    trace = tmp_path / "wave.csv"
    _write_trace(trace, days=3, seed=7)
    out = tmp_path / "autoscale.md"
    settings = BenchSettings(warmup_days=2.0, peak_pods=10)
    report = run_autoscale_benchmark([trace], tmp_path, out, False, Console(quiet=True), settings)
    r = report["traces"]["wave"]
    assert [h["target"] for h in r["hpa"]] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    for o in [r["predictive"], *r["hpa"]]:
        assert {"slo_violation_minutes", "replica_hours", "cost"} <= o.keys()
        assert o["replica_hours"] > 0 and o["cost"] > 0
    assert "hpa_violation_minutes_at_equal_replica_hours" in r
    assert "hpa_replica_hours_at_equal_violations" in r
    # Lower targets buy more replica-hours: the frontier is monotone on a smooth trace.
    rh = [h["replica_hours"] for h in r["hpa"]]
    assert rh == sorted(rh, reverse=True)
    assert "| wave |" in out.read_text()
    json.dumps(report)


def test_missing_default_traces_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no traces"):
        run_autoscale_benchmark([], tmp_path, tmp_path / "x.md", False, Console(quiet=True))


def test_predictive_policy_bounds_its_capacity_by_a_saturated_fleet() -> None:
    # A capacity estimate that is too high must come down while every pod is saturated (no pod then
    # reports a CPU the estimate could learn from): one pod serves at most the load it is offered.
    from opsmind.bench.autoscale import PredictivePolicy
    from opsmind.sim.replay import PodView

    settings = BenchSettings()
    policy = PredictivePolicy(settings.predictive, settings.replay, settings.level)
    policy.capacity = 50.0
    pods = [PodView(f"p{i}", 0.0, True, 0.0, 1.0) for i in range(8)]
    first = policy.decide(60.0, 280.0, pods, 8)
    assert policy.capacity == pytest.approx(280.0 / 8)
    assert first > 8
    # Not saturated: the usual estimate (offered load over the CPU in use), no bound.
    calm = [PodView(f"p{i}", 0.0, True, 0.0, 0.5) for i in range(40)]
    policy.decide(75.0, 200.0, calm, 40)
    assert policy.capacity == pytest.approx(0.9 * 35.0 + 0.1 * 200.0 / (40 * 0.5))


def test_a_replay_cut_to_nothing_and_infinite_options_fail_clearly(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from opsmind.cli.main import app

    trace = tmp_path / "wave.csv"
    _write_trace(trace, days=3, seed=7)
    with pytest.raises(ValueError, match="0 minutes is too short"):
        run_autoscale_benchmark(
            [trace], tmp_path, tmp_path / "a.md", False, Console(quiet=True), BenchSettings(days=0.0001)
        )
    for option in ("--days", "--startup-s"):
        res = CliRunner().invoke(
            app, ["bench", "autoscale", "--trace", str(trace), option, "inf", "--out", str(tmp_path / "a.md")]
        )
        assert res.exit_code == 2 and f"invalid {option} inf" in res.output
