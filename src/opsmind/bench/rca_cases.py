"""Fault cases for ``opsmind bench rca``: the simulated fleet with one fault, seen as metrics.

A case is a scenario (a topology, a seed, one fault kind on one service) run on the simulator. What the
rankers get is what an operator would have: a :class:`~opsmind.rca.frame.MetricFrame` with one column
per service-level series (``<service>_<metric>``, latency quantiles as ``latency_seconds-0.95``) and the
per-pod series aggregated per service (the busiest pod's CPU and memory, restarts summed, ready pods
counted), the dependency graph as a user would declare it (who calls whom, from the fleet
configuration), and a fault time that comes from OpsMind's own detector, not from the simulator: the
time the incident stage's default rule (``MIN_ANOMALOUS`` anomalies of one service within
``GROUP_WINDOW_S``) opens the fault's incident. The scorer uses the ground truth to pick which incident
that is (the first opened at or after the fault's start, as RCAEval scores one case per fault); the
incidents opened earlier by natural load swings are counted as false incidents, not ranked.

Topologies: the default fleet, ``direct-db`` (the ML services read postgres themselves, the feature store
only feeds training) and ``fanout`` (the gateway calls every API and ML service, and the comms optimizer
calls personalization). Kinds: every fault kind of the simulator with a root service (node failures are
a node's, not a service's, and are left out). Targets are drawn per case among the services the kind
can hit.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

import networkx as nx
import numpy as np

from opsmind.detect.ensemble import Ensemble
from opsmind.heal.observation import Inventory
from opsmind.incidents.root_cause import POD_AGGREGATES, column_name
from opsmind.rca.frame import F64, MetricFrame
from opsmind.sim.runner import SimRun, fleet_data, scenario_from_data
from opsmind.sim.spec import FaultKind, FaultSpec, Scenario, fault_target_problem
from opsmind.types import Series

# Every fault kind of the simulator that has a root service (a node failure is a node's).
KINDS = tuple(k for k in get_args(FaultKind) if k != "node_failure")
TOPOLOGIES = ("default", "direct-db", "fanout")
WARMUP_S = 900.0  # the detector's cold start; faults start after it
FAULT_AT_S = (1500.0, 1800.0, 2100.0)
AFTER_S = 600.0  # metrics kept after the detection time
MIN_ANOMALOUS = 2
GROUP_WINDOW_S = 300.0
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    topology: str
    kind: str
    root: str  # ground truth, for the scorer only
    fault_start: float  # ground truth, for the scorer's report only
    frame: MetricFrame
    graph: nx.DiGraph
    fault_time: float | None  # the opening of the fault's incident; None: no incident after the fault
    false_incidents: int  # incidents opened before the fault started


def topology(name: str) -> dict[str, Any]:
    data = copy.deepcopy(fleet_data("default"))
    services = data["services"]
    if name == "direct-db":
        for svc in ("personalization", "churn-prevention", "comms-optimizer"):
            services[svc]["calls"] = {"postgres": 1.0, "redis": 0.5}
    elif name == "fanout":
        services["gateway"]["calls"] = {
            "auth": 1,
            "personalization": 0.5,
            "churn-prevention": 0.2,
            "comms-optimizer": 0.3,
            "event-ingest": 0.5,
            "feature-store": 0.3,
        }
        services["comms-optimizer"]["calls"] = {
            "postgres": 1,
            "notification-sender": 0.3,
            "personalization": 0.2,
        }
    elif name != "default":
        raise ValueError(f"unknown topology {name!r} ({', '.join(TOPOLOGIES)})")
    return data


def inventory(scenario: Scenario) -> Inventory:
    """The fleet's inventory as its operator would declare it: each service's kind, its containers'
    memory limit and the entry service (what the healer's observations read; see
    :class:`opsmind.heal.observation.Inventory`)."""
    return Inventory(
        kinds={name: spec.kind for name, spec in scenario.services.items()},
        memory_limit_bytes={name: spec.memory_limit_mb * MB for name, spec in scenario.services.items()},
        entry=scenario.load.entry,
    )


def call_graph(scenario: Scenario) -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_nodes_from(scenario.services)
    g.add_edges_from(
        (caller, callee) for caller, callees in scenario.call_graph().items() for callee in callees
    )
    return g


def targets(kind: str, scenario: Scenario) -> list[str]:
    if kind == "traffic_spike":
        return [scenario.load.entry]
    out = []
    for name in scenario.services:
        spec = FaultSpec(kind=kind, at_s=0, service=name)
        if fault_target_problem(spec, scenario.services, scenario.nodes) is None:
            out.append(name)
    return out


def service_row(samples: Iterable[tuple[Series, float]]) -> dict[str, float]:
    """One step's samples as service-level columns (see module): service series as they are, per-pod
    series aggregated per service."""
    row: dict[str, float] = {}
    pods: dict[str, list[float]] = {}
    for series, value in samples:
        svc = series.service or "unknown"
        if series.label("pod") is not None:
            pods.setdefault(column_name(svc, series.name, None), []).append(value)
            continue
        row[column_name(svc, series.name, series.label("quantile"))] = value
    for col, vals in pods.items():
        metric = col.split("_", 1)[1]
        agg = POD_AGGREGATES.get(metric)
        if agg is not None:
            row[col] = float(max(vals) if agg == "max" else sum(vals))
    return row


def append_row(cols: dict[str, list[float]], row: dict[str, float], k: int) -> None:
    """Add step ``k``'s row to ``cols``, padding with NaN a column that appears late or goes missing."""
    for col, v in row.items():
        cols.setdefault(col, [np.nan] * k).append(v)
    for vals in cols.values():
        if len(vals) < k + 1:
            vals.append(np.nan)


