"""A person's overrides of the healer, below the API: a paused service (the guard, the executor stopping a
running remediation), a rollback by hand (every sent step undone once, last first; refused from other
states or with nothing to undo; a failed rollback escalates), and a runbook run by hand (approval not
asked, the other guards still hold, a missing field named, a dry run on request, the ranked candidates)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsmind.act.base import ActionResult
from opsmind.clock import SimClock
from opsmind.heal.classify import UNKNOWN, FaultClassifier, IncidentObservation
from opsmind.heal.executor import ActionRequest, Executor, RollbackRefused, Step
from opsmind.heal.guards import (
    AutomationMode,
    GuardInput,
    Guards,
    GuardSettings,
    Pause,
    RateLimit,
    approval,
    service_paused,
)
from opsmind.heal.healer import Healer, HealRequest, RunbookNotBound
from opsmind.heal.knowledge import KnowledgeBase
from opsmind.heal.runbook import parse_runbook
from opsmind.heal.state import RemediationState, new_remediation, rollback_key
from opsmind.store import SqliteStore
from opsmind.types import AuditEntry
from tests.heal.test_executor import FakeStep, Rollback

S = RemediationState
T0 = 1_000.0
FREEZE = {"api": Pause("ana", "release freeze", T0)}


# -- the executor with fake steps (as in test_executor) ----------------------------------------------------
RUNBOOKS: dict[str, Sequence[Step]] = {
    "two": [
        FakeStep("set config", "set_config", rollback=Rollback("set_config", {"value": "old"})),
        FakeStep("scale up", "scale", {"replicas": 4}),  # no declared rollback: the revert token undoes it
    ],
    "final": [FakeStep("restart", "restart")],
}


@dataclass
class Actuator:
    sent: list[tuple[ActionRequest, bool]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)
    tokens: bool = True

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.sent.append((request, dry_run))
        if request.action in self.fail:
            return ActionResult(False, False, f"{request.action} failed", dry_run=dry_run)
        token = f"undo:{request.action}" if self.tokens else None
        return ActionResult(True, False, f"{request.action} done", token, dry_run=dry_run)


@dataclass
class Rig:
    executor: Executor
    clock: SimClock
    actuator: Actuator
    metrics: dict[tuple[str, str], float]


def rig(store: SqliteStore, **settings: Any) -> Rig:
    clock, actuator = SimClock(T0), Actuator()
    metrics = {("api", "error_rate"): 0.01}
    guards = Guards(GuardSettings(**{"mode": AutomationMode.ON, "approval_above_risk": 2, **settings}))
    executor = Executor(
        store,
        clock,
        actuator,
        lambda s, m: metrics.get((s, m)),
        lambda name, ctx: RUNBOOKS.get(name),
        guards,
        replicas=lambda s: 4,
    )
    return Rig(executor, clock, actuator, metrics)


def test_the_pause_guard_refuses_a_paused_service_with_who_and_why() -> None:
    rem = new_remediation(service="api", runbook="two", risk=0, step_count=2, at=T0, by="t", why="w")
    assert service_paused(rem, FREEZE) == (False, "api paused by ana: release freeze")
    assert service_paused(rem, {"web": FREEZE["api"]})[0]
    verdict = Guards(GuardSettings(mode=AutomationMode.ON, paused=FREEZE)).check(GuardInput(rem, T0))
    assert (verdict.allowed, verdict.guard) == (False, "service_paused")
    assert verdict.reason == "api paused by ana: release freeze"


def test_a_paused_service_gets_no_remediation_and_the_refusal_is_audited(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store, paused=FREEZE)
        out = r.executor.submit(service="api", runbook="two", risk=0, incident_id="inc-1")
        assert out.event == "refused" and out.escalate and out.remediation.state is S.ESCALATED
        assert "paused by ana: release freeze" in out.reason
        assert r.executor.tick() == [] and r.actuator.sent == []
        (refusal,) = [a for a in store.find(AuditEntry, limit=100) if a.verb == "refused"]
        assert refusal.detail["guard"] == "service_paused"
        assert "paused by ana: release freeze" in refusal.detail["reason"]
        other = r.executor.submit(service="web", runbook="two", risk=0)
        assert other.event == "approved"  # only the paused service is held


def test_pausing_stops_a_running_remediation_before_its_next_step(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        rid = r.executor.submit(service="api", runbook="two", risk=0).remediation.id
        assert [o.event for o in r.executor.tick()] == ["started", "sent"]
        guards = r.executor.guards
        guards.settings = GuardSettings(mode=AutomationMode.ON, approval_above_risk=2, paused=FREEZE)
        r.clock.set(T0 + 5)
        assert [o.event for o in r.executor.tick()] == ["verified", "aborted"]
        rem = r.executor.log.get(rid)
        assert rem is not None and rem.state is S.ABORTED and "paused by ana" in rem.history[-1].why
        assert [q.action for q, _ in r.actuator.sent] == ["set_config"]  # the scale step was never sent


def _succeeded(r: Rig, runbook: str = "two") -> str:
    rid = r.executor.submit(service="api", runbook=runbook, risk=0).remediation.id
    for t in (0, 5, 10, 15):
        r.executor.tick(T0 + t)
    rem = r.executor.log.get(rid)
    assert rem is not None and rem.state is S.SUCCEEDED
    return rid


def test_rolling_back_a_succeeded_remediation_undoes_every_step_last_first(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        rid = _succeeded(r)
        r.actuator.sent.clear()
        out = r.executor.roll_back(rid, who="bo", why="the release broke checkout")
        rem = out.remediation
        assert rem.state is S.ROLLED_BACK and rem.finished and not out.escalate
        assert rem.history[-1].by == "user:bo" and rem.history[-1].why == "the release broke checkout"
        sent = [(q.action, dict(q.params), q.idempotency_key) for q, _ in r.actuator.sent]
        assert sent == [
            ("revert", {"revert_token": "undo:scale"}, rollback_key(rid, 1)),
            ("set_config", {"value": "old"}, rollback_key(rid, 0)),
        ]
        audits = [a for a in store.find(AuditEntry, limit=100) if a.actor == "user:bo"]
        assert sorted(a.verb for a in audits) == ["rolled_back", "send_rollback", "send_rollback"]
        (done,) = [a for a in audits if a.verb == "rolled_back"]
        assert done.detail["reason"] == "the release broke checkout" and len(done.detail["undone"]) == 2
        with pytest.raises(RollbackRefused) as refused:  # final now: never rolled back twice
            r.executor.roll_back(rid, who="bo", why="again")
        assert "rolled_back" in str(refused.value) and "succeeded" in refused.value.allowed
        assert len(r.actuator.sent) == 2


def test_rolling_back_while_verifying_undoes_only_what_was_sent(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        r.metrics[("api", "error_rate")] = 0.5  # the first step's verification keeps polling
        rid = r.executor.submit(service="api", runbook="two", risk=0).remediation.id
        r.executor.tick()
        assert (rem := r.executor.log.get(rid)) is not None and rem.state is S.VERIFYING
        out = r.executor.roll_back(rid, who="bo", why="wrong fix")
        assert out.remediation.state is S.ROLLED_BACK
        assert [q.action for q, _ in r.actuator.sent] == ["set_config", "set_config"]
        assert r.executor.tick(T0 + 100) == []  # nothing more happens to it


def test_rollback_is_refused_where_it_cannot_apply(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store, approval_above_risk=0)
        waiting = r.executor.submit(service="api", runbook="two", risk=2).remediation
        assert waiting.state is S.PROPOSED
        with pytest.raises(RollbackRefused, match="proposed") as refused:
            r.executor.roll_back(waiting.id, who="bo", why="no")
        assert refused.value.allowed == ("executing", "succeeded", "verifying")
        with pytest.raises(KeyError):
            r.executor.roll_back("nope", who="bo", why="no")
        with pytest.raises(ValueError, match="who and why"):
            r.executor.roll_back(waiting.id, who="bo", why=" ")
        # A restart with no declared rollback, and an actuator that gives no revert token.
        r.actuator.tokens = False
        r.metrics[("web", "error_rate")] = 0.01
        rem = r.executor.submit(service="web", runbook="final", risk=0).remediation
        for t in (0, 5):
            r.executor.tick(T0 + t)
        done = r.executor.log.get(rem.id)
        assert done is not None and done.state is S.SUCCEEDED
        with pytest.raises(RollbackRefused, match="nothing to roll back"):
            r.executor.roll_back(rem.id, who="bo", why="undo the restart")
        assert r.executor.log.get(rem.id) == done  # nothing changed


def test_a_failed_rollback_escalates(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        rid = _succeeded(r)
        r.actuator.fail = {"revert"}
        out = r.executor.roll_back(rid, who="bo", why="undo")
        assert out.escalate and out.remediation.state is S.ESCALATED
        assert "rollback revert failed" in out.reason
        # The failed step's rollback key is recorded: it is never sent again.
        assert rollback_key(rid, 1) in out.remediation.sent_keys


# -- the healer with the bundled library and one test runbook ---------------------------------------------
RISKY = """\
name: risky_restart
description: Restart the service (test runbook, high risk).
fault_kinds: [unknown]
risk: high
steps:
  - name: restart
    precheck: {metric: error_ratio, service: "{service}", op: ">=", value: 0}
    action: restart
    params: {service: "{service}"}
    verify: {metric: error_ratio, service: "{service}", op: "<", value: 0.05, timeout_s: 60}
    rollback: none
