"""The self-healing loop: an incident in, a classified, ranked, planned and guarded remediation out.

:meth:`Healer.handle` takes one incident as the healer sees it (:class:`HealRequest`: the service it is
filed under, what was observed, the fields its runbooks may use) and

1. classifies the fault kind (:class:`~opsmind.heal.classify.FaultClassifier`, calibrated, ``unknown``
   when unsure);
2. lists the runbooks treating that kind which this incident has not tried yet, ranks them with the
   :class:`~opsmind.heal.knowledge.Recommender` (expected success from past outcomes, risk, cost);
3. binds the best one that can be bound to the incident's fields (:func:`~opsmind.heal.plan.plan`;
   one whose template names a field nobody could find is skipped, with the reason) and submits it to
   the :class:`~opsmind.heal.executor.Executor`, whose guards approve it, hold it for a person or refuse
   it.

When the predicted kind has no untried runbook left, the classifier's next likeliest kinds follow (a
second opinion is what an engineer tries when the first fix did not help), and the ``unknown``
runbooks come last. When the classifier is unsure and the request says no user is affected
(``impact``), nothing is chosen yet: the decision is ``waiting`` and the caller asks again with more
evidence (a blip that harms nobody is not worth a guess). When users are affected, the best guess is
tried, but the recommender is then cautious and prefers low-risk runbooks.

:meth:`Healer.tick` drives the executor and learns: an outcome goes to the
:class:`~opsmind.heal.knowledge.KnowledgeBase` under the fault kind the runbook was chosen for, so the
next incident of that kind ranks its runbooks by what worked. Success means the *incident* ended, not
only that the runbook's own verification held: a remediation that failed or was rolled back is a failure
at once; one that verified is held until :meth:`Healer.resolved` says the incident is over (a success)
or the same incident asks for another remediation: then it is a success only if its verification still
holds (what it fixed stayed fixed, and something else keeps the incident going, e.g. a second fault),
else a failure (it did not end the problem). So a mitigation should verify on the symptom a cure would
remove, not on partial relief. A runbook
that verified may run again for the same incident when it would act on other targets (its fields have
other values, e.g. another busiest service; at most ``MAX_RUNS_PER_RUNBOOK`` runs), one that failed may
not. One whose first precheck said no sent nothing: it teaches nothing and may be offered again later
(the condition may not hold *yet*), up to ``MAX_PRECHECK_REFUSALS`` times.
Every outcome that asks for a person goes to ``escalate``, but a guard's refusal only once per incident
and guard (see :meth:`Healer._news`): the incident is asked about again while it lasts, and the same
rate limit or cooldown refusing again tells a person nothing new. A refusal that says "not now" (a
cooldown, a rate limit, a pause, the automation switch, another remediation running:
``TEMPORARY_GUARDS``) does not give the runbook up; while the guard that refused would refuse again, the
runbook is held (:attr:`HealDecision.held`: nothing proposed) and runs once it clears. A blast-radius
refusal gives it up (its reach on this service is the problem) and the next option is tried.

The steps of a remediation are planned from its persisted context (the incident's fields, the fault kind
and its own id), so after a restart :meth:`Healer.recover` plans them again and the executor carries on.

People override the choice: :meth:`Healer.advise` shows what :meth:`Healer.handle` would weigh (the
classification and every candidate runbook ranked with the recommender's explanation, whether it can be
bound and whether it was tried); :meth:`Healer.run_by_hand` submits the runbook a person chose, bound
the same way, as a remediation requested by them (every guard but approval holds);
:meth:`Healer.roll_back` undoes a remediation's steps and learns that it did not help.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from opsmind.clock import Clock
from opsmind.heal.classify import UNKNOWN, FaultClassifier, IncidentObservation, Prediction
from opsmind.heal.executor import Actuate, Executor, Outcome
from opsmind.heal.guards import TEMPORARY_GUARDS, Guards
from opsmind.heal.knowledge import Candidate, Choice, KnowledgeBase, Recommender
from opsmind.heal.plan import PlanError, PlannedStep, plan
from opsmind.heal.runbook import REMEDIATIONS_RUNNING_METRIC, Reader, Runbook, by_fault_kind, load_library
from opsmind.heal.state import UNFINISHED, Remediation
from opsmind.heal.state import RemediationState as S
from opsmind.store import EventStore

RISK_LEVEL = {"low": 0, "medium": 1, "high": 2}
"""A runbook's risk as the remediation's integer risk (the approval guard compares it)."""
MIN_ALTERNATIVE_P = 0.05
"""Kinds less likely than this are not tried as second opinions."""
MAX_RUNS_PER_RUNBOOK = 3
"""A runbook that verified may run again for the same incident (e.g. scale out again) up to this often."""
MAX_PRECHECK_REFUSALS = 3
"""A runbook whose first precheck keeps saying no when it is to start (it held when the runbook was chosen)
is not offered a fourth time on that incident."""
OPENED_AT = "incident_opened_at"
"""The context key (persisted with the remediation) of its incident's opening, so the levels from before
the incident are the same ones when its steps are planned again after a restart."""

LevelBefore = Callable[[str, dict[str, str], float], float | None]
"""``(metric, labels, t) -> level``: a series' usual level before ``t`` (the engine's: the median of the
quarter hour before, the largest among the matching series, as ``read`` takes the largest)."""


@dataclass(frozen=True, slots=True)
class HealRequest:
    """An incident as the healer sees it."""

    incident_id: str
    service: str
    observation: IncidentObservation
    fields: Mapping[str, str]
    impact: bool = True
    """Users are affected now (an SLO is breaching, a service is down): worth acting on a best guess."""
    opened_at: float | None = None
    """When the incident opened: its runbooks' ``baseline`` comparisons read the levels from before then
    (None: not known, their absolute thresholds decide alone)."""


@dataclass(frozen=True, slots=True)
class HealDecision:
    """What the healer made of one request: the classification, the ranked runbooks, the one chosen and
    what the executor said about it (None when nothing could be chosen), and why others were skipped."""

    incident_id: str
    service: str
    at: float
    prediction: Prediction
    kind: str
    choices: tuple[Choice, ...]
    runbook: str | None
    outcome: Outcome | None
    skipped: tuple[str, ...] = ()
    waiting: bool = False
    """Nothing was chosen *yet*: the kind is unclear and nobody is affected, so ask again later."""
    held: str | None = None
    """``runbook`` was not proposed: a guard that already refused it for this incident (a person was
    told) would refuse it again now, so it waits for the guard to clear ("guard: reason")."""
    deferred: tuple[str, ...] = ()
    """Runbooks passed over because their first precheck does not hold now, which may be offered when it
    does: with no runbook chosen, something may still be done later, so ask again."""

    @property
    def explanation(self) -> str:
        head = f"classified {self.prediction.reason}"
        if self.waiting:
            return f"{head}; not acting on a guess while no user is affected: observing further"
        if self.runbook is None:
            later = f"; {', '.join(self.deferred)} may apply later" if self.deferred else ""
            return (
                f"{head}; no runbook could be chosen"
                + (f" ({'; '.join(self.skipped)})" if self.skipped else "")
                + later
            )
        chosen = next((c.explanation for c in self.choices if c.runbook == self.runbook), self.runbook)
        if self.held is not None:
            return f"{head}; treating it as {self.kind}: {chosen}; held by {self.held} (asked again later)"
        return f"{head}; treating it as {self.kind}: {chosen}"


class RunbookNotBound(PlanError):
    """A runbook chosen by hand cannot be bound to the incident: ``missing`` names the fields it lacks."""

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


@dataclass(frozen=True, slots=True)
class RunbookOption:
    """One candidate runbook for an incident, as a person choosing one sees it."""

    runbook: str
    kind: str
    rank: int
    utility: float
    p_success: float
    risk: str
    description: str
    explanation: str
    bindable: bool
    problem: str | None
    tried: bool
    applies_now: bool | None = None
    """Whether its first precheck holds now (None when it cannot be bound); the healer itself passes over
    a runbook that does not apply, a person may still run it (the precheck then refuses, nothing sent)."""
    precheck: str = ""
    """What the first precheck saw."""

    def as_json(self) -> dict[str, object]:
        return {
            "runbook": self.runbook,
            "kind": self.kind,
            "rank": self.rank,
            "utility": self.utility,
            "p_success": self.p_success,
            "risk": self.risk,
            "description": self.description,
            "explanation": self.explanation,
            "bindable": self.bindable,
            "problem": self.problem,
            "tried": self.tried,
            "applies_now": self.applies_now,
            "precheck": self.precheck,
        }


@dataclass
class Healer:
    """Classify, rank, plan and run remediations (see the module docstring)."""

    store: EventStore
    clock: Clock
    classifier: FaultClassifier
    actuate: Actuate
    read: Reader
    knowledge: KnowledgeBase | None = None
    library: Mapping[str, Runbook] | None = None
    guards: Guards = field(default_factory=Guards)
    recommender: Recommender | None = None
    replicas: Callable[[str], int | None] | None = None
    escalate: Callable[[Outcome], None] | None = None
    actor: str = "opsmind.heal"
    before: LevelBefore | None = None
    """Where the runbooks' ``baseline`` comparisons read the level before the incident (None: nowhere,
    their absolute thresholds decide alone)."""

    def __post_init__(self) -> None:
        self.knowledge = self.knowledge or KnowledgeBase(self.store)
        self.recommender = self.recommender or Recommender(self.knowledge)
        self.runbooks: Mapping[str, Runbook] = self.library if self.library is not None else load_library()
        # An actuator that names the actions it can carry out (``actions``; none named: any) rules out the
        # runbooks needing another, rollbacks included: on Kubernetes a failover or a node drain would only
        # fail, be learned as a failure of that runbook, and delay the one that could have worked.
        can: frozenset[str] | None = getattr(self.actuate, "actions", None)
        self.unsupported: dict[str, frozenset[str]] = {
            name: rb.actions - can
            for name, rb in self.runbooks.items()
            if can is not None and not rb.actions <= can
        }
        self._by_kind = by_fault_kind(
            {name: rb for name, rb in self.runbooks.items() if name not in self.unsupported}
        )
        self._max_cost = max((r.cost for r in self.runbooks.values()), default=1.0) or 1.0
        self.executor = Executor(
            self.store,
            self.clock,
            self.actuate,
            lambda service, metric: self.read(metric, {"service": service}),
            self._steps,
            self.guards,
            replicas=self.replicas,
            actor=self.actor,
        )
        self._plans: dict[str, list[PlannedStep]] = {}
        # incident -> runbook -> {the values of the fields it was bound to: whether that run verified}
        self.tried: dict[str, dict[str, dict[Signature, bool]]] = {}
        self._verified: dict[str, Remediation] = {}  # incident -> its last verified remediation
        self._refusals: dict[tuple[str, str], int] = {}  # (incident, runbook) -> prechecks that said no
        self._told_refused: dict[str, set[str]] = {}  # incident -> guards whose refusal a person heard of
        self.decisions: list[HealDecision] = []

    # -- incidents in ------------------------------------------------------------------------------------

    def classify(self, observation: IncidentObservation) -> Prediction:
        if not self.classifier.ready:
            return Prediction(UNKNOWN, 0.0, (), "the fault classifier is not trained yet")
        return self.classifier.predict(observation)

    def handle(self, request: HealRequest) -> HealDecision:
        """Choose and submit the next remediation for ``request``'s incident (see the module docstring)."""
        now = self.clock.now()
        earlier = self._verified.pop(request.incident_id, None)
        if earlier is not None:
            holds, seen = self._still_holds(earlier)
            if holds:  # what it fixed stayed fixed: the incident goes on for another reason
                self._record(earlier, True, f"its verification still holds ({seen}); the incident went on")
            else:
                self._record(earlier, False, f"it verified, but the incident went on and now {seen}")
        prediction = self.classify(request.observation)
        if prediction.kind == UNKNOWN and not request.impact:
            waiting = HealDecision(
                request.incident_id, request.service, now, prediction, UNKNOWN, (), None, None, waiting=True
            )
            self.decisions.append(waiting)
            return waiting
        tried = self.tried.setdefault(request.incident_id, {})
        skipped: list[str] = []
        deferred: list[str] = []
        first: tuple[str, tuple[Choice, ...]] | None = None
        for kind, confidence in _kinds_to_try(prediction):
            candidates = [
                Candidate(rb.name, rb.risk, rb.cost / self._max_cost)
                for rb in self._by_kind.get(kind, [])
                if _may_run(tried.get(rb.name, {}), _signature(rb, request.fields))
            ]
            if not candidates:
                continue
            assert self.recommender is not None
            choices = tuple(self.recommender.rank(kind, candidates, confidence))
            first = first or (kind, choices)
            for choice in choices:
                runbook = self.runbooks[choice.runbook]
                context = self._context(request, kind)
                try:
                    steps = plan(
                        runbook, context, self._reader_for(""), self.clock.now, self._before(context)
                    )
                except PlanError as exc:
                    skipped.append(str(exc))
                    tried.setdefault(runbook.name, {})[_signature(runbook, request.fields)] = False
                    continue
                applies, seen = _first_precheck(steps)
                if not applies:
                    # Its condition is not there now: proposed, it would wait for a person only to be
                    # withdrawn, or run only to end "precheck failed, nothing sent". The next option is
                    # weighed instead. Nothing was tried, so it stays a candidate for when the condition
                    # comes; while the incident lasts it is asked again (and a person is not told that
                    # nothing is left to try because nothing applies yet).
                    skipped.append(f"{runbook.name} does not apply now: {seen}")
                    deferred.append(runbook.name)
                    continue
                held = self._held(request, runbook, context)
                outcome: Outcome | None = None
                if held is None:
                    # False until it verifies (see _finished)
                    tried.setdefault(runbook.name, {})[_signature(runbook, request.fields)] = False
                    outcome = self._submit(
                        request, runbook, context, f"{prediction.reason}; {choice.explanation}"
                    )
                    if outcome.event == "refused" and outcome.guard in TEMPORARY_GUARDS:
                        self._forget_try(outcome.remediation)  # "not now", not "not this": it may run later
                decision = HealDecision(
                    request.incident_id,
                    request.service,
                    now,
                    prediction,
                    kind,
                    choices,
                    runbook.name,
                    outcome,
                    tuple(skipped),
                    held=held,
                    deferred=tuple(deferred),
                )
                return self._decided(decision)
        kind, choices = first or (prediction.kind, ())
        decision = HealDecision(
            request.incident_id,
            request.service,
            now,
            prediction,
            kind,
            choices,
            None,
            None,
            tuple(skipped),
            deferred=tuple(deferred),
        )
        return self._decided(decision)

    def _submit(
        self,
        request: HealRequest,
        runbook: Runbook,
        fields: Mapping[str, str],
        why: str,
        requested_by: str | None = None,
        dry_run: bool = False,
    ) -> Outcome:
        rid = uuid.uuid4().hex
        return self.executor.submit(
            service=request.service,
            runbook=runbook.name,
            risk=RISK_LEVEL[runbook.risk],
            incident_id=request.incident_id,
            touched_replicas=self._touched(request.service, runbook),
            why=why,
            context={**fields, "remediation_id": rid},
            remediation_id=rid,
            requested_by=requested_by,
            dry_run=dry_run,
        )

    def _touched(self, service: str, runbook: Runbook) -> int:
        """Replicas the runbook's widest step touches at once on ``service`` (for the blast radius)."""
        replicas = self.replicas(service) if self.replicas is not None else None
        share = max((s.blast_radius or 0.0 for s in runbook.steps), default=0.0)
        # Rounded down, as Kubernetes rounds a rollout's maxUnavailable: a step that may touch half of 3
        # replicas touches 1 at a time, not 2 (and always at least one).
        return max(1, math.floor(share * replicas)) if replicas else 1

    def _held(self, request: HealRequest, runbook: Runbook, fields: Mapping[str, str]) -> str | None:
        """ "guard: reason" when a guard that already refused a remediation of this incident (a person
        was told) would refuse ``runbook`` now, and it is one that clears with time or a person's word
        (:data:`TEMPORARY_GUARDS`). Then nothing is proposed: each ask while a cooldown or a rate limit
        lasts would otherwise leave one more refused remediation in the log, and the runbook waits
        instead of being given up for a limit that says "not now"."""
        told = self._told_refused.get(request.incident_id)
        if not told:
            return None
        verdict = self.executor.refusal(
            service=request.service,
            runbook=runbook.name,
            risk=RISK_LEVEL[runbook.risk],
            incident_id=request.incident_id,
            touched_replicas=self._touched(request.service, runbook),
            context=fields,
        )
        if verdict is None or verdict.guard not in TEMPORARY_GUARDS or verdict.guard not in told:
            return None
        return f"{verdict.guard}: {verdict.reason}"

    # -- people ------------------------------------------------------------------------------------------

    def advise(self, request: HealRequest) -> tuple[Prediction, list[RunbookOption]]:
        """The classification of ``request``'s incident and every runbook :meth:`handle` would weigh for
        it, per kind in the order it tries them, each ranked by the recommender with its explanation,
        whether it binds to the incident's fields and whether it was tried on this incident already."""
        prediction = self.classify(request.observation)
        tried = self.tried.get(request.incident_id, {})
        out: list[RunbookOption] = []
        seen: set[str] = set()
        for kind, confidence in _kinds_to_try(prediction):
            books = [rb for rb in self._by_kind.get(kind, []) if rb.name not in seen]
            if not books:
                continue
            assert self.recommender is not None
            candidates = [Candidate(rb.name, rb.risk, rb.cost / self._max_cost) for rb in books]
            for choice in self.recommender.rank(kind, candidates, confidence):
                runbook = self.runbooks[choice.runbook]
                seen.add(runbook.name)
                context = self._context(request, kind)
                applies: bool | None = None
                saw = ""
                try:
                    steps = plan(
                        runbook, context, self._reader_for(""), self.clock.now, self._before(context)
                    )
                    applies, saw = _first_precheck(steps)
                    problem = None
                except PlanError as exc:
                    problem = str(exc)
                out.append(
                    RunbookOption(
                        runbook.name,
                        kind,
                        choice.rank,
                        choice.utility,
                        choice.p_success,
                        runbook.risk,
                        runbook.description,
                        choice.explanation,
                        problem is None,
                        problem,
                        runbook.name in tried,
                        applies,
                        saw,
                    )
                )
        return prediction, out

    def run_by_hand(
        self, request: HealRequest, runbook_name: str, *, who: str, why: str, dry_run: bool = False
    ) -> Outcome:
        """Submit the runbook a person chose for ``request``'s incident, bound to its fields as
        :meth:`handle` binds them, as a remediation requested by ``who``: the approval guard lets it
        pass, every other guard holds (a refusal is the outcome ``refused``, audited, nothing stored).

        KeyError: no such runbook; :class:`RunbookNotBound`: a field it needs is missing;
        ValueError: no who or why, or an action the actuator cannot carry out."""
        if not who.strip() or not why.strip():
            raise ValueError("running a runbook by hand needs who and why")
        runbook = self.runbooks.get(runbook_name)
        if runbook is None:
            raise KeyError(f"no runbook {runbook_name!r}")
        lacking = self.unsupported.get(runbook_name)
        if lacking:
            raise ValueError(
                f"runbook {runbook_name!r} needs {', '.join(sorted(lacking))}, which the heal actuator "
                "cannot carry out"
            )
        prediction = self.classify(request.observation)
        treats = [k for k, _ in _kinds_to_try(prediction) if k in runbook.fault_kinds]
        kind = treats[0] if treats else runbook.fault_kinds[0]
        context = self._context(request, kind)
        try:
            plan(runbook, context, self.read, self.clock.now)  # only whether it binds: no levels read
        except PlanError as exc:
            missing = sorted(f for f in runbook.fields if context.get(f) is None)
            raise RunbookNotBound(str(exc), missing) from exc
        outcome = self._submit(
            request, runbook, context, f"run by hand by {who}: {why}", requested_by=who, dry_run=dry_run
        )
        if outcome.event != "refused":  # refused, it sent nothing: it may still be chosen later
            runs = self.tried.setdefault(request.incident_id, {}).setdefault(runbook.name, {})
            runs[_signature(runbook, request.fields)] = False  # until it verifies (see _finished)
        return outcome

    def roll_back(self, remediation_id: str, *, who: str, why: str) -> Outcome:
        """A person rolls a remediation back (:meth:`Executor.roll_back`); what was undone did not help,
        which the knowledge base learns (a live run only). Errors as :meth:`Executor.roll_back`."""
        outcome = self.executor.roll_back(remediation_id, who=who, why=why)
        rem = outcome.remediation
        self._plans.pop(rem.id, None)
        if rem.incident_id is not None and self._verified.get(rem.incident_id, rem).id == rem.id:
            self._verified.pop(rem.incident_id, None)
        if not rem.dry_run and rem.started_at is not None:
            self._record(rem, False, f"rolled back by {who}: {why}")
        if outcome.escalate:
            self._escalate(outcome)
        return outcome

    def _decided(self, decision: HealDecision) -> HealDecision:
        self.decisions.append(decision)
        if decision.outcome is not None and decision.outcome.escalate:
            self._escalate(decision.outcome)
        return decision

    # -- the loop ----------------------------------------------------------------------------------------

    def busy(self, service: str | None = None) -> bool:
        """A remediation is approved or under way (on ``service``, or anywhere); a failed one counts only
        while its rollback is pending (one that failed before sending anything is done)."""
        live = self.executor.log.in_states([S.APPROVED, *UNFINISHED], service=service)
        return any(not r.finished for r in live)

    def busy_with(self, incident_id: str) -> bool:
        """A remediation of ``incident_id`` is approved or under way (see :meth:`busy`)."""
        live = self.executor.log.in_states([S.APPROVED, *UNFINISHED])
        return any(not r.finished and r.incident_id == incident_id for r in live)

    def awaiting_person(self, incident_id: str, since: float) -> bool:
        """A remediation of ``incident_id`` proposed at ``since`` or later waits for a person's approval."""
        return any(
            r.incident_id == incident_id and r.created_at >= since
            for r in self.executor.log.in_states([S.PROPOSED])
        )

    def tick(self) -> list[Outcome]:
        """Drive every remediation one step further; learn from the ones that ended; withdraw the
        proposals no longer needed. A withdrawn runbook stays tried for its incident: forgotten, the next
        ask proposed it again at once (the classification had not changed), to be withdrawn a minute
        later, over and over, each time asking a person; a relapse after the incident resolved is a new
        incident and may have it again."""
        for rem in self.executor.withdraw_unneeded(self.clock.now()):
            self._plans.pop(rem.id, None)
        outcomes = self.executor.tick()
        for outcome in outcomes:
            rem = outcome.remediation
            if rem.finished:
                self._plans.pop(rem.id, None)
                self._finished(rem)
            if outcome.escalate:
                self._escalate(outcome)
        return outcomes

    def reconsider(self, why: str) -> list[Remediation]:
        """Withdraw every proposal still awaiting a person's approval and forget it was tried: it sent
        nothing, and the next ask weighs it afresh beside what the healer knows now. For when what the
        proposals were chosen by has changed (a trained classifier replacing an untrained one, whose
        every kind was unknown and whose only candidates were risky restarts waiting for a person)."""
        withdrawn: list[Remediation] = []
        for incident_id in {r.incident_id for r in self.executor.log.in_states([S.PROPOSED])}:
            if incident_id is None:
                continue
            for rem in self._withdraw(incident_id, why):
                withdrawn.append(rem)
                self._forget_try(rem)
        return withdrawn

    def _withdraw(self, incident_id: str, why: str) -> list[Remediation]:
        """The executor's withdrawal of the incident's proposals, with their cached plans dropped."""
        withdrawn = self.executor.withdraw(incident_id, why)
        for rem in withdrawn:
            self._plans.pop(rem.id, None)
        return withdrawn

    def resolved(self, incident_id: str) -> list[Remediation]:
        """The incident is over: its last verified remediation ended it (a success to learn from), and
        its proposals still awaiting a person are withdrawn (returned). A backfill opens and resolves
        incidents in a burst, and a proposal decided while its incident resolved stayed on the approval
        list for good."""
        withdrawn = self._withdraw(incident_id, f"incident {incident_id} resolved before approval")
        rem = self._verified.pop(incident_id, None)
        if rem is not None:
            self._record(rem, True, "the incident ended after it")
        self.tried.pop(incident_id, None)
        for key in [k for k in self._refusals if k[0] == incident_id]:
            del self._refusals[key]
        self._told_refused.pop(incident_id, None)  # a relapse is news: its refusals are told again
        return withdrawn

    def fixed(
        self,
        incident_id: str,
        since: float = 0.0,
        changed_after: Callable[[str, float], bool] | None = None,
    ) -> tuple[frozenset[str], frozenset[str]]:
        """The services of ``incident_id`` on which a remediation verified and whose verification still
        holds now, as ``(cured, mitigated)``: cured by a runbook that removes the cause, or only relieved
        by a mitigation (:attr:`~opsmind.heal.runbook.Runbook.mitigation`), which leaves the cause - a
        service in both counts as cured. What is left of the incident is elsewhere than the cured ones.
        ``since``: the incident's opening (remediations that ended before it are not looked at).
        ``changed_after(service, t)``: whether the service was changed (deployed, reconfigured, a model
        swapped) after ``t``; a cure that ended before such a change is stale - the check it verified may
        still hold while the change broke something else (a bad deploy that fails requests after a
        latency fix), so the service is looked at again."""
        cured: set[str] = set()
        mitigated: set[str] = set()
        for rem in self.executor.log.changed_since(since):
            if rem.incident_id != incident_id or rem.state is not S.SUCCEEDED or rem.dry_run:
                continue
            if rem.service is None:  # a remediation always names its service; the record allows none
                continue
            runbook = self.runbooks.get(rem.runbook)
            if runbook is None or not self._still_holds(rem)[0]:
                continue
            ended = rem.ended_at if rem.ended_at is not None else rem.at
            if changed_after is not None and changed_after(rem.service, ended):
                continue
            (mitigated if runbook.mitigation else cured).add(rem.service)
        return frozenset(cured), frozenset(mitigated - cured)

    def recover(self) -> list[Outcome]:
        """After a restart: the executor makes half-done remediations safe; their steps are planned
        again from their persisted context on the next tick."""
        return self.executor.recover()

    def _finished(self, rem: Remediation) -> None:
        if rem.dry_run or rem.started_at is None:
            return
        if rem.state is S.FAILED and not rem.sent_keys and rem.incident_id is not None:
            self._refused(rem)
            return
        if rem.state is not S.SUCCEEDED or rem.incident_id is None:
            self._record(rem, rem.state is S.SUCCEEDED, rem.history[-1].why if rem.history else "")
            return
        runbook = self.runbooks.get(rem.runbook)
        if runbook is not None:
            runs = self.tried.setdefault(rem.incident_id, {}).setdefault(rem.runbook, {})
            runs[_signature(runbook, rem.context)] = True
        self._verified[rem.incident_id] = rem

    def _still_holds(self, rem: Remediation) -> tuple[bool, str]:
        """Whether the condition that verified ``rem`` (its last step's) holds now, without its hold-for."""
        runbook = self.runbooks.get(rem.runbook)
        if runbook is None:
            return False, f"runbook {rem.runbook!r} is no longer loaded"
        try:
            steps = plan(runbook, rem.context, self.read, self.clock.now, self._before(rem.context))
        except PlanError as exc:
            return False, str(exc)
        check = steps[-1].verify if steps else None
        if check is None:
            return False, "it has no verification"
        return check.condition.evaluate(self.read)

    def _refused(self, rem: Remediation) -> None:
        """Its first precheck said no when it was to start (it held when it was chosen) and nothing was
        sent: no evidence about the runbook, so nothing is learned, and the condition may hold again
        (a pool still filling up), so it may be tried again on this incident, at most
        ``MAX_PRECHECK_REFUSALS`` times."""
        assert rem.incident_id is not None
        key = (rem.incident_id, rem.runbook)
        self._refusals[key] = self._refusals.get(key, 0) + 1
        if self._refusals[key] < MAX_PRECHECK_REFUSALS:
            self._forget_try(rem)

    def _forget_try(self, rem: Remediation) -> None:
        """``rem`` sent nothing: its runbook, bound as it was, may be chosen again for its incident."""
        runbook = self.runbooks.get(rem.runbook)
        runs = self.tried.get(rem.incident_id or "", {}).get(rem.runbook)
        if runbook is not None and runs is not None:
            runs.pop(_signature(runbook, rem.context), None)

    def _record(self, rem: Remediation, success: bool, note: str) -> None:
        if self.knowledge is None:
            return
        took = (
            None
            if rem.ended_at is None or not success
            else max(0.0, self.clock.now() - (rem.started_at or 0.0))
        )
        self.knowledge.record(
            rem.context.get("fault_kind", UNKNOWN),
            rem.runbook,
            success,
            at=self.clock.now(),
            recovery_s=took,
            incident_id=rem.incident_id,
            note=note,
        )

    def _escalate(self, outcome: Outcome) -> None:
        if self._news(outcome) and self.escalate is not None:  # _news also notes who refused
            self.escalate(outcome)

    def _news(self, outcome: Outcome) -> bool:
        """Whether a person should hear of ``outcome``. A guard's refusal is told once per incident and
        guard: the incident is asked about again every few minutes while it lasts, each ask tries its next
        runbook or service, and the same rate limit, cooldown or blast radius refuses it again - a page
        each time would page a person over and over for one thing they already know. Another guard's
        refusal is news (what stands in the way changed); one they heard of earlier in the incident is
        not, so two guards taking turns do not page on every turn. Forgotten when the incident resolves
        (:meth:`resolved`), so a relapse is told again. Every refusal stays in the audit log (the
        executor's ``refused`` entry of its remediation); only the page is spared."""
        rem = outcome.remediation
        if outcome.event != "refused" or outcome.guard is None or rem.incident_id is None:
            return True
        told = self._told_refused.setdefault(rem.incident_id, set())
        if outcome.guard in told:
            return False
        told.add(outcome.guard)
        return True

    # -- runbooks bound to a remediation -----------------------------------------------------------------

    def _steps(self, name: str, context: Mapping[str, str]) -> Sequence[PlannedStep] | None:
        """The executor's view of a runbook: planned once per remediation (the checks keep their
        hold-for state between ticks), again from the persisted context after a restart."""
        rid = context.get("remediation_id", "")
        cached = self._plans.get(rid)
        if cached is not None:
            return cached
        runbook = self.runbooks.get(name)
        if runbook is None:
            return None
        try:
            steps = plan(runbook, context, self._reader_for(rid), self.clock.now, self._before(context))
        except PlanError:
            return None
        self._plans[rid] = steps
        return steps

    def _context(self, request: HealRequest, kind: str) -> dict[str, str]:
        """What a runbook is bound to for ``request`` treated as ``kind``: the incident's fields, the kind,
        the incident and when it opened (persisted with the remediation, see :data:`OPENED_AT`)."""
        context = {**request.fields, "fault_kind": kind, "incident_id": request.incident_id}
        if request.opened_at is not None:
            context[OPENED_AT] = repr(float(request.opened_at))
        return context

    def _before(self, context: Mapping[str, str]) -> Reader | None:
        """The reader of the levels before the incident of ``context`` (None when either is unknown)."""
        level_before, opened = self.before, context.get(OPENED_AT)
        if level_before is None or opened is None:
            return None
        try:
            at = float(opened)
        except ValueError:  # a context written by hand or by another version: no baseline, not a crash
            return None

        def read(metric: str, labels: dict[str, str]) -> float | None:
            try:
                return level_before(metric, labels, at)
            except Exception:  # a broken store: the absolute threshold decides, and the reason says so
                return None

        return read

    def _reader_for(self, remediation_id: str) -> Reader:
        """``read`` that also answers "how many *other* remediations are running" for the prechecks."""

        def read(metric: str, labels: dict[str, str]) -> float | None:
            if metric != REMEDIATIONS_RUNNING_METRIC:
                return self.read(metric, labels)
            running = self.executor.log.in_states(UNFINISHED, service=labels.get("service"))
            return float(sum(1 for r in running if r.id != remediation_id and r.holds_service))

        return read


