"""One chaos scenario with OpsMind (or a baseline) in the loop: the fleet runs, OpsMind watches and acts.

Each step of the simulator (5 s) goes through what the engine would do with it:

- **detect**: the service-level columns (:func:`~opsmind.bench.rca_cases.service_row`) are scored online
  by the detection ensemble, as in the RCA and heal-data cases;
- **open an incident** by the incident stage's default rule (``MIN_ANOMALOUS`` anomalous points of one
  service within ``GROUP_WINDOW_S``); it stays open while anomalies keep coming and closes after
  ``QUIET_S`` without any (and with nothing running);
- **heal**: ``OBSERVE_S`` after the opening, the incident is observed (root-cause ranking, signals in
  onset order, events, trends: :func:`~opsmind.heal.observation.observe_columns`), its fields are read
  from the events and pods (:func:`~opsmind.heal.fields.incident_fields`) and the
  :class:`~opsmind.heal.healer.Healer` chooses and submits a remediation; the executor is ticked every
  step, its actions reach the fleet through :class:`~opsmind.act.sim_remediate.SimulatorRemediator`. When
  a remediation has ended and the incident still shows anomalies ``SETTLE_S`` later, the healer is asked
  again (it skips what this incident already tried). Which services it is asked about, and with which
  observation, is the engine's own follow-up policy (:func:`opsmind.heal.followup.looks`): after a
  verified fix, what is *still* broken rather than the ranking from the opening; beside a remediation
  stuck verifying, the incident's other broken services.

The baseline policy, ``restart_most_anomalous``, restarts the service with the most anomalous points
since the incident opened, ``OBSERVE_S`` after the opening and again every ``BASELINE_RETRY_S`` while the
incident lasts - no classification, no verification, no rollback.

Nothing here reads the ground truth: :class:`Trace` records what was done and, for the scorer only, the
fleet's SLO state per step (:meth:`opsmind.sim.truth.GroundTruth.slo_ok`) and the truth records.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from opsmind.act.sim_remediate import SimulatorRemediator
from opsmind.bench.rca_cases import (
    GROUP_WINDOW_S,
    MIN_ANOMALOUS,
    WARMUP_S,
    append_row,
    call_graph,
    inventory,
    service_row,
)
from opsmind.clock import SimClock
from opsmind.detect.ensemble import Ensemble
from opsmind.heal.classify import FaultClassifier
from opsmind.heal.executor import ActionRequest, Outcome
from opsmind.heal.fields import PodView, SeenEvent, incident_fields
from opsmind.heal.followup import PATIENCE_S, held_services, looks
from opsmind.heal.guards import AutomationMode, Guards, GuardSettings, RateLimit
from opsmind.heal.healer import HealDecision, Healer, HealRequest
from opsmind.heal.knowledge import KnowledgeBase
from opsmind.heal.runbook import EVENT_COUNT_METRIC
from opsmind.heal.state import Remediation, RemediationState
from opsmind.sim.model import FleetEvent
from opsmind.sim.runner import SimRun
from opsmind.sim.spec import Scenario
from opsmind.sim.truth import TruthRecord
from opsmind.store.sqlite import SqliteStore
from opsmind.types import Series

OBSERVE_S = 30.0  # from an incident's opening to its first classification
QUIET_S = 90.0  # an incident closes after this long without anomalies
ACTIVE_S = 60.0  # an incident is still unhealthy when it had an anomaly this recently
SETTLE_S = 40.0  # after a remediation ends, wait this long before the next one for the same incident
BASELINE_RETRY_S = 300.0
POLICIES = ("opsmind", "restart_most_anomalous")


def chaos_guards() -> Guards:
    """The benchmark's limits: OpsMind acts on its own (mode on) up to medium risk; a high-risk runbook
    waits for a person (and so escalates); a short per-service cooldown lets a second runbook follow a
    failed first one; the rate limits still cap a runaway loop."""
    return Guards(
        GuardSettings(
            mode=AutomationMode.ON,
            approval_above_risk=1,
            cooldown_service_s=30.0,
            cooldown_runbook_s=900.0,
            rate_service=RateLimit(6, 3600.0),
            rate_global=RateLimit(30, 3600.0),
        )
    )


@dataclass
class Action:
    """An action sent to the fleet: when, what, by which remediation (None for the baseline)."""

    at: float
    action: str
    params: dict[str, Any]
    remediation_id: str | None = None
    rollback: bool = False


@dataclass
class Trace:
    """What happened in one scenario run, for the scorer."""

    scenario: str
    policy: str
    times: list[float] = field(default_factory=list)
    slo_ok: list[bool] = field(default_factory=list)  # ground truth, scorer only
    slo_untouched: list[bool] = field(default_factory=list)  # the same scenario left alone (scorer only)
    incidents: list[tuple[float, float | None]] = field(default_factory=list)  # (opened, closed)
    actions: list[Action] = field(default_factory=list)
    remediations: dict[str, str] = field(default_factory=dict)  # id -> final state
    notes: dict[str, str] = field(default_factory=dict)  # id -> "runbook state: why"
    escalations: int = 0
    decisions: list[str] = field(default_factory=list)
    truth: list[TruthRecord] = field(default_factory=list)  # ground truth, scorer only
    expired: list[bool] = field(default_factory=list)  # per truth record: ended by its own duration
    end: float = 0.0

    def record(self, remediations: Iterable[Remediation]) -> None:
        """Each remediation's final state and why, in the order given (the scorer reads the first one's)."""
        for rem in remediations:
            self.remediations[rem.id] = rem.state.value
            why = rem.history[-1].why if rem.history else ""
            self.notes[rem.id] = f"{rem.runbook} {rem.state.value}: {why}"

    def finish(self, run: SimRun) -> None:
        """For the scorer, once ``run`` has ended: its end, the SLO of the same scenario left untouched,
        the truth records and which faults ended by their own duration."""
        self.end = run.fleet.now
        self.slo_untouched = untouched_slo(run.scenario)
        self.truth = list(run.truth.records)
        self.expired = [f.ended_at is not None for f in run.active]


class _Live:
    """The engine's view of the fleet so far: columns, the latest samples, the events."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.cols: dict[str, list[float]] = {}
        self.events: list[FleetEvent] = []
        self.latest: dict[str, list[tuple[dict[str, str], float]]] = {}
        self.now = 0.0
        self.row: dict[str, float] = {}  # the latest step's service-level columns

    def add(
        self, ts: float, samples: list[tuple[Series, float]], events: list[FleetEvent]
    ) -> dict[str, float]:
        self.now = ts
        self.times.append(ts)
        row = self.row = service_row(samples)
        append_row(self.cols, row, len(self.times) - 1)
        self.events.extend(events)
        latest: dict[str, list[tuple[dict[str, str], float]]] = {}
        for series, value in samples:
            latest.setdefault(series.name, []).append((dict(series.labels), value))
        self.latest = latest
        return row

    def read(self, metric: str, labels: dict[str, str]) -> float | None:
        if metric == EVENT_COUNT_METRIC:
            since = self.now - float(labels.get("within_s", "3600"))
            return float(
                sum(
                    1
                    for e in self.events
                    if e.ts >= since
                    and e.reason == labels.get("reason")
                    and ("service" not in labels or e.service == labels["service"])
                    and ("node" not in labels or e.node == labels["node"])
                )
            )
        values = [
            v for lab, v in self.latest.get(metric, []) if all(lab.get(k) == x for k, x in labels.items())
        ]
        return max(values) if values else None

    def pods(self, service: str) -> list[PodView]:
        return [
            PodView(lab.get("pod", ""), lab.get("node", ""), v)
            for lab, v in self.latest.get("pod_cpu_utilisation", [])
            if lab.get("service") == service
        ]

    def arrays(self) -> tuple[Any, dict[str, Any]]:
        return np.asarray(self.times), {c: np.asarray(v) for c, v in self.cols.items()}

    def seen_events(self) -> list[SeenEvent]:
        return [SeenEvent(e.ts, e.reason, e.message, e.service, e.node) for e in self.events]


