"""Learn who calls whom from how the services' metrics moved together before a fault.

When no dependency graph is declared, the ranker can still use one learned from normal operation: the
rows of a :class:`~opsmind.rca.frame.MetricFrame` *before* the fault time (after it, the fault itself
moves metrics together and would invent edges). The evidence, in order:

* **Co-movement -> an edge.** Every request a caller serves makes calls to its callees within the same
  moments, so the step-to-step changes of their request rates move together; and a caller's latency
  includes the time it waits on its callees, so its latency moves with theirs. Each class (traffic,
  latency) is tested on its own and either can link a pair. Differencing removes the level and the
  daily cycle, which every service shares and which says nothing about who calls whom. Services that
  are only *indirectly* linked (A calls B calls C; two callees of one caller) co-move too, so the test
  is the **partial correlation** of a service's differenced series given every other service's of the
  same class (a Gaussian graphical model): A and C are independent once B is known. Calls take
  milliseconds and metrics are sampled every few seconds, so co-movement is looked for within the same
  row. A pair is linked when its partial correlation is positive, above ``MIN_PARTIAL`` and above
  ``SIGNIFICANCE_Z / sqrt(n)`` (under independence, a correlation of ``n`` points has a standard error
  of about ``1 / sqrt(n)``).
* **Direction.** First, lead: when part of a caller's change reaches its callee one or more rows later,
  the caller changes first (the lagged cross-correlation of the differenced series peaks at a positive
  lag of the caller, within ``MAX_LAG`` rows). Otherwise, latency: a caller's latency includes the time
  it waits on its callees, so the caller is the slower one (by at least ``LATENCY_RATIO``). A pair
  neither hint orients is left out: a wrong direction makes the ranker explain a true cause away, which
  is worse than not knowing.

Columns are classed by :func:`opsmind.rca.ranker.metric_class`. Missing columns, gaps, constant series
and a single service all give fewer (or no) edges, never an error. The learned graph is only a hint:
where services share one load source and nothing else (every request rate a fixed multiple of the
entry's), traffic cannot tell direct calls from indirect ones; then only latency links pairs, and
only where a callee's share of its caller's latency is large enough to show through the noise.
"""

from __future__ import annotations

import math

import networkx as nx
import numpy as np

from opsmind.rca.frame import F64, MetricFrame
from opsmind.rca.ranker import LATENCY, TRAFFIC, metric_class

# Differences needed before a correlation means anything (its standard error is then below 0.18).
MIN_ROWS = 30
# A column with more gaps than this before the fault is left out; shorter gaps are interpolated over.
MAX_GAP_SHARE = 0.2
# Three standard errors: about one chance in 700 that two independent services pass by luck.
SIGNIFICANCE_Z = 3.0
# One load source shared by every service, each measured with its own noise, leaves every pair of
# request rates partially correlated (about 0.1-0.2 on the simulated fleet, direct call or not: the
# source itself is not observed). A direct call must stand above that background, whatever n.
MIN_PARTIAL = 0.2
# Ridge on the correlation matrix before inverting it, so near-duplicate series do not blow it up.
SHRINKAGE = 0.05
# How many rows a caller's change may lead its callee's (propagation seen at a fine sampling step).
MAX_LAG = 3
# The lagged correlation must beat the same-row one by this much to count as a lead, not noise.
LEAD_MARGIN = 0.1
# A caller's typical latency includes its callee's, so it must be at least this much larger.
LATENCY_RATIO = 1.1


def _pick(frame: MetricFrame, before: np.ndarray, cls: str) -> dict[str, F64]:
    """Per service, its first column of class ``cls`` (by metric name) with enough data before the fault,
    gaps filled by linear interpolation."""
    out: dict[str, F64] = {}
    order = sorted(range(len(frame.metrics)), key=lambda j: (frame.services[j], frame.metrics[j]))
    for j in order:
        svc = frame.services[j]
        if svc in out or metric_class(frame.metrics[j]) != cls:
            continue
        x = frame.values[before, j]
        ok = np.isfinite(x)
        if len(x) < MIN_ROWS + 1 or ok.mean() < 1.0 - MAX_GAP_SHARE:
            continue
        idx = np.arange(len(x))
        out[svc] = np.interp(idx, idx[ok], x[ok])
    return out


