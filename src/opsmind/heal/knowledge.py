"""What has worked: remediation outcomes per (fault kind, runbook), and a recommender that learns from them.

Every finished remediation is recorded as a :class:`RemediationOutcome` - an append-only record in the
EventStore (a fresh id each time, never replaced) - and :class:`KnowledgeBase` rebuilds its counts from
the store when it starts, so what OpsMind learned survives a restart.

**Success rates are Beta-Bernoulli.** A runbook run on a fault kind either resolves the incident or not;
with a ``Beta(alpha, beta)`` prior and ``s`` successes and ``f`` failures the posterior is
``Beta(alpha + s, beta + f)``. The prior is ``Beta(1, 1)`` (uniform: every success rate equally likely,
worth two pseudo-outcomes, so the first few real outcomes dominate it quickly). A runbook author who knows
better can give a candidate a ``prior_success`` ``p``; it becomes ``Beta(2p, 2(1 - p))``, the same
weight with that mean. The reported figures are the posterior mean ``(alpha + s) / (alpha + beta + s + f)``
and an equal-tailed credible interval (90% by default). Mean time to recover is the average recovery time
of the successful outcomes that reported one.

**Ranking** (:class:`Recommender`) orders candidate runbooks by a utility::

    utility = p_success - risk_weight * risk - cost_weight * cost

``p_success`` is the posterior mean (or, with ``thompson=True``, a draw from the posterior with a seeded
generator - exploration that still favours what works). ``risk`` (0-1, or ``low``/``medium``/``high``) and
``cost`` (0-1: disruption and spend relative to the other runbooks) come from the runbook. ``risk_weight``
grows as the classifier's confidence falls, ``base + (cautious - base) * (1 - confidence)``, and is the
``cautious`` weight outright when the kind is ``unknown`` or the confidence is below ``min_confidence``:
when OpsMind is unsure what is wrong it prefers what cannot make things worse. For an ``unknown`` kind the
success rate is the runbook's pooled record over every kind. Ties are broken by the shorter mean time to
recover, then by name, so the order is deterministic. Each :class:`Choice` says why in a sentence.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from pydantic import Field
from scipy.stats import beta as beta_dist

from opsmind.store.protocols import EventStore
from opsmind.types import Record

UNKNOWN = "unknown"
PRIOR_ALPHA = 1.0
PRIOR_BETA = 1.0
PRIOR_STRENGTH = PRIOR_ALPHA + PRIOR_BETA
CREDIBLE_LEVEL = 0.9
RISK_LEVELS: Mapping[str, float] = {"low": 0.1, "medium": 0.5, "high": 0.9}
_LOAD_LIMIT = 10_000_000


class RemediationOutcome(Record):
    """How one run of a runbook on an incident of a fault kind ended. Append-only: a correction is a new
    outcome, not an edit. ``recovery_s`` is the time from the start of the remediation to the service's
    recovery (successes only; None when unknown)."""

    kind: ClassVar[str] = "remediation_outcome"

    fault_kind: str = Field(min_length=1)
    runbook: str = Field(min_length=1)
    success: bool
    recovery_s: float | None = Field(default=None, ge=0.0)
    incident_id: str | None = None
    note: str = ""


@dataclass(frozen=True, slots=True)
class ArmStats:
    """The posterior of one (fault kind, runbook) pair."""

    fault_kind: str
    runbook: str
    successes: int
    failures: int
    alpha: float
    beta: float
    mean: float
    low: float
    high: float
    level: float
    mttr_s: float | None

    @property
    def trials(self) -> int:
        return self.successes + self.failures


@dataclass(frozen=True, slots=True)
class Candidate:
    """A runbook that could handle the incident: its name, its risk (0-1 or a level name in
    :data:`RISK_LEVELS`), its relative cost (0-1) and optionally the author's prior belief in its
    success rate."""

    runbook: str
    risk: float | str = "medium"
    cost: float = 0.0
    prior_success: float | None = None

    @property
    def risk_value(self) -> float:
        if isinstance(self.risk, str):
            if self.risk not in RISK_LEVELS:
                raise ValueError(
                    f"runbook {self.runbook}: risk {self.risk!r} is not one of {list(RISK_LEVELS)}"
                )
            return RISK_LEVELS[self.risk]
        if not 0.0 <= self.risk <= 1.0:
            raise ValueError(f"runbook {self.runbook}: risk {self.risk} is outside [0, 1]")
        return float(self.risk)


@dataclass(frozen=True, slots=True)
class Choice:
    """A ranked candidate: its utility, the success estimate used, the posterior behind it and why."""

    runbook: str
    rank: int
    utility: float
    p_success: float
    stats: ArmStats
    risk: float
    cost: float
    explanation: str


@dataclass
class _Counts:
    successes: int = 0
    failures: int = 0
    recovery_total_s: float = 0.0
    recoveries: int = 0
    ids: set[str] = field(default_factory=set)


class KnowledgeBase:
    """Outcome counts per (fault kind, runbook), rebuilt from ``store`` on construction and kept in step
    with it by :meth:`record`. Without a store it is in memory only (tests, benchmarks)."""

    def __init__(self, store: EventStore | None = None, level: float = CREDIBLE_LEVEL) -> None:
        if not 0.0 < level < 1.0:
            raise ValueError(f"the credible level must be within (0, 1), got {level}")
        self.store = store
        self.level = level
        self._counts: dict[tuple[str, str], _Counts] = {}
        self._lock = threading.Lock()
        if store is not None:
            self._absorb(store.find(RemediationOutcome, limit=_LOAD_LIMIT, newest_first=False))

    def _absorb(self, outcomes: Iterable[RemediationOutcome]) -> None:
        with self._lock:
            for o in outcomes:
                counts = self._counts.setdefault((o.fault_kind, o.runbook), _Counts())
                if o.id in counts.ids:  # a redelivered outcome counts once
                    continue
                counts.ids.add(o.id)
                if o.success:
                    counts.successes += 1
                    if o.recovery_s is not None:
                        counts.recovery_total_s += o.recovery_s
                        counts.recoveries += 1
                else:
                    counts.failures += 1

    def record(
        self,
        fault_kind: str,
        runbook: str,
        success: bool,
        *,
        at: float,
        recovery_s: float | None = None,
        incident_id: str | None = None,
        note: str = "",
    ) -> RemediationOutcome:
        """Store one outcome (durably, when there is a store) and count it."""
        outcome = RemediationOutcome(
            at=at,
            fault_kind=fault_kind,
            runbook=runbook,
            success=success,
            recovery_s=recovery_s,
            incident_id=incident_id,
            note=note,
        )
        if self.store is not None:
            self.store.put(outcome)
        self._absorb([outcome])
        return outcome

    def pairs(self) -> list[tuple[str, str]]:
        """Every (fault kind, runbook) pair with at least one outcome, sorted."""
        with self._lock:
            return sorted(self._counts)

    def stats(self, fault_kind: str, runbook: str, prior_success: float | None = None) -> ArmStats:
        """The posterior of ``runbook`` on ``fault_kind``; for :data:`UNKNOWN` the runbook's outcomes on
        every kind pooled."""
        with self._lock:
            if fault_kind == UNKNOWN:
                parts = [c for (_, rb), c in self._counts.items() if rb == runbook]
            else:
                parts = [self._counts[(fault_kind, runbook)]] if (fault_kind, runbook) in self._counts else []
            s = sum(c.successes for c in parts)
            f = sum(c.failures for c in parts)
            rec_total = sum(c.recovery_total_s for c in parts)
            recs = sum(c.recoveries for c in parts)
        a0, b0 = prior(prior_success)
        a, b = a0 + s, b0 + f
        tail = (1.0 - self.level) / 2.0
        low, high = (float(v) for v in beta_dist.ppf([tail, 1.0 - tail], a, b))
        return ArmStats(
            fault_kind=fault_kind,
            runbook=runbook,
            successes=s,
            failures=f,
            alpha=a,
            beta=b,
            mean=a / (a + b),
            low=low,
            high=high,
            level=self.level,
            mttr_s=rec_total / recs if recs else None,
        )


def prior(prior_success: float | None) -> tuple[float, float]:
    """The Beta prior's ``(alpha, beta)``: ``Beta(1, 1)``, or ``Beta(2p, 2(1 - p))`` for a stated
    ``p`` (clipped to [0.01, 0.99] so the prior stays proper)."""
    if prior_success is None:
        return PRIOR_ALPHA, PRIOR_BETA
    if not 0.0 <= prior_success <= 1.0:
        raise ValueError(f"prior_success must be within [0, 1], got {prior_success}")
    p = min(max(prior_success, 0.01), 0.99)
    return PRIOR_STRENGTH * p, PRIOR_STRENGTH * (1.0 - p)


class Recommender:
    """Ranks candidate runbooks for a fault kind by :class:`KnowledgeBase` evidence, risk and cost (see
    the module docstring for the utility). ``thompson=True`` samples success rates from the posteriors
    with a generator seeded by ``seed``; the default uses the posterior means and is deterministic."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        *,
        risk_weight: float = 0.2,
        cautious_risk_weight: float = 1.0,
        cost_weight: float = 0.1,
        min_confidence: float = 0.6,
        thompson: bool = False,
        seed: int | None = None,
    ) -> None:
        if min(risk_weight, cautious_risk_weight, cost_weight) < 0 or cautious_risk_weight < risk_weight:
            raise ValueError("weights must be >= 0 and cautious_risk_weight >= risk_weight")
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be within [0, 1], got {min_confidence}")
        self.knowledge = knowledge
        self.risk_weight = risk_weight
        self.cautious_risk_weight = cautious_risk_weight
        self.cost_weight = cost_weight
        self.min_confidence = min_confidence
        self.thompson = thompson
        self._rng = np.random.default_rng(seed)

    def risk_weight_for(self, fault_kind: str, confidence: float) -> tuple[float, str]:
        """The weight on risk for this kind and classifier confidence, with the reason."""
        if not 0.0 <= confidence <= 1.0:  # also refuses NaN
            raise ValueError(f"confidence must be within [0, 1], got {confidence}")
        if fault_kind == UNKNOWN:
            return self.cautious_risk_weight, "the fault kind is unknown, so low risk is preferred"
        if confidence < self.min_confidence:
            return (
                self.cautious_risk_weight,
                f"confidence {confidence:.2f} < {self.min_confidence:.2f}, so low risk is preferred",
            )
        w = self.risk_weight + (self.cautious_risk_weight - self.risk_weight) * (1.0 - confidence)
        return w, f"confidence {confidence:.2f}"

    def rank(self, fault_kind: str, candidates: Sequence[Candidate], confidence: float = 1.0) -> list[Choice]:
        """``candidates`` best first, each with its utility and an explanation."""
        names = [c.runbook for c in candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"candidate runbooks must be distinct, got {names}")
        w_risk, why_risk = self.risk_weight_for(fault_kind, confidence)
        scored: list[tuple[float, float, str, Candidate, ArmStats, float]] = []
        for c in candidates:
            if c.cost < 0:
                raise ValueError(f"runbook {c.runbook}: cost {c.cost} is negative")
            st = self.knowledge.stats(fault_kind, c.runbook, c.prior_success)
            p = float(self._rng.beta(st.alpha, st.beta)) if self.thompson else st.mean
            utility = p - w_risk * c.risk_value - self.cost_weight * c.cost
            mttr = st.mttr_s if st.mttr_s is not None else math.inf
            scored.append((-utility, mttr, c.runbook, c, st, p))
        scored.sort(key=lambda t: (t[0], t[1], t[2]))
        out: list[Choice] = []
        for i, (neg_u, _, _, c, st, p) in enumerate(scored, start=1):
            text = _explain(c, st, p, -neg_u, w_risk, why_risk, self, i, len(scored))
            out.append(Choice(c.runbook, i, -neg_u, p, st, c.risk_value, c.cost, text))
        return out


def _explain(
    c: Candidate,
    st: ArmStats,
    p: float,
    utility: float,
    w_risk: float,
    why_risk: str,
    rec: Recommender,
    rank: int,
    total: int,
) -> str:
    scope = "all fault kinds" if st.fault_kind == UNKNOWN else st.fault_kind
    if st.trials:
        evidence = f"{st.successes} of {st.trials} past runs on {scope} succeeded"
    else:
        evidence = f"no past runs on {scope}, prior only"
    how = "sampled" if rec.thompson else "expected"
    mttr = f"mean time to recover {st.mttr_s:.0f} s" if st.mttr_s is not None else "no recovery time yet"
    return (
        f"{c.runbook} ranked {rank} of {total}: {how} success {p:.2f} "
        f"(posterior mean {st.mean:.2f}, {st.level:.0%} credible {st.low:.2f}-{st.high:.2f}; {evidence}); "
        f"{mttr}; risk {c.risk_value:.2f} x {w_risk:.2f} ({why_risk}); "
        f"cost {c.cost:.2f} x {rec.cost_weight:.2f}; utility {utility:.3f}"
    )