"""
NEEDS_VERSION = """\
name: pin_version
description: Deploy the version before (test runbook).
fault_kinds: [bad_deployment]
risk: low
steps:
  - name: deploy
    precheck: {metric: error_ratio, service: "{service}", op: ">=", value: 0}
    action: deploy
    params: {service: "{service}", version: "{previous_version}"}
    verify: {metric: error_ratio, service: "{service}", op: "<", value: 0.05, timeout_s: 60}
    rollback:
      action: deploy
      params: {service: "{service}", version: "{version}"}
"""


@dataclass
class World:
    values: dict[tuple[str, str], float] = field(default_factory=dict)
    sent: list[tuple[ActionRequest, bool]] = field(default_factory=list)

    def read(self, metric: str, labels: dict[str, str]) -> float | None:
        return self.values.get((metric, labels.get("service", "")))

    def actuate(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.sent.append((request, dry_run))
        return ActionResult(True, False, f"{request.action} done", None, dry_run=dry_run)


def healer(store: SqliteStore, w: World, **settings: Any) -> Healer:
    books = [parse_runbook(yaml.safe_load(text), name) for name, text in (("r", RISKY), ("p", NEEDS_VERSION))]
    library = {rb.name: rb for rb in books}
    base: dict[str, Any] = {
        "mode": AutomationMode.ON,
        "approval_above_risk": 0,  # everything above low waits for a person
        "cooldown_service_s": 0.0,
        "cooldown_runbook_s": 0.0,
        "rate_service": RateLimit(100, 3600.0),
    }
    return Healer(
        store,
        SimClock(T0),
        FaultClassifier(),  # untrained: every kind unknown
        w.actuate,
        w.read,
        knowledge=KnowledgeBase(store),
        library=library,
        guards=Guards(GuardSettings(**{**base, **settings})),
    )


def request(service: str = "api", incident_id: str = "inc-1", **fields: str) -> HealRequest:
    return HealRequest(
        incident_id, service, IncidentObservation(signals=("errors",)), {"service": service, **fields}
    )


def test_a_runbook_run_by_hand_needs_no_approval_but_the_other_guards_hold(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        w = World({("error_ratio", "api"): 0.01})
        h = healer(store, w)
        out = h.run_by_hand(request(), "risky_restart", who="ana", why="I know this one")
        rem = out.remediation
        assert out.event == "approved" and rem.state is S.APPROVED and rem.requested_by == "ana"
        assert rem.history[0].by == "user:ana" and "run by hand by ana: I know this one" in rem.history[0].why
        assert "run by hand by ana" in rem.history[-1].why  # the approval guard's reason
        assert approval(rem, 0)[0]
        assert [o.event for o in h.tick()] == ["started", "sent"]
        assert [q.action for q, dry in w.sent] == ["restart"] and not w.sent[0][1]
        # One at a time still holds: a second run on the same service while the first verifies.
        second = h.run_by_hand(request(incident_id="inc-2"), "risky_restart", who="ana", why="again")
        assert second.event == "refused" and "one_at_a_time" in second.reason
        # A paused service refuses a person's run too.
        h.guards.settings = GuardSettings(
            mode=AutomationMode.ON, paused={"web": Pause("bo", "migration", T0)}
        )
        paused = h.run_by_hand(request("web", "inc-3"), "risky_restart", who="ana", why="try")
        assert paused.event == "refused" and "web paused by bo: migration" in paused.reason
        (verb,) = {a.verb for a in store.find(AuditEntry, limit=100) if a.actor == "user:ana"}
        assert verb == "run_by_hand"


def test_a_runbook_run_by_hand_that_cannot_bind_names_the_field(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        w = World()
        h = healer(store, w)
        with pytest.raises(RunbookNotBound, match="previous_version") as err:
            h.run_by_hand(request(version="v2"), "pin_version", who="ana", why="roll back")
        assert err.value.missing == ("previous_version",)
        with pytest.raises(KeyError):
            h.run_by_hand(request(), "no_such_runbook", who="ana", why="x")
        with pytest.raises(ValueError, match="who and why"):
            h.run_by_hand(request(), "risky_restart", who="ana", why="")
        out = h.run_by_hand(
            request(version="v2", previous_version="v1"), "pin_version", who="ana", why="roll back"
        )
        assert out.event == "approved" and out.remediation.context["previous_version"] == "v1"
        assert out.remediation.context["fault_kind"] == "bad_deployment"  # the kind the runbook treats
        assert h.executor.log.get(out.remediation.id) is not None


def test_a_refused_request_by_hand_leaves_no_remediation_only_its_audit(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        w = World({("error_ratio", "api"): 0.3})
        h = healer(store, w)
        live = h.run_by_hand(request(), "risky_restart", who="ana", why="first")
        h.tick()  # sent, verifying: it holds the service
        busy = h.run_by_hand(request(incident_id="inc-2"), "risky_restart", who="bo", why="again")
        h.guards.settings = GuardSettings(mode=AutomationMode.OFF)
        off = h.run_by_hand(request("web", "inc-3"), "risky_restart", who="cy", why="try")
        for out, guard in ((busy, "one_at_a_time"), (off, "automation_switch")):
            assert (out.event, out.guard, out.escalate) == ("refused", guard, False)
            assert h.executor.log.get(out.remediation.id) is None  # nothing stored, nothing pending
            audits = [a for a in store.find(AuditEntry, limit=100) if a.subject == out.remediation.id]
            assert sorted(a.verb for a in audits) == ["refused", "run_by_hand"]
            assert all(a.detail["recorded"] is False for a in audits)
            (refusal,) = [a for a in audits if a.verb == "refused"]
            assert refusal.detail["guard"] == guard and refusal.detail["reason"] == out.reason
        # The only remediation is the one that runs: no escalated one asks a person for anything.
        assert [r.id for r in h.executor.log.changed_since(0.0)] == [live.remediation.id]
        assert not h.executor.log.in_states([S.ESCALATED])
        # Refused, it was not tried: the healer (or a person) may still run it on that incident later.
        assert "risky_restart" not in h.tried.get("inc-2", {})


def test_a_dry_run_by_hand_runs_beside_a_live_remediation(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        w = World({("error_ratio", "api"): 0.3})
        h = healer(store, w)
        live = h.run_by_hand(request(), "risky_restart", who="ana", why="the fix")
        h.tick()
        dry = h.run_by_hand(
            request(incident_id="inc-2"), "risky_restart", who="bo", why="preview", dry_run=True
        )
        # One at a time protects a service from two changes at once; a dry run makes none.
        assert dry.event == "approved"
        approved = dry.remediation.history[-1].why  # the guards' reasons, each one
        assert "dry run: api already has remediation" in approved and "a live run would wait" in approved
        h.tick()
        rem = h.executor.log.get(dry.remediation.id)
        assert rem is not None and rem.state is S.SUCCEEDED and rem.dry_run
        assert [dry_run for _, dry_run in w.sent] == [False, True]  # the live restart, then the dry one
        running = h.executor.log.get(live.remediation.id)
        assert running is not None and running.state is S.VERIFYING
        # ... and a dry run under way holds nothing: a live run is not refused because of it.
        assert not rem.model_copy(update={"state": S.VERIFYING}).holds_service


def test_the_guards_let_a_dry_run_past_one_at_a_time_and_say_what_live_would_meet() -> None:
    running = new_remediation(service="api", runbook="two", risk=0, step_count=1, at=T0, by="t", why="w")
    running = running.model_copy(update={"state": S.VERIFYING})
    for dry_run in (False, True):
        rem = new_remediation(
            service="api", runbook="two", risk=0, step_count=1, at=T0, by="t", why="w", dry_run=dry_run
        )
        verdict = Guards(GuardSettings(mode=AutomationMode.ON)).check(GuardInput(rem, T0, active=[running]))
        assert verdict.allowed is dry_run
        if dry_run:
            assert any(r.startswith("dry run: api already has remediation") for r in verdict.reasons)
        else:
            assert verdict.guard == "one_at_a_time"
    # The switch still holds a dry run: "off" is a person's "nothing now".
    rem = new_remediation(
        service="api", runbook="two", risk=0, step_count=1, at=T0, by="t", why="w", dry_run=True
    )
    assert (
        Guards(GuardSettings(mode=AutomationMode.OFF)).check(GuardInput(rem, T0)).guard == "automation_switch"
    )


def test_a_dry_run_by_hand_stays_dry_whatever_the_mode(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        w = World({("error_ratio", "api"): 0.01})
        h = healer(store, w)
        out = h.run_by_hand(request(), "risky_restart", who="ana", why="what would it do", dry_run=True)
        assert out.remediation.dry_run
        h.tick()
        rem = h.executor.log.get(out.remediation.id)
        assert rem is not None and rem.state is S.SUCCEEDED and rem.dry_run
        assert [dry for _, dry in w.sent] == [True]


def test_advice_ranks_the_candidates_and_says_which_bind(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        h = healer(store, World())
        prediction, options = h.advise(request())
        assert prediction.kind == UNKNOWN and "not trained" in prediction.reason
        assert [(o.runbook, o.kind, o.rank, o.bindable, o.tried) for o in options] == [
            ("risky_restart", UNKNOWN, 1, True, False)
        ]
        assert "ranked 1 of 1" in options[0].explanation and options[0].risk == "high"
        # The World has no error ratio for api: the precheck does not hold, which the advice says.
        assert options[0].applies_now is False and "error_ratio" in options[0].precheck
        h.run_by_hand(request(), "risky_restart", who="ana", why="go")
        assert h.advise(request())[1][0].tried


def test_advice_says_whether_a_runbook_applies_now(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        h = healer(store, World({("error_ratio", "api"): 0.3}))
        (option,) = h.advise(request())[1]
        assert option.applies_now is True and option.precheck == 'error_ratio{service="api"} = 0.3 >= 0'
        assert option.as_json()["applies_now"] is True


def test_a_rollback_by_hand_is_learnt_as_a_failure(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        w = World({("error_ratio", "api"): 0.01})
        h = healer(store, w)
        bound = request(version="v2", previous_version="v1")
        rid = h.run_by_hand(bound, "pin_version", who="ana", why="go").remediation.id
        h.tick()
        h.tick()
        rem = h.executor.log.get(rid)
        assert rem is not None and rem.state is S.SUCCEEDED
        out = h.roll_back(rid, who="bo", why="made it worse")
        assert out.remediation.state is S.ROLLED_BACK
        assert [(q.action, q.params["version"]) for q, _ in w.sent] == [("deploy", "v1"), ("deploy", "v2")]
        assert h.knowledge is not None
        stats = h.knowledge.stats("bad_deployment", "pin_version")
        assert (stats.successes, stats.failures) == (0, 1)
