"""Runs for ``opsmind bench noise``: the simulated fleet with a fault now and then, seen by the engine.

A run is a topology (those of :mod:`opsmind.bench.rca_cases`), a seed and ``FAULTS`` faults of different
kinds, one at a random moment in each ``SPACING_S`` slot after a ``WARMUP_S`` cold start, each lasting
``FAULT_S`` (kinds, targets and moments drawn per run). Every simulated step goes through what the
engine runs: the detect stage's round scorer (:class:`~opsmind.detect.points.PointScorer`: hygiene,
counters as rates, the default ensemble, over every series the fleet exposes, per-pod ones included)
and the incident stage's correlator (:class:`~opsmind.incidents.correlator.Correlator`, default
settings, ticked every step), once with the declared call graph and once without one, side by side.
The multivariate detector is not in the loop (it runs in the stage's worker thread and needs its own fit
schedule); the figures are for the ensemble.

What is recorded is what the scorer needs: every anomaly after the warm-up (series, service, time) and,
for each incident, the anomalies it holds. The ground truth (fault windows) is attached for the scorer
only; nothing of it reaches the scorer or the correlator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from opsmind.bench.rca_cases import KINDS, TOPOLOGIES, call_graph, targets, topology
from opsmind.clock import SimClock
from opsmind.config import DetectSettings, IncidentSettings
from opsmind.detect.ensemble import Ensemble
from opsmind.detect.points import PointScorer
from opsmind.detect.stage import rounds
from opsmind.incidents.correlator import Correlator
from opsmind.sim.runner import SimRun, scenario_from_data
from opsmind.telemetry import Telemetry
from opsmind.types import Incident

WARMUP_S = 1800.0
SPACING_S = 3600.0
FAULT_S = 600.0
FAULTS = 4
# How long after a fault ends (or the fleet meets its SLOs again) its effects may still show: the return
# to normal is a change the detectors see too. Anomalies later than this, and before the next fault, are
# background noise.
AFTERMATH_S = 1800.0
GROUPINGS = ("topology", "service")  # with the declared call graph / without one


@dataclass(frozen=True)
class FaultWindow:
    """Ground truth, for the scorer: a fault's kind and root, and the span its effects may show in (from
    its start until ``AFTERMATH_S`` after the fleet met its SLOs again, and not past the next fault)."""

    kind: str
    root: str
    start: float
    end: float


@dataclass
class Observed:
    """What one grouping produced in one run."""

    incidents: dict[str, Incident] = field(default_factory=dict)  # latest state, by id
    at_opening: dict[str, Incident] = field(default_factory=dict)  # as it was when it opened
    members: dict[str, list[tuple[str, float]]] = field(default_factory=dict)  # id -> (series, ts)
    reopened: int = 0


@dataclass
class Run:
    name: str
    topology: str
    seed: int
    faults: list[FaultWindow]
    anomalies: list[tuple[str, str, float]]  # (series, service, ts), after the warm-up
    observed: dict[str, Observed]  # by grouping
    graph: nx.DiGraph
    end: float


def scenario_data(topo: str, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, TOPOLOGIES.index(topo), 7])
    base = topology(topo)
    probe = scenario_from_data({**base, "name": "probe", "seed": seed}, "noise run")
    kinds = [str(k) for k in rng.permutation(np.array(KINDS))]
    faults: list[dict[str, Any]] = []
    for kind in kinds:
        if len(faults) == FAULTS:
            break
        choices = targets(kind, probe)
        if not choices:
            continue
        fault: dict[str, Any] = {
            "kind": kind,
            # Faults come at random moments, not in step with the fleet's own hourly rhythms.
            "at_s": WARMUP_S + len(faults) * SPACING_S + float(rng.uniform(0, SPACING_S - FAULT_S)) // 5 * 5,
            "duration_s": FAULT_S,
        }
        if kind != "traffic_spike":
            fault["service"] = str(rng.choice(choices))
        faults.append(fault)
    duration = WARMUP_S + FAULTS * SPACING_S
    return {**base, "name": f"{topo}/seed{seed}", "seed": seed, "duration_s": duration, "faults": faults}


def run(topo: str, seed: int, settings: IncidentSettings | None = None) -> Run:
    data = scenario_data(topo, seed)
    scenario = scenario_from_data(data, data["name"])
    sim = SimRun(scenario)
    graph = call_graph(scenario)
    settings = settings or IncidentSettings()
    detect = DetectSettings()
    scorer = PointScorer(
        Ensemble(threshold=detect.threshold, relearn_after=detect.relearn_after), Telemetry()
    )
    correlators = {
        "topology": Correlator(settings, graph),
        "service": Correlator(settings, None),
    }
    observed = {g: Observed() for g in GROUPINGS}
    clock = SimClock(0.0)
    warm_until: float | None = None
    anomalies: list[tuple[str, str, float]] = []
    while not sim.done:
        step = sim.step()
        clock.set(step.ts)
        if warm_until is None:
            warm_until = step.ts + WARMUP_S
        found = []
        for r in rounds(step.as_batch()):
            found.extend(scorer.score_round(r, step.ts))
        if step.ts < warm_until:
            continue
        for a in found:
            anomalies.append((a.series, a.service or "", a.ts))
        for name, corr in correlators.items():
            obs = observed[name]
            changes = [ch for a in found for ch in corr.add(a, step.ts)]
            changes += corr.tick(step.ts)
            for ch in changes:
                obs.incidents[ch.incident.id] = ch.incident
                if ch.event == "opened":
                    obs.at_opening[ch.incident.id] = ch.incident
                obs.members.setdefault(ch.incident.id, []).extend((a.series, a.ts) for a in ch.anomalies)
                obs.reopened += ch.event == "reopened"
    windows = []
    records = sim.truth.records
    for i, rec in enumerate(records):
        nxt = records[i + 1].start if i + 1 < len(records) else sim.fleet.now
        end = (rec.recovered_at if rec.recovered_at is not None else nxt) + AFTERMATH_S
        windows.append(FaultWindow(rec.kind, rec.root_service or "", rec.start, min(end, nxt)))
    return Run(data["name"], topo, seed, windows, anomalies, observed, graph, sim.fleet.now)
