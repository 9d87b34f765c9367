"""Incidents carry a root-cause ranking computed from the stored metrics when they open."""

from __future__ import annotations

import random
import time
from pathlib import Path

from opsmind.config import load_settings
from opsmind.engine import Engine
from opsmind.incidents.root_cause import frame_from_store, topology_graph
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


def test_frame_from_store_keeps_service_level_series(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "s.db"))
    store.append(fleet(50, None))
    frame = frame_from_store(store, T0, T0 + 100)
    assert frame is not None
    assert sorted(frame.columns) == [
        "api_latency_seconds-0.95",
        "db_cpu_utilisation",
        "db_latency_seconds-0.95",
        "gateway_request_rate",
    ]
    assert frame.values.shape == (50, 4)
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
