"""The chaos benchmark: its scenarios, its loop and its scoring (the run is `opsmind bench chaos`)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import networkx as nx
import numpy as np
import pytest
from typer.testing import CliRunner

from opsmind.bench.chaos import default_scenarios, harmful, score, select
from opsmind.bench.chaos_loop import STUCK_S, Action, Trace, _held, beside, run_scenario, still_broken
from opsmind.cli.main import app
from opsmind.heal.classify import FaultClassifier
from opsmind.heal.state import RemediationState
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


def test_still_broken_names_what_differs_now_but_not_what_remedies_set() -> None:
    scenario = _config_error_scenario()
    times = 1000.0 + 5.0 * np.arange(400)
    opened = times[250]
    rng = np.random.default_rng(0)

    def noise(level: float) -> np.ndarray:
        return level + rng.normal(0.0, 0.01 * level, len(times))

    after = times >= opened
    cols = {
        "auth_error_ratio": noise(0.01) + np.where(after, 0.3, 0.0),  # still failing
        "redis_latency_seconds-0.99": noise(0.002) + np.where(after & (times < opened + 300), 0.5, 0.0),
        "feature-store_replicas_desired": np.where(after, 6.0, 3.0),  # scaled out by a remedy
        "feature-store_cost_per_hour_dollars": np.where(after, 2.0, 1.0),
        "gateway_cpu_utilisation": noise(0.4),
    }
    now = float(times[-1])
    assert still_broken(scenario, times, cols, opened, now) == ["auth"]  # redis recovered, the rest is state
    assert still_broken(scenario, times, cols, opened, now, skip={"auth"}) == []


def _healer_running(*rems: Any) -> Any:
    log = SimpleNamespace(in_states=lambda states: list(rems))
    return SimpleNamespace(executor=SimpleNamespace(log=log))


def _rem(state: RemediationState, service: str, verifying_since: float) -> Any:
    history = [SimpleNamespace(target=RemediationState.EXECUTING, at=0.0)]
    if state is RemediationState.VERIFYING:
        history.append(SimpleNamespace(target=state, at=verifying_since))
    return SimpleNamespace(finished=False, state=state, service=service, history=history, at=verifying_since)


def test_a_remediation_verifying_too_long_lets_the_incident_look_elsewhere() -> None:
    assert _held(_healer_running(), 100.0) == frozenset()  # nothing running
    verifying = _rem(RemediationState.VERIFYING, "gateway", 100.0)
    assert _held(_healer_running(verifying), 100.0 + STUCK_S - 5) is None  # give it time
    assert _held(_healer_running(verifying), 100.0 + STUCK_S) == {"gateway"}
    acting = _rem(RemediationState.EXECUTING, "auth", 0.0)
    assert _held(_healer_running(verifying, acting), 1000.0) is None  # one still acting: wait


def test_select_keeps_the_scenarios_named_like_one_of_the_parts() -> None:
    scenarios = default_scenarios(2)
    assert select(scenarios) == scenarios
    two = select(scenarios, ["chaos-two/"])
    assert len(two) == 2 and all(len(s.faults) == 2 for s in two)
    one_seed = select(scenarios, ["seed9001"])
    assert len(one_seed) == 15 and all(s.name.endswith("seed9001") for s in one_seed)
    assert select(scenarios, ["nothing-like-this"]) == []


def test_beside_leaves_out_what_a_held_service_may_explain() -> None:
    g = nx.DiGraph([("gw", "api"), ("api", "db"), ("gw", "web"), ("web", "cache"), ("db", "disk")])
    # api's fix verifies: gw calls it (its errors may be api's); db, disk, web and cache may have their own.
    assert beside(["gw", "db", "disk", "web", "cache", "api"], {"api"}, g) == ["db", "disk", "web", "cache"]
    assert beside(["gw", "web", "api"], {"db"}, g) == ["web"]  # api calls db, gw calls it through api
    assert beside(["x", "web"], set(), g) == ["x", "web"]  # nothing held; a service not in the graph stays
