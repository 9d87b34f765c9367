"""Rank the services (and their metrics) most likely to be the root cause of a fault.

Evidence per metric comes from :mod:`opsmind.rca.scoring`. A service's *change* is the log of its most
changed metric's score (``log1p``: a 40-sigma change is stronger evidence than a 10-sigma one, not four
times as strong). Two refinements turn "what changed most" into "what changed first and is not explained
by something else":

* **Onset.** Faults spread from their root to the services that depend on it, one step of queueing or
  retries at a time, so the root's metrics usually cross ``ONSET_Z`` first. A service whose first large
  deviation came ``d`` seconds after the earliest one keeps ``1 / (1 + d / ONSET_TAU_S)`` of its score.
* **Dependency graph** (optional; edges point from caller to callee): a change that the graph explains
  is weaker evidence. Load flows down the call graph and slowness and failures flow up, so a significant
  (``>= ONSET_Z``) change is *explained* when, no later than ``EXPLAIN_TOL_S`` after it began,
  - a *traffic* metric: a caller's traffic changed too (the load came from upstream);
  - a *latency* or *error* metric: a callee's latency, errors or resources changed (the service waits
    on, or fails because of, something it calls);
  - a *resource* metric (CPU, memory, pool, restarts, ...): the service's own traffic changed and that
    change is itself explained (a busier service uses more CPU);
  - an *occupancy* metric (pool in use, queue depth, in-flight requests: :func:`is_occupancy`), also
    when a callee slowed or failed first: by Little's law a service that waits longer on what it calls
    holds its connections and its queue longer, with no fault of its own.
  A service whose significant changes are all explained keeps ``EXPLAINED_WEIGHT`` of its score; the
  evidence says what explained it. Metric classes come from the metric name (:func:`metric_class`).

Every cause carries its evidence: the metrics that changed most, by how much and when.

:func:`rank_now` asks a later question of the same evidence: what is *still* different now? It compares
the last rows (from ``since``) with a normal period before the fault, so a service that was broken and
has recovered drops out, and what is left - a second fault that the first one hid, a fix that did not
hold - comes to the top. Cumulative counters (``*_total``) are compared by their increase per row, not
by their level, which a past restart leaves raised for good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from opsmind.rca.frame import F64, MetricFrame
from opsmind.rca.scoring import ONSET_Z, ColumnScores, nsigma, robust_change

ONSET_TAU_S = 60.0
EXPLAIN_TOL_S = 30.0
EXPLAINED_WEIGHT = 0.3
EVIDENCE_METRICS = 3
TRAFFIC, LATENCY, ERRORS, RESOURCE = "traffic", "latency", "errors", "resource"
_CLASS_WORDS = (
    (ERRORS, ("error", "fail", "5xx", "exception")),
    (LATENCY, ("latency", "duration", "response_time", "response-time", "delay")),
    (TRAFFIC, ("request", "rps", "qps", "workload", "throughput", "traffic", "rate")),
)


_OCCUPANCY_WORDS = ("pool", "queue", "inflight", "in_flight", "concurrency", "connections", "backlog")


def is_occupancy(metric: str) -> bool:
    """A resource metric that counts work held open (rises when downstream calls take longer), as opposed
    to one that counts work done (CPU, memory, disk)."""
    name = metric.lower()
    return metric_class(metric) == RESOURCE and any(w in name for w in _OCCUPANCY_WORDS)


def metric_class(metric: str) -> str:
    """``traffic``, ``latency``, ``errors`` or ``resource`` from words in the metric's name (errors are
    checked first: ``error_rate`` is an error metric, not traffic)."""
    name = metric.lower()
    for cls, words in _CLASS_WORDS:
        if any(w in name for w in words):
            return cls
    return RESOURCE


@dataclass(frozen=True)
class MetricEvidence:
    metric: str
    score: float
    onset_s: float  # seconds after the fault time (inf: never passed ONSET_Z)
    direction: float  # +1 rose, -1 fell

    def text(self) -> str:
        way = "rose" if self.direction > 0 else "fell" if self.direction < 0 else "changed"
        when = f" from +{self.onset_s:.0f} s" if math.isfinite(self.onset_s) else ""
        return f"{self.metric} {way} {self.score:.1f} sd{when}"


@dataclass(frozen=True)
class Cause:
    service: str
    score: float
    evidence: str
    metrics: tuple[MetricEvidence, ...]

    def as_json(self) -> dict[str, object]:
        return {"service": self.service, "score": round(self.score, 6), "evidence": self.evidence}


def _by_service(frame: MetricFrame, cols: ColumnScores) -> dict[str, list[MetricEvidence]]:
    out: dict[str, list[MetricEvidence]] = {}
    for j, (svc, metric) in enumerate(zip(frame.services, frame.metrics, strict=True)):
        ev = MetricEvidence(metric, float(cols.score[j]), float(cols.onset[j]), float(cols.direction[j]))
        out.setdefault(svc, []).append(ev)
    for evs in out.values():
        evs.sort(key=lambda e: -e.score)
    return out


def _first(evs: list[MetricEvidence], classes: tuple[str, ...]) -> float:
    """Earliest onset among a service's significant changes of the given classes (inf: none)."""
    return min(
        (e.onset_s for e in evs if e.score >= ONSET_Z and metric_class(e.metric) in classes), default=math.inf
    )


