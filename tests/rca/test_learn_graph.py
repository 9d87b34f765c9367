"""Learning a call graph from metric co-movement before a fault, on generated fleets."""

from __future__ import annotations

import networkx as nx
import numpy as np

from opsmind.rca.frame import MetricFrame
from opsmind.rca.learn_graph import edge_agreement, learn_graph

T0 = 1_700_000_000.0
N = 600
FAULT = T0 + 500.0


def late(x: np.ndarray, share: float) -> np.ndarray:
    """``x`` with ``share`` of it arriving one row later (calls that cross a sampling boundary)."""
    return (1.0 - share) * x + share * np.concatenate([x[:1], x[:-1]])


def chain(seed: int = 0, lag: float = 0.0) -> dict[str, np.ndarray]:
    """A calls B calls C: each hop passes its traffic on (``lag`` of it one row later) and adds its own
    share (cron jobs, retries), so B explains C and A only reaches C through B. Latency: each service's
    own time plus its callee's."""
    rng = np.random.default_rng(seed)
    a = 100.0 + np.cumsum(rng.normal(0.0, 2.0, N))
    b = 2.0 * late(a, lag) + np.cumsum(rng.normal(0.0, 2.0, N))
    c = 0.5 * late(b, lag) + np.cumsum(rng.normal(0.0, 1.0, N))
    lat_c = 0.010 + 0.001 * rng.normal(size=N)
    lat_b = 0.020 + lat_c + 0.001 * rng.normal(size=N)
    lat_a = 0.030 + lat_b + 0.001 * rng.normal(size=N)
    return {
        "a_request_rate": a,
        "b_request_rate": b,
        "c_request_rate": c,
        "a_latency_seconds": lat_a,
        "b_latency_seconds": lat_b,
        "c_latency_seconds": lat_c,
    }


def frame(cols: dict[str, np.ndarray]) -> MetricFrame:
    return MetricFrame.from_columns(T0 + np.arange(N, dtype=np.float64), cols)


def test_a_chain_is_recovered_with_its_direction() -> None:
    for seed in range(5):
        g = learn_graph(frame(chain(seed)), FAULT)
        assert set(g.edges) == {("a", "b"), ("b", "c")}, seed


def test_a_lead_orients_an_edge_without_latency() -> None:
    cols = {k: v for k, v in chain(1, lag=0.6).items() if "request" in k}
    g = learn_graph(frame(cols), FAULT)
    assert set(g.edges) == {("a", "b"), ("b", "c")}


def test_a_pair_that_neither_leads_nor_differs_in_latency_is_left_out() -> None:
    cols = {k: v for k, v in chain(2).items() if "request" in k}
    assert learn_graph(frame(cols), FAULT).number_of_edges() == 0


def test_only_rows_before_the_fault_are_used() -> None:
    rng = np.random.default_rng(4)
    cols = {f"s{i}_request_rate": 100.0 + np.cumsum(rng.normal(size=N)) for i in range(3)}
    shared = np.cumsum(rng.normal(0.0, 10.0, N))
    after = np.arange(N) >= 500
    cols["s0_request_rate"][after] += shared[after]  # a fault moves s0 and s1 together
    cols["s1_request_rate"][after] += 2.0 * shared[after]
    cols["s0_latency_seconds"] = np.full(N, 0.2)
    cols["s1_latency_seconds"] = np.full(N, 0.1)
    assert learn_graph(frame(cols), T0 + N).has_edge("s0", "s1")
    assert learn_graph(frame(cols), FAULT).number_of_edges() == 0


def test_independent_services_are_not_linked() -> None:
    rng = np.random.default_rng(5)
    cols = {}
    for i in range(8):
        cols[f"svc{i}_request_rate"] = 50.0 + np.cumsum(rng.normal(size=N))
        cols[f"svc{i}_latency_seconds"] = 0.01 * (i + 1) + 0.001 * rng.normal(size=N)
    g = learn_graph(frame(cols), FAULT)
    assert g.number_of_edges() == 0 and set(g.nodes) == {f"svc{i}" for i in range(8)}


def test_gaps_constant_series_and_a_single_service_give_no_error() -> None:
    cols = chain(6)
    cols["a_request_rate"][::10] = np.nan  # short gaps are interpolated over
    g = learn_graph(frame(cols), FAULT)
    assert set(g.edges) == {("a", "b"), ("b", "c")}
    cols["b_request_rate"][:] = np.nan
    cols["b_latency_seconds"][: N // 2] = np.nan  # too many gaps: the column is left out
    cols["c_request_rate"][:] = 7.0
    cols["c_latency_seconds"][:] = 0.01
    assert learn_graph(frame(cols), FAULT).number_of_edges() == 0
    one = frame({"a_request_rate": chain(7)["a_request_rate"], "a_cpu": np.ones(N)})
    assert list(learn_graph(one, FAULT).nodes) == ["a"]
    assert learn_graph(frame(chain(8)), T0 + 10).number_of_edges() == 0  # too few rows before


def test_frames_without_traffic_or_latency_give_an_empty_graph() -> None:
    rng = np.random.default_rng(9)
    g = learn_graph(frame({"x_cpu": rng.normal(size=N), "y_memory": rng.normal(size=N)}), FAULT)
    assert g.number_of_edges() == 0


def test_edge_agreement_counts_directed_edges() -> None:
    learned = nx.DiGraph([("a", "b"), ("c", "b"), ("a", "a")])
    declared = nx.DiGraph([("a", "b"), ("b", "c"), ("b", "d")])
    assert edge_agreement(learned, declared) == (1, 2, 3)
