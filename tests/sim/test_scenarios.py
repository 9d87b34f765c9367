"""The scenario library: every file loads, runs past its first fault, and every fault kind has one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opsmind.sim.faults import FAULT_CATALOGUE
from opsmind.sim.runner import SimRun, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
FILES = sorted(SCENARIOS.glob("*.yaml"))


def test_the_library_covers_every_fault_kind_one_file_each() -> None:
    names = {f.stem for f in FILES}
    assert set(FAULT_CATALOGUE) <= names, f"missing: {set(FAULT_CATALOGUE) - names}"
    for kind in FAULT_CATALOGUE:
        sc = load_scenario(SCENARIOS / f"{kind}.yaml")
        assert [f.kind for f in sc.faults] == [kind]
        assert 3600 <= sc.duration_s <= 3 * 3600 and 1200 <= sc.faults[0].at_s <= 1800
    assert {"day_with_faults", "nasa_trace"} <= names


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_scenario_loads_and_runs_with_its_faults(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "a scenario starts with a comment saying what happens and the remedy"
    assert "fleet: default" in text and yaml.safe_load(text)["name"] == path.stem
    sc = load_scenario(path)
    if sc.load.trace is not None:
        trace = path.parent / sc.load.trace
        if not trace.is_file():
            pytest.skip(f"its trace {trace} is not here (the shared datasets are not part of the repository)")
    run = SimRun(sc, path.parent)
    # Ten quiet minutes, then every fault of the file at once (whenever it is scheduled) for five more.
    for _ in range(int(600 / sc.resolution_s)):
        assert run.step().samples
    for fault in sc.faults:
        run.inject(fault)
    for _ in range(int(300 / sc.resolution_s)):
        assert run.step().samples
    assert [r.kind for r in run.truth.records] == [f.kind for f in sc.faults]
