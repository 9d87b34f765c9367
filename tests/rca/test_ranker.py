"""Root-cause ranking on generated fault data: magnitude, onset, graph explanations, the baseline."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from opsmind.rca.frame import MetricFrame
from opsmind.rca.ranker import is_counter, is_occupancy, metric_class, rank, rank_now
from opsmind.rca.scoring import nsigma, robust_change

T0 = 1_700_000_000.0
FAULT = T0 + 600.0


def frame(changes: dict[str, tuple[float, float]], seed: int = 0, n: int = 900) -> MetricFrame:
    """Noisy columns; ``changes`` maps a column to (seconds after FAULT it starts, size in noise sd)."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(n, dtype=np.float64)
    cols = {}
    for name in (
        "gw_request_rate",
        "gw_latency",
        "api_latency",
        "api_cpu",
        "db_cpu",
        "db_latency",
        "api_request_rate",
        "db_request_rate",
        "api_pool_in_use_ratio",
        "db_pool_in_use_ratio",
    ):
        x = 100.0 + rng.normal(0.0, 1.0, n)
        if name in changes:
            delay, size = changes[name]
            x[t >= FAULT + delay] += size
        cols[name] = x
    return MetricFrame.from_columns(t, cols)


def test_the_service_that_changed_most_and_first_is_first_with_evidence() -> None:
    f = frame({"db_cpu": (0, 40), "api_latency": (20, 30), "gw_latency": (40, 25)})
    causes = rank(f, FAULT)
    assert [c.service for c in causes][:1] == ["db"]
    assert causes[0].evidence.startswith("cpu rose")
    assert "from +0 s" in causes[0].evidence
    assert causes[0].score > causes[1].score


def test_onset_breaks_a_tie_in_magnitude() -> None:
    f = frame({"db_cpu": (0, 30), "api_cpu": (120, 30)})
    assert rank(f, FAULT)[0].service == "db"


def test_the_graph_explains_load_from_upstream_and_slowness_from_downstream() -> None:
    g = nx.DiGraph([("gw", "api"), ("api", "db")])
    # A traffic spike at the entry: every service's traffic rises with it, the database's most.
    spike = frame({"gw_request_rate": (0, 20), "api_request_rate": (0, 30), "db_request_rate": (0, 60)})
    assert rank(spike, FAULT)[0].service == "db"  # magnitude alone blames the database
    ranked = rank(spike, FAULT, g)
    assert ranked[0].service == "gw"
    assert "explained: load from" in next(c for c in ranked if c.service == "db").evidence
    # A slow database: callers' latency rises with it and is explained by their callee.
    slow = frame({"db_latency": (0, 20), "api_latency": (0, 40), "gw_latency": (5, 50)})
    assert rank(slow, FAULT, g)[0].service == "db"


def test_nsigma_baseline_and_scores() -> None:
    f = frame({"db_cpu": (0, 40)})
    assert rank(f, FAULT, method="nsigma")[0].service == "db"
    rc, ns = robust_change(f, FAULT), nsigma(f, FAULT)
    j = f.columns.index("db_cpu")
    assert rc.score[j] > 20 and ns.score[j] > 20 and rc.direction[j] == 1.0
    assert np.isinf(rc.onset[f.columns.index("gw_latency")])


def test_a_column_flat_before_the_fault_scores_relative_to_its_level_not_infinity() -> None:
    t = T0 + np.arange(100, dtype=np.float64)
    errors = np.where(t >= T0 + 50, 0.2, 0.0)
    ok = 100 + np.random.default_rng(1).normal(0, 1, 100)
    f = MetricFrame.from_columns(t, {"a_error_ratio": errors, "b_cpu": ok})
    causes = rank(f, T0 + 50)
    assert causes[0].service == "a" and np.isfinite(causes[0].score)


def test_bad_fault_times_and_methods_are_refused() -> None:
    f = frame({})
    with pytest.raises(ValueError, match="leaves 0 rows before it"):
        rank(f, T0 - 10)
    with pytest.raises(ValueError, match="unknown method"):
        rank(f, FAULT, method="magic")


def test_a_pool_held_open_while_a_callee_is_slow_is_explained_but_a_leaking_one_is_not() -> None:
    g = nx.DiGraph([("gw", "api"), ("api", "db")])
    # A slow database: the caller's pool fills (it waits longer per call) as much as the database slows.
    slow = frame({"db_latency": (0, 50), "api_latency": (0, 50), "api_pool_in_use_ratio": (0, 50)})
    ranked = rank(slow, FAULT, g)
    assert ranked[0].service == "db"
    assert "held open while callee db" in next(c for c in ranked if c.service == "api").evidence
    # A pool leak in the caller: its pool fills while the database is fine; nothing explains it.
    leak = frame({"api_pool_in_use_ratio": (0, 50), "api_latency": (10, 50), "gw_latency": (10, 50)})
    assert rank(leak, FAULT, g)[0].service == "api"


def test_metric_classes_from_names() -> None:
    assert is_occupancy("pool_in_use_ratio") and is_occupancy("queue_depth")
    assert not is_occupancy("cpu_utilisation") and not is_occupancy("pool_request_rate")
    assert metric_class("error_rate") == "errors"
    assert metric_class("latency-50") == "latency"
    assert metric_class("workload") == "traffic" and metric_class("request_rate") == "traffic"
    assert metric_class("mem") == "resource" and metric_class("pod_restarts_total") == "resource"


def test_rank_now_sees_what_is_still_different_not_what_recovered() -> None:
    f = frame({"db_cpu": (0, 40), "api_latency": (0, 20)})
    assert rank(f, FAULT)[0].service == "db"
    # The database was fixed at FAULT + 120: its CPU is back, the API's latency is not.
    t = f.times
    values = f.values.copy()
    values[t >= FAULT + 120, f.columns.index("db_cpu")] -= 40
    fixed = MetricFrame(t, f.services, f.metrics, values)
    now = rank_now(fixed, (T0, FAULT), t[-1] - 60)
    assert now[0].service == "api"
    db = next(c for c in now if c.service == "db")
    assert db.metrics[0].score < 4.0  # back to normal: not still broken
    with pytest.raises(ValueError, match="no later than the window starts"):
        rank_now(fixed, (T0, FAULT), FAULT - 10)


def test_rank_now_compares_a_counter_by_its_increase_not_its_level() -> None:
    t = T0 + np.arange(600, dtype=np.float64)
    rng = np.random.default_rng(2)
    # Two restarts at T0 + 300 leave the count raised for good; the app's latency is still up now.
    restarts = np.where(t >= T0 + 300, 2.0, 0.0)
    latency = 1.0 + rng.normal(0, 0.01, 600) + np.where(t >= T0 + 300, 0.5, 0.0)
    f = MetricFrame.from_columns(t, {"db_restarts_total": restarts, "app_latency": latency})
    assert is_counter("restarts_total") and not is_counter("latency")
    assert rank(f, T0 + 300)[0].service == "db"  # by its level the counter is the biggest change
    now = rank_now(f, (T0, T0 + 300), t[-1] - 60)
    assert [c.service for c in now][0] == "app"
    assert next(c for c in now if c.service == "db").metrics[0].score == 0.0  # no restart now
