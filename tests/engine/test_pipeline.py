"""The whole spine in one process: samples -> detect -> anomalies -> incidents -> notify, and what
happens when a stage fails (ingestion goes on)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsmind.config import Settings, load_settings
from opsmind.engine import Engine
from opsmind.notify.base import NotifyResult
from opsmind.notify.stage import RetryPolicy
from opsmind.types import Anomaly, Incident, IncidentStatus, Series, SeriesSamples


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        self.events.append((event, incident.id))
        return NotifyResult(ok=True)


def settings(tmp_path: Path, **extra: Any) -> Settings:
    base: dict[str, Any] = {
        "storage": {"path": str(tmp_path / "e.db")},
        "incidents": {"group_window_s": 60, "resolve_after_s": 0.5, "check_interval_s": 0.05},
        "bus": {"ack_timeout_s": 0.2},
        # Group timers shrunk to real-time fractions of a second: the spine, not the timers, is under test.
        "notify": {"group_wait_s": 0, "group_interval_s": 0.05, "flush_interval_s": 0.05},
    }
    base.update(extra)
    return load_settings(**base)


def history(service: str, n: int, t0: float, level: float = 10.0, seed: int = 0) -> list[SeriesSamples]:
    rng = random.Random(seed)
    s = Series.of("latency_seconds", {"service": service})
    ts = tuple(t0 + i for i in range(n))
    return [SeriesSamples(s, ts, tuple(level + rng.gauss(0, 0.2) for _ in ts))]


async def wait_for(cond: Callable[[], bool], timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def test_a_spike_becomes_an_anomaly_an_incident_and_a_notification(tmp_path: Path) -> None:
    collect = Collect()
    engine = Engine(settings(tmp_path), notifiers=[(collect, RetryPolicy(0, 0.01))])
    await engine.start()
    try:
        t0 = 1_700_000_000.0
        await engine.ingest(history("checkout", 100, t0), "test")
        s = Series.of("latency_seconds", {"service": "checkout"})
        await engine.ingest([SeriesSamples(s, (t0 + 100, t0 + 101), (55.0, 60.0))], "test")
        await wait_for(lambda: len(engine.store.find(Anomaly)) >= 2)
        await wait_for(lambda: bool(engine.store.find(Incident)))
        inc = engine.store.find(Incident)[0]
        assert inc.service == "checkout" and inc.series == (s.key,)
        await wait_for(lambda: engine.store.find(Incident)[0].status is IncidentStatus.RESOLVED)
        await wait_for(lambda: [e for e, _ in collect.events] == ["opened", "resolved"])
        assert engine.store.find(Incident)[0].anomaly_count == 2
    finally:
        await engine.stop()


async def test_ingestion_goes_on_when_the_detector_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(settings(tmp_path, bus={"ack_timeout_s": 0.05, "max_backlog": 4}), notifiers=[])
    detect = engine.stages[0]

    def broken(*args: Any) -> Any:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(detect.ensemble, "step_rows", broken)  # type: ignore[attr-defined]
    await engine.start()
    try:
        # Recent timestamps: the storage maintenance at start drops raw samples past their retention,
        # and would race this count if the samples were from years ago.
        t0 = time.time() - 3600.0
        for i in range(30):  # far more batches than the samples topic holds
            stored = await asyncio.wait_for(engine.ingest(history("api", 10, t0 + 10 * i, seed=i), "test"), 2)
            assert stored == 10
        s = Series.of("latency_seconds", {"service": "api"})
        assert len(engine.store.query(s, 0, 2e9, "raw").values) == 300
        await wait_for(lambda: engine.telemetry.value("opsmind_stage_errors_total", {"stage": "detect"}) > 0)
        assert engine.telemetry.value("opsmind_bus_shed_messages_total", {"topic": "samples"}) > 0
        health = engine.health()
        assert health["stages"]["detect"] == "up"  # still running, still consuming
    finally:
        await engine.stop()


async def test_a_crashed_stage_loop_is_restarted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(settings(tmp_path), notifiers=[])
    incidents = engine.stages[1]
    calls = {"n": 0}
    original = incidents.tick

    async def flaky_tick() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("tick bug")
        await original()

    monkeypatch.setattr(incidents, "tick", flaky_tick)
    await engine.start()
    try:
        await wait_for(lambda: calls["n"] >= 3)
        assert engine.telemetry.value("opsmind_stage_errors_total", {"stage": "incidents"}) >= 1
    finally:
        await engine.stop()


async def test_open_incidents_survive_a_restart(tmp_path: Path) -> None:
    cfg = settings(
        tmp_path, incidents={"group_window_s": 600, "resolve_after_s": 3600, "check_interval_s": 1}
    )
    engine = Engine(cfg, notifiers=[])
    await engine.start()
    t0 = 1_700_000_000.0
    s = Series.of("latency_seconds", {"service": "db"})
    await engine.ingest(history("db", 100, t0), "test")
    await engine.ingest([SeriesSamples(s, (t0 + 100, t0 + 101), (80.0, 85.0))], "test")
    await wait_for(lambda: bool(engine.store.find(Incident)))
    await engine.stop()
    engine2 = Engine(cfg, notifiers=[])
    await engine2.start()
    try:
        await engine2.ingest(history("db", 100, t0 + 101), "test")
        await engine2.ingest([SeriesSamples(s, (t0 + 201,), (90.0,))], "test")
        await wait_for(lambda: engine2.store.find(Incident)[0].anomaly_count == 3)
        assert len(engine2.store.find(Incident)) == 1
    finally:
        await engine2.stop()


async def test_one_stray_anomaly_opens_no_incident(tmp_path: Path) -> None:
    engine = Engine(settings(tmp_path), notifiers=[])
    await engine.start()
    try:
        t0 = 1_700_000_000.0
        s = Series.of("latency_seconds", {"service": "search"})
        await engine.ingest(history("search", 100, t0), "test")
        await engine.ingest([SeriesSamples(s, (t0 + 100,), (70.0,))], "test")
        await engine.ingest(history("search", 50, t0 + 101), "test")
        await wait_for(lambda: len(engine.store.find(Anomaly)) == 1)
        await asyncio.sleep(0.3)
        assert engine.store.find(Incident) == []
    finally:
        await engine.stop()
