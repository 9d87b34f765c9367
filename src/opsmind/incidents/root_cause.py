"""Root causes for a new incident: recent metrics from the sample store, ranked by :mod:`opsmind.rca`.

When an incident opens, the stage reads every service-level series (one with a ``service`` label and no
``pod`` label; quantiles become their own columns, ``latency_seconds-0.95``; a few pod series aggregated
per service, :data:`POD_AGGREGATES`) over ``lookback_s`` before
the incident's first anomaly and up to now, aligns them on their timestamps and ranks the services with
the configured dependency graph (``incidents.topology``: service -> services it calls) or, when none is
configured, the graph :func:`opsmind.rca.learn_graph.learn_graph` learns from the same metrics before
the fault time. The result is
kept on the incident as ``root_causes`` (service, score, evidence), best first. Ranking needs data on
both sides of the fault time; without it the incident simply has no root causes, and says why in its
timeline.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx
import numpy as np

from opsmind.rca.frame import F64, MetricFrame, RcaInputError
from opsmind.rca.learn_graph import learn_graph
from opsmind.rca.ranker import Cause, rank
from opsmind.store.protocols import SampleStore

MAX_SERIES = 5000
POD_AGGREGATES = {
    "pod_cpu_utilisation": "max",
    "pod_memory_bytes": "max",
    "pod_restarts_total": "sum",
    "pod_ready": "sum",
}
"""Per-pod series kept as one column per service, aggregated as named."""


def column_name(service: str, metric: str, quantile: str | None) -> str:
    return f"{service}_{metric}" + (f"-{quantile}" if quantile else "")


def columns_from_store(store: SampleStore, start: float, end: float) -> tuple[F64, dict[str, F64]]:
    """Service-level columns between ``start`` and ``end``, aligned on their timestamps (NaN where a
    column has no sample): a service's own series as they are, and its pods' series aggregated per
    service by :data:`POD_AGGREGATES` (the busiest pod's CPU and memory, restarts and ready pods summed)
    - the columns the RCA and heal benchmarks measure on. Other pod series are left out."""
    columns: dict[str, dict[float, float]] = {}
    pods: dict[str, dict[float, list[float]]] = {}
    for info in store.series(limit=MAX_SERIES):
        s = info.series
        service = s.service
        if service is None:
            continue
        pod = s.label("pod") is not None
        if pod and s.name not in POD_AGGREGATES:
            continue
        got = store.query(s, start, end, "raw")
        if not got.timestamps:
            continue
        name = column_name(service, s.name, s.label("quantile"))
        if pod:
            by_ts = pods.setdefault(name, {})
            for t, v in zip(got.timestamps, got.values, strict=True):
                by_ts.setdefault(t, []).append(v)
        else:
            columns[name] = dict(zip(got.timestamps, got.values, strict=True))
    for name, by_ts in pods.items():
        agg = max if POD_AGGREGATES[name.split("_", 1)[1]] == "max" else sum
        columns[name] = {t: float(agg(vs)) for t, vs in by_ts.items()}
    times = np.array(sorted({t for col in columns.values() for t in col}), dtype=np.float64)
    data = {name: np.array([col.get(t, np.nan) for t in times.tolist()]) for name, col in columns.items()}
    return times, data


def frame_from_store(store: SampleStore, start: float, end: float) -> MetricFrame | None:
    """:func:`columns_from_store` as a frame (None when there are none)."""
    times, data = columns_from_store(store, start, end)
    if not data:
        return None
    try:
        return MetricFrame.from_columns(times, data)
    except RcaInputError:
        return None


def topology_graph(topology: Mapping[str, Sequence[str]]) -> nx.DiGraph | None:
    if not topology:
        return None
    g = nx.DiGraph()
    for caller, callees in topology.items():
        g.add_node(caller)
        for callee in callees:
            g.add_edge(caller, callee)
    return g


def callees(graph: nx.DiGraph | None, service: str) -> set[str]:
    """What ``service`` calls, directly or not, in the declared topology (nothing without one): where a
    root cause of its symptoms may sit."""
    if graph is None or service not in graph:
        return set()
    found: set[str] = nx.descendants(graph, service)
    return found


def root_causes(
    store: SampleStore,
    fault_time: float,
    now: float,
    lookback_s: float,
    graph: nx.DiGraph | None,
    top: int = 5,
) -> tuple[list[Cause], str | None]:
    """The ranked causes, or an empty list and the reason there are none. Without a ``graph``, one is
    learned from the metrics before the fault time."""
    frame = frame_from_store(store, fault_time - lookback_s, max(now, fault_time))
    if frame is None:
        return [], "no service-level metrics in the store around the fault"
    try:
        if graph is None:
            graph = learn_graph(frame, fault_time)
        return rank(frame, fault_time, graph)[:top], None
    except ValueError as exc:
        return [], str(exc)
