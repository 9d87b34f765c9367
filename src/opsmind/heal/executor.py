"""The remediation executor: drives a runbook step by step through the persisted lifecycle.

For each step: precheck -> action (through the actuator; in dry-run mode the actuator only says what
it would do) -> verification (a condition on live metrics, polled on every :meth:`Executor.tick` until it
holds or its timeout passes on the injected clock) -> the next step, or ``succeeded`` after the last.
When a verification fails, the failing step's rollback runs (its declared rollback action, else the
actuator's revert token) and the remediation ends ``rolled_back``, or ``escalated`` when the rollback
fails. Steps already verified are kept: they did what they promised. Escalation is asked for (the
``escalate`` flag of an :class:`Outcome`) whenever a guard refuses the healer's proposal, approval is
needed, a step fails (but not a first step's precheck: nothing was sent, the healer tries its next
option), a remediation is aborted, or a rollback fails. A guard's refusal of a person's request is
answered to them and audited, nothing more.

People step in with :meth:`Executor.approve` and :meth:`Executor.reject` (a proposed remediation),
:meth:`Executor.roll_back` (undo the steps an executing, verifying or succeeded remediation sent, with the
same rollback actions a failed verification uses) and :meth:`Executor.submit` with ``requested_by`` (a
runbook run by hand: every guard but approval still applies). A pause of the service or automation
switched off also stops a running remediation before its next step.

The executor is a controller: it holds the clock, the store, the actuator and the metrics reader; every
choice it makes comes from the pure functions of :mod:`opsmind.heal.state` and :mod:`opsmind.heal.guards`
and goes to the audit log with its reason. A step's idempotency key is committed *before* its action is
sent, so a crash can never make it send the action twice (see :mod:`opsmind.heal.state`).

The runbook model plugs in through :class:`Step`: anything with these attributes works.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from opsmind.clock import Clock
from opsmind.heal.guards import AutomationMode, GuardInput, Guards, GuardVerdict
from opsmind.heal.guards import approve as approve_remediation
from opsmind.heal.guards import reject as reject_remediation
from opsmind.heal.state import (
    ROLLBACK_FROM,
    UNFINISHED,
    InvalidTransition,
    Remediation,
    RemediationLog,
    audit,
    new_remediation,
    recover,
    rollback_key,
    step_key,
)
from opsmind.heal.state import RemediationState as S
from opsmind.store import EventStore

MetricsReader = Callable[[str, str], float | None]
"""``(service, metric) -> latest value``, or None when there is no recent value."""


class Check(Protocol):
    """A precheck or verification: does the condition hold for ``service`` now, and what was seen."""

    def __call__(self, metrics: MetricsReader, service: str) -> tuple[bool, str]: ...


class ActionSpec(Protocol):
    """An action by name with parameters, e.g. a step's rollback."""

    @property
    def action(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...


class Step(Protocol):
    """The minimal step the executor needs; the runbook model provides these."""

    @property
    def name(self) -> str: ...

    @property
    def action(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    @property
    def precheck(self) -> Check | None: ...

    @property
    def verify(self) -> Check | None: ...

    @property
    def verify_timeout_s(self) -> float: ...

    @property
    def rollback(self) -> ActionSpec | None: ...


class ActuatorReply(Protocol):
    """What an actuator answers; :class:`opsmind.act.base.ActionResult` has this shape."""

    @property
    def ok(self) -> bool: ...

    @property
    def retryable(self) -> bool: ...

    @property
    def detail(self) -> str: ...

    @property
    def revert_token(self) -> str | None: ...

    @property
    def dry_run(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """One action for the actuator. ``idempotency_key`` lets an actuator that supports it refuse a
    duplicate; a rollback without a declared action is ``action="revert"`` with ``params["revert_token"]``."""

    service: str
    action: str
    params: Mapping[str, Any]
    idempotency_key: str
    remediation_id: str
    step: str


Actuate = Callable[[ActionRequest, bool], ActuatorReply]
"""``(request, dry_run) -> reply``: the act layer's actuators adapted by the engine."""

StepsFor = Callable[[str, Mapping[str, str]], Sequence[Step] | None]
"""``(runbook, context) -> steps``: a runbook bound to the remediation's context (its incident's fields,
persisted with the remediation), so the same steps come back after a restart; None when it is gone."""

PROPOSAL_SETTLE_S = 60.0
"""A proposal awaiting approval is withdrawn once its precheck no longer holds, from this age on: a minute
of the condition it was proposed on has passed, so a "no" now is the problem gone, not the same reading."""

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class MetricCondition:
    """``metric op threshold`` on the service's latest value, e.g. ``error_rate < 0.05``; a missing value
    does not hold."""

    metric: str
    op: str
    threshold: float

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown comparison {self.op!r}; one of {', '.join(_OPS)}")

    def __call__(self, metrics: MetricsReader, service: str) -> tuple[bool, str]:
        value = metrics(service, self.metric)
        if value is None:
            return False, f"{self.metric} of {service} has no recent value"
        ok = _OPS[self.op](value, self.threshold)
        verdict = "holds" if ok else "does not hold"
        return ok, f"{self.metric}={value:g} {self.op} {self.threshold:g} {verdict}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """One thing the executor did to a remediation, why, and whether a person should be told."""

    remediation: Remediation
    event: str
    reason: str
    escalate: bool = False
    guard: str | None = None
    """The guard that refused it (event ``refused``): the healer tells a person of each guard once."""


class RollbackRefused(InvalidTransition):
    """A rollback by hand is not possible now (nothing changed); ``allowed`` lists the states it is
    possible from."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.allowed = tuple(sorted(s.value for s in ROLLBACK_FROM))


@dataclass(frozen=True, slots=True)
class _Failed:
    ok: bool = False
    retryable: bool = False
    detail: str = ""
    revert_token: str | None = None
    dry_run: bool = False


@dataclass
class Executor:
    """Drives remediations; call :meth:`tick` regularly (e.g. every few seconds of the clock's time)."""

    store: EventStore
    clock: Clock
    actuate: Actuate
    metrics: MetricsReader
    runbooks: StepsFor
    guards: Guards = field(default_factory=Guards)
    replicas: Callable[[str], int | None] | None = None
    actor: str = "opsmind.heal"
    max_recovery_age_s: float = 3600.0

    def __post_init__(self) -> None:
        self.log = RemediationLog(self.store)

    # -- proposals and approval ----------------------------------------------------------------------------

    def submit(
        self,
        *,
        service: str,
        runbook: str,
        risk: int,
        incident_id: str | None = None,
        touched_replicas: int = 1,
        why: str = "",
        context: Mapping[str, str] | None = None,
        remediation_id: str | None = None,
        requested_by: str | None = None,
        dry_run: bool = False,
    ) -> Outcome:
        """Propose a remediation and ask the guards: approved automatically, left awaiting a person's
        approval, or refused and escalated. ``context`` (the incident's fields) is persisted with it and
        handed to ``runbooks`` with the runbook's name. ``requested_by``: a person ran it by hand (the
        approval guard lets it pass, the others hold; a refusal is only audited, see
        :meth:`_refuse_request`); ``dry_run``: only a dry run, whatever the mode."""
        why = why or f"runbook {runbook} proposed for {service}"
        by = self.actor if requested_by is None else f"user:{requested_by}"
        rem = self._draft(
            service,
            runbook,
            risk,
            incident_id,
            touched_replicas,
            context,
            why,
            by,
            remediation_id=remediation_id,
            requested_by=requested_by,
            dry_run=dry_run,
        )
        now = rem.at
        # Asked before anything is stored (the guards never count the draft itself): the same verdict as
        # after storing it, and a person's refused request then leaves no remediation behind.
        verdict = self._guard(rem, now)
        if requested_by is not None and not verdict.allowed:
            return self._refuse_request(rem, verdict, by, why, now)
        verb = "propose" if requested_by is None else "run_by_hand"
        self.log.commit(rem, [audit(rem, by, verb, now, reason=why)])
        if verdict.allowed:
            new = rem.advance(S.APPROVED, at=now, by=self.actor, why="; ".join(verdict.reasons))
            return self._commit(new, "approved", verdict.reason, now, reasons=list(verdict.reasons))
        if verdict.awaiting_approval:
            return self._commit(rem, "awaiting_approval", verdict.reason, now, escalate=True)
        return self._refuse(rem, verdict, now)

    def refusal(
        self,
        *,
        service: str,
        runbook: str,
        risk: int,
        incident_id: str | None = None,
        touched_replicas: int = 1,
        context: Mapping[str, str] | None = None,
    ) -> GuardVerdict | None:
        """The guards' refusal of such a remediation if it were proposed now, or None when they would let
        it through or ask a person; nothing is proposed, recorded or sent."""
        rem = self._draft(
            service, runbook, risk, incident_id, touched_replicas, context, "asking", self.actor
        )
        verdict = self._guard(rem, rem.at)
        return None if verdict.allowed or verdict.awaiting_approval else verdict

    def _draft(
        self,
        service: str,
        runbook: str,
        risk: int,
        incident_id: str | None,
        touched_replicas: int,
        context: Mapping[str, str] | None,
        why: str,
        by: str,
        **more: Any,
    ) -> Remediation:
        """A new remediation, proposed now (not recorded); ValueError for an unknown or empty runbook."""
        context = dict(context or {})
        steps = self.runbooks(runbook, context)
        if not steps:
            raise ValueError(f"unknown or empty runbook {runbook!r}")
        return new_remediation(
            service=service,
            runbook=runbook,
            risk=risk,
            step_count=len(steps),
            at=self.clock.now(),
            by=by,
            why=why,
            incident_id=incident_id,
            touched_replicas=touched_replicas,
            context=context,
            rollback_steps=tuple(i for i, step in enumerate(steps) if step.rollback is not None),
            **more,
        )

    def approve(self, remediation_id: str, *, who: str, why: str) -> Remediation:
        return approve_remediation(self.log, remediation_id, who=who, why=why, now=self.clock.now())

    def reject(self, remediation_id: str, *, who: str, why: str) -> Remediation:
        return reject_remediation(self.log, remediation_id, who=who, why=why, now=self.clock.now())

    def withdraw(self, incident_id: str, why: str) -> list[Remediation]:
        """Abort the remediations of ``incident_id`` still awaiting a person's approval (they sent
        nothing): the incident they were proposed for has ended, and a person must not be left an
        approval that would act on a service that has recovered. Audited with the reason."""
        now, out = self.clock.now(), []
        for rem in self.log.in_states([S.PROPOSED]):
            if rem.incident_id != incident_id:
                continue
            new = rem.advance(S.ABORTED, at=now, by=self.actor, why=why)
            out.append(self._commit(new, "withdraw", why, now).remediation)
        return out

    def withdraw_unneeded(self, now: float, min_age_s: float = PROPOSAL_SETTLE_S) -> list[Remediation]:
        """Abort the proposals awaiting a person's approval whose first precheck no longer holds: what they
        were proposed for is gone (the fault ended, another fix or a person's own action cured it), so an
        approval would only end in "precheck failed, nothing sent" - and an approver must not be left a
        list of actions nobody needs. Only proposals older than ``min_age_s`` are looked at (a precheck
        right at the proposal's time says the same as when it was made). Audited with what the precheck
        saw."""
        out: list[Remediation] = []
        for rem in self.log.in_states([S.PROPOSED]):
            if now - rem.created_at < min_age_s or rem.service is None:
                continue
            steps = self.runbooks(rem.runbook, rem.context)
            first = steps[0].precheck if steps else None
            if first is None:
                continue
            ok, seen = self._check(first, rem.service)
            if ok:
                continue
            why = f"no longer needed: its precheck does not hold any more ({seen})"
            new = rem.advance(S.ABORTED, at=now, by=self.actor, why=why)
            out.append(self._commit(new, "withdraw", why, now).remediation)
        return out

    def roll_back(self, remediation_id: str, *, who: str, why: str) -> Outcome:
        """A person rolls back an executing, verifying or succeeded remediation: the rollback of every
        step it sent (its declared rollback action, else the actuator's revert token), last step first,
        each written ahead and never sent twice, as after a failed verification. It ends ``rolled_back``,
        or ``escalated`` when a rollback action fails. Audited with who and why.

        KeyError: unknown; :class:`RollbackRefused`: not in a state to roll back, its runbook changed,
        or no step it sent can be undone (nothing is changed then); ValueError: no who or why."""
        if not who.strip() or not why.strip():
            raise ValueError("a rollback needs who and why")
        rem = self.log.get(remediation_id)
        if rem is None:
            raise KeyError(f"no remediation {remediation_id}")
        if rem.state not in ROLLBACK_FROM:
            allowed = ", ".join(sorted(s.value for s in ROLLBACK_FROM))
            raise RollbackRefused(
                f"remediation {remediation_id} is {rem.state.value}; it can be rolled back when {allowed}"
            )
        steps = self.runbooks(rem.runbook, rem.context)
        if not steps or len(steps) != rem.step_count:
            raise RollbackRefused(
                f"runbook {rem.runbook} is gone or changed since remediation {remediation_id} ran: "
                "its rollback actions are unknown"
            )
        sent = [i for i in range(rem.step_count) if step_key(rem.id, i) in rem.sent_keys]
        undo = [i for i in reversed(sent) if steps[i].rollback is not None or str(i) in rem.revert_tokens]
        if not undo:
            what = "sent no step yet" if not sent else "sent no step that declares a rollback"
            raise RollbackRefused(f"remediation {remediation_id} {what}: nothing to roll back")
        actor, now = f"user:{who}", self.clock.now()
        kept = [
            f"step {i} ({steps[i].name}) declares no rollback; left as it is" for i in sent if i not in undo
        ]
        undone: list[str] = []
        for i in undo:
            step, key = steps[i], rollback_key(rem.id, i)
            if key in rem.sent_keys:  # a rollback interrupted earlier: never sent twice
                failure = f"step {i} ({step.name})'s rollback was already sent; its outcome is unknown"
                return self._rollback_failed(rem, actor, why, failure, undone, now)
            request = self._rollback_request(rem, step, i, key)
            rem = rem.changed(at=now, sent_keys=(*rem.sent_keys, key))
            self.log.commit(rem, [audit(rem, actor, "send_rollback", now, reason=why, **_describe(request))])
            reply = self._send(request, rem.dry_run)
            if not reply.ok:
                failure = f"step {i} ({step.name}) rollback {request.action} failed: {reply.detail}"
                return self._rollback_failed(rem, actor, why, failure, undone, now)
            undone.append(f"step {i} ({step.name}) rolled back with {request.action}: {reply.detail}")
        new = rem.advance(S.ROLLED_BACK, at=now, by=actor, why=why, rollback_pending=False)
        return self._commit(new, "rolled_back", why, now, actor=actor, undone=undone, kept=kept)

    def _rollback_failed(
        self, rem: Remediation, actor: str, why: str, failure: str, undone: list[str], now: float
    ) -> Outcome:
        reason = f"rollback by hand ({why}) stopped: {failure}"
        new = rem.advance(
            S.ESCALATED,
            at=now,
            by=actor,
            why=reason,
            rollback_pending=False,
            escalations=(*rem.escalations, reason),
        )
        return self._commit(new, "rollback_failed", reason, now, escalate=True, actor=actor, undone=undone)

    def recover(self) -> list[Outcome]:
        """After a restart: make half-done remediations safe (see :func:`opsmind.heal.state.recover`);
        :meth:`tick` then drives the resumed ones."""
        done = recover(self.store, self.clock.now(), max_age_s=self.max_recovery_age_s, actor=self.actor)
        return [Outcome(r.remediation, f"recovery_{r.action}", r.reason, r.escalate) for r in done]

    # -- the loop ------------------------------------------------------------------------------------------

    def tick(self, now: float | None = None) -> list[Outcome]:
        """Move every approved or unfinished remediation as far as it can go without waiting."""
        now = self.clock.now() if now is None else now
        out: list[Outcome] = []
        for rem in self.log.in_states([S.APPROVED, *UNFINISHED]):
            out += self._drive(rem, now)
        return out

    def _drive(self, rem: Remediation, now: float) -> list[Outcome]:
        out: list[Outcome] = []
        steps = self.runbooks(rem.runbook, rem.context)
        while not rem.finished:
            if not steps or len(steps) != rem.step_count:
                why = f"runbook {rem.runbook} is gone or changed since the remediation started"
                out.append(self._stop(rem, why, now))
                break
            outcome: Outcome | None
            if rem.state is S.APPROVED:
                outcome = self._start(rem, now)
            elif rem.state is S.EXECUTING:
                outcome = self._act(rem, steps[rem.step_index], now)
            elif rem.state is S.VERIFYING:
                outcome = self._verify(rem, steps[rem.step_index], now)
            elif rem.state is S.FAILED:
                outcome = self._rollback(rem, steps[rem.step_index], now)
            else:
                break
            if outcome is None:
                break
            out.append(outcome)
            rem = outcome.remediation
            if rem.state is S.VERIFYING and not rem.dry_run:
                break  # the service needs time: verification starts on the next tick
        return out

    def _start(self, rem: Remediation, now: float) -> Outcome:
        verdict = self._guard(rem, now)
        if not verdict.allowed:
            return self._refuse(rem, verdict, now)
        new = rem.advance(
            S.EXECUTING,
            at=now,
            by=self.actor,
            why="; ".join(verdict.reasons),
            step_index=0,
            started_at=now,
            dry_run=verdict.dry_run or rem.dry_run,  # a dry run asked for by hand stays one
        )
        return self._commit(new, "started", verdict.reason, now, reasons=list(verdict.reasons))

    def _act(self, rem: Remediation, step: Step, now: float) -> Outcome:
        i, service = rem.step_index, rem.service or ""
        if self.guards.settings.mode is AutomationMode.OFF:
            return self._stop(rem, "automation was switched off; no further step is sent", now)
        hold = self.guards.settings.paused.get(service)
        if hold is not None:
            why = f"{service} paused by {hold.who}: {hold.why}; no further step is sent"
            return self._stop(rem, why, now)
        key = step_key(rem.id, i)
        if key in rem.sent_keys:  # only after an interrupted commit: never send twice
            why = f"step {i} ({step.name}) was already sent; not sent again, verifying its effect"
            new = rem.advance(
                S.VERIFYING,
                at=now,
                by=self.actor,
                why=why,
                verify_timeout_s=step.verify_timeout_s,
                verify_deadline=now + step.verify_timeout_s,
            )
            return self._commit(new, "verifying", why, now)
        if step.precheck is not None:
            ok, seen = self._check(step.precheck, service)
            if not ok:
                why = f"step {i} ({step.name}) precheck failed: {seen}; nothing sent"
                new = rem.advance(
                    S.FAILED, at=now, by=self.actor, why=why, escalations=(*rem.escalations, why)
                )
                # Refused before anything was sent, the guess was wrong (the condition the runbook treats is
                # not there) and the healer goes on to its next option; a person hears of it once nothing is
                # left to try. Only a later step's refusal leaves a half-done remediation to look at.
                return self._commit(new, "precheck_failed", why, now, escalate=bool(rem.sent_keys))
        request = ActionRequest(service, step.action, dict(step.params), key, rem.id, step.name)
        # Write ahead: the key is durable before the action leaves, so no restart can send it again.
        # The verification window is part of the write-ahead record, so a recovery can resume it.
        sending = rem.changed(at=now, sent_keys=(*rem.sent_keys, key), verify_timeout_s=step.verify_timeout_s)
        self.log.commit(sending, [audit(sending, self.actor, "send", now, **_describe(request))])
        reply = self._send(request, rem.dry_run)
        tokens = dict(rem.revert_tokens)
        if reply.revert_token is not None:
            tokens[str(i)] = reply.revert_token
        if not reply.ok:
            why = f"step {i} ({step.name}) action {step.action} failed: {reply.detail}"
            undo = reply.revert_token is not None
            new = sending.advance(
                S.FAILED,
                at=now,
                by=self.actor,
                why=why,
                revert_tokens=tokens,
                rollback_pending=undo,
                escalations=(*rem.escalations, why),
            )
            return self._commit(new, "action_failed", why, now, escalate=not undo, retryable=reply.retryable)
        why = (
            f"step {i} ({step.name}) {'would send' if rem.dry_run else 'sent'} {step.action}: {reply.detail}"
        )
        new = sending.advance(
            S.VERIFYING,
            at=now,
            by=self.actor,
            why=why,
            revert_tokens=tokens,
            verify_timeout_s=step.verify_timeout_s,
            verify_deadline=now + step.verify_timeout_s,
        )
        return self._commit(new, "sent", why, now)

    def _verify(self, rem: Remediation, step: Step, now: float) -> Outcome | None:
        i = rem.step_index
        if rem.dry_run:
            ok, seen = True, "dry run: nothing changed, verification skipped"
        elif step.verify is None:
            ok, seen = True, "the step declares no verification"
        else:
            ok, seen = self._check(step.verify, rem.service or "")
        if ok:
            last = i + 1 >= rem.step_count
            why = f"step {i} ({step.name}) verified: {seen}"
            if last:
                new = rem.advance(S.SUCCEEDED, at=now, by=self.actor, why=why)
                return self._commit(new, "succeeded", why, now)
            new = rem.advance(S.EXECUTING, at=now, by=self.actor, why=why, step_index=i + 1)
            return self._commit(new, "verified", why, now)
        deadline = rem.verify_deadline if rem.verify_deadline is not None else now
        if now < deadline:
            return None  # keep polling on later ticks
        why = f"step {i} ({step.name}) verification timed out after {rem.verify_timeout_s:g}s: {seen}"
        undo = step.rollback is not None or str(i) in rem.revert_tokens
        new = rem.advance(
            S.FAILED,
            at=now,
            by=self.actor,
            why=why,
            rollback_pending=undo,
            escalations=(*rem.escalations, why),
        )
        return self._commit(new, "verification_failed", why, now, escalate=not undo)

    def _rollback(self, rem: Remediation, step: Step, now: float) -> Outcome:
        i = rem.step_index
        key = rollback_key(rem.id, i)
        if key in rem.sent_keys:
            return self._stop(rem, f"step {i}'s rollback was already sent; its outcome is unknown", now)
        request = self._rollback_request(rem, step, i, key)
        sending = rem.changed(at=now, sent_keys=(*rem.sent_keys, key))
        self.log.commit(sending, [audit(sending, self.actor, "send_rollback", now, **_describe(request))])
        reply = self._send(request, rem.dry_run)
        if reply.ok:
            why = f"step {i} ({step.name}) rolled back with {request.action}: {reply.detail}"
            new = sending.advance(S.ROLLED_BACK, at=now, by=self.actor, why=why, rollback_pending=False)
            return self._commit(new, "rolled_back", why, now, escalate=True)
        why = f"step {i} ({step.name}) rollback {request.action} failed: {reply.detail}"
        return self._stop(sending, why, now)

    # -- helpers -------------------------------------------------------------------------------------------

    def _rollback_request(self, rem: Remediation, step: Step, i: int, key: str) -> ActionRequest:
        """Step ``i``'s undo: its declared rollback action, else a revert with the actuator's token."""
        service = rem.service or ""
        if step.rollback is not None:
            return ActionRequest(
                service, step.rollback.action, dict(step.rollback.params), key, rem.id, step.name
            )
        token = rem.revert_tokens[str(i)]
        return ActionRequest(service, "revert", {"revert_token": token}, key, rem.id, step.name)

    def _guard(self, rem: Remediation, now: float) -> GuardVerdict:
        settings = self.guards.settings
        replicas = self.replicas(rem.service or "") if self.replicas is not None else None
        inp = GuardInput(
            remediation=rem,
            now=now,
            replicas=replicas,
            recent=self.log.changed_since(now - settings.longest_window_s),
            active=self.log.in_states(UNFINISHED, service=rem.service),
        )
        return self.guards.check(inp)

    def _refuse(self, rem: Remediation, verdict: GuardVerdict, now: float) -> Outcome:
        why = f"refused by {verdict.guard}: {verdict.reason}"
        new = rem.advance(S.ESCALATED, at=now, by=self.actor, why=why, escalations=(*rem.escalations, why))
        outcome = self._commit(new, "refused", why, now, escalate=True, guard=verdict.guard)
        return replace(outcome, guard=verdict.guard)

    def _refuse_request(
        self, rem: Remediation, verdict: GuardVerdict, by: str, asked: str, now: float
    ) -> Outcome:
        """A person's request (run by hand) that a guard refuses: audited (the request and the refusal,
        under the id it would have had), nothing stored in the remediation log and nobody paged. Stored,
        it stayed ``escalated`` - "a person is needed" - for a refusal the asking person hears at once,
        and listed beside the remediations that are real work; the healer's own refusals are stored and
        escalated because there a person has to be told. The outcome carries the unstored draft."""
        why = f"refused by {verdict.guard}: {verdict.reason}"
        self.store.put_many(
            [
                audit(rem, by, "run_by_hand", now, reason=asked, recorded=False),
                audit(rem, self.actor, "refused", now, reason=why, guard=verdict.guard, recorded=False),
            ]
        )
        return Outcome(rem, "refused", why, escalate=False, guard=verdict.guard)

    def _stop(self, rem: Remediation, why: str, now: float) -> Outcome:
        """End a remediation that cannot go on: aborted before anything is undone, escalated after."""
        target = S.ESCALATED if rem.state is S.FAILED else S.ABORTED
        new = rem.advance(
            target,
            at=now,
            by=self.actor,
            why=why,
            rollback_pending=False,
            escalations=(*rem.escalations, why),
        )
        return self._commit(new, target.value, why, now, escalate=True)

    def _commit(
        self,
        rem: Remediation,
        event: str,
        why: str,
        now: float,
        *,
        escalate: bool = False,
        actor: str | None = None,
        **detail: Any,
    ) -> Outcome:
        who = self.actor if actor is None else actor
        self.log.commit(rem, [audit(rem, who, event, now, reason=why, escalate=escalate, **detail)])
        return Outcome(rem, event, why, escalate)

    def _check(self, check: Check, service: str) -> tuple[bool, str]:
        try:
            return check(self.metrics, service)
        except Exception as exc:  # a broken metrics source must fail the check, not the executor
            return False, f"the check raised {type(exc).__name__}: {exc}"

    def _send(self, request: ActionRequest, dry_run: bool) -> ActuatorReply:
        try:
            return self.actuate(request, dry_run)
        except Exception as exc:  # an actuator bug is a failed action whose effect is unknown
            return _Failed(detail=f"the actuator raised {type(exc).__name__}: {exc}", dry_run=dry_run)


def _describe(request: ActionRequest) -> dict[str, Any]:
    return {
        "action": request.action,
        "params": dict(request.params),
        "idempotency_key": request.idempotency_key,
        "step_name": request.step,
    }
