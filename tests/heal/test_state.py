"""The remediation lifecycle: every allowed and forbidden move, persistence, and restart recovery."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from opsmind.heal.state import (
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    Remediation,
    RemediationLog,
    RemediationState,
    can_transition,
    new_remediation,
    recover,
    recovery_decision,
    rollback_key,
    step_key,
)
from opsmind.store import SqliteStore
from opsmind.types import AuditEntry

S = RemediationState
ALL_PAIRS = list(itertools.product(S, S))


def rem_in(state: RemediationState, **changes: object) -> Remediation:
    base = new_remediation(service="api", runbook="restart", risk=1, step_count=2, at=100.0, by="t", why="w")
    return base.model_copy(update={"state": state, **changes})


@pytest.mark.parametrize(("source", "target"), [p for p in ALL_PAIRS if p[1] in TRANSITIONS[p[0]]])
def test_every_allowed_transition_is_taken_and_recorded(
    source: RemediationState, target: RemediationState
) -> None:
    rem = rem_in(source)
    new = rem.advance(target, at=200.0, by="alice", why="because")
    assert new.state is target
    assert new.at == 200.0
    assert new.history[-1].source is source and new.history[-1].target is target
    assert (new.history[-1].by, new.history[-1].why) == ("alice", "because")
    assert can_transition(source, target)[0]


@pytest.mark.parametrize(("source", "target"), [p for p in ALL_PAIRS if p[1] not in TRANSITIONS[p[0]]])
def test_every_forbidden_transition_is_refused(source: RemediationState, target: RemediationState) -> None:
    rem = rem_in(source)
    with pytest.raises(InvalidTransition, match="not allowed"):
        rem.advance(target, at=200.0, by="alice", why="no")
    ok, reason = can_transition(source, target)
    assert not ok and source.value in reason


def test_lifecycle_shape() -> None:
    assert TERMINAL == {S.SUCCEEDED, S.ROLLED_BACK, S.REJECTED, S.ABORTED, S.ESCALATED}
    assert S.ROLLED_BACK in TRANSITIONS[S.FAILED]
    assert rem_in(S.FAILED).finished  # nothing to undo
    assert not rem_in(S.FAILED, rollback_pending=True).finished
    assert rem_in(S.VERIFYING).holds_service and not rem_in(S.APPROVED).holds_service


def test_transitions_are_persisted_append_only(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "h.db")) as store:
        log = RemediationLog(store)
        rem = log.commit(rem_in(S.PROPOSED))
        for target in (S.APPROVED, S.EXECUTING, S.VERIFYING, S.SUCCEEDED):
            rem = log.commit(rem.advance(target, at=rem.at + 1, by="x", why=f"to {target.value}"))
        stored = log.transitions(rem.id)
    with SqliteStore(str(tmp_path / "h.db")) as store:
        log = RemediationLog(store)
        again = log.get(rem.id)
        assert again is not None and again.state is S.SUCCEEDED and again.ended_at == rem.at
        assert [t.target for t in log.transitions(rem.id)] == [
            S.PROPOSED,
            S.APPROVED,
            S.EXECUTING,
            S.VERIFYING,
            S.SUCCEEDED,
        ]
        assert log.transitions(rem.id) == stored == list(again.history)
        assert [r.id for r in log.in_states([S.SUCCEEDED], service="api")] == [rem.id]


def test_recovery_decisions() -> None:
    rid = rem_in(S.EXECUTING).id
    sent = (step_key(rid, 0),)
    cases = [
        (rem_in(S.PROPOSED), None),
        (rem_in(S.APPROVED), None),
        (rem_in(S.SUCCEEDED), None),
        (rem_in(S.EXECUTING, id=rid), "resume_action"),
        (rem_in(S.EXECUTING, id=rid, sent_keys=sent), "resume_verification"),
        (rem_in(S.VERIFYING, id=rid, sent_keys=sent), "resume_verification"),
        (rem_in(S.FAILED, id=rid, rollback_pending=True), "resume_rollback"),
        (rem_in(S.FAILED, id=rid, rollback_pending=True, sent_keys=(rollback_key(rid, 0),)), "escalate"),
        (rem_in(S.FAILED, id=rid), None),
    ]
    for rem, expected in cases:
        assert recovery_decision(rem, now=110.0, max_age_s=3600)[0] == expected, rem.state
    assert recovery_decision(rem_in(S.VERIFYING), now=100.0 + 7200, max_age_s=3600)[0] == "abort"


def test_recover_persists_and_audits_its_decisions(tmp_path: Path) -> None:
    db = str(tmp_path / "h.db")
    with SqliteStore(db) as store:
        log = RemediationLog(store)
        sent = rem_in(S.EXECUTING, verify_timeout_s=30.0)
        sent = log.commit(sent.model_copy(update={"sent_keys": (step_key(sent.id, 0),)}))
        verifying = log.commit(rem_in(S.VERIFYING, verify_timeout_s=30.0, verify_deadline=130.0))
        stale = log.commit(rem_in(S.EXECUTING, at=10.0))
    with SqliteStore(db) as store:
        done = {r.remediation.id: r for r in recover(store, now=1000.0, max_age_s=950.0)}
        log = RemediationLog(store)
        after_sent = log.get(sent.id)
        assert after_sent is not None and after_sent.state is S.VERIFYING
        assert after_sent.verify_deadline == 1030.0
        after_verifying = log.get(verifying.id)
        assert after_verifying is not None and after_verifying.verify_deadline == 1030.0
        after_stale = log.get(stale.id)
        assert after_stale is not None and after_stale.state is S.ABORTED and done[stale.id].escalate
        audits = store.find(AuditEntry, limit=10)
        assert {a.verb for a in audits} == {"recovery_resume_verification", "recovery_abort"}
