"""SimulatorScaler drives the real simulator's actuator on a small fleet: scaling takes effect after the
simulator's delay, refusals come back as non-retryable results, dry runs and bounds send nothing, and a
revert restores the replicas the service had."""

from __future__ import annotations

from typing import Any

from opsmind.act.base import Actuator, ReplicaBounds, ScaleAction
from opsmind.act.simulator import SimulatorScaler
from opsmind.sim.actions import DELAYS_S
from opsmind.sim.runner import SimRun, scenario_from_data

FLEET = {
    "name": "tiny",
    "duration_s": 600,
    "nodes": {"zones": ["a"], "nodes_per_zone": 2},
    "load": {"entry": "web", "peak_rps": 50},
    "services": {"web": {"replicas": 2, "calls": {"db": 1.0}}, "db": {"kind": "database", "replicas": 1}},
}


class Recorder:
    """Wraps the simulator's actuator and remembers every call, to show what was (not) sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def apply(self, action: str, **params: Any) -> Any:
        self.calls.append((action, params))
        return self.inner.apply(action, **params)


def _world() -> tuple[SimRun, Recorder, SimulatorScaler]:
    run = SimRun(scenario_from_data(FLEET, "test fleet"))
    recorder = Recorder(run.actuator)
    scaler = SimulatorScaler(
        recorder, ReplicaBounds(1, 20), read_replicas=lambda s: run.fleet.services[s].desired
    )
    return run, recorder, scaler


def _advance(run: SimRun, seconds: float) -> None:
    end = run.fleet.t + seconds
    while run.fleet.t < end:
        run.step()


def test_scale_takes_effect_after_the_simulators_delay_and_reverts() -> None:
    run, recorder, scaler = _world()
    assert isinstance(scaler, Actuator)
    web = run.fleet.services["web"]
    result = scaler.apply(ScaleAction("default", "web", 5, "forecast"), dry_run=False)
    assert result.ok and not result.dry_run and result.revert_token
    assert result.detail.startswith("scaling web from 2 to 5 (forecast): scale accepted")
    assert recorder.calls == [("scale", {"service": "web", "replicas": 5})]
    assert web.desired == 2  # accepted now, carried out after the delay
    _advance(run, DELAYS_S["scale"] + run.scenario.resolution_s)
    assert web.desired == 5
    reverted = scaler.revert(result.revert_token, dry_run=False)
    assert reverted.ok and recorder.calls[-1] == ("scale", {"service": "web", "replicas": 2})
    _advance(run, DELAYS_S["scale"] + run.scenario.resolution_s)
    assert web.desired == 2


def test_revert_before_the_action_took_effect_is_refused() -> None:
    run, recorder, scaler = _world()
    result = scaler.apply(ScaleAction("default", "web", 5), dry_run=False)
    assert result.revert_token is not None
    early = scaler.revert(result.revert_token, dry_run=False)
    assert not early.ok and "not the 5 the action set" in early.detail
    assert len(recorder.calls) == 1


def test_dry_run_is_the_default_and_sends_nothing() -> None:
    run, recorder, scaler = _world()
    result = scaler.apply(ScaleAction("default", "web", 4))
    assert result.ok and result.dry_run and result.detail == "dry run: would scale web from 2 to 4"
    assert recorder.calls == []
    _advance(run, 30)
    assert run.fleet.services["web"].desired == 2


def test_bounds_refuse_before_anything_is_sent() -> None:
    run, recorder, scaler = _world()
    for replicas in (0, 21):
        result = scaler.apply(ScaleAction("default", "web", replicas), dry_run=False)
        assert not result.ok and not result.retryable and "outside the bounds 1..20" in result.detail
    assert recorder.calls == []


def test_simulator_refusal_is_not_retryable() -> None:
    run, recorder, scaler = _world()
    result = scaler.apply(ScaleAction("default", "nosuch", 3), dry_run=False)
    assert not result.ok and not result.retryable
    assert "simulator refused scaling nosuch" in result.detail and "unknown service" in result.detail


def test_without_a_replica_reader_actions_are_not_reversible() -> None:
    run = SimRun(scenario_from_data(FLEET, "test fleet"))
    scaler = SimulatorScaler(run.actuator)
    result = scaler.apply(ScaleAction("default", "db", 2), dry_run=False)
    assert result.ok and result.revert_token is None and "not reversible" in result.detail
    assert not scaler.revert("{}", dry_run=False).ok
