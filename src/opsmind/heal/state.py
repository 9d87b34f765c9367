"""The persisted lifecycle of a remediation, and how it is recovered after OpsMind restarts.

A remediation runs one runbook against one service::

    proposed -> approved -> executing -> verifying -> executing (next step) ... -> succeeded
                                  \\            \\-> failed -> rolled_back | escalated
                                   \\-> failed
    proposed -> rejected (a person said no) | escalated (a guard refused) | aborted (withdrawn: its
                incident ended, or a trained classifier superseded it)
    approved -> escalated (a guard refused at start) | aborted
    executing | verifying -> aborted (recovery found it too old to resume)
    executing | verifying | succeeded -> rolled_back | escalated (a person rolled it back by hand; escalated
                                         when a rollback action failed)

The allowed moves are data (:data:`TRANSITIONS`); :meth:`Remediation.advance` is a pure function that
refuses any other move. ``failed`` is final when nothing needs undoing, otherwise it waits for its rollback
(``rollback_pending``) and ends ``rolled_back`` or, when the rollback fails or its outcome is unknown,
``escalated``.

Persistence goes through the :class:`~opsmind.store.EventStore`: the current :class:`Remediation` is one
record (replaced on every change) and every transition is a separate :class:`RemediationTransition` record
with a deterministic id (``<remediation id>:<sequence>``), written in the same transaction, so the
transition log is append-only and survives ``kill -9`` together with the snapshot.

**The at-most-once rule.** Before the executor hands a step's action to the actuator it records the step's
idempotency key (:func:`step_key`) in ``sent_keys`` and commits it. A key in ``sent_keys`` therefore means
"the action may have reached the target", and nothing ever sends an action whose key is recorded. After a
restart, :func:`recover` applies :func:`recovery_decision` to every unfinished remediation:

- ``executing`` and the step's key not recorded: the action was never sent, so it is resumed (sent now,
  for the first time);
- ``executing`` and the key recorded: the action is not sent again; the remediation moves to
  ``verifying`` and its effect is verified as if the action had succeeded;
- ``verifying``: verification resumes with a fresh window (``now + verify_timeout_s``), because the time
  OpsMind was down says nothing about whether the service recovered;
- ``failed`` with a rollback pending: the rollback is resumed if its key is not recorded, otherwise it is
  not sent again and the remediation is escalated (its outcome is unknown);
- anything whose last change is older than ``max_age_s``: aborted (or escalated when a rollback is
  pending) and escalated to a person, since the incident it was meant for has moved on.

``proposed`` and ``approved`` remediations have sent nothing and are left as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from opsmind.store import EventStore
from opsmind.types import AuditEntry, Record


class RemediationState(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    EXECUTING = "executing"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    REJECTED = "rejected"
    ABORTED = "aborted"
    ESCALATED = "escalated"


S = RemediationState

TRANSITIONS: Mapping[RemediationState, frozenset[RemediationState]] = {
    S.PROPOSED: frozenset({S.APPROVED, S.REJECTED, S.ESCALATED, S.ABORTED}),
    S.APPROVED: frozenset({S.EXECUTING, S.ESCALATED, S.ABORTED}),
    S.EXECUTING: frozenset({S.VERIFYING, S.FAILED, S.ABORTED, S.ROLLED_BACK, S.ESCALATED}),
    S.VERIFYING: frozenset({S.EXECUTING, S.SUCCEEDED, S.FAILED, S.ABORTED, S.ROLLED_BACK, S.ESCALATED}),
    S.FAILED: frozenset({S.ROLLED_BACK, S.ESCALATED}),
    S.SUCCEEDED: frozenset({S.ROLLED_BACK, S.ESCALATED}),  # a person's rollback by hand
    S.ROLLED_BACK: frozenset(),
    S.REJECTED: frozenset(),
    S.ABORTED: frozenset(),
    S.ESCALATED: frozenset(),
}
"""Every allowed move; anything not listed is refused."""

TERMINAL: frozenset[RemediationState] = frozenset(
    {S.SUCCEEDED, S.ROLLED_BACK, S.REJECTED, S.ABORTED, S.ESCALATED}
)
"""Nothing more happens to these on their own; only a person's rollback moves a succeeded one on."""
ROLLBACK_FROM: frozenset[RemediationState] = frozenset({S.EXECUTING, S.VERIFYING, S.SUCCEEDED})
"""States from which a person may roll a remediation back by hand (the steps it sent are undone)."""
UNFINISHED: frozenset[RemediationState] = frozenset({S.EXECUTING, S.VERIFYING, S.FAILED})
"""States in which a remediation may have changed the service and is not done with it."""


