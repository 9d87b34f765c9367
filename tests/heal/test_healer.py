"""The Healer with the bundled runbooks, a small classifier trained on synthetic observations, a fake
clock, a dict-backed metrics reader and a fake actuator: choosing and submitting the best runbook,
skipping one whose fields are missing, waiting or guessing when unsure, not retrying what failed,
learning from incident outcomes, verification on the clock, escalation and a restart mid-remediation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from opsmind.act.base import ActionResult
from opsmind.clock import SimClock
from opsmind.heal.classify import UNKNOWN, FaultClassifier, IncidentObservation, ObservedEvent
from opsmind.heal.executor import ActionRequest, Outcome
from opsmind.heal.guards import AutomationMode, Guards, GuardSettings, Pause, RateLimit
from opsmind.heal.healer import MAX_PRECHECK_REFUSALS, MAX_RUNS_PER_RUNBOOK, HealDecision, Healer, HealRequest
from opsmind.heal.knowledge import KnowledgeBase
from opsmind.heal.runbook import EVENT_COUNT_METRIC, Runbook, load_library
from opsmind.heal.state import RemediationState, step_key
from opsmind.store import SqliteStore
from opsmind.types import AuditEntry

S = RemediationState
T0 = 1_000.0
FIELDS = {"service": "api", "version": "v2", "previous_version": "v1", "namespace": "prod"}

# -- a tiny observation generator: each kind with its own signals, events and levels, drawn with noise --
_PATTERNS: dict[str, dict[str, Any]] = {
    "bad_deployment": {"signals": ("errors", "latency"), "events": ("Deployment",), "kind": "api"},
    "dependency_outage": {
        "signals": ("errors",),
        "events": ("Unhealthy",),
        "kind": "database",
        "cpu_level": 0.02,
    },
    "pool_exhaustion": {"signals": ("pool", "latency", "errors"), "events": (), "kind": "api", "pool": 1.0},
    "traffic_spike": {
        "signals": ("traffic", "cpu", "latency"),
        "events": (),
        "kind": "api",
        "traffic": 3.0,
        "cpu_level": 0.9,
    },
}


def observe(kind: str, rng: np.random.Generator) -> IncidentObservation:
    p = _PATTERNS[kind]

    def level(default: float) -> float:
        return float(default * rng.lognormal(0, 0.1) + rng.normal(0, 0.03))

    return IncidentObservation(
        signals=p["signals"],
        events=tuple(ObservedEvent(r, float(rng.uniform(0, 600))) for r in p["events"]),
        cpu_level=min(1.0, max(0.0, level(p.get("cpu_level", 0.4)))),
        pool_in_use=min(1.0, max(0.0, level(p.get("pool", 0.3)))),
        traffic_ratio=max(0.1, level(p.get("traffic", 1.0))),
        ready_ratio=1.0,
        root_cause_rank=1,
        root_cause_score=float(rng.uniform(2, 6)),
        service_kind=p["kind"],
    )


def _training() -> tuple[list[IncidentObservation], list[str]]:
    rng = np.random.default_rng(0)
    labels = [kind for kind in _PATTERNS for _ in range(12)]
    return [observe(kind, rng) for kind in labels], labels


@pytest.fixture(scope="module")
def classifier() -> FaultClassifier:
    return FaultClassifier(trees=30).fit(*_training())


@pytest.fixture(scope="module")
def unsure() -> FaultClassifier:
    """Never confident enough: every prediction is `unknown`, with its best guesses as alternatives."""
    return FaultClassifier(trees=30, threshold=0.999).fit(*_training())


def incident(
    kind: str = "bad_deployment", incident_id: str = "inc-1", seed: int = 7, **kw: Any
) -> HealRequest:
    service = kw.pop("service", "api")
    fields = kw.pop("fields", {**FIELDS, "service": service})
    return HealRequest(incident_id, service, observe(kind, np.random.default_rng(seed)), fields, **kw)


# -- the platform as the healer sees it ------------------------------------------------------------------
@dataclass
class World:
    """A test double of the platform (the real actuators and the engine's reader are tested elsewhere):
    ``read`` answers from a dict, the largest value among the series whose labels include the asked
    ones (``within_s`` is the event window, not a label), and also answers EVENT_COUNT_METRIC;
    ``actuate`` records every ActionRequest and answers ok with a revert token."""

    values: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)
    sent: list[tuple[ActionRequest, bool]] = field(default_factory=list)

    def set(self, metric: str, value: float, **labels: str) -> None:
        self.values[(metric, frozenset(labels.items()))] = value

    def read(self, metric: str, labels: dict[str, str]) -> float | None:
        want = {(k, v) for k, v in labels.items() if k != "within_s"}
        found = [v for (m, ls), v in self.values.items() if m == metric and want <= ls]
        return max(found) if found else None

    def actuate(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.sent.append((request, dry_run))
        return ActionResult(True, False, f"{request.action} done", f"undo:{request.action}", dry_run=dry_run)

    def actions(self) -> list[str]:
        return [r.action for r, _ in self.sent]

    def broken(self, service: str = "api") -> None:
        self.set("error_ratio", 0.4, service=service)
        self.set("latency_seconds", 2.0, service=service, quantile="0.99")

    def healthy(self, service: str = "api") -> None:
        self.set("error_ratio", 0.01, service=service)
        self.set("latency_seconds", 0.1, service=service, quantile="0.99")


def world() -> World:
    w = World()
    w.set(EVENT_COUNT_METRIC, 1.0, service="api", reason="Deployment")
    w.broken("api")
    w.set("error_ratio", 0.9, service="db")
    return w


def healer(
    store: SqliteStore,
    clock: SimClock,
    w: World,
    clf: FaultClassifier,
    *,
    escalate: Callable[[Outcome], None] | None = None,
    library: Mapping[str, Runbook] | None = None,
    **settings: Any,
) -> Healer:
    """Cooldowns off and generous rate limits unless a test says otherwise: they are the guards' tests."""
    base: dict[str, Any] = {
        "mode": AutomationMode.ON,
        "approval_above_risk": 2,
        "cooldown_service_s": 0.0,
        "cooldown_runbook_s": 0.0,
        "rate_service": RateLimit(100, 3600.0),
    }
    guards = Guards(GuardSettings(**{**base, **settings}))
    return Healer(store, clock, clf, w.actuate, w.read, library=library, guards=guards, escalate=escalate)


def advance(clock: SimClock, seconds: float) -> None:
    clock.set(clock.now() + seconds)


def verify_ok(h: Healer, w: World, clock: SimClock) -> None:
    """After the action was sent: the service recovers and stays so for the runbook's for_s (60 s)."""
    w.healthy()
    advance(clock, 1)
    assert [o.event for o in h.tick()] == []  # holds now, but not yet for 60 s
    advance(clock, 60)
    assert [o.event for o in h.tick()] == ["succeeded"]


def _rem_id(decision: HealDecision) -> str:
    assert decision.outcome is not None
    return decision.outcome.remediation.id


# -- choosing and submitting -------------------------------------------------------------------------------
def test_confident_classification_submits_the_kinds_best_runbook(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        d = h.handle(incident())
        assert d.prediction.kind == "bad_deployment" and d.prediction.confidence >= 0.5
        assert (d.kind, d.runbook, d.skipped, d.waiting) == (
            "bad_deployment",
            "bad_deployment_rollback",
            (),
            False,
        )
        # both treat bad deployments at low risk and equal cost: the tie goes by name
        assert [c.runbook for c in d.choices] == ["bad_deployment_rollback", "kubernetes_rollout_undo"]
        assert d.outcome is not None and d.outcome.event == "approved" and not d.outcome.escalate
        rem = d.outcome.remediation
        assert (rem.service, rem.runbook, rem.risk, rem.incident_id) == (
            "api",
            "bad_deployment_rollback",
            0,
            "inc-1",
        )
        assert rem.context["fault_kind"] == "bad_deployment" and rem.context["version"] == "v2"
        assert rem.context["incident_id"] == "inc-1" and rem.context["remediation_id"] == rem.id
        assert (
            "treating it as bad_deployment" in d.explanation
            and "bad_deployment_rollback ranked 1" in d.explanation
        )
        assert h.decisions == [d] and w.sent == []  # submitted, not sent before the executor's tick
        assert h.busy("api") and not h.busy("db")

        assert [o.event for o in h.tick()] == ["started", "sent"]
        request, dry_run = w.sent[0]
        assert (request.action, dict(request.params), dry_run) == ("rollback", {"service": "api"}, False)
        assert request.idempotency_key == step_key(rem.id, 0)


def test_a_runbook_needing_a_missing_field_is_skipped_for_the_next(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        fields = {"service": "api", "namespace": "prod"}  # nobody found the version it runs
        d = h.handle(incident(fields=fields))
        assert d.runbook == "kubernetes_rollout_undo"
        assert len(d.skipped) == 1
        assert "bad_deployment_rollback" in d.skipped[0] and "version" in d.skipped[0]
        assert [o.event for o in h.tick()] == ["started", "sent"]
        assert w.actions() == ["rollout_undo"]
        assert dict(w.sent[0][0].params) == {"deployment": "api", "namespace": "prod"}
        # the skip counts as a failed try: not offered again for this incident, even once the version is known
        again = h.handle(incident(fields={**fields, "version": "v2"}))
        assert "bad_deployment_rollback" not in [c.runbook for c in again.choices]
        assert again.runbook != "bad_deployment_rollback"


class KubernetesLike:
    """A test double of an actuator that names what it can do (as the Kubernetes one does)."""

    actions = frozenset({"restart", "rollout_restart", "delete_pod", "rollback", "rollout_undo", "scale"})

    def __init__(self, w: World) -> None:
        self.w = w

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        return self.w.actuate(request, dry_run)


def test_runbooks_needing_an_action_the_actuator_lacks_are_not_chosen(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    # On Kubernetes a runbook that redeploys a version (bad_deployment_rollback's undo) or fails over
    # would only fail, and be learned as a failure: the rollout undo is chosen instead.
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        guards = Guards(GuardSettings(mode=AutomationMode.ON, approval_above_risk=2))
        h = Healer(store, clock, classifier, KubernetesLike(w), w.read, guards=guards)
        assert h.unsupported["bad_deployment_rollback"] == {"deploy"}
        assert h.unsupported["cache_failure_failover"] == {"failover"}
        assert "kubernetes_rollout_undo" not in h.unsupported and "unknown_restart" not in h.unsupported
        d = h.handle(incident())
        assert d.runbook == "kubernetes_rollout_undo" and d.skipped == ()
        assert [c.runbook for c in d.choices] == ["kubernetes_rollout_undo"]
        with pytest.raises(ValueError, match="needs deploy, which the heal actuator cannot carry out"):
            h.run_by_hand(incident(incident_id="inc-2"), "bad_deployment_rollback", who="ana", why="try")
    with SqliteStore(str(tmp_path / "h2.db")) as store:  # an actuator naming nothing may do anything
        assert healer(store, SimClock(T0), world(), classifier).unsupported == {}


def test_nothing_can_be_bound_explains_every_skip(tmp_path: Path, classifier: FaultClassifier) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        lib = load_library()
        only = {n: lib[n] for n in ("bad_deployment_rollback", "kubernetes_rollout_undo")}
        h = healer(store, clock, w, classifier, library=only)
        d = h.handle(incident(fields={"service": "api"}))
        assert d.runbook is None and d.outcome is None and not d.waiting
        assert sorted(s.split("'")[1] for s in d.skipped) == sorted(only)
        assert "no runbook could be chosen" in d.explanation and "namespace" in d.explanation
        assert h.tick() == [] and w.sent == []


def test_unsure_and_no_user_affected_waits(tmp_path: Path, unsure: FaultClassifier) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, unsure)
        d = h.handle(incident(impact=False))
        assert d.waiting and d.kind == UNKNOWN and d.prediction.kind == UNKNOWN
        assert (d.runbook, d.outcome, d.choices) == (None, None, ())
        assert "observing further" in d.explanation and "below the threshold" in d.explanation
        assert h.tick() == [] and w.sent == [] and not h.busy()
        assert h.executor.log.in_states(list(S)) == []  # nothing was even proposed
        assert "inc-1" not in h.tried


def test_untrained_classifier_is_unsure(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, FaultClassifier())
        d = h.handle(incident(impact=False))
        assert d.waiting and "not trained" in d.prediction.reason


def test_unsure_but_users_affected_acts_on_the_best_guess(tmp_path: Path, unsure: FaultClassifier) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, unsure)
        d = h.handle(incident(impact=True))
        assert d.prediction.kind == UNKNOWN and not d.waiting
        best_guess = d.prediction.alternatives[0][0]
        assert best_guess == "bad_deployment" and d.kind == best_guess
        assert d.runbook == "bad_deployment_rollback"
        assert d.outcome is not None and d.outcome.event == "approved"
        assert [o.event for o in h.tick()] == ["started", "sent"] and w.actions() == ["rollback"]


# -- what an incident may try again ------------------------------------------------------------------------
def test_a_runbook_that_failed_verification_is_not_tried_again(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        told: list[Outcome] = []
        h = healer(store, clock, w, classifier, escalate=told.append)
        first = h.handle(incident())
        assert first.runbook == "bad_deployment_rollback"
        h.tick()
        advance(clock, 899)
        assert h.tick() == []  # still failing, within the 900 s timeout
        advance(clock, 1)
        out = h.tick()
        assert [o.event for o in out] == ["verification_failed", "rolled_back"]
        assert w.actions() == ["rollback", "deploy"]
        assert dict(w.sent[-1][0].params) == {"service": "api", "version": "v2"}  # back to what ran before
        assert [o.event for o in told] == ["rolled_back"]  # a person hears of it
        assert h.knowledge is not None
        st = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (0, 1)  # a failure at once, no need to wait for the incident

        second = h.handle(incident())
        assert second.runbook == "kubernetes_rollout_undo"
        assert [c.runbook for c in second.choices] == ["kubernetes_rollout_undo"]
        # a different incident may still use it
        other = h.handle(incident(incident_id="inc-2", service="web"))
        assert other.runbook is not None and "bad_deployment_rollback" in [c.runbook for c in other.choices]


def test_a_runbook_that_failed_on_one_service_may_still_run_on_another(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    # Two faults at once: the rollback that failed on `api` says nothing of `web`'s own bad deployment.
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        w.set(EVENT_COUNT_METRIC, 1.0, service="web", reason="Deployment")
        h = healer(store, clock, w, classifier)
        assert h.handle(incident()).runbook == "bad_deployment_rollback"
        h.tick()
        advance(clock, 900)
        assert [o.event for o in h.tick()] == ["verification_failed", "rolled_back"]
        again = h.handle(incident(impact=False))
        assert "bad_deployment_rollback" not in [c.runbook for c in again.choices]  # not on `api` again
        other = h.handle(incident(service="web", impact=False))
        assert "bad_deployment_rollback" in [c.runbook for c in other.choices], other.explanation


def test_fixed_names_the_services_cured_and_those_only_mitigated(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        assert h.fixed("inc-1") == (frozenset(), frozenset())
        d = h.handle(incident())
        assert d.runbook == "bad_deployment_rollback"
        h.tick()
        assert h.fixed("inc-1") == (frozenset(), frozenset())  # sent, not verified yet
        verify_ok(h, w, clock)
        assert h.fixed("inc-1") == (frozenset({"api"}), frozenset())
        assert h.fixed("inc-2") == (frozenset(), frozenset())  # another incident's
        # More replicas for a pool that leaks: it verifies, but it is a mitigation; the cause stays.
        w.set("error_ratio", 0.4, service="db")
        request = incident("pool_exhaustion", service="db", fields={"service": "db", "replicas": "2"})
        h.run_by_hand(request, "pool_exhaustion_scale", who="sre", why="relief first")
        assert [o.event for o in h.tick()] == ["started", "sent"]
        w.set("error_ratio", 0.01, service="db")
        advance(clock, 61)
        h.tick()
        advance(clock, 61)
        assert [o.event for o in h.tick()] == ["succeeded"]
        assert h.fixed("inc-1") == (frozenset({"api"}), frozenset({"db"}))
        # A deploy on db after its relief ended: the relief is stale (the change may have broken more).
        deployed_at = {"db": clock.now() + 1}
        changed = lambda service, t: service in deployed_at and deployed_at[service] > t  # noqa: E731
        assert h.fixed("inc-1", changed_after=changed) == (frozenset({"api"}), frozenset())
        w.broken("api")  # the rollback's verification no longer holds: not fixed any more
        assert h.fixed("inc-1") == (frozenset(), frozenset({"db"}))


def test_a_verified_runbook_may_run_again_up_to_the_limit(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        # No namespace: the Kubernetes undo is skipped. Each time the service runs another version, so
        # each rollback acts on something new (the healer may refuse to repeat an identical run).
        for run in range(1, MAX_RUNS_PER_RUNBOOK + 1):
            w.broken()
            d = h.handle(incident(fields={"service": "api", "version": f"v{run + 1}"}))
            assert d.runbook == "bad_deployment_rollback", (run, d.explanation)
            assert [o.event for o in h.tick()] == ["started", "sent"]
            verify_ok(h, w, clock)
            advance(clock, 10)
        assert w.actions() == ["rollback"] * MAX_RUNS_PER_RUNBOOK
        w.broken()
        last = h.handle(incident(fields={"service": "api", "version": "v99"}))
        assert "bad_deployment_rollback" not in [c.runbook for c in last.choices]
        assert last.runbook != "bad_deployment_rollback"
        assert h.knowledge is not None
        st = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (0, MAX_RUNS_PER_RUNBOOK)  # each run verified, none ended it


# -- learning from the incident's end ----------------------------------------------------------------------
def test_resolved_incident_counts_a_success(tmp_path: Path, classifier: FaultClassifier) -> None:
    db = str(tmp_path / "h.db")
    with SqliteStore(db) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        d = h.handle(incident())
        h.tick()
        verify_ok(h, w, clock)
        assert h.knowledge is not None
        held = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert held.trials == 0  # verified, but only the incident's end says it worked
        assert not h.busy()
        h.resolved("inc-1")
        st = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (1, 0)
        assert st.mttr_s == pytest.approx(61.0)  # from the start of the remediation to the end
        assert "inc-1" not in h.tried
        h.resolved("inc-1")  # said twice: counted once
        assert h.knowledge.stats("bad_deployment", "bad_deployment_rollback").successes == 1
        assert d.runbook == "bad_deployment_rollback"
    with SqliteStore(db) as store:  # what was learned survives a restart
        st = KnowledgeBase(store).stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (1, 0)


def test_asking_again_after_a_verified_remediation_counts_a_failure(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        h.handle(incident())
        h.tick()
        verify_ok(h, w, clock)
        w.broken()
        again = h.handle(incident())  # the same incident goes on: the rollback did not end it
        assert h.knowledge is not None
        st = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (0, 1)
        # the failure already ranks it below the untried alternative
        assert again.runbook == "kubernetes_rollout_undo"
        assert again.choices[0].runbook == "kubernetes_rollout_undo"
        h.resolved("inc-1")  # the verified rollback was counted already; nothing verified since
        assert h.knowledge.stats("bad_deployment", "bad_deployment_rollback").successes == 0


def test_asking_again_while_the_fixed_service_stays_fixed_counts_a_success(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        h.handle(incident())
        h.tick()
        verify_ok(h, w, clock)  # api is healthy again, and stays so
        w.broken("web")  # a second fault keeps the incident going elsewhere
        h.handle(incident(service="web", fields={**FIELDS, "service": "web"}))
        assert h.knowledge is not None
        st = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (1, 0)


def test_dry_runs_teach_nothing(tmp_path: Path, classifier: FaultClassifier) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier, mode=AutomationMode.DRY_RUN)
        h.handle(incident())
        assert [o.event for o in h.tick()] == ["started", "sent", "succeeded"]
        assert w.sent[0][1] is True  # the actuator was told: dry run
        h.resolved("inc-1")
        assert h.knowledge is not None and h.knowledge.pairs() == []


# -- the loop on the clock ---------------------------------------------------------------------------------
def test_tick_verifies_for_the_runbooks_for_s_before_succeeding(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        rid = _rem_id(h.handle(incident()))
        assert [o.event for o in h.tick()] == ["started", "sent"]
        advance(clock, 30)
        assert h.tick() == []  # errors still high
        w.set("error_ratio", 0.01, service="api")
        advance(clock, 5)
        assert h.tick() == []  # errors fine, latency still high: the whole condition must hold
        w.healthy()
        advance(clock, 5)
        assert h.tick() == []  # the 60 s hold starts now
        advance(clock, 30)
        w.broken()
        assert h.tick() == []  # a break restarts the count
        w.healthy()
        advance(clock, 1)
        h.tick()
        advance(clock, 59)
        assert h.tick() == [] and h.busy("api")
        advance(clock, 1)
        out = h.tick()
        assert [o.event for o in out] == ["succeeded"] and out[0].remediation.id == rid
        rem = h.executor.log.get(rid)
        assert rem is not None and rem.state is S.SUCCEEDED
        assert not h.busy() and h.tick() == []
        assert w.actions() == ["rollback"]


def test_escalate_hears_of_a_runbook_awaiting_approval(tmp_path: Path, classifier: FaultClassifier) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        told: list[Outcome] = []
        h = healer(store, clock, w, classifier, escalate=told.append, approval_above_risk=0)
        d = h.handle(incident("dependency_outage", service="db", fields={"service": "db"}))
        assert (d.kind, d.runbook) == ("dependency_outage", "dependency_outage_failover")  # medium risk
        assert d.outcome is not None and d.outcome.event == "awaiting_approval" and d.outcome.escalate
        assert told == [d.outcome]
        assert h.tick() == [] and w.sent == []  # nothing runs before a person approves
        h.executor.approve(d.outcome.remediation.id, who="alice", why="db is down")
        assert [o.event for o in h.tick()] == ["started", "sent"]
        assert w.actions() == ["failover"] and len(told) == 1


def test_a_proposal_withdrawn_as_no_longer_needed_is_not_proposed_again(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    # In a demo soak the withdrawn failover was proposed again at the same tick (the classification had
    # not changed), withdrawn a minute later, and so on, asking a person each time.
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        told: list[Outcome] = []
        h = healer(store, clock, w, classifier, escalate=told.append, approval_above_risk=0)
        request = incident("dependency_outage", service="db", fields={"service": "db"})
        d = h.handle(request)
        assert d.runbook == "dependency_outage_failover" and d.outcome is not None
        assert d.outcome.event == "awaiting_approval"
        w.set("error_ratio", 0.001, service="db")  # a person's own fix: the failover is not needed now
        advance(clock, 61)
        h.tick()
        withdrawn = h.executor.log.get(d.outcome.remediation.id)
        assert withdrawn is not None and withdrawn.state is RemediationState.ABORTED
        again = h.handle(request)
        assert again.runbook != "dependency_outage_failover", again
        proposed = h.executor.log.in_states([RemediationState.PROPOSED])
        assert all(r.runbook != "dependency_outage_failover" for r in proposed)
        assert w.sent == []


def test_escalate_hears_of_a_guard_refusal(tmp_path: Path, classifier: FaultClassifier) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        told: list[Outcome] = []
        h = healer(store, clock, w, classifier, escalate=told.append, mode=AutomationMode.OFF)
        d = h.handle(incident())
        assert d.outcome is not None and d.outcome.event == "refused"
        assert told == [d.outcome] and "automation_switch" in d.outcome.reason
        assert d.outcome.guard == "automation_switch"
        assert h.tick() == [] and w.sent == []


# A still-open incident is asked about again (the heal stage, every settle_s). A guard refusal that says
# "not now" (a rate limit, a cooldown, a pause) is told once per incident and guard; while that guard
# would refuse again the runbook is held, not proposed (no refused remediation piles up in the log) and not
# given up (it runs once the guard clears).
def refuses(store: SqliteStore, clock: SimClock, told: list[Outcome], clf: FaultClassifier) -> Healer:
    """A healer whose per-service rate limit refuses every remediation, telling ``told``."""
    return healer(store, clock, world(), clf, escalate=told.append, rate_service=RateLimit(0, 3600.0))


def ask(h: Healer, clock: SimClock, incident_id: str = "inc-1") -> HealDecision:
    """Ask about the incident again a minute later."""
    advance(clock, 60)
    return h.handle(incident(incident_id=incident_id))


def refused(d: HealDecision) -> Outcome:
    assert d.outcome is not None and d.outcome.event == "refused" and d.outcome.escalate, d.explanation
    return d.outcome


def held(d: HealDecision) -> str:
    assert d.outcome is None and d.held is not None and d.runbook is not None, d.explanation
    return d.held


def told_of(told: list[Outcome]) -> list[tuple[str | None, str | None]]:
    return [(o.remediation.incident_id, o.guard) for o in told]


def test_a_refusal_that_says_not_now_is_told_once_and_its_runbook_waits(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, told = SimClock(T0), []
        h = refuses(store, clock, told, classifier)
        first = refused(ask(h, clock))
        assert first.guard == "rate_limit_service" and told == [first]
        for _ in range(3):
            d = ask(h, clock)
            assert held(d).startswith("rate_limit_service: rate limit for api")
            assert d.runbook == first.remediation.runbook  # the same best runbook, not the next one
            assert "held by rate_limit_service" in d.explanation
        assert told == [first]
        audited = [e.subject for e in store.find(AuditEntry, limit=1000) if e.verb == "refused"]
        assert audited == [first.remediation.id]  # one refusal on record, not one per ask
        h.guards.settings = replace(h.guards.settings, rate_service=RateLimit(3, 3600.0))
        d = ask(h, clock)  # the limit cleared: the runbook it held runs
        assert d.outcome is not None and d.outcome.event == "approved"
        assert d.runbook == first.remediation.runbook


def test_a_blast_radius_refusal_gives_the_runbook_up(tmp_path: Path, classifier: FaultClassifier) -> None:
    # "Not this": the runbook's own reach on this service is too wide; the next one is tried instead.
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, told = SimClock(T0), []
        h = healer(store, clock, world(), classifier, escalate=told.append)
        h.guards.settings = replace(h.guards.settings, blast_radius_pct=0.0, blast_radius_min_replicas=0)
        one, two = refused(ask(h, clock)), refused(ask(h, clock))
        assert one.guard == two.guard == "blast_radius"
        assert one.remediation.runbook != two.remediation.runbook and len(told) == 1


def test_another_guards_refusal_is_told_but_not_one_heard_of_earlier(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, told = SimClock(T0), []
        h = refuses(store, clock, told, classifier)
        refused(ask(h, clock)), held(ask(h, clock))
        assert told_of(told) == [("inc-1", "rate_limit_service")]
        pause = {"api": Pause("ana", "deploy freeze", clock.now())}
        h.guards.settings = replace(h.guards.settings, paused=pause)
        assert refused(ask(h, clock)).guard == "service_paused"  # what stands in the way changed: news
        assert held(ask(h, clock)).startswith("service_paused: api paused by ana")
        assert told_of(told) == [("inc-1", "rate_limit_service"), ("inc-1", "service_paused")]
        h.guards.settings = replace(h.guards.settings, paused={})
        assert held(ask(h, clock)).startswith("rate_limit_service")  # back to one they heard of
        assert len(told) == 2


def test_a_refusal_is_told_again_once_the_incident_resolved_and_for_another_incident(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, told = SimClock(T0), []
        h = refuses(store, clock, told, classifier)
        refused(ask(h, clock)), held(ask(h, clock))
        assert len(told) == 1
        h.resolved("inc-1")
        refused(ask(h, clock)), held(ask(h, clock))  # it relapsed (reopened under its id): told again
        refused(ask(h, clock, "inc-2")), held(ask(h, clock, "inc-2"))  # a new incident: told of it
        guard = "rate_limit_service"
        assert told_of(told) == [("inc-1", guard), ("inc-1", guard), ("inc-2", guard)]
        h.resolved("inc-1"), h.resolved("inc-2")
        assert h._told_refused == {}  # nothing is kept of an incident once it resolved


# -- restarts ---------------------------------------------------------------------------------------------
def test_restart_while_verifying_continues_from_the_persisted_context(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    db = str(tmp_path / "h.db")
    with SqliteStore(db) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier)
        rid = _rem_id(h.handle(incident()))
        assert [o.event for o in h.tick()] == ["started", "sent"]
    assert w.actions() == ["rollback"]
    with SqliteStore(db) as store:  # a new OpsMind on the same file: no plans, no memory of the incident
        clock2, w2 = SimClock(T0 + 30), world()
        w2.healthy()
        h2 = healer(store, clock2, w2, classifier)
        recovered = h2.recover()
        assert [(o.event, o.escalate) for o in recovered] == [("recovery_resume_verification", False)]
        assert h2.tick() == []  # planned again from the context; the hold starts now
        advance(clock2, 60)
        out = h2.tick()
        assert [o.event for o in out] == ["succeeded"]
        rem = out[0].remediation
        assert rem.id == rid and rem.context["fault_kind"] == "bad_deployment"
        assert w2.sent == []  # the rollback was not sent again
        h2.resolved("inc-1")  # the new healer learns from the remediation it finished
        assert h2.knowledge is not None
        assert h2.knowledge.stats("bad_deployment", "bad_deployment_rollback").successes == 1


def test_restart_mid_send_never_sends_the_step_twice(tmp_path: Path, classifier: FaultClassifier) -> None:
    db = str(tmp_path / "h.db")
    with SqliteStore(db) as store:
        clock, w = SimClock(T0), world()

        def die(request: ActionRequest, dry_run: bool) -> ActionResult:
            w.sent.append((request, dry_run))
            raise SystemExit("killed mid-send")  # the key was committed before the action left

        h = healer(store, clock, w, classifier)
        h.executor.actuate = die
        rid = _rem_id(h.handle(incident()))
        with pytest.raises(SystemExit):
            h.tick()
    assert w.actions() == ["rollback"]
    with SqliteStore(db) as store:
        clock2, w2 = SimClock(T0 + 10), world()
        h2 = healer(store, clock2, w2, classifier)
        rem = h2.executor.log.get(rid)
        assert rem is not None and rem.state is S.EXECUTING and step_key(rid, 0) in rem.sent_keys
        assert [o.event for o in h2.recover()] == ["recovery_resume_verification"]
        assert h2.tick() == []
        w2.healthy()
        advance(clock2, 1)
        h2.tick()
        advance(clock2, 60)
        assert [o.event for o in h2.tick()] == ["succeeded"]
        assert w2.sent == []


def test_a_runbook_whose_precheck_does_not_hold_now_is_passed_over_not_proposed(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    """A soak showed runbooks proposed for a service that had recovered: each waited for a person and was
    withdrawn a minute later, or ran only to end "precheck failed, nothing sent". Weighed now, a runbook
    whose first precheck does not hold is passed over (nothing recorded, nothing sent), the next option
    is chosen, and it stays a candidate: it was never tried."""
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        w.set(EVENT_COUNT_METRIC, 0.0, service="api", reason="Deployment")  # the precheck's event not seen
        h = healer(store, clock, w, classifier)
        first = h.handle(incident())
        assert first.runbook is not None and first.runbook != "bad_deployment_rollback"
        assert first.deferred == ("bad_deployment_rollback",)
        assert any(s.startswith("bad_deployment_rollback does not apply now: ") for s in first.skipped)
        assert [r.runbook for r in h.executor.log.in_states(list(S))] == [first.runbook]
        assert h.knowledge is not None
        st = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (0, 0)  # no evidence either way

        # Weighed again while the condition may still come, as often as the incident asks.
        later = [h.handle(incident()) for _ in range(MAX_PRECHECK_REFUSALS + 1)]
        assert all("bad_deployment_rollback" in d.deferred for d in later)
        assert "bad_deployment_rollback" not in h.tried["inc-1"]


def test_with_nothing_applying_now_the_decision_says_what_may_apply_later(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    rb = load_library()["bad_deployment_rollback"]
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        w.set(EVENT_COUNT_METRIC, 0.0, service="api", reason="Deployment")
        h = healer(store, clock, w, classifier, library={rb.name: rb})
        decision = h.handle(incident())
        assert decision.runbook is None and decision.outcome is None
        assert decision.deferred == ("bad_deployment_rollback",)
        assert "bad_deployment_rollback may apply later" in decision.explanation
        assert h.executor.log.in_states(list(S)) == [] and w.sent == []


def test_a_passed_over_runbook_runs_once_its_precheck_holds(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    rb = load_library()["bad_deployment_rollback"]
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        w.set(EVENT_COUNT_METRIC, 0.0, service="api", reason="Deployment")
        h = healer(store, clock, w, classifier, library={rb.name: rb})
        assert h.handle(incident()).runbook is None
        w.set(EVENT_COUNT_METRIC, 1.0, service="api", reason="Deployment")
        advance(clock, 40)
        assert h.handle(incident()).runbook == "bad_deployment_rollback"
        h.tick()
        assert w.actions() == ["rollback"]


def test_a_precheck_that_fails_by_the_start_teaches_nothing_frees_the_service_and_may_be_retried(
    tmp_path: Path, classifier: FaultClassifier
) -> None:
    """The condition held when the runbook was chosen and was gone by its start: nothing is sent, nothing
    learned, the service is free, and the runbook may be offered again while the condition may come."""
    rb = load_library()["bad_deployment_rollback"]
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        h = healer(store, clock, w, classifier, library={rb.name: rb})
        assert h.handle(incident()).runbook == "bad_deployment_rollback"
        w.set(EVENT_COUNT_METRIC, 0.0, service="api", reason="Deployment")  # gone before the start
        assert [o.event for o in h.tick()] == ["started", "precheck_failed"]
        assert w.sent == [] and not h.busy() and not h.busy("api")
        assert h.knowledge is not None
        st = h.knowledge.stats("bad_deployment", "bad_deployment_rollback")
        assert (st.successes, st.failures) == (0, 0)
        w.set(EVENT_COUNT_METRIC, 1.0, service="api", reason="Deployment")
        advance(clock, 40)
        assert h.handle(incident()).runbook == "bad_deployment_rollback"  # offered again
        h.tick()
        assert w.actions() == ["rollback"]


def test_half_the_replicas_of_three_means_one_at_a_time(tmp_path: Path, classifier: FaultClassifier) -> None:
    """A step's blast_radius share is rounded down (as Kubernetes rounds maxUnavailable), so a rolling
    restart allowed half of 3 replicas touches 1 and passes a 50% cap instead of touching 2 (67%)."""
    rb = load_library()["bad_deployment_rollback"]
    steps = [s.model_copy(update={"blast_radius": 0.5}) for s in rb.steps]
    half = rb.model_copy(update={"steps": type(rb.steps)(steps)})
    with SqliteStore(str(tmp_path / "h.db")) as store:
        clock, w = SimClock(T0), world()
        guards = Guards(GuardSettings(mode=AutomationMode.ON, approval_above_risk=2, blast_radius_pct=50.0))
        h = Healer(
            store,
            clock,
            classifier,
            w.actuate,
            w.read,
            library={rb.name: half},
            guards=guards,
            replicas=lambda s: 3,
        )
        d = h.handle(incident())
        assert d.outcome is not None
        assert d.outcome.remediation.touched_replicas == 1
        assert d.outcome.remediation.state is RemediationState.APPROVED