def explanations(per: dict[str, list[MetricEvidence]], graph: nx.DiGraph) -> dict[tuple[str, str], str]:
    """For each (service, metric) whose significant change the graph explains, what explains it."""
    out: dict[tuple[str, str], str] = {}

    def callers(s: str) -> list[str]:
        return [c for c in graph.predecessors(s) if c in per and c != s] if s in graph else []

    def callees(s: str) -> list[str]:
        return [c for c in graph.successors(s) if c in per and c != s] if s in graph else []

    traffic_explained: dict[str, bool] = {}
    for s, evs in per.items():
        t = _first(evs, (TRAFFIC,))
        by = [c for c in callers(s) if _first(per[c], (TRAFFIC,)) <= t + EXPLAIN_TOL_S]
        traffic_explained[s] = math.isfinite(t) and bool(by)
        for e in evs:
            if e.score < ONSET_Z:
                continue
            cls = metric_class(e.metric)
            if cls == TRAFFIC and by:
                out[(s, e.metric)] = f"load from {by[0]}"
            elif cls in (LATENCY, ERRORS):
                down = [
                    c
                    for c in callees(s)
                    if _first(per[c], (LATENCY, ERRORS, RESOURCE)) <= e.onset_s + EXPLAIN_TOL_S
                ]
                if down:
                    out[(s, e.metric)] = f"callee {down[0]} changed"
            elif cls == RESOURCE and traffic_explained[s] and t <= e.onset_s + EXPLAIN_TOL_S:
                out[(s, e.metric)] = f"its load from {by[0]}"
            elif is_occupancy(e.metric):
                slow = [
                    c for c in callees(s) if _first(per[c], (LATENCY, ERRORS)) <= e.onset_s + EXPLAIN_TOL_S
                ]
                if slow:
                    out[(s, e.metric)] = f"held open while callee {slow[0]} was slow or failing"
    return out


def _evidence(evs: list[MetricEvidence], note: str | None) -> str:
    text = "; ".join(e.text() for e in evs[:EVIDENCE_METRICS])
    return f"{text} ({note})" if note else text


def rank(
    frame: MetricFrame, fault_time: float, graph: nx.DiGraph | None = None, method: str = "opsmind"
) -> list[Cause]:
    """Services best first. ``method`` ``opsmind`` (see module) or ``nsigma`` (the baseline: services by
    their largest NSigma score, no onset, no graph)."""
    if method not in ("opsmind", "nsigma"):
        raise ValueError(f"unknown method {method!r} (opsmind, nsigma)")
    cols = nsigma(frame, fault_time) if method == "nsigma" else robust_change(frame, fault_time)
    per = _by_service(frame, cols)
    if method == "nsigma":
        scores = {s: evs[0].score for s, evs in per.items()}
    notes: dict[str, str] = {}
    if method != "nsigma":
        change = {s: math.log1p(evs[0].score) for s, evs in per.items()}
        onset = {
            s: min((e.onset_s for e in evs if e.score >= ONSET_Z), default=math.inf) for s, evs in per.items()
        }
        first = min(onset.values(), default=math.inf)
        scores = {}
        for s, c in change.items():
            late = onset[s] - first if math.isfinite(onset[s]) and math.isfinite(first) else 0.0
            scores[s] = c / (1.0 + late / ONSET_TAU_S)
        if graph is not None and graph.number_of_edges():
            why = explanations(per, graph)
            for svc, evs in per.items():
                significant = [e for e in evs if e.score >= ONSET_Z]
                if significant and all((svc, e.metric) in why for e in significant):
                    scores[svc] *= EXPLAINED_WEIGHT
                    notes[svc] = f"explained: {why[(svc, significant[0].metric)]}"
    causes = [Cause(s, float(scores[s]), _evidence(per[s], notes.get(s)), tuple(per[s])) for s in per]
    causes.sort(key=lambda c: (-c.score if np.isfinite(c.score) else -math.inf, c.service))
    return causes


def is_counter(metric: str) -> bool:
    """A cumulative counter by the Prometheus naming convention (``_total``)."""
    return metric.lower().endswith("_total")


def rank_now(
    frame: MetricFrame,
    baseline: tuple[float, float],
    since: float,
    graph: nx.DiGraph | None = None,
) -> list[Cause]:
    """Services best first by how different they are *now*: the rows from ``since`` on against the normal
    rows in ``baseline`` (start, end; before the fault), with :func:`rank`'s scoring (magnitude, onset
    within the window, the graph's explanations). Counters are compared by their increase per row."""
    start, end = baseline
    if end > since:
        raise ValueError(f"the baseline must end ({end:.0f}) no later than the window starts ({since:.0f})")
    values: F64 = frame.values.copy()
    for j, metric in enumerate(frame.metrics):
        if is_counter(metric):
            col = frame.values[:, j]
            step = np.diff(col)
            # A counter that went down was reset (its process restarted): it counted from zero since.
            values[:, j] = np.concatenate([[np.nan], np.where(step < 0, col[1:], step)])
    keep = ((frame.times >= start) & (frame.times < end)) | (frame.times >= since)
    window = MetricFrame(frame.times[keep], frame.services, frame.metrics, values[keep], frame.skipped)
    return rank(window, since, graph)
