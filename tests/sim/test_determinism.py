"""Same scenario and seed, same bytes; another seed, other numbers. Refused actions change nothing."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from opsmind.sim.actions import ACTIONS
from opsmind.sim.runner import SimRun, default_scenario, run_to_dir
from opsmind.sim.spec import Scenario

FAULTS = [
    {"kind": "bad_deployment", "at_s": 300, "service": "personalization", "duration_s": 600},
    {"kind": "cache_failure", "at_s": 600, "service": "redis", "duration_s": 300},
    {"kind": "node_failure", "at_s": 900, "zone": "b"},
    {"kind": "memory_leak", "at_s": 400, "service": "gateway", "params": {"mb_per_min": 200}},
]
OUTPUTS = ("metrics.csv.gz", "events.ndjson", "ground_truth.json")


def _scenario(seed: int) -> Scenario:
    return default_scenario(name="determinism", seed=seed, duration_s=1800, faults=FAULTS)


def _run(seed: int, out: Path) -> dict[str, bytes]:
    summary = run_to_dir(_scenario(seed), out)
    assert summary["steps"] == 360 and summary["faults"] == len(FAULTS)
    return {name: (out / name).read_bytes() for name in OUTPUTS}


def test_same_seed_gives_identical_files_and_another_seed_other_metrics(tmp_path: Path) -> None:
    first = _run(11, tmp_path / "a")
    second = _run(11, tmp_path / "b")
    for name in OUTPUTS:
        assert first[name] == second[name], f"{name} differs between two runs with the same seed"
    # The output is what it claims to be, and the faults did something.
    lines = gzip.decompress(first["metrics.csv.gz"]).decode().splitlines()
    assert lines[0] == "timestamp,series,value" and len(lines) > 360 * 100
    reasons = {json.loads(line)["reason"] for line in first["events.ndjson"].decode().splitlines()}
    assert {"Deployment", "OOMKilled", "NodeNotReady", "Evicted"} <= reasons
    truth = json.loads(first["ground_truth.json"])
    assert truth["seed"] == 11 and [f["kind"] for f in truth["faults"]] == [
        "bad_deployment",
        "memory_leak",
        "cache_failure",
        "node_failure",
    ]
    other = _run(12, tmp_path / "c")
    assert other["metrics.csv.gz"] != first["metrics.csv.gz"]
    assert gzip.decompress(other["metrics.csv.gz"]) != gzip.decompress(first["metrics.csv.gz"])


def _state(run: SimRun) -> Any:
    fleet = run.fleet
    return copy.deepcopy(
        (
            {
                n: (s.desired, s.config, s.version_history, [p.name for p in s.pods])
                for n, s in fleet.services.items()
            },
            {n: (x.ready, x.cordoned, x.cpu_steal) for n, x in fleet.nodes.items()},
            fleet.zone_weights,
            len(fleet._timers),
            fleet.events,
        )
    )


BAD = [
    ("reboot", {"service": "gateway"}, "unknown action"),
    ("scale", {"service": "nope", "replicas": 3}, "unknown service"),
    ("scale", {"service": "gateway", "replicas": -1}, "replicas"),
    ("scale", {"service": "gateway", "replicas": "3"}, "replicas"),
    ("scale", {"service": "gateway"}, "bad parameters"),
    ("scale", {"service": "gateway", "replicas": 3, "zone": "a"}, "bad parameters"),
    ("restart", {"service": "gateway", "pod": "gateway-999"}, "no pod"),
    ("rollback", {"service": "gateway"}, "no previous version"),
    ("deploy", {"service": "gateway", "version": ""}, "version"),
    ("drain_node", {"node": "node-z-9"}, "unknown node"),
    ("replace_node", {"node": "node-z-9"}, "unknown node"),
    ("failover", {"service": "gateway"}, "failover is for databases and caches"),
    ("flush_cache", {"service": "postgres"}, "not a cache"),
    ("retrain_model", {"service": "gateway"}, "serves no model"),
    ("rollback_model", {"service": "personalization"}, "no previous model"),
    ("set_config", {"service": "auth", "key": "pool_size", "value": "lots"}, "pool_size"),
    ("set_config", {"service": "auth", "key": "", "value": "x"}, "strings"),
    ("set_traffic_weights", {"weights": {"mars": 1}}, "weights"),
    ("set_traffic_weights", {"weights": {"a": 0, "b": 0}}, "not all zero"),
]


@pytest.mark.parametrize(("action", "params", "why"), BAD, ids=[f"{a}-{w}" for a, _, w in BAD])
def test_invalid_actions_are_refused_with_a_reason_and_change_nothing(
    action: str, params: dict[str, Any], why: str
) -> None:
    run = SimRun(default_scenario(duration_s=600))
    for _ in range(12):
        run.step()
    before = _state(run)
    result = run.actuator.apply(action, **params)
    assert not result.accepted
    assert why in result.reason, result.reason
    assert result.action == action and result.params == params
    assert _state(run) == before
    assert result.id not in run.actuator.outcomes
    for _ in range(12):  # nothing happens later either
        assert not [e for e in run.step().events if e.reason.startswith("Action")]


def test_every_action_has_a_refusal_case() -> None:
    assert {a for a, _, _ in BAD} - {"reboot"} == set(ACTIONS)


def test_actions_can_fail_as_a_platform_does_seeded_and_without_effect() -> None:
    def run_with(failure_rate: float) -> tuple[list[str], int]:
        run = SimRun(default_scenario(duration_s=600, seed=5), failure_rate=failure_rate)
        run.step()
        results = [run.actuator.apply("scale", service="auth", replicas=n) for n in (4, 5, 6, 7)]
        assert all(r.accepted for r in results)
        events = [e for _ in range(4) for e in run.step().events]
        done = [e for e in events if e.reason in ("ActionSucceeded", "ActionFailed")]
        assert [e.service for e in done] == ["auth"] * 4
        assert [run.actuator.outcomes[r.id].split(":")[0] for r in results] == [
            "succeeded" if e.reason == "ActionSucceeded" else "failed" for e in done
        ]
        return [e.reason for e in done], run.fleet.services["auth"].desired

    assert run_with(0.0) == (["ActionSucceeded"] * 4, 7)
    assert run_with(1.0) == (["ActionFailed"] * 4, 3)  # nothing changed
    mixed = run_with(0.5)
    assert mixed == run_with(0.5) and set(mixed[0]) == {"ActionSucceeded", "ActionFailed"}