def _partial_correlation(diffs: F64) -> F64:
    """Partial correlations of the columns of ``diffs`` (rows: time), from the shrunk precision matrix."""
    k = diffs.shape[1]
    corr = (1.0 - SHRINKAGE) * np.asarray(np.corrcoef(diffs, rowvar=False)) + SHRINKAGE * np.eye(k)
    theta = np.linalg.inv(corr)
    d = np.sqrt(np.diag(theta))
    partial: F64 = -theta / np.outer(d, d)
    np.fill_diagonal(partial, 1.0)
    return partial


def _lagged(x: F64, y: F64, lag: int) -> float:
    """Correlation of ``x`` now with ``y`` ``lag`` rows later."""
    a, b = (x[: len(x) - lag], y[lag:]) if lag else (x, y)
    return float(np.corrcoef(a, b)[0, 1])


def _lead(x: F64, y: F64) -> int:
    """+1 when ``x`` leads ``y``, -1 when ``y`` leads ``x``, 0 when neither clearly does."""
    same = _lagged(x, y, 0)
    best, sign = same + LEAD_MARGIN, 0
    for lag in range(1, min(MAX_LAG, len(x) - MIN_ROWS) + 1):
        for s, r in ((1, _lagged(x, y, lag)), (-1, _lagged(y, x, lag))):
            if r > best:
                best, sign = r, s
    return sign


def _slower(a: str, b: str, latency: dict[str, float]) -> int:
    """+1 when ``a`` is clearly slower than ``b`` (so ``a`` is the caller), -1 the reverse, 0 unknown."""
    la, lb = latency.get(a, math.nan), latency.get(b, math.nan)
    if not (math.isfinite(la) and math.isfinite(lb)) or la <= 0 or lb <= 0:
        return 0
    if la >= LATENCY_RATIO * lb:
        return 1
    if lb >= LATENCY_RATIO * la:
        return -1
    return 0


def _pairs(series: dict[str, F64]) -> list[tuple[str, str, float, int]]:
    """Linked pairs ``(a, b, partial correlation, lead of a over b)`` among the differenced ``series``."""
    diffs = {s: np.diff(x) for s, x in series.items()}
    names = sorted(s for s, d in diffs.items() if np.std(d) > 0.0)
    if len(names) < 2:
        return []
    matrix = np.column_stack([diffs[s] for s in names])
    partial = _partial_correlation(matrix)
    floor = max(MIN_PARTIAL, SIGNIFICANCE_Z / math.sqrt(len(matrix)))
    out = []
    for i, a in enumerate(names):
        for k in range(i + 1, len(names)):
            if partial[i, k] >= floor:  # False for NaN too
                out.append((a, names[k], float(partial[i, k]), _lead(matrix[:, i], matrix[:, k])))
    return out


def _strength(graph: nx.DiGraph, a: str, b: str) -> float:
    """The partial correlation of the edge a -> b or b -> a already learned (-1: none)."""
    got = [float(graph.edges[e]["partial"]) for e in ((a, b), (b, a)) if graph.has_edge(*e)]
    return max(got, default=-1.0)


def learn_graph(frame: MetricFrame, until: float) -> nx.DiGraph:
    """A call graph (caller -> callee) learned from the rows before ``until`` (see module). Each edge
    keeps the strongest partial correlation that linked it (``partial``) and the metric class (``by``)."""
    graph = nx.DiGraph()
    graph.add_nodes_from(frame.service_names)
    before = frame.times < until
    latencies = _pick(frame, before, LATENCY)
    typical = {s: float(np.median(x)) for s, x in latencies.items()}
    for cls, series in ((TRAFFIC, _pick(frame, before, TRAFFIC)), (LATENCY, latencies)):
        for a, b, r, lead in _pairs(series):
            way = lead or _slower(a, b, typical)
            caller, callee = (a, b) if way > 0 else (b, a)
            if not way or r <= _strength(graph, caller, callee):
                continue
            graph.add_edge(caller, callee, partial=r, by=cls)
            if graph.has_edge(callee, caller):  # the two classes disagreed on direction: keep the stronger
                graph.remove_edge(callee, caller)
    return graph


def edge_agreement(learned: nx.DiGraph, declared: nx.DiGraph) -> tuple[int, int, int]:
    """Directed edges learned and declared, learned, and declared (self-loops aside): the counts from
    which a benchmark sums precision and recall over many cases."""
    got = {(a, b) for a, b in learned.edges if a != b}
    want = {(a, b) for a, b in declared.edges if a != b}
    return len(got & want), len(got), len(want)