class InvalidTransition(ValueError):
    """The lifecycle does not allow this move; nothing was changed."""


def can_transition(source: RemediationState, target: RemediationState) -> tuple[bool, str]:
    """Whether ``source -> target`` is allowed, and why (a pure decision)."""
    if target in TRANSITIONS[source]:
        return True, f"{source.value} -> {target.value} is allowed"
    allowed = ", ".join(sorted(s.value for s in TRANSITIONS[source])) or "nothing (final state)"
    return False, f"{source.value} -> {target.value} is not allowed; from {source.value}: {allowed}"


def step_key(remediation_id: str, step_index: int) -> str:
    """The idempotency key of a step's action: recorded before the action is sent, never sent twice."""
    return f"{remediation_id}:step{step_index}:action"


def rollback_key(remediation_id: str, step_index: int) -> str:
    """The idempotency key of a step's rollback."""
    return f"{remediation_id}:step{step_index}:rollback"


class Transition(BaseModel):
    """One move of the lifecycle: from where to where, when, by whom and why."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: RemediationState | None = Field(description="None for the creation of the remediation")
    target: RemediationState
    at: float
    by: str
    why: str
    step_index: int = 0


class Remediation(Record):
    """One runbook run against one service for one incident; replaced in the store on every change."""

    kind: ClassVar[str] = "remediation"

    incident_id: str | None = None
    runbook: str
    risk: int = Field(ge=0, description="the runbook's risk level; approval is required above a threshold")
    step_count: int = Field(ge=1)
    step_index: int = Field(0, ge=0, description="the step being run (or last run)")
    state: RemediationState = RemediationState.PROPOSED
    history: tuple[Transition, ...] = ()
    sent_keys: tuple[str, ...] = Field(default=(), description="idempotency keys of actions maybe sent")
    revert_tokens: dict[str, str] = Field(default_factory=dict, description="step index -> revert token")
    rollback_steps: tuple[int, ...] = Field(
        default=(), description="the steps whose runbook declares a rollback (what a person can undo)"
    )
    touched_replicas: int = Field(1, ge=0, description="replicas the runbook touches at once")
    dry_run: bool = False
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    verify_timeout_s: float = 0.0
    verify_deadline: float | None = None
    rollback_pending: bool = False
    escalations: tuple[str, ...] = Field(default=(), description="why a person was asked to step in")
    context: dict[str, str] = Field(
        default_factory=dict, description="the incident's fields the runbook was bound to (for recovery)"
    )
    requested_by: str | None = Field(
        None, description="the person who ran it by hand (their request stands in for an approval)"
    )

    @property
    def status_value(self) -> str:
        """The EventStore indexes the lifecycle state as the record's status."""
        return self.state.value

    @property
    def finished(self) -> bool:
        """Nothing more will happen to it: a final state, or ``failed`` with nothing to undo."""
        return self.state in TERMINAL or (self.state is S.FAILED and not self.rollback_pending)

    @property
    def holds_service(self) -> bool:
        """It is changing its service now (the one-at-a-time guard counts these); a dry run changes
        nothing, so it holds nothing."""
        return self.state in UNFINISHED and not self.finished and not self.dry_run

    def advance(
        self, target: RemediationState, *, at: float, by: str, why: str, **changes: Any
    ) -> Remediation:
        """The remediation after moving to ``target``; raises :class:`InvalidTransition` if not allowed."""
        ok, reason = can_transition(self.state, target)
        if not ok:
            raise InvalidTransition(f"remediation {self.id}: {reason}")
        step = changes.get("step_index", self.step_index)
        move = Transition(source=self.state, target=target, at=at, by=by, why=why, step_index=step)
        update: dict[str, Any] = {"state": target, "at": at, "history": (*self.history, move), **changes}
        if target in TERMINAL or (target is S.FAILED and not changes.get("rollback_pending", False)):
            update.setdefault("ended_at", at)
        return self.model_copy(update=update)

    def changed(self, *, at: float, **changes: Any) -> Remediation:
        """The remediation with fields changed but no state move (e.g. a key recorded before sending)."""
        return self.model_copy(update={"at": at, **changes})


