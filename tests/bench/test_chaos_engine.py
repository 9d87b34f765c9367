"""The chaos benchmark's engine loop: a scenario runs through the real engine (ingest, detect, incidents,
the heal stage) on a simulated clock, and the engine heals the simulated fleet."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsmind.bench.chaos import default_scenarios, score, select
from opsmind.bench.chaos_engine import engine_settings, run_engine_scenarios
from opsmind.bench.chaos_loop import OBSERVE_S, chaos_guards
from opsmind.bench.heal_data import TRAIN_SEEDS, make_case
from opsmind.cli.main import app
from opsmind.engine.healing import guard_settings
from opsmind.heal.classify import FaultClassifier


def test_the_engine_runs_with_the_benchmarks_guards(tmp_path: Path) -> None:
    settings = engine_settings(tmp_path / "e.db", None)
    assert guard_settings(settings.heal) == chaos_guards().settings
    assert settings.heal.enabled and settings.heal.actuator == "simulator"


@pytest.mark.slow
def test_a_crash_loop_is_detected_and_remediated_by_the_engine(tmp_path: Path) -> None:
    # A classifier trained on two kinds of one training seed (the benchmark trains on every kind).
    made = [make_case(kind, TRAIN_SEEDS[0], OBSERVE_S) for kind in ("crash_loop", "bad_deployment")]
    cases = [c for c in made if c is not None and c.observation is not None]
    clf = FaultClassifier().fit([c.observation for c in cases if c.observation], [c.kind for c in cases])
    clf_path = tmp_path / "clf.pkl"
    clf.save(clf_path)
    (scenario,) = select(default_scenarios(1), ["chaos/crash_loop/"])
    fault = scenario.faults[0]
    short = scenario.model_copy(update={"duration_s": fault.at_s + 400.0})  # long enough to verify

    (trace,) = run_engine_scenarios([short], clf_path)

    assert trace.incidents and trace.times[-1] == trace.end
    s = score([trace])
    assert s["detection_rate"] == 1.0 and s["auto_resolution_rate"] == 1.0, (s, trace.decisions)
    assert s["harmful_actions"] == 0
    sent = [(a.action, a.params.get("service")) for a in trace.actions if not a.rollback]
    assert sent and sent[0][1] == fault.service, (sent, trace.decisions)
    assert "succeeded" in trace.remediations.values(), trace.notes
    assert trace.decisions  # the heal stage's audited decisions, read back


def test_cli_refuses_an_unknown_loop(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["bench", "chaos", "--loop", "nope", "--only", "x", "--out", str(tmp_path / "c.md")]
    )
    assert result.exit_code == 2
    assert "unknown loop 'nope'" in result.output
