"""docs/SCENARIOS.md covers what the code declares: every key, fault kind and parameter, action, metric
and event reason - so a scenario can be written from the document alone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from opsmind.sim import spec
from opsmind.sim.actions import ACTIONS, DELAYS_S
from opsmind.sim.runner import SimRun, default_scenario

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "SCENARIOS.md").read_text(encoding="utf-8")
SIM = ROOT / "src" / "opsmind" / "sim"


@pytest.mark.parametrize(
    "model",
    [
        spec.Scenario,
        spec.ServiceSpec,
        spec.NodeSpec,
        spec.LoadSpec,
        spec.FaultSpec,
        spec.InstanceSpec,
        spec.ModelSpec,
        spec.CacheSpec,
    ],
)
def test_every_key_is_documented(model: type[BaseModel]) -> None:
    prefix = {spec.InstanceSpec: "instance.", spec.ModelSpec: "model.", spec.CacheSpec: "cache."}.get(
        model, ""
    )
    for name in model.model_fields:
        assert f"| `{prefix}{name}` |" in DOC, f"{model.__name__}.{name} has no row in docs/SCENARIOS.md"


def test_every_fault_kind_parameter_and_remedy_is_documented() -> None:
    for kind, params in spec.FAULT_PARAMS.items():
        section = DOC.split(f"### `{kind}`", 1)[1].split("\n### ", 1)[0]
        for name in params:
            assert f"`{name}`" in section, f"{kind}: parameter {name} is not documented"
        for remedy in spec.FAULT_CATALOGUE[kind].remedies:
            assert f"`{remedy}`" in section, f"{kind}: remedy {remedy} is not documented"
        for reason in spec.FAULT_CATALOGUE[kind].events:
            assert f"`{reason}`" in section, f"{kind}: event {reason} is not documented"


def test_every_action_with_its_delay_is_documented() -> None:
    for action in ACTIONS:
        row = next((line for line in DOC.splitlines() if line.startswith(f"| `{action}` |")), None)
        assert row is not None, f"action {action} has no row"
        assert f"| {DELAYS_S[action]} s" in row, f"{action}: delay {DELAYS_S[action]} s not in {row}"


def test_every_metric_and_event_reason_is_documented() -> None:
    faults = [
        {"kind": "model_drift", "at_s": 5, "service": "personalization"},
        {"kind": "disk_full", "at_s": 5, "service": "postgres"},
    ]
    metrics = {s.name for s, _ in SimRun(default_scenario(faults=faults)).step().samples}
    assert {"queue_depth", "disk_used_ratio", "model_accuracy", "pod_memory_bytes"} <= metrics
    for name in metrics:
        assert f"| `{name}` |" in DOC, f"metric {name} has no row"
    source = "\n".join(p.read_text(encoding="utf-8") for p in SIM.glob("*.py"))
    reasons = set(re.findall(r"emit\(\s*[^,()]+,\s*\"([A-Za-z]+)\"", source))
    reasons |= {"ActionSucceeded", "ActionFailed"}
    assert {"BackOff", "OOMKilled", "Evicted", "NodeNotReady", "ConfigChanged"} <= reasons
    for reason in reasons:
        assert f"`{reason}`" in DOC.split("### Events", 1)[1], f"event {reason} has no row"
