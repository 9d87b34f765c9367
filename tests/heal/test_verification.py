"""What a verification may call a success: back near the service's own level before the incident (a
``baseline`` bound, not only an absolute threshold the faulty level may meet), counted only once the
step's action has taken effect (the pods it started are ready).

The demo's case is the yardstick: latency injected on personalization took its p99 from 0.16 s to
0.4635 s, under the bundled restart's absolute 0.5 s; the restarted pods stayed not ready for 95 s. The
remediation "succeeded" with the fault fully there. These tests fail on that behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsmind.act.base import ActionResult
from opsmind.clock import SimClock
from opsmind.heal.classify import IncidentObservation
from opsmind.heal.executor import ActionRequest, Executor
from opsmind.heal.guards import AutomationMode, Guards, GuardSettings, RateLimit
from opsmind.heal.healer import OPENED_AT, Healer, HealRequest
from opsmind.heal.knowledge import KnowledgeBase, RemediationOutcome
from opsmind.heal.plan import plan
from opsmind.heal.runbook import (
    PODS_NOT_READY_METRIC,
    REMEDIATIONS_RUNNING_METRIC,
    AllCondition,
    MetricCondition,
    NotCondition,
    RunbookError,
    load_library,
    parse_runbook,
)
from opsmind.heal.state import RemediationState
from opsmind.store import SqliteStore

S = RemediationState
T0 = 10_000.0
OPENED = T0 - 120.0  # the incident opened two minutes before the healer acted
HEALTHY_P99, FAULTY_P99 = 0.16, 0.4635  # the demo's personalization, before and during the fault
P99 = {"service": "personalization", "quantile": "0.99"}


class Fleet:
    """The engine's reader over a hand-set fleet: latest values by (metric, labels), the largest of the
    matching ones; the level before the incident per metric; pods not ready per service."""

    def __init__(self) -> None:
        self.now: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        self.usual: dict[str, float] = {"latency_seconds": HEALTHY_P99, "error_ratio": 0.0036}
        self.asked_before: list[tuple[str, dict[str, str], float]] = []
        self.sent: list[ActionRequest] = []

    def set(self, metric: str, value: float, **labels: str) -> None:
        self.now[(metric, frozenset(labels.items()))] = value

    def read(self, metric: str, labels: dict[str, str]) -> float | None:
        want = set(labels.items())
        found = [v for (m, ls), v in self.now.items() if m == metric and want <= ls]
        return max(found) if found else None

    def before(self, metric: str, labels: dict[str, str], t: float) -> float | None:
        self.asked_before.append((metric, labels, t))
        return self.usual.get(metric)

    def actuate(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.sent.append(request)
        return ActionResult(True, False, f"{request.action} accepted, takes effect in 5 s", dry_run=dry_run)


def faulty_fleet() -> Fleet:
    f = Fleet()
    f.set(REMEDIATIONS_RUNNING_METRIC, 0.0, service="personalization")
    f.set("latency_seconds", FAULTY_P99, **P99)
    f.set("latency_seconds", 0.3, service="personalization", quantile="0.5")  # the precheck's median
    f.set(PODS_NOT_READY_METRIC, 0.0, service="personalization")
    return f


def executor(store: SqliteStore, clock: SimClock, fleet: Fleet, before: bool = True) -> Executor:
    """The bundled latency_injection_restart bound to the incident once, as the healer binds it."""
    runbook = load_library()["latency_injection_restart"]
    fields = {"service": "personalization"}
    planned = plan(
        runbook, fields, fleet.read, clock.now, lambda m, ls: fleet.before(m, ls, OPENED) if before else None
    )
    guards = Guards(GuardSettings(mode=AutomationMode.ON, approval_above_risk=2))
    return Executor(
        store, clock, fleet.actuate, lambda s, m: None, lambda n, c: planned, guards, replicas=lambda s: 4
    )


def run_for(ex: Executor, clock: SimClock, seconds: float, step: float = 5.0) -> list[str]:
    events: list[str] = []
    end = clock.now() + seconds
    while clock.now() < end:
        clock.set(clock.now() + step)
        events += [o.event for o in ex.tick()]
    return events


def test_a_p99_still_at_its_faulty_level_is_not_a_success(tmp_path: Path) -> None:
    clock, fleet = SimClock(T0), faulty_fleet()
    with SqliteStore(str(tmp_path / "h.db")) as store:
        ex = executor(store, clock, fleet)
        rid = ex.submit(service="personalization", runbook="latency_injection_restart", risk=0).remediation.id
        assert [o.event for o in ex.tick()] == ["started", "sent"]
        # The restart did nothing: p99 stays at 0.4635 s, under the absolute 0.5 s, for the whole window.
        events = run_for(ex, clock, 605)
        assert "succeeded" not in events and "verification_failed" in events
        rem = ex.log.get(rid)
        assert rem is not None and rem.state is not S.SUCCEEDED
        timed_out = next(h.why for h in rem.history if h.target is S.FAILED)
        assert "0.4635 < 0.5, not < 0.29 (1.5 x 0.16 before the incident + 0.05)" in timed_out


def test_back_near_the_level_before_the_incident_verifies(tmp_path: Path) -> None:
    clock, fleet = SimClock(T0), faulty_fleet()
    with SqliteStore(str(tmp_path / "h.db")) as store:
        ex = executor(store, clock, fleet)
        rid = ex.submit(service="personalization", runbook="latency_injection_restart", risk=0).remediation.id
        ex.tick()
        fleet.set("latency_seconds", 0.17, **P99)  # fresh pods: the usual p99 again
        events = run_for(ex, clock, 70)
        assert events == ["succeeded"]
        rem = ex.log.get(rid)
        assert rem is not None and rem.state is S.SUCCEEDED
        assert "< 0.29 (1.5 x 0.16 before the incident + 0.05) (held 60s >= 60s)" in rem.history[-1].why
        # The level before the incident was read for the verified series, before the incident opened.
        assert ("latency_seconds", P99, OPENED) in fleet.asked_before


def test_without_a_level_before_the_incident_the_absolute_threshold_decides_and_says_so(
    tmp_path: Path,
) -> None:
    clock, fleet = SimClock(T0), faulty_fleet()
    with SqliteStore(str(tmp_path / "h.db")) as store:
        ex = executor(store, clock, fleet, before=False)
        rid = ex.submit(service="personalization", runbook="latency_injection_restart", risk=0).remediation.id
        ex.tick()
        assert run_for(ex, clock, 70) == ["succeeded"]
        rem = ex.log.get(rid)
        assert rem is not None and "no level before the incident known" in rem.history[-1].why


def test_the_hold_starts_once_the_restarted_pods_are_ready(tmp_path: Path) -> None:
    clock, fleet = SimClock(T0), faulty_fleet()
    with SqliteStore(str(tmp_path / "h.db")) as store:
        ex = executor(store, clock, fleet)
        rid = ex.submit(service="personalization", runbook="latency_injection_restart", risk=0).remediation.id
        ex.tick()
        # The rollout: a new pod is not ready for 95 s while the old ones serve - and this time the old ones
        # look healthy (the fault faded by itself), so only readiness says the restart has not happened.
        fleet.set("latency_seconds", 0.17, **P99)
        fleet.set(PODS_NOT_READY_METRIC, 1.0, service="personalization")
        assert run_for(ex, clock, 95) == []  # 95 s of "healthy" without the action in effect: not counted
        rem = ex.log.get(rid)
        assert rem is not None and rem.state is S.VERIFYING
        fleet.set(PODS_NOT_READY_METRIC, 0.0, service="personalization")
        # The 60 s hold runs from the first poll that sees the pods ready (the next one), not from the send:
        # that poll and 55 s more are not enough, 60 s are.
        assert run_for(ex, clock, 60) == []
        assert run_for(ex, clock, 5) == ["succeeded"]


def test_waiting_for_the_pods_is_said_and_they_may_never_come(tmp_path: Path) -> None:
    clock, fleet = SimClock(T0), faulty_fleet()
    with SqliteStore(str(tmp_path / "h.db")) as store:
        ex = executor(store, clock, fleet)
        rid = ex.submit(service="personalization", runbook="latency_injection_restart", risk=0).remediation.id
        ex.tick()
        fleet.set("latency_seconds", 0.17, **P99)
        fleet.set(PODS_NOT_READY_METRIC, 2.0, service="personalization")  # a build that never starts
        assert "verification_failed" in run_for(ex, clock, 605)
        rem = ex.log.get(rid)
        assert rem is not None
        why = next(h.why for h in rem.history if h.target is S.FAILED)
        assert "the action has not taken effect yet: 2 pod(s) of personalization not ready yet" in why


def test_the_settle_condition_follows_the_action_and_its_target() -> None:
    library = load_library()
    scale = library["traffic_spike_scale"].steps[0].settled
    assert scale is not None and scale.render({"busiest_service": "auth"}).service == "auth"
    undo = library["kubernetes_rollout_undo"].steps[0].settled
    assert undo is not None and undo.service == "{service}"  # its deployment is named after the service
    assert library["config_error_revert"].steps[0].settled is None  # no pods start: verified at once
    assert library["node_failure_drain"].steps[0].settled is None
    no_pod_metrics = library["latency_injection_restart"].steps[0].settled
    assert no_pod_metrics is not None
    assert no_pod_metrics.render({"service": "a"}).evaluate(lambda m, ls: None) == (
        True,
        "cannot tell whether the pods of a are ready",
    )


# -- the condition and the library ----------------------------------------------------------------------
def _p99(**baseline: float) -> MetricCondition:
    cond = MetricCondition(
        metric="latency_seconds", labels={"quantile": "0.99"}, op="<", value=0.5, baseline=baseline
    )  # type: ignore[arg-type]
    return cond


def test_a_baseline_bound_is_factor_times_the_level_before_plus_slack() -> None:
    cond = _p99(factor=1.5, slack=0.05).with_baseline(lambda m, ls: 0.16)
    assert isinstance(cond, MetricCondition) and cond.before == 0.16
    assert cond.evaluate(lambda m, ls: 0.28)[0]
    assert not cond.evaluate(lambda m, ls: 0.30)[0]
    assert not cond.evaluate(lambda m, ls: 0.6)[0]  # the absolute threshold still holds too
    # ">" reads the same way: at least two thirds of the ready replicas there were before.
    ready = MetricCondition(metric="replicas_ready", op=">=", value=1, baseline={"factor": 2 / 3})  # type: ignore[arg-type]
    ready = ready.with_baseline(lambda m, ls: 3.0)
    assert ready.evaluate(lambda m, ls: 2.0)[0] and not ready.evaluate(lambda m, ls: 1.0)[0]


def test_composites_pass_the_baseline_down_and_render_keeps_it() -> None:
    inner = _p99(factor=1.5)
    tree = AllCondition(all=[NotCondition(**{"not": inner}), inner]).with_baseline(lambda m, ls: 0.2)
    assert isinstance(tree, AllCondition)
    assert tree.all[1].before == 0.2  # type: ignore[union-attr]
    assert tree.all[0].not_.before == 0.2  # type: ignore[union-attr]
    assert tree.render({}).all[1].before == 0.2  # type: ignore[union-attr]
    # A condition without a baseline is not read for one.
    plain = MetricCondition(metric="error_ratio", op="<", value=0.05)
    asked: list[str] = []
    assert plain.with_baseline(lambda m, ls: asked.append(m) or 0.0) is plain and asked == []


def test_a_baseline_needs_an_ordering_op_and_a_positive_factor() -> None:
    base: dict[str, Any] = {
        "name": "b",
        "description": "d",
        "fault_kinds": ["unknown"],
        "risk": "low",
        "steps": [
            {
                "name": "s",
                "precheck": {"no_remediation_running": "{service}"},
                "action": "restart",
                "params": {"service": "{service}"},
                "verify": {
                    "metric": "error_ratio",
                    "op": "==",
                    "value": 0,
                    "baseline": {"factor": 0},
                    "timeout_s": 60,
                },
                "rollback": "none",
            }
        ],
    }
    with pytest.raises(RunbookError) as err:
        parse_runbook(base, "b.yaml")
    text = str(err.value)
    assert "b.yaml: step 1 's': verify.baseline.factor: Input should be greater than 0" in text
    base["steps"][0]["verify"]["baseline"] = {"factor": 2}
    with pytest.raises(RunbookError, match="needs an ordering op"):
        parse_runbook(base, "b.yaml")


# The symptoms a fix brings back to their usual level (a disk freed by log rotation included, as its
# runbook says); an absolute threshold on one of them is met by a mild fault's level as well.
SYMPTOMS = ("latency_seconds", "error_ratio", "pool_in_use_ratio", "model_drift_score", "disk_used_ratio")


def _metric_conditions(cond: Any) -> list[MetricCondition]:
    if isinstance(cond, MetricCondition):
        return [cond]
    return [m for _, child in cond.children() for m in _metric_conditions(child)]


def test_every_bundled_verification_of_a_symptom_compares_with_the_level_before() -> None:
    missing = [
        f"{rb.name}: {m.metric}"
        for rb in load_library().values()
        for step in rb.steps
        for m in _metric_conditions(step.verify)
        if m.metric in SYMPTOMS and m.op in ("<", "<=") and m.baseline is None
    ]
    assert missing == []


# -- through the healer: the incident's opening travels with the remediation --------------------------------
def test_the_healer_binds_the_baseline_to_the_incidents_opening_and_learns_no_false_success(
    tmp_path: Path,
) -> None:
    clock, fleet = SimClock(T0), faulty_fleet()
    library = {"latency_injection_restart": load_library()["latency_injection_restart"]}
    guards = Guards(
        GuardSettings(
            mode=AutomationMode.ON, approval_above_risk=2, cooldown_service_s=0, rate_service=RateLimit(9, 60)
        )
    )
    with SqliteStore(str(tmp_path / "h.db")) as store:
        h = Healer(
            store,
            clock,
            _unknown_classifier(),
            fleet.actuate,
            fleet.read,
            knowledge=KnowledgeBase(store),
            library={"unknown_latency": _as_unknown(library["latency_injection_restart"])},
            guards=guards,
            before=fleet.before,
        )
        req = HealRequest(
            "inc-1",
            "personalization",
            IncidentObservation(signals=("latency",)),
            {"service": "personalization"},
            opened_at=OPENED,
        )
        decision = h.handle(req)
        assert decision.outcome is not None
        rem = decision.outcome.remediation
        assert rem.context[OPENED_AT] == repr(OPENED)  # persisted: a restart plans the same bound
        for _ in range(130):
            clock.set(clock.now() + 5)
            h.tick()
        done = h.executor.log.get(rem.id)
        assert done is not None and done.state is not S.SUCCEEDED
        outcomes = store.find(RemediationOutcome, limit=10)
        assert [o.success for o in outcomes] == [False]  # learned as what it was: no cure
        # Bound again from its context alone (as after a restart), the level before is read again.
        fleet.asked_before.clear()
        assert h._still_holds(done)[0] is False
        assert fleet.asked_before and {t for _, _, t in fleet.asked_before} == {OPENED}


def _unknown_classifier() -> Any:
    from opsmind.heal.classify import FaultClassifier

    return FaultClassifier()  # untrained: every kind is unknown


def _as_unknown(runbook: Any) -> Any:
    """The bundled runbook as one for `unknown` (the untrained classifier's only kind)."""
    data = runbook.model_dump(by_alias=True, exclude_none=True)
    data["name"], data["fault_kinds"] = "unknown_latency", ["unknown"]
    return parse_runbook(data, "unknown_latency.yaml")
