"""Each safety guard on its own, the chain's order, and the approval flow with who and why."""

from __future__ import annotations

import pytest

from opsmind.heal.guards import (
    AutomationMode,
    GuardInput,
    Guards,
    GuardSettings,
    RateLimit,
    approval,
    approve,
    automation_switch,
    blast_radius,
    cooldown,
    one_at_a_time,
    rate_limit,
    reject,
)
from opsmind.heal.state import (
    InvalidTransition,
    Remediation,
    RemediationLog,
    RemediationState,
    new_remediation,
)
from opsmind.store import SqliteStore
from opsmind.types import AuditEntry

S = RemediationState
NOW = 10_000.0


def rem(
    service: str = "api", runbook: str = "restart", risk: int = 1, touched: int = 1, **kw: object
) -> Remediation:
    r = new_remediation(
        service=service,
        runbook=runbook,
        risk=risk,
        step_count=1,
        at=NOW,
        by="t",
        why="w",
        touched_replicas=touched,
    )
    return r.model_copy(update=kw)


def done(
    service: str = "api", runbook: str = "restart", started: float = NOW - 100, ended: float = NOW - 50
) -> Remediation:
    return rem(service, runbook, state=S.SUCCEEDED, started_at=started, ended_at=ended, sent_keys=("step-0",))


def test_kill_switch() -> None:
    assert automation_switch(AutomationMode.OFF) == (False, "automation is switched off")
    assert automation_switch(AutomationMode.DRY_RUN)[0]
    assert automation_switch(AutomationMode.ON)[0]


def test_one_at_a_time() -> None:
    me = rem()
    running = rem(state=S.VERIFYING, started_at=NOW - 5)
    assert not one_at_a_time(me, [running])[0]
    assert one_at_a_time(me, [rem(service="db", state=S.EXECUTING)])[0]
    assert one_at_a_time(me, [me.model_copy(update={"state": S.EXECUTING})])[0]  # itself does not count
    assert not one_at_a_time(me, [rem(state=S.FAILED, rollback_pending=True)])[0]
    assert one_at_a_time(me, [rem(state=S.FAILED)])[0]  # failed with nothing to undo is finished


def test_blast_radius() -> None:
    assert blast_radius(rem(touched=2), replicas=4, max_pct=50.0, min_replicas=1)[0]
    ok, reason = blast_radius(rem(touched=3), replicas=4, max_pct=50.0, min_replicas=1)
    assert not ok and "75%" in reason
    assert blast_radius(rem(touched=1), replicas=1, max_pct=50.0, min_replicas=1)[0]  # the minimum
    assert not blast_radius(rem(touched=1), replicas=1, max_pct=50.0, min_replicas=0)[0]  # strict
    assert not blast_radius(rem(touched=2), replicas=None, max_pct=50.0, min_replicas=1)[0]  # unknown


def test_cooldown_per_service_and_per_runbook() -> None:
    me = rem()
    last = [done(ended=NOW - 50)]
    assert not cooldown(me, last, NOW, 60.0, same_runbook=False)[0]
    assert cooldown(me, last, NOW, 40.0, same_runbook=False)[0]
    other_runbook = [done(runbook="scale_up", ended=NOW - 50)]
    assert not cooldown(me, other_runbook, NOW, 60.0, same_runbook=False)[0]
    assert cooldown(me, other_runbook, NOW, 600.0, same_runbook=True)[0]
    assert not cooldown(me, last, NOW, 600.0, same_runbook=True)[0]
    assert cooldown(me, [done(service="db")], NOW, 600.0, same_runbook=False)[0]
    never_started = [rem(state=S.REJECTED, ended_at=NOW - 1)]
    assert cooldown(me, never_started, NOW, 600.0, same_runbook=False)[0]
    # Its precheck said no and nothing was sent: nothing changed, nothing to cool down from.
    refused = [rem(state=S.FAILED, started_at=NOW - 10, ended_at=NOW - 10)]
    assert cooldown(me, refused, NOW, 600.0, same_runbook=True)[0]


def test_a_dry_run_holds_up_dry_runs_only() -> None:
    # A person's dry run changed nothing; it escalated the real remediation that followed ("cooling down").
    dry = [done(ended=NOW - 50).model_copy(update={"dry_run": True})]
    assert cooldown(rem(), dry, NOW, 600.0, same_runbook=True)[0]
    assert not cooldown(rem(dry_run=True), dry, NOW, 600.0, same_runbook=True)[0]  # as live ones would
    limit = RateLimit(1, 3600.0)
    assert rate_limit(rem(), dry, NOW, limit, per_service=True)[0]
    assert not rate_limit(rem(dry_run=True), dry, NOW, limit, per_service=True)[0]
    live = [done(ended=NOW - 50)]
    assert not cooldown(rem(dry_run=True), live, NOW, 600.0, same_runbook=True)[0]


