"""Incidents carry a root-cause ranking computed from the stored metrics when they open."""

from __future__ import annotations

import random
import time
from pathlib import Path

import networkx as nx
import numpy as np

from opsmind.config import load_settings
from opsmind.engine import Engine
from opsmind.incidents.root_cause import frame_from_store, root_causes, topology_graph
from opsmind.notify.stage import RetryPolicy
from opsmind.store.sqlite import SqliteStore
from opsmind.types import Incident, Series, SeriesSamples
from tests.engine.test_pipeline import Collect, wait_for

# Recent timestamps: the store keeps raw points for its raw retention counted back from now.
T0 = float(int(time.time()) - 1000)


def fleet(n: int, fault_at: int | None) -> list[SeriesSamples]:
    """A database whose CPU jumps at ``fault_at``; the API that calls it slows down a few seconds later;
    the gateway is untouched."""
    rng = random.Random(2)
    cols = {
        Series.of("cpu_utilisation", {"service": "db"}): (0.3, 0.01, 0.5, 0),
        Series.of("latency_seconds", {"service": "db", "quantile": "0.95"}): (0.01, 0.0005, 0.0, 0),
        Series.of("latency_seconds", {"service": "api", "quantile": "0.95"}): (0.2, 0.005, 0.3, 5),
        Series.of("request_rate", {"service": "gateway"}): (100.0, 2.0, 0.0, 0),
        Series.of("pod_cpu_utilisation", {"service": "gateway", "pod": "gw-1"}): (0.5, 0.01, 0.0, 0),
    }
    out = []
    for s, (level, noise, jump, delay) in cols.items():
        ts = tuple(T0 + i for i in range(n))
        vals = tuple(
            level + rng.gauss(0, noise) + (jump if fault_at is not None and i >= fault_at + delay else 0.0)
            for i in range(n)
        )
        out.append(SeriesSamples(s, ts, vals))
    return out


def test_frame_from_store_keeps_service_level_series_and_aggregates_pods(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    store.append(fleet(50, None))
    ts = tuple(T0 + i for i in range(50))
    store.append(
        [
            # A second gateway pod, hotter and only for the first half: the column is the busiest pod.
            SeriesSamples(
                Series.of("pod_cpu_utilisation", {"service": "gateway", "pod": "gw-2"}), ts[:25], (0.9,) * 25
            ),
            # Pod series the benchmarks do not aggregate are left out.
            SeriesSamples(
                Series.of("pod_network_bytes", {"service": "gateway", "pod": "gw-1"}), ts, (1.0,) * 50
            ),
        ]
    )
    frame = frame_from_store(store, T0, T0 + 100)
    assert frame is not None
    assert sorted(frame.columns) == [
        "api_latency_seconds-0.95",
        "db_cpu_utilisation",
        "db_latency_seconds-0.95",
        "gateway_pod_cpu_utilisation",
        "gateway_request_rate",
    ]
    assert frame.values.shape == (50, 5)
    pods = frame.values[:, frame.columns.index("gateway_pod_cpu_utilisation")]
    assert (pods[:25] == 0.9).all() and (pods[25:] < 0.6).all()
    assert frame_from_store(store, T0 + 1000, T0 + 2000) is None
    g = topology_graph({"api": ["db"]})
    assert g is not None and g.has_edge("api", "db") and topology_graph({}) is None


async def test_an_incident_opens_with_the_database_ranked_first(tmp_path: Path) -> None:
    settings = load_settings(
        storage={"path": str(tmp_path / "e.db")},
        incidents={"group_window_s": 60, "topology": {"gateway": ["api"], "api": ["db"]}},
    )
    engine = Engine(settings, notifiers=[(Collect(), RetryPolicy(0, 0.01))])
    await engine.start()
    try:
        data = fleet(400, fault_at=300)
        await engine.ingest(data, "test")
        await wait_for(lambda: bool(engine.store.find(Incident)))
        incident = min(engine.store.find(Incident), key=lambda i: i.opened_at)
        causes = incident.root_causes
        assert causes and causes[0]["service"] == "db", causes
        assert "cpu_utilisation rose" in causes[0]["evidence"]
        assert any(e.get("event") == "root_causes" for e in incident.timeline)
    finally:
        await engine.stop()


async def test_ranking_can_be_switched_off(tmp_path: Path) -> None:
    settings = load_settings(
        storage={"path": str(tmp_path / "e.db")}, incidents={"group_window_s": 60, "root_cause": False}
    )
    engine = Engine(settings, notifiers=[(Collect(), RetryPolicy(0, 0.01))])
    await engine.start()
    try:
        await engine.ingest(fleet(400, fault_at=300), "test")
        await wait_for(lambda: bool(engine.store.find(Incident)))
        assert all(i.root_causes == () for i in engine.store.find(Incident))
    finally:
        await engine.stop()


def test_without_a_topology_the_graph_is_learned_from_the_metrics(tmp_path: Path) -> None:
    """gw calls api (api's traffic follows gw's, its latency is part of gw's); a load spike at gw moves
    api's traffic most. The learned graph explains api's load by its caller, so gw comes first."""
    rng = np.random.default_rng(11)
    n, fault = 400, 300
    gw = 300.0 + np.cumsum(rng.normal(0.0, 2.0, n))
    api = 2.0 * gw + np.cumsum(rng.normal(0.0, 2.0, n))
    gw[fault:] += 60.0
    api[fault:] += 400.0
    lat_api = 0.02 + rng.normal(0.0, 0.001, n)
    ts = tuple(T0 + i for i in range(n))
    cols = {
        Series.of("request_rate", {"service": "gw"}): gw,
        Series.of("request_rate", {"service": "api"}): api,
        Series.of("latency_seconds", {"service": "gw"}): 0.03 + lat_api,
        Series.of("latency_seconds", {"service": "api"}): lat_api,
    }
    store = SqliteStore(str(tmp_path / "s.db"))
    store.append([SeriesSamples(s, ts, tuple(v.tolist())) for s, v in cols.items()])
    learned, why = root_causes(store, T0 + fault, T0 + n, 400.0, None)
    assert why is None and learned[0].service == "gw", learned
    assert "explained: load from gw" in learned[1].evidence
    unexplained, _ = root_causes(store, T0 + fault, T0 + n, 400.0, nx.DiGraph())
    assert unexplained[0].service == "api"  # an empty graph explains nothing