@dataclass
class _Incident:
    id: str
    opened: float
    last_anomaly: float
    next_try: float
    counts: dict[str, int] = field(default_factory=dict)
    done_trying: bool = False


def run_scenario(
    scenario: Scenario,
    policy: str,
    classifier: FaultClassifier | None = None,
    knowledge: KnowledgeBase | None = None,
    db_path: str = ":memory:",
) -> Trace:
    """Run ``scenario`` to its end with ``policy`` in the loop and return what happened."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; one of {', '.join(POLICIES)}")
    run = SimRun(scenario)
    live = _Live()
    trace = Trace(scenario.name, policy)
    remediator = SimulatorRemediator(run.actuator)
    clock = SimClock(run.fleet.now)
    store = SqliteStore(db_path)
    healer: Healer | None = None
    if policy == "opsmind":
        if classifier is None:
            raise ValueError("the opsmind policy needs a trained classifier")

        def actuate(request: ActionRequest, dry_run: bool) -> Any:
            reply = remediator(request.action, request.params, dry_run)
            if reply.ok and not reply.dry_run:
                rollback = request.idempotency_key.endswith(":rollback")
                trace.actions.append(
                    Action(
                        clock.now(), request.action, dict(request.params), request.remediation_id, rollback
                    )
                )
            return reply

        def escalate(outcome: Outcome) -> None:
            trace.escalations += 1

        healer = Healer(
            store,
            clock,
            classifier,
            actuate,
            live.read,
            knowledge=knowledge if knowledge is not None else KnowledgeBase(),
            guards=chaos_guards(),
            replicas=lambda s: _int(live.read("replicas_desired", {"service": s})),
            escalate=escalate,
        )
    ens = Ensemble()
    names: list[str] | None = None
    rows: Any = None
    ids = itertools.count(1)
    incident: _Incident | None = None
    recent: dict[str, list[float]] = {}
    try:
        while not run.done:
            step = run.step()
            t = step.ts
            clock.set(t)
            row = live.add(t, step.samples, step.events)
            trace.times.append(t)
            trace.slo_ok.append(run.truth.slo_ok())
            if names is None:
                names = sorted(row)
                rows = ens.index.rows(names)
            values = np.array([row.get(n, np.nan) for n in names])
            scores = ens.step_rows(rows, np.full(len(names), t), values)
            if t < live.times[0] + WARMUP_S:
                continue
            flagged = [names[j] for j in np.flatnonzero(ens.is_anomalous(scores.probability)).tolist()]
            flagged_services = [name.split("_", 1)[0] for name in flagged] + _down_or_failing(row)
            for svc in flagged_services:
                recent[svc] = [x for x in recent.get(svc, []) if t - x <= GROUP_WINDOW_S] + [t]
                if incident is not None:
                    incident.last_anomaly = t
                    incident.counts[svc] = incident.counts.get(svc, 0) + 1
            if incident is not None and _users_affected(scenario, live):
                incident.last_anomaly = t  # an SLO still breaching keeps the incident open
            busy = healer is not None and healer.busy()
            if incident is not None and t - incident.last_anomaly >= QUIET_S and not busy:
                trace.incidents[-1] = (incident.opened, t)
                if healer is not None:
                    healer.resolved(incident.id)
                incident = None
            if incident is None and any(len(v) >= MIN_ANOMALOUS and v[-1] == t for v in recent.values()):
                incident = _Incident(f"inc-{next(ids)}", t, t, t + OBSERVE_S)
                for svc in flagged_services:
                    incident.counts[svc] = incident.counts.get(svc, 0) + 1
                trace.incidents.append((t, None))
            held = held_services(healer, t) if healer is not None and busy else frozenset()
            if (
                incident is not None
                and not incident.done_trying
                and t >= incident.next_try
                and held is not None
                and (not busy or held)
            ):
                if t - incident.last_anomaly <= ACTIVE_S:
                    if healer is not None:
                        _heal(healer, scenario, live, incident, trace, held)
                    else:
                        _restart_most_anomalous(remediator, incident, trace, t)
            if healer is not None:
                for outcome in healer.tick():
                    rem = outcome.remediation
                    if rem.finished:
                        trace.remediations[rem.id] = rem.state.value
                        if incident is not None:
                            incident.next_try = max(incident.next_try, t + SETTLE_S)
        if healer is not None:
            # In the order they were proposed (the scorer reads the first one's fate).
            trace.record(sorted(healer.executor.log.changed_since(0.0), key=lambda r: (r.at, r.id)))
    finally:
        store.close()
    trace.finish(run)
    return trace


FAILING_ERROR_RATIO = 0.05


def _down_or_failing(row: dict[str, float]) -> list[str]:
    """Services that are plainly broken now, whatever the detector has got used to: no ready replica
    while some are desired, or more than ``FAILING_ERROR_RATIO`` of requests failing. An alerting rule,
    not an anomaly: a service that stays down keeps its incident open."""
    out = []
    for col, value in row.items():
        svc, _, metric = col.partition("_")
        if metric == "error_ratio" and value > FAILING_ERROR_RATIO:
            out.append(svc)
        elif metric == "replicas_ready" and value == 0 and row.get(f"{svc}_replicas_desired", 0) > 0:
            out.append(svc)
    return out


def _users_affected(scenario: Scenario, live: _Live) -> bool:
    """The entry breaches its declared SLO now (p99 latency or error ratio), or a service is down or
    failing: what an SLO alert would say."""
    entry = scenario.load.entry
    p99 = live.read("latency_seconds", {"service": entry, "quantile": "0.99"})
    errors = live.read("error_ratio", {"service": entry})
    if p99 is not None and p99 * 1000 > scenario.slo_latency_ms:
        return True
    if errors is not None and errors > scenario.slo_error_ratio:
        return True
    return bool(_down_or_failing(live.row))


def untouched_slo(scenario: Scenario) -> list[bool]:
    """The fleet's SLO state per step when nobody acts: the counterfactual the harm score compares with
    (the simulator is deterministic for a seed, and actions draw from their own random stream)."""
    run = SimRun(scenario)
    out = []
    while not run.done:
        run.step()
        out.append(run.truth.slo_ok())
    return out


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _heal(
    healer: Healer,
    scenario: Scenario,
    live: _Live,
    incident: _Incident,
    trace: Trace,
    held: frozenset[str] = frozenset(),
) -> None:
    """Ask the healer about the incident's likeliest root cause; when nothing is left to try there, about
    the next services of the ranking (two faults at once put two services near the top)."""
    times, cols = live.arrays()
    impact = _users_affected(scenario, live) or live.now - incident.opened >= PATIENCE_S
    serving = [name for name, spec in scenario.services.items() if spec.kind != "worker"]
    load = {
        name: (cpu, live.read("replicas_desired", {"service": name}) or 0.0)
        for name in serving
        if (cpu := live.read("cpu_utilisation", {"service": name})) is not None
    }
    decision: HealDecision | None = None
    seen = live.seen_events()
    graph, declared = call_graph(scenario), inventory(scenario)
    found = looks(healer, incident.id, incident.opened, live.now, times, cols, seen, graph, declared, held)
    for observation, service in found:
        fields = incident_fields(
            service,
            seen,
            live.pods(service),
            live.read("replicas_desired", {"service": service}),
            load,
        )
        decision = healer.handle(HealRequest(incident.id, service, observation, fields, impact))
        trace.decisions.append(f"{live.now - incident.opened:.0f}s {service}: {decision.explanation}")
        if decision.runbook is not None or decision.waiting:
            break
    if decision is None or decision.waiting or (held and decision.runbook is None):
        # Nothing to do (yet), or nothing elsewhere while a remediation is still verifying: ask again.
        incident.next_try = live.now + SETTLE_S
    elif decision.runbook is None:
        trace.escalations += 1  # nothing left to try: a person is told
        incident.done_trying = True
    elif decision.outcome is None or decision.outcome.remediation.state is not RemediationState.APPROVED:
        # Held by a guard, refused or awaiting a person (the escalation went out): ask again after
        # settling (the next runbook, or the held one once its guard clears).
        incident.next_try = live.now + SETTLE_S


def _restart_most_anomalous(
    remediator: SimulatorRemediator, incident: _Incident, trace: Trace, t: float
) -> None:
    service = max(incident.counts, key=lambda s: (incident.counts[s], s))
    reply = remediator("restart", {"service": service}, False)
    if reply.ok:
        trace.actions.append(Action(t, "restart", {"service": service}))
    trace.decisions.append(f"{t - incident.opened:.0f}s restart {service}: {reply.detail}")
    incident.next_try = t + BASELINE_RETRY_S
