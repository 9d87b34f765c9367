"""The incident stage does not auto-resolve an incident whose service still breaches an objective it met
before (the detectors got used to the fault; users did not), and says so on its timeline. Engine on a
fake clock, real SQLite store; the samples are written to the store directly (the detectors never see
them) and the anomaly is published by the test."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from opsmind.clock import SimClock
from opsmind.config import load_settings
from opsmind.engine import Engine
from opsmind.incidents.grouping import HELD_OPEN
from opsmind.incidents.stage import ANOMALIES_TOPIC
from opsmind.types import Anomaly, Incident, Series, SeriesSamples
from tests.engine.test_healing_stage import wait_for

T0 = 1_700_000_000.0


def _slowed_api(until: float) -> list[SeriesSamples]:
    """api's p99 at 0.3 s until T0, 0.8 s after (its SLO is 0.5 s); its errors stay low."""
    ts = np.arange(T0 - 1200.0, until + 1e-9, 5.0)
    p99 = np.where(ts < T0, 0.3, 0.8)
    return [
        SeriesSamples(
            Series.of("latency_seconds", {"service": "api", "quantile": "0.99"}), tuple(ts), tuple(p99)
        ),
        SeriesSamples(Series.of("error_ratio", {"service": "api"}), tuple(ts), (0.001,) * len(ts)),
    ]


@pytest.mark.parametrize("hold", [True, False])
async def test_an_incident_is_held_open_while_its_service_breaches_its_slo(
    tmp_path: Path, hold: bool
) -> None:
    settings = load_settings(
        storage={"path": str(tmp_path / "hold.db")},
        notify={"log": False},
        predict={"enabled": False, "latency_quantile": "0.99", "latency_slo_s": 0.5},
        incidents={"min_anomalies": 1, "resolve_after_s": 120, "hold_while_breaching": hold},
    )
    clock = SimClock(T0)
    engine = Engine(settings, clock=clock)
    await engine.start()
    try:
        assert engine.incidents is not None
        engine.store.append(_slowed_api(T0 + 600))
        series = 'latency_seconds{quantile="0.99",service="api"}'
        anomaly = Anomaly(
            at=T0, service="api", series=series, ts=T0, value=0.8, score=9, probability=0.9999, detector="t"
        )
        await engine.bus.publish(ANOMALIES_TOPIC, anomaly)
        await wait_for(lambda: bool(engine.store.find(Incident, limit=10)))
        await clock.advance(300)  # quiet for 300 s: past resolve_after_s
        await engine.incidents.tick()
        (inc,) = await asyncio.to_thread(engine.store.find, Incident, limit=10)
        assert inc.status.active is hold
        held = [e for e in inc.timeline if e["event"] == HELD_OPEN]
        if hold:
            assert len(held) == 1 and "api latency 0.8 s above its objective 0.5 s" in held[0]["reason"]
        else:
            assert held == []
    finally:
        await engine.stop()