Signature = tuple[tuple[str, str | None], ...]


def _signature(runbook: Runbook, fields: Mapping[str, str]) -> Signature:
    """What a run of ``runbook`` would do: the values of the incident fields its templates use."""
    return tuple((name, fields.get(name)) for name in sorted(runbook.fields))


def _may_run(runs: Mapping[Signature, bool], signature: Signature) -> bool:
    """A runbook may run (again) for an incident when it never failed on it for the same service, has not
    run too often, and would now do something it has not done yet (e.g. scale another service): the
    same action on the same target that did not end the incident will not end it the second time. That
    it failed on one service says nothing of another (two faults at once: the failover a cache did not
    need may be what the database needs)."""
    if signature in runs or len(runs) >= MAX_RUNS_PER_RUNBOOK:
        return False
    service = dict(signature).get("service")
    return all(ok or dict(other).get("service") != service for other, ok in runs.items())


def _first_precheck(steps: Sequence[PlannedStep]) -> tuple[bool, str]:
    """Whether the first step's precheck holds now, and what it saw (no precheck: it holds)."""
    check = steps[0].precheck if steps else None
    if check is None:
        return True, "no precheck"
    try:
        return check.condition.evaluate(check.read)
    except Exception as exc:  # a broken metrics source says "not now", never stops the healer
        return False, f"the check raised {type(exc).__name__}: {exc}"


def _kinds_to_try(prediction: Prediction) -> list[tuple[str, float]]:
    """The kinds whose runbooks are candidates, in order, each with the confidence to rank them at."""
    order: list[tuple[str, float]] = []
    if prediction.kind != UNKNOWN:
        order.append((prediction.kind, prediction.confidence))
    for kind, p in prediction.alternatives:
        if p >= MIN_ALTERNATIVE_P and all(kind != k for k, _ in order):
            order.append((kind, p))
    order.append((UNKNOWN, prediction.confidence))
    return order
