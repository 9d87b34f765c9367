"""The chaos benchmark: its scenarios, its loop and its scoring (the run is `opsmind bench chaos`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsmind.bench.chaos import default_scenarios, harmful, score, select
from opsmind.bench.chaos_loop import Action, Trace, run_scenario
from opsmind.cli.main import app
from opsmind.heal.classify import FaultClassifier
from opsmind.sim.runner import scenario_from_data
from opsmind.sim.truth import TruthRecord


def _trace(**kw: object) -> Trace:
    tr = Trace("s", "opsmind")
    tr.times = [float(t) for t in range(0, 1000, 5)]
    tr.slo_ok = [True] * len(tr.times)
    tr.slo_untouched = [True] * len(tr.times)
    tr.end = 1000.0
    for k, v in kw.items():
        setattr(tr, k, v)
    return tr


def test_score_counts_detection_resolution_and_censors_unrecovered_mttr() -> None:
    fixed = _trace(
        incidents=[(110.0, 300.0)],
        actions=[Action(140.0, "rollback", {"service": "a"}, "r1")],
        truth=[TruthRecord("bad_deployment", "a", "a", 100.0, end=150.0, recovered_at=160.0)],
        expired=[False],
    )
    missed = _trace(
        incidents=[],
        truth=[TruthRecord("memory_leak", "b", "b", 200.0)],
        expired=[False],
    )
    s = score([fixed, missed])
    assert s["faults"] == 2
    assert s["detection_rate"] == 0.5
    assert s["auto_resolution_rate"] == 0.5
    assert s["mttr_median_s"] == pytest.approx((60.0 + 800.0) / 2)  # the unrecovered one: 1000 - 200


def test_a_fault_that_expired_by_itself_is_not_an_auto_resolution() -> None:
    tr = _trace(
        incidents=[(110.0, None)],
        actions=[Action(140.0, "restart", {"service": "a"})],
        truth=[TruthRecord("cache_failure", "a", "a", 100.0, end=400.0, recovered_at=410.0)],
        expired=[True],
    )
    assert score([tr])["auto_resolution_rate"] == 0.0


def test_harm_is_judged_against_the_scenario_left_untouched() -> None:
    tr = _trace()
    # The SLO breaks from t=300 in the run and in the untouched run alike: the fault's doing, not harm.
    tr.slo_ok = [t < 300 for t in tr.times]
    tr.slo_untouched = list(tr.slo_ok)
    assert not harmful(tr, 290.0)
    # Only the run breaks after the action: harm.
    tr.slo_untouched = [True] * len(tr.times)
    assert harmful(tr, 290.0)
    tr.actions = [Action(290.0, "restart", {"service": "a"}, "r1")]
    tr.remediations = {"r1": "rolled_back"}
    assert score([tr])["harmful_actions"] == 0  # rolled back: undone, not counted as harm
    assert score([tr])["rolled_back"] == 1


def test_default_scenarios_cover_every_kind_two_faults_and_the_peak() -> None:
    scenarios = default_scenarios(1)
    single = [s for s in scenarios if s.name.startswith("chaos/")]
    assert len(single) == 13
    assert {s.faults[0].kind for s in single} == {
        "crash_loop", "memory_leak", "cpu_saturation", "latency_injection", "dependency_outage",
        "bad_deployment", "config_error", "pool_exhaustion", "disk_full", "traffic_spike",
        "cache_failure", "node_failure", "model_drift",
    }  # fmt: skip
    two = [s for s in scenarios if s.name.startswith("chaos-two/")]
    assert len(two) == 1 and len(two[0].faults) == 2
    peak = [s for s in scenarios if s.name.startswith("chaos-peak/")]
    assert len(peak) == 1 and peak[0].load.peak_rps > single[0].load.peak_rps
    for s in single:
        if s.faults[0].kind == "latency_injection":
            assert s.services[s.faults[0].service or ""].kind != "worker"


def _config_error_scenario() -> object:
    return scenario_from_data(
        {
            "fleet": "default",
            "name": "t/config_error",
            "seed": 3,
            "duration_s": 1500,
            "faults": [{"kind": "config_error", "at_s": 1000, "service": "personalization"}],
        },
        "test",
    )


def test_the_baseline_restarts_the_most_anomalous_service() -> None:
    tr = run_scenario(_config_error_scenario(), "restart_most_anomalous")  # type: ignore[arg-type]
    assert tr.incidents and tr.actions
    assert all(a.action == "restart" for a in tr.actions)
    assert len(tr.slo_untouched) == len(tr.slo_ok) == len(tr.times)


def test_untrained_opsmind_never_acts_on_a_guess_it_cannot_make() -> None:
    # With no trained classifier every incident is `unknown`; its runbook is high risk, so the chaos
    # guards hold it for a person: an escalation, and nothing is sent to the fleet.
    tr = run_scenario(_config_error_scenario(), "opsmind", FaultClassifier())  # type: ignore[arg-type]
    assert tr.incidents
    assert tr.actions == []
    assert tr.escalations >= 1


def test_cli_refuses_a_scenario_file_without_faults(tmp_path: Path) -> None:
    f = tmp_path / "calm.yaml"
    f.write_text("fleet: default\nname: calm\nduration_s: 600\n")
    result = CliRunner().invoke(
        app, ["bench", "chaos", "--scenario", str(f), "--out", str(tmp_path / "c.md")]
    )
    assert result.exit_code == 2
    assert "needs at least one fault" in result.output


def test_cli_only_keeps_matching_scenarios_and_names_a_filter_that_keeps_none(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "chaos", "--only", "nothing-like-this", "--out", str(tmp_path / "c.md")]
    )
    assert result.exit_code == 2
    assert "no scenario's name contains any of ['nothing-like-this']" in result.output
    assert not (tmp_path / "c.md").exists()


def test_select_keeps_the_scenarios_named_like_one_of_the_parts() -> None:
    scenarios = default_scenarios(2)
    assert select(scenarios) == scenarios
    two = select(scenarios, ["chaos-two/"])
    assert len(two) == 2 and all(len(s.faults) == 2 for s in two)
    one_seed = select(scenarios, ["seed9001"])
    assert len(one_seed) == 15 and all(s.name.endswith("seed9001") for s in one_seed)
    assert select(scenarios, ["nothing-like-this"]) == []
