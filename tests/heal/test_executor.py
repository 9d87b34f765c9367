"""The executor on a fake clock with a fake actuator and metrics: success, dry run, rollback on failed
verification, escalation on refusal, approval, and a restart in the middle of a remediation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opsmind.act.base import ActionResult
from opsmind.clock import SimClock
from opsmind.heal.executor import ActionRequest, Executor, MetricCondition, Step
from opsmind.heal.guards import AutomationMode, Guards, GuardSettings
from opsmind.heal.state import RemediationState, step_key
from opsmind.store import SqliteStore
from opsmind.types import AuditEntry

S = RemediationState


@dataclass(frozen=True)
class Rollback:
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeStep:
    name: str
    action: str
    params: Mapping[str, Any] = field(default_factory=dict)
    precheck: MetricCondition | None = None
    verify: MetricCondition | None = MetricCondition("error_rate", "<", 0.05)
    verify_timeout_s: float = 60.0
    rollback: Rollback | None = None


@dataclass
class FakeActuator:
    sent: list[tuple[ActionRequest, bool]] = field(default_factory=list)
    fail: set[str] = field(default_factory=set)

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        self.sent.append((request, dry_run))
        if request.action in self.fail:
            return ActionResult(False, True, f"{request.action} failed", dry_run=dry_run)
        return ActionResult(
            True, False, f"{request.action} done", revert_token=f"undo:{request.action}", dry_run=dry_run
        )


@dataclass
class FakeMetrics:
    values: dict[tuple[str, str], float] = field(default_factory=dict)

    def __call__(self, service: str, metric: str) -> float | None:
        return self.values.get((service, metric))


RUNBOOKS: dict[str, Sequence[Step]] = {
    "restart": [
        FakeStep("restart pods", "rollout_restart", rollback=Rollback("rollout_undo")),
        FakeStep("scale up", "scale", {"replicas": 4}, precheck=MetricCondition("replicas", "<", 10)),
    ],
    "risky": [FakeStep("delete pod", "delete_pod", rollback=Rollback("noop"))],
    "scale": [FakeStep("scale up", "scale", {"replicas": 4}, precheck=MetricCondition("replicas", "<", 10))],
}


@dataclass
class Rig:
    executor: Executor
    clock: SimClock
    actuator: FakeActuator
    metrics: FakeMetrics
    store: SqliteStore


def rig(store: SqliteStore, mode: AutomationMode = AutomationMode.ON, **settings: Any) -> Rig:
    clock, actuator, metrics = SimClock(1_000.0), FakeActuator(), FakeMetrics()
    metrics.values = {("api", "error_rate"): 0.5, ("api", "replicas"): 2.0}
    guards = Guards(GuardSettings(mode=mode, approval_above_risk=2, **settings))
    executor = Executor(
        store, clock, actuator, metrics, lambda name, ctx: RUNBOOKS.get(name), guards, replicas=lambda s: 4
    )
    return Rig(executor, clock, actuator, metrics, store)


def advance(r: Rig, seconds: float) -> float:
    r.clock.set(r.clock.now() + seconds)
    return r.clock.now()


def test_success_runs_every_step_once_and_audits(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        first = r.executor.submit(service="api", runbook="restart", risk=1, incident_id="inc-1")
        assert first.event == "approved" and not first.escalate
        events = [o.event for o in r.executor.tick()]
        assert events == ["started", "sent"]
        assert [o.event for o in r.executor.tick(advance(r, 5))] == []  # still 0.5 errors: keep polling
        r.metrics.values[("api", "error_rate")] = 0.01
        assert [o.event for o in r.executor.tick(advance(r, 5))] == ["verified", "sent"]
        assert [o.event for o in r.executor.tick(advance(r, 5))] == ["succeeded"]
        rem = r.executor.log.get(first.remediation.id)
        assert rem is not None and rem.state is S.SUCCEEDED and rem.finished
        assert rem.rollback_steps == (0,)  # what a person can undo: the restart, not the scale-up
        assert [req.action for req, dry in r.actuator.sent] == ["rollout_restart", "scale"]
        assert not any(dry for _, dry in r.actuator.sent)
        assert r.actuator.sent[0][0].idempotency_key == step_key(rem.id, 0)
        verbs = Counter(a.verb for a in store.find(AuditEntry, limit=100))
        assert verbs == Counter(
            {"send": 2, "sent": 2, "propose": 1, "approved": 1, "started": 1, "verified": 1, "succeeded": 1}
        )
        assert r.executor.tick(advance(r, 5)) == []


def test_dry_run_records_what_it_would_do(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store, AutomationMode.DRY_RUN)
        out = r.executor.submit(service="api", runbook="risky", risk=5)  # approval not asked in a dry run
        assert out.event == "approved"
        events = [o.event for o in r.executor.tick()]
        assert events == ["started", "sent", "succeeded"]
        rem = r.executor.log.get(out.remediation.id)
        assert rem is not None and rem.dry_run and rem.state is S.SUCCEEDED
        assert r.actuator.sent[0][1] is True  # the actuator was told: dry run
        sends = [a for a in store.find(AuditEntry) if a.verb == "send"]
        assert sends[0].detail["action"] == "delete_pod" and sends[0].detail["dry_run"] is True


def test_failed_verification_rolls_back_and_escalates(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        rid = r.executor.submit(service="api", runbook="restart", risk=1).remediation.id
        r.executor.tick()
        assert r.executor.tick(advance(r, 59)) == []
        outcomes = r.executor.tick(advance(r, 1))
        assert [(o.event, o.escalate) for o in outcomes] == [
            ("verification_failed", False),
            ("rolled_back", True),
        ]
        rem = r.executor.log.get(rid)
        assert rem is not None and rem.state is S.ROLLED_BACK and rem.finished and rem.escalations
        assert [req.action for req, _ in r.actuator.sent] == ["rollout_restart", "rollout_undo"]
        assert [t.target for t in r.executor.log.transitions(rid)][-3:] == [
            S.VERIFYING,
            S.FAILED,
            S.ROLLED_BACK,
        ]


def test_failed_rollback_escalates(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        r.actuator.fail = {"rollout_undo"}
        rid = r.executor.submit(service="api", runbook="restart", risk=1).remediation.id
        r.executor.tick()
        out = r.executor.tick(advance(r, 60))
        assert [o.event for o in out] == ["verification_failed", "escalated"] and out[-1].escalate
        rem = r.executor.log.get(rid)
        assert rem is not None and rem.state is S.ESCALATED


def test_precheck_and_action_failures_escalate_once_something_was_sent(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        r.actuator.fail = {"rollout_restart"}
        rid = r.executor.submit(service="api", runbook="restart", risk=1).remediation.id
        out = r.executor.tick()
        assert out[-1].event == "action_failed" and out[-1].escalate
        rem = r.executor.log.get(rid)
        assert rem is not None and rem.state is S.FAILED and rem.finished
    with SqliteStore(str(tmp_path / "h2.db")) as store:
        r = rig(store)
        r.metrics.values[("api", "replicas")] = 50.0  # the second step's precheck will not hold
        rid = r.executor.submit(service="api", runbook="restart", risk=1).remediation.id
        r.executor.tick()
        r.metrics.values[("api", "error_rate")] = 0.0
        out = r.executor.tick(advance(r, 5))
        assert [o.event for o in out] == ["verified", "precheck_failed"] and out[-1].escalate
        assert [req.action for req, _ in r.actuator.sent] == ["rollout_restart"]  # scale never sent
    with SqliteStore(str(tmp_path / "h3.db")) as store:
        # The first step's precheck: nothing was sent, the healer's guess was wrong and it tries its next
        # option (a person hears once nothing is left), so this alone tells nobody.
        r = rig(store)
        r.metrics.values[("api", "replicas")] = 50.0  # its only step's precheck will not hold
        rid = r.executor.submit(service="api", runbook="scale", risk=1).remediation.id
        out = r.executor.tick()
        assert out[-1].event == "precheck_failed" and not any(o.escalate for o in out), out
        assert r.actuator.sent == []
        rem = r.executor.log.get(rid)
        assert rem is not None and rem.state is S.FAILED and rem.finished


def test_refusals_escalate(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store, AutomationMode.OFF)
        out = r.executor.submit(service="api", runbook="restart", risk=1)
        assert (out.event, out.escalate, out.remediation.state) == ("refused", True, S.ESCALATED)
        assert "automation_switch" in out.reason
        assert r.actuator.sent == []


def test_one_at_a_time_and_cooldown_through_the_executor(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store, cooldown_service_s=120.0, cooldown_runbook_s=120.0)
        r.executor.submit(service="api", runbook="restart", risk=1)
        r.executor.tick()  # now verifying: holds the service
        second = r.executor.submit(service="api", runbook="risky", risk=1)
        assert second.event == "refused" and "one_at_a_time" in second.reason
        r.metrics.values[("api", "error_rate")] = 0.0
        r.executor.tick(advance(r, 1))
        r.executor.tick(advance(r, 1))
        third = r.executor.submit(service="api", runbook="risky", risk=1)
        assert third.event == "refused" and "cooldown_service" in third.reason
        advance(r, 121)
        assert r.executor.submit(service="api", runbook="risky", risk=1).event == "approved"


def test_approval_flow_approve_and_reject(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store, cooldown_service_s=0.0, cooldown_runbook_s=0.0)
        waiting = r.executor.submit(service="api", runbook="risky", risk=5)
        assert (waiting.event, waiting.escalate, waiting.remediation.state) == (
            "awaiting_approval",
            True,
            S.PROPOSED,
        )
        assert r.executor.tick() == []  # nothing runs before a person approves
        r.executor.approve(waiting.remediation.id, who="alice", why="seen the graphs")
        assert [o.event for o in r.executor.tick()] == ["started", "sent"]
        other = r.executor.submit(service="db", runbook="risky", risk=5)
        rejected = r.executor.reject(other.remediation.id, who="bob", why="not during the peak")
        assert rejected.state is S.REJECTED and rejected.history[-1].by == "user:bob"
        assert all(req.service == "api" for req, _ in r.actuator.sent)


def test_a_proposal_no_longer_needed_is_withdrawn(tmp_path: Path) -> None:
    # A failover waited for approval after an operator's own restart had cured the cache: three such
    # approvals sat in the list, each of which would only have ended "precheck failed, nothing sent".
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        waiting = r.executor.submit(service="api", runbook="scale", risk=5).remediation
        still = r.executor.submit(service="db", runbook="scale", risk=5).remediation
        r.metrics.values[("db", "replicas")] = 2.0
        r.metrics.values[("api", "replicas")] = 50.0  # its precheck (replicas < 10) no longer holds
        assert r.executor.withdraw_unneeded(advance(r, 30)) == []  # too soon to tell
        (gone,) = r.executor.withdraw_unneeded(advance(r, 31))
        assert gone.id == waiting.id and gone.state is S.ABORTED
        assert "no longer needed" in gone.history[-1].why and "replicas" in gone.history[-1].why
        kept = r.executor.log.get(still.id)
        assert kept is not None and kept.state is S.PROPOSED  # its precheck still holds
        withdrawals = [a for a in store.find(AuditEntry, limit=100) if a.verb == "withdraw"]
        assert [a.subject for a in withdrawals] == [waiting.id]
        assert r.actuator.sent == []


def test_kill_switch_stops_a_running_remediation(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        r = rig(store)
        rid = r.executor.submit(service="api", runbook="restart", risk=1).remediation.id
        r.executor.tick()
        r.executor.guards.settings = GuardSettings(mode=AutomationMode.OFF)
        r.metrics.values[("api", "error_rate")] = 0.0
        out = r.executor.tick(advance(r, 5))
        assert [o.event for o in out] == ["verified", "aborted"] and out[-1].escalate
        assert len(r.actuator.sent) == 1
        rem = r.executor.log.get(rid)
        assert rem is not None and rem.state is S.ABORTED


def test_restart_mid_remediation_neither_repeats_nor_loses_it(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    with SqliteStore(db) as store:
        r = rig(store)
        rid = r.executor.submit(service="api", runbook="restart", risk=1).remediation.id
        # The crash: the key was committed (write ahead), then OpsMind died before the reply was stored.
        crashing = r.executor

        def die(request: ActionRequest, dry_run: bool) -> ActionResult:
            r.actuator.sent.append((request, dry_run))
            raise SystemExit("killed mid-send")

        crashing.actuate = die
        try:
            crashing.tick()
        except SystemExit:
            pass
        sent_before = list(r.actuator.sent)
    assert len(sent_before) == 1
    with SqliteStore(db) as store:  # a new OpsMind on the same file
        r2 = rig(store)
        r2.clock.set(1_010.0)
        rem = r2.executor.log.get(rid)
        assert rem is not None and rem.state is S.EXECUTING and step_key(rid, 0) in rem.sent_keys
        recovered = r2.executor.recover()
        assert [(o.event, o.escalate) for o in recovered] == [("recovery_resume_verification", False)]
        assert r2.executor.tick() == []  # verifying, not sent again
        r2.metrics.values[("api", "error_rate")] = 0.0
        out = r2.executor.tick(advance(r2, 5))
        assert [o.event for o in out] == ["verified", "sent"]
        assert [req.action for req, _ in r2.actuator.sent] == ["scale"]  # step 0 was not repeated
    with SqliteStore(db) as store:  # a second restart while verifying step 1
        r3 = rig(store)
        r3.clock.set(2_000.0)
        r3.metrics.values[("api", "error_rate")] = 0.0
        assert [o.event for o in r3.executor.recover()] == ["recovery_resume_verification"]
        assert [o.event for o in r3.executor.tick()] == ["succeeded"]
        assert r3.actuator.sent == []
        rem = r3.executor.log.get(rid)
        assert rem is not None and rem.state is S.SUCCEEDED
        assert [t.target for t in r3.executor.log.transitions(rid)] == [
            S.PROPOSED,
            S.APPROVED,
            S.EXECUTING,
            S.VERIFYING,
            S.EXECUTING,
            S.VERIFYING,
            S.SUCCEEDED,
        ]


def test_restart_before_send_resumes_the_action_once(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    with SqliteStore(db) as store:
        r = rig(store)
        rid = r.executor.submit(service="api", runbook="risky", risk=1).remediation.id
        rem = r.executor.log.get(rid)
        assert rem is not None
        # Died right after approved -> executing, before the key was written.
        r.executor.log.commit(rem.advance(S.EXECUTING, at=1_000.0, by="t", why="start", started_at=1_000.0))
    with SqliteStore(db) as store:
        r2 = rig(store)
        assert [o.event for o in r2.executor.recover()] == ["recovery_resume_action"]
        assert [o.event for o in r2.executor.tick()] == ["sent"]
        assert [req.action for req, _ in r2.actuator.sent] == ["delete_pod"]