def new_remediation(
    *,
    service: str,
    runbook: str,
    risk: int,
    step_count: int,
    at: float,
    by: str,
    why: str,
    incident_id: str | None = None,
    touched_replicas: int = 1,
    remediation_id: str | None = None,
    context: dict[str, str] | None = None,
    requested_by: str | None = None,
    dry_run: bool = False,
    rollback_steps: tuple[int, ...] = (),
) -> Remediation:
    """A freshly proposed remediation whose history starts with its creation; ``requested_by`` names the
    person who ran it by hand, ``dry_run`` asks for a dry run whatever the automation mode."""
    created = Transition(source=None, target=S.PROPOSED, at=at, by=by, why=why)
    extra = {} if remediation_id is None else {"id": remediation_id}
    return Remediation(
        at=at,
        service=service,
        incident_id=incident_id,
        runbook=runbook,
        risk=risk,
        step_count=step_count,
        touched_replicas=touched_replicas,
        created_at=at,
        history=(created,),
        context=dict(context or {}),
        requested_by=requested_by,
        dry_run=dry_run,
        rollback_steps=rollback_steps,
        **extra,
    )


class RemediationTransition(Record):
    """One transition as its own record: the append-only log beside the replaced snapshot."""

    kind: ClassVar[str] = "remediation_transition"

    remediation_id: str
    seq: int
    transition: Transition

    @property
    def status_value(self) -> str:
        return self.transition.target.value


def audit(rem: Remediation, actor: str, verb: str, at: float, **detail: Any) -> AuditEntry:
    """An audit entry about ``rem``: who or what (actor), did what (verb), why and with which evidence."""
    base = {"state": rem.state.value, "step": rem.step_index, "runbook": rem.runbook, "dry_run": rem.dry_run}
    return AuditEntry(
        at=at, service=rem.service, actor=actor, verb=verb, subject=rem.id, detail={**base, **detail}
    )