def test_rate_limits_per_service_and_global() -> None:
    me = rem()
    limit = RateLimit(2, 3600.0)
    two_here = [done(started=NOW - 100), done(started=NOW - 200)]
    assert not rate_limit(me, two_here, NOW, limit, per_service=True)[0]
    assert rate_limit(me, two_here[:1], NOW, limit, per_service=True)[0]
    old = [done(started=NOW - 4000), done(started=NOW - 3700)]
    assert rate_limit(me, old, NOW, limit, per_service=True)[0]  # outside the window
    elsewhere = [done(service="db", started=NOW - 10), done(service="web", started=NOW - 10)]
    assert rate_limit(me, elsewhere, NOW, limit, per_service=True)[0]
    assert not rate_limit(me, elsewhere, NOW, limit, per_service=False)[0]
    # Prechecks that said no sent nothing: they do not use up the limit (the demo paged for three such).
    looked = [rem(state=S.FAILED, started_at=NOW - t, ended_at=NOW - t) for t in (10, 20, 30)]
    assert rate_limit(me, looked, NOW, limit, per_service=True)[0]
    under_way = [rem(state=S.EXECUTING, started_at=NOW - 5), done(started=NOW - 100)]
    assert not rate_limit(me, under_way, NOW, limit, per_service=True)[0]  # not finished: it counts


def test_approval_predicate() -> None:
    assert approval(rem(risk=1), above_risk=1)[0]
    ok, reason = approval(rem(risk=3), above_risk=1)
    assert not ok and "approval required" in reason
    approved = rem(risk=3).advance(S.APPROVED, at=NOW, by="user:alice", why="looks right")
    ok, reason = approval(approved, above_risk=1)
    assert ok and "user:alice" in reason


def chain(**settings: object) -> Guards:
    return Guards(GuardSettings(mode=AutomationMode.ON, **settings))  # type: ignore[arg-type]


def test_chain_returns_the_first_refusal_and_asks_for_escalation() -> None:
    me = rem(touched=3, risk=5)
    busy = [rem(state=S.EXECUTING, started_at=NOW - 1)]
    v = chain().check(GuardInput(me, NOW, replicas=4, active=busy, recent=busy))
    assert (v.allowed, v.guard, v.escalate) == (False, "one_at_a_time", True)
    v = chain().check(GuardInput(me, NOW, replicas=4))
    assert v.guard == "blast_radius"
    v = chain(cooldown_service_s=0.0, cooldown_runbook_s=0.0).check(GuardInput(rem(risk=5), NOW, replicas=4))
    assert v.guard == "approval" and v.awaiting_approval and v.escalate
    v = chain(approval_above_risk=9).check(GuardInput(rem(), NOW, replicas=4, recent=[done()]))
    assert v.guard == "cooldown_service"
    v = Guards(GuardSettings(mode=AutomationMode.OFF)).check(GuardInput(rem(), NOW))
    assert (v.allowed, v.guard) == (False, "automation_switch")


def test_chain_allows_and_dry_run_skips_approval() -> None:
    v = chain(approval_above_risk=9).check(GuardInput(rem(), NOW, replicas=4))
    assert v.allowed and not v.escalate and not v.dry_run and len(v.reasons) == 9
    dry = Guards(GuardSettings(mode=AutomationMode.DRY_RUN, approval_above_risk=0))
    v = dry.check(GuardInput(rem(risk=3), NOW, replicas=4))
    assert v.allowed and v.dry_run and any("not asked" in r for r in v.reasons)


def test_settings_validation() -> None:
    with pytest.raises(ValueError):
        GuardSettings(blast_radius_pct=150.0)
    with pytest.raises(ValueError):
        RateLimit(1, 0.0)
    assert GuardSettings(rate_global=RateLimit(5, 7200.0)).longest_window_s == 7200.0


def test_approve_and_reject_record_who_and_why() -> None:
    with SqliteStore(":memory:") as store:
        log = RemediationLog(store)
        a = log.commit(rem(risk=3))
        b = log.commit(rem(risk=3))
        approved = approve(log, a.id, who="alice", why="checked the dashboards", now=NOW + 1)
        rejected = reject(log, b.id, who="bob", why="peak traffic", now=NOW + 2)
        assert approved.state is S.APPROVED and rejected.state is S.REJECTED
        assert log.transitions(a.id)[-1].by == "user:alice"
        assert log.transitions(b.id)[-1].why == "peak traffic"
        verbs = {(e.verb, e.actor, e.detail["reason"]) for e in store.find(AuditEntry)}
        assert verbs == {
            ("approve", "user:alice", "checked the dashboards"),
            ("reject", "user:bob", "peak traffic"),
        }
        with pytest.raises(InvalidTransition):
            approve(log, b.id, who="alice", why="changed my mind", now=NOW + 3)
        with pytest.raises(ValueError):
            approve(log, a.id, who="", why="x", now=NOW)
        with pytest.raises(KeyError):
            reject(log, "nope", who="bob", why="x", now=NOW)
