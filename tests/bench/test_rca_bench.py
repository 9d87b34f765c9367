"""The RCA benchmark's cases and scoring, on a single small case (the full run is `opsmind bench rca`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from opsmind.bench import rca as bench
from opsmind.bench.rca_cases import call_graph, make_case, targets, topology
from opsmind.sim.runner import scenario_from_data


def test_a_case_holds_metrics_a_graph_and_a_detected_incident_time() -> None:
    case = make_case("default", "crash_loop", 1)
    assert case is not None
    assert case.root in case.frame.service_names
    assert case.fault_time is not None and case.fault_time >= case.fault_start
    assert "gateway" in case.graph and case.graph.has_edge("gateway", "auth")
    assert any(c.endswith("_pod_restarts_total") for c in case.frame.columns)  # pods aggregated per service
    assert any(c.startswith("gateway_latency_seconds-0.") for c in case.frame.columns)
    assert bench.position(case, "opsmind") is not None


def test_topologies_differ_and_targets_fit_the_kind() -> None:
    fanout = scenario_from_data({**topology("fanout"), "name": "x"}, "x")
    default = scenario_from_data({**topology("default"), "name": "y"}, "y")
    assert call_graph(fanout).has_edge("gateway", "feature-store")
    assert not call_graph(default).has_edge("gateway", "feature-store")
    assert targets("disk_full", default) == ["postgres"]
    assert targets("traffic_spike", default) == ["gateway"]
    with pytest.raises(ValueError, match="unknown topology"):
        topology("mesh")


def test_accuracy_follows_rcaeval_definitions() -> None:
    acc = bench.accuracy([1, 2, None, 6])
    assert acc["ac1"] == 0.25 and acc["ac3"] == 0.5
    assert acc["avg5"] == pytest.approx((0.25 + 0.5 + 0.5 + 0.5 + 0.5) / 5)


def test_run_prints_the_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench, "KINDS", ("crash_loop",))
    monkeypatch.setattr(bench, "TOPOLOGIES", ("default",))
    out = tmp_path / "rca.md"
    bench.run_rca_benchmark(seeds=1, out=out, json_out=True, console=Console(stderr=True), workers=1)
    result = json.loads(capsys.readouterr().out)
    for key in ("ac1", "ac3", "avg5"):
        assert 0.0 <= result[key] <= 1.0
        assert key in result["baselines"]["nsigma"]
    assert result["cases"] == 1
    learned = result["learned_graph"]
    assert 0.0 <= learned["precision"] <= 1.0 and 0.0 <= learned["recall"] <= 1.0
    assert "opsmind_learned_graph" in result["baselines"]
    assert "Learned graph" in out.read_text()
    assert "NSigma" in out.read_text() or "nsigma" in out.read_text()