class RemediationLog:
    """Remediations in an :class:`EventStore`: snapshot, transition log and audit entries written together."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def commit(self, rem: Remediation, audits: Iterable[AuditEntry] = ()) -> Remediation:
        """Durably store ``rem``, its latest transition and ``audits`` in one transaction; return ``rem``.

        Rewriting the latest transition is harmless: its id and content are the same every time."""
        seq = len(rem.history) - 1
        records: list[Record] = [rem, *audits]
        if seq >= 0:
            records.append(
                RemediationTransition(
                    id=f"{rem.id}:{seq:06d}",
                    at=rem.history[-1].at,
                    service=rem.service,
                    remediation_id=rem.id,
                    seq=seq,
                    transition=rem.history[-1],
                )
            )
        self.store.put_many(records)
        return rem

    def get(self, remediation_id: str) -> Remediation | None:
        return self.store.get(Remediation, remediation_id)

    def transitions(self, remediation_id: str) -> list[Transition]:
        """The stored transition log of one remediation, oldest first."""
        out: list[Transition] = []
        while (rec := self.store.get(RemediationTransition, f"{remediation_id}:{len(out):06d}")) is not None:
            out.append(rec.transition)
        return out

    def in_states(
        self, states: Iterable[RemediationState], service: str | None = None, limit: int = 1000
    ) -> list[Remediation]:
        """Remediations currently in any of ``states``, oldest change first."""
        found: list[Remediation] = []
        for state in states:
            found += self.store.find(Remediation, service=service, status=state.value, limit=limit)
        return sorted(found, key=lambda r: (r.at, r.id))

    def changed_since(
        self, since: float, service: str | None = None, limit: int = 10_000
    ) -> list[Remediation]:
        """Remediations last changed at or after ``since`` (every one started since then is among them)."""
        return self.store.find(Remediation, service=service, since=since, limit=limit)


RecoveryAction = Literal["resume_action", "resume_verification", "resume_rollback", "abort", "escalate"]


def recovery_decision(rem: Remediation, now: float, max_age_s: float) -> tuple[RecoveryAction | None, str]:
    """What to do with ``rem`` after a restart (see the module docstring), and why; None: leave it."""
    if rem.finished or rem.state not in UNFINISHED:
        return None, f"{rem.state.value}: nothing was left half done"
    age = now - rem.at
    key = step_key(rem.id, rem.step_index)
    if rem.state is S.FAILED:
        if age > max_age_s:
            return "escalate", f"rollback pending for {age:.0f}s > {max_age_s:.0f}s; a person decides"
        if rollback_key(rem.id, rem.step_index) in rem.sent_keys:
            return "escalate", "the rollback was sent before the restart, its outcome unknown; not sent again"
        return "resume_rollback", "the rollback was never sent; sending it now is the first time"
    if age > max_age_s:
        return "abort", f"left {rem.state.value} for {age:.0f}s > {max_age_s:.0f}s; too old to resume"
    if rem.state is S.EXECUTING and key not in rem.sent_keys:
        return (
            "resume_action",
            f"step {rem.step_index}'s action was never sent; sending it now is the first time",
        )
    if rem.state is S.EXECUTING:
        return "resume_verification", (
            f"step {rem.step_index}'s action was recorded as sent; it is never sent again, "
            "its effect is verified"
        )
    return (
        "resume_verification",
        f"step {rem.step_index} was verifying; verification resumes with a fresh window",
    )


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`recover` did with one remediation."""

    remediation: Remediation
    action: RecoveryAction
    reason: str
    escalate: bool


def recover(
    store: EventStore, now: float, *, max_age_s: float = 3600.0, actor: str = "opsmind.recovery"
) -> list[Recovery]:
    """Find remediations a restart left half done and make them safe to continue (see the module
    docstring); every decision is persisted with the remediation and audited. The executor then drives
    the resumed ones on its next tick."""
    log = RemediationLog(store)
    out: list[Recovery] = []
    for rem in log.in_states(UNFINISHED):
        action, reason = recovery_decision(rem, now, max_age_s)
        if action is None:
            continue
        new = _apply_recovery(rem, action, reason, now, actor)
        log.commit(new, [audit(new, actor, f"recovery_{action}", now, reason=reason)])
        out.append(Recovery(new, action, reason, escalate=action in ("abort", "escalate")))
    return out


def _apply_recovery(rem: Remediation, action: RecoveryAction, why: str, now: float, by: str) -> Remediation:
    if action == "abort":
        return rem.advance(S.ABORTED, at=now, by=by, why=why, escalations=(*rem.escalations, why))
    if action == "escalate":
        return rem.advance(
            S.ESCALATED, at=now, by=by, why=why, rollback_pending=False, escalations=(*rem.escalations, why)
        )
    if action == "resume_verification":
        deadline = now + rem.verify_timeout_s
        if rem.state is S.EXECUTING:
            return rem.advance(S.VERIFYING, at=now, by=by, why=why, verify_deadline=deadline)
        return rem.changed(at=now, verify_deadline=deadline)
    return rem.changed(at=now)


def describe(history: Sequence[Transition]) -> list[str]:
    """The history in words, one line per transition (for logs and the API)."""
    return [
        f"{t.at:.0f} {t.source.value if t.source else '(new)'} -> {t.target.value} by {t.by}: {t.why}"
        for t in history
    ]
