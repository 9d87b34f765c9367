"""A bundled runbook bound to an incident and run by the executor: templates filled up front,
label-aware conditions, verification that must hold for its for_s, rollback when it never does."""

from __future__ import annotations

from pathlib import Path

import pytest

from opsmind.act.base import ActionResult
from opsmind.clock import SimClock
from opsmind.heal.executor import ActionRequest, Executor
from opsmind.heal.guards import AutomationMode, Guards, GuardSettings
from opsmind.heal.plan import PlanError, plan
from opsmind.heal.runbook import EVENT_COUNT_METRIC, REMEDIATIONS_RUNNING_METRIC, load_library
from opsmind.heal.state import RemediationState
from opsmind.store import SqliteStore

FIELDS = {"service": "api", "version": "v1"}


class World:
    """What the engine's reader would answer: the largest value of the matching series."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.sent: list[ActionRequest] = []

    def set(self, metric: str, value: float, **labels: str) -> None:
        self.values[(metric, frozenset(labels.items()))] = value

    def read(self, metric: str, labels: dict[str, str]) -> float | None:
        # within_s is the event window the engine's reader applies, not a series label.
        want = {(k, v) for k, v in labels.items() if k != "within_s"}
        found = [v for (m, ls), v in self.values.items() if m == metric and want <= set(ls)]
        return max(found) if found else None

    def actuate(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.sent.append(request)
        return ActionResult(True, False, f"{request.action} done", dry_run=dry_run)


def _world() -> World:
    w = World()
    w.set(REMEDIATIONS_RUNNING_METRIC, 0.0, service="api")
    w.set(EVENT_COUNT_METRIC, 1.0, service="api", reason="Deployment")
    w.set("error_ratio", 0.4, service="api")
    w.set("latency_seconds", 2.0, service="api", quantile="0.99")
    return w


def _executor(store: SqliteStore, clock: SimClock, w: World) -> Executor:
    library = load_library()
    runbook = library["bad_deployment_rollback"]

    # Planned once: the checks keep their hold-for state between the executor's ticks.
    planned = plan(runbook, FIELDS, w.read, clock.now)

    def steps(name: str, context: object) -> list:  # type: ignore[type-arg]
        return planned if name == runbook.name else []

    guards = Guards(GuardSettings(mode=AutomationMode.ON, approval_above_risk=2))
    return Executor(store, clock, w.actuate, lambda s, m: None, steps, guards, replicas=lambda s: 3)


def test_bundled_rollback_runs_and_verifies_after_holding(tmp_path: Path) -> None:
    clock, w = SimClock(10_000.0), _world()
    with SqliteStore(str(tmp_path / "h.db")) as store:
        ex = _executor(store, clock, w)
        rid = ex.submit(service="api", runbook="bad_deployment_rollback", risk=1).remediation.id
        assert [o.event for o in ex.tick()] == ["started", "sent"]
        assert w.sent[0].action == "rollback" and dict(w.sent[0].params) == {"service": "api"}
        w.set("error_ratio", 0.01, service="api")
        w.set("latency_seconds", 0.2, service="api", quantile="0.99")
        clock.set(clock.now() + 30)
        assert ex.tick() == []  # healthy from this poll on, but the runbook wants 60 s of it
        clock.set(clock.now() + 59)
        assert ex.tick() == []
        clock.set(clock.now() + 1)
        events = [o.event for o in ex.tick()]
        assert events == ["succeeded"]  # the last step verified ends the remediation
        rem = ex.log.get(rid)
        assert rem is not None and rem.state is RemediationState.SUCCEEDED


def test_never_healthy_rolls_back_with_the_templated_action(tmp_path: Path) -> None:
    clock, w = SimClock(10_000.0), _world()
    with SqliteStore(str(tmp_path / "h.db")) as store:
        ex = _executor(store, clock, w)
        rid = ex.submit(service="api", runbook="bad_deployment_rollback", risk=1).remediation.id
        ex.tick()
        clock.set(clock.now() + 901)  # past the runbook's 900 s verification timeout
        ex.tick()
        ex.tick()
        assert [r.action for r in w.sent] == ["rollback", "deploy"]
        assert dict(w.sent[1].params) == {"service": "api", "version": "v1"}
        rem = ex.log.get(rid)
        assert rem is not None and rem.state is RemediationState.ROLLED_BACK


def test_a_missing_incident_field_fails_the_plan_before_anything_runs() -> None:
    runbook = load_library()["bad_deployment_rollback"]
    with pytest.raises(PlanError, match="bad_deployment_rollback"):
        plan(runbook, {"service": "api"}, lambda m, labels: None, lambda: 0.0)  # no version for rollback
