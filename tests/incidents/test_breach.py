"""Objectives an incident's services still breach (what holds a quiet incident open), read from a real
SQLite sample store, and the correlator holding an incident open while a hold gives a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsmind.config import IncidentSettings, PredictSettings
from opsmind.incidents.breach import breaches
from opsmind.incidents.correlator import Correlator
from opsmind.incidents.grouping import HELD_OPEN
from opsmind.store.sqlite import SqliteStore
from opsmind.types import Anomaly, IncidentStatus, Series, SeriesSamples

OPENED = 10_000.0
STEP = 5.0


def _store(tmp_path: Path, service: str, before: dict[str, float], after: dict[str, float]) -> SqliteStore:
    """Half an hour of ``service``'s series at the ``before`` levels until OPENED, then ``after``'s."""
    store = SqliteStore(str(tmp_path / "s.db"))
    ts = np.arange(OPENED - 1800.0, OPENED + 600.0, STEP)
    labels = {
        "latency_seconds": {"service": service, "quantile": "0.99"},
        "error_ratio": {"service": service},
        "replicas_ready": {"service": service},
        "replicas_desired": {"service": service},
    }
    batch = []
    for metric, lab in labels.items():
        values = np.where(ts < OPENED, before[metric], after[metric])
        batch.append(SeriesSamples(Series.of(metric, lab), tuple(ts.tolist()), tuple(values.tolist())))
    # A pod's series must not count as the service's own.
    pod = Series.of("latency_seconds", {"service": service, "quantile": "0.99", "pod": "p-1"})
    batch.append(SeriesSamples(pod, tuple(ts.tolist()), tuple(np.full(len(ts), 9.0).tolist())))
    store.append(batch)
    return store


HEALTHY = {"latency_seconds": 0.3, "error_ratio": 0.005, "replicas_ready": 3.0, "replicas_desired": 3.0}
OBJECTIVES = PredictSettings(latency_quantile="0.99", latency_slo_s=0.5, error_objective=0.99)


@pytest.mark.parametrize(
    ("after", "what"),
    [
        ({"latency_seconds": 0.8}, "latency"),
        ({"error_ratio": 0.2}, "errors"),
        ({"replicas_ready": 0.0}, "down"),
    ],
)
def test_a_breach_of_an_objective_met_before_the_incident_is_found(
    tmp_path: Path, after: dict[str, float], what: str
) -> None:
    with _store(tmp_path, "api", HEALTHY, {**HEALTHY, **after}) as store:
        (found,) = breaches(store, OBJECTIVES, ["api"], OPENED, OPENED + 300)
    assert found.service == "api" and found.what == what
    assert "api" in str(found)


def test_a_healthy_service_breaches_nothing(tmp_path: Path) -> None:
    with _store(tmp_path, "api", HEALTHY, HEALTHY) as store:
        assert breaches(store, OBJECTIVES, ["api"], OPENED, OPENED + 300) == []


def test_a_service_that_breached_before_the_incident_holds_nothing(tmp_path: Path) -> None:
    # A batch worker whose jobs always take longer than the fleet's latency SLO.
    slow = {**HEALTHY, "latency_seconds": 20.0}
    with _store(tmp_path, "worker", slow, slow) as store:
        assert breaches(store, OBJECTIVES, ["worker"], OPENED, OPENED + 300) == []


def test_per_service_objectives_apply(tmp_path: Path) -> None:
    failing = {**HEALTHY, "error_ratio": 0.03}
    lenient = OBJECTIVES.model_copy(update={"error_objective_overrides": {"api": 0.95}})
    with _store(tmp_path, "api", HEALTHY, failing) as store:
        assert [b.what for b in breaches(store, OBJECTIVES, ["api"], OPENED, OPENED + 300)] == ["errors"]
        assert breaches(store, lenient, ["api"], OPENED, OPENED + 300) == []


def test_a_service_without_series_breaches_nothing(tmp_path: Path) -> None:
    with _store(tmp_path, "api", HEALTHY, {**HEALTHY, "latency_seconds": 0.8}) as store:
        assert breaches(store, OBJECTIVES, ["elsewhere"], OPENED, OPENED + 300) == []


def _anomaly(ts: float) -> Anomaly:
    return Anomaly(
        at=ts,
        service="api",
        series='latency_seconds{service="api"}',
        ts=ts,
        value=1,
        score=5,
        probability=0.9999,
        detector="t",
    )


def test_the_correlator_holds_a_quiet_incident_open_while_a_hold_gives_a_reason() -> None:
    c = Correlator(IncidentSettings(min_anomalies=1, resolve_after_s=120))
    c.add(_anomaly(0), 0)
    reason: list[str | None] = ["api latency 0.8 s above its objective 0.5 s"]
    (held,) = c.tick(200, lambda inc: reason[0])
    assert held.event == "updated" and held.incident.status is IncidentStatus.OPEN
    assert [e["reason"] for e in held.incident.timeline if e["event"] == HELD_OPEN] == [reason[0]]
    assert c.tick(300, lambda inc: reason[0]) == []  # noted once per hold
    reason[0] = None
    (done,) = c.tick(400, lambda inc: reason[0])
    assert done.event == "resolved"


def test_without_a_hold_a_quiet_incident_resolves() -> None:
    c = Correlator(IncidentSettings(min_anomalies=1, resolve_after_s=120))
    c.add(_anomaly(0), 0)
    assert [ch.event for ch in c.tick(200)] == ["resolved"]