def observe(run: SimRun, until_s: float) -> tuple[F64, dict[str, F64]]:
    """Run the scenario and return its times and service-level columns (see module)."""
    times: list[float] = []
    cols: dict[str, list[float]] = {}
    while not run.done and run.fleet.t < until_s:
        step = run.step()
        times.append(step.ts)
        append_row(cols, service_row(step.samples), len(times) - 1)
    return np.asarray(times), {c: np.asarray(v) for c, v in cols.items()}


def incident_openings(times: F64, cols: dict[str, F64], warmup_until: float) -> list[float]:
    """When the engine would open incidents: steps after the warm-up at which one service has had
    ``MIN_ANOMALOUS`` anomalous points (any of its series) within ``GROUP_WINDOW_S`` - the incident
    stage's default rule - at least ``GROUP_WINDOW_S`` apart, with anomalies from the detection ensemble
    run online over the columns."""
    ens = Ensemble()
    names = sorted(cols)
    service = [n.split("_", 1)[0] for n in names]
    rows = ens.index.rows(names)
    matrix = np.column_stack([cols[n] for n in names])
    ts = np.empty(len(names))
    recent: dict[str, list[float]] = {}
    out: list[float] = []
    for i, t in enumerate(times.tolist()):
        ts.fill(t)
        scores = ens.step_rows(rows, ts, np.ascontiguousarray(matrix[i]))
        if t < warmup_until:
            continue
        for j in np.flatnonzero(ens.is_anomalous(scores.probability)).tolist():
            seen = [x for x in recent.get(service[j], []) if t - x <= GROUP_WINDOW_S] + [t]
            recent[service[j]] = seen
            if len(seen) >= MIN_ANOMALOUS and (not out or t - out[-1] >= GROUP_WINDOW_S):
                out.append(float(t))
    return out


def single_fault(
    base: dict[str, Any], kind: str, seed: int, rng: np.random.Generator, prefix: str, tail_s: float
) -> tuple[Scenario, float] | None:
    """``base`` with one ``kind`` fault on a target and at one of ``FAULT_AT_S``, both drawn from
    ``rng``, running ``tail_s`` past the fault; the scenario and the fault's offset, or None when the fleet
    has no target for the kind. Named ``<prefix><kind>/<target>/seed<seed>``."""
    probe = scenario_from_data({**base, "name": "probe", "seed": seed}, "fault case")
    choices = targets(kind, probe)
    if not choices:
        return None
    target = str(rng.choice(choices))
    at = float(rng.choice(FAULT_AT_S))
    fault: dict[str, Any] = {"kind": kind, "at_s": at}
    if kind != "traffic_spike":
        fault["service"] = target
    name = f"{prefix}{kind}/{target}/seed{seed}"
    scenario = scenario_from_data(
        {**base, "name": name, "seed": seed, "duration_s": at + tail_s, "faults": [fault]}, name
    )
    return scenario, at


def make_case(topo: str, kind: str, seed: int) -> Case | None:
    rng = np.random.default_rng([seed, KINDS.index(kind), TOPOLOGIES.index(topo)])
    made = single_fault(topology(topo), kind, seed, rng, f"{topo}/", 2 * AFTER_S + 300)
    if made is None:
        return None
    scenario, _ = made
    name = scenario.name
    run = SimRun(scenario)
    times, cols = observe(run, scenario.duration_s)
    truth = run.truth.records[0] if run.truth.records else None
    if truth is None or truth.root_service is None:
        return None
    openings = incident_openings(times, cols, times[0] + WARMUP_S)
    # The scorer's choice, with the ground truth: the incident the fault opened is the first one at or
    # after its start (the ranker itself only ever sees that opening time).
    detected = next((t for t in openings if t >= truth.start), None)
    false = sum(1 for t in openings if t < truth.start)
    end = (detected if detected is not None else truth.start) + AFTER_S
    keep = times <= end
    frame = MetricFrame.from_columns(times[keep], {c: v[keep] for c, v in cols.items()})
    return Case(
        name, topo, kind, truth.root_service, truth.start, frame, call_graph(scenario), detected, false
    )


def cases(seeds: int, first_seed: int = 1000) -> list[Case]:
    out = []
    for topo in TOPOLOGIES:
        for kind in KINDS:
            for seed in range(first_seed, first_seed + seeds):
                c = make_case(topo, kind, seed)
                if c is not None:
                    out.append(c)
    return out
