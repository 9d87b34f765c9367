"""The demo's healing: the fault classifier trained in a worker process is swapped into the running heal
stage (and saved, so the next start loads it), and the simulated operator leaves alone a fault whose
cause is already gone."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from opsmind.cli.demo_fleet import ROTATION, ClassifierTraining, DemoFleet
from opsmind.clock import SimClock
from opsmind.config import load_settings
from opsmind.engine import Engine
from opsmind.types import AuditEntry


async def test_the_classifier_is_trained_aside_then_swapped_in_and_cached(tmp_path: Path) -> None:
    settings = load_settings(
        storage={"path": str(tmp_path / "demo.db")},
        notify={"log": False},
        detect={"enabled": False},
        predict={"enabled": False},
        heal={"enabled": True, "tick_interval_s": 3600},
    )
    engine = Engine(settings, clock=SimClock(1_767_225_600.0))
    await engine.start()
    try:
        assert engine.healing is not None and not engine.healing.healer.classifier.ready
        cache = tmp_path / "clf.pkl"
        training = ClassifierTraining(engine, seeds=1, cache=cache)
        assert "seeds 5000-5000" in training.describe() and "9000" in training.describe()
        # Two kinds of one seed keep the test short; the demo trains every kind.
        training.tasks = [t for t in training.tasks if t[0] in ("bad_deployment", "traffic_spike")]
        await training.run(stop=None)  # type: ignore[arg-type]
        clf = engine.healing.healer.classifier
        assert clf.ready and clf.examples == 2 and cache.is_file()
        again = ClassifierTraining(engine, seeds=1, cache=cache)
        again.tasks = [("never", 0)]  # would fail if it trained: the cached one is loaded instead
        await again.run(stop=None)  # type: ignore[arg-type]
        assert engine.healing.healer.classifier is not clf and engine.healing.healer.classifier.ready
        notes = [a.detail["note"] for a in engine.store.find(AuditEntry) if a.verb == "heal_classifier"]
        assert any("trained on 2 simulated incidents" in n for n in notes)
        assert any(n.startswith("loaded from") for n in notes)
    finally:
        await engine.stop()


def test_the_operator_leaves_a_fault_already_gone_alone(caplog: pytest.LogCaptureFixture) -> None:
    planned = next(p for p in ROTATION if p.spec.kind == "bad_deployment")
    demo = DemoFleet(engine=None, clock=SimClock(start=1_767_225_600.0 + 14 * 3600), history_s=0)  # type: ignore[arg-type]
    sim = demo.sim
    for _ in range(12):
        sim.step()
    fault = sim.inject(planned.spec)
    for _ in range(10):
        sim.step()
    assert sim.actuator.apply("rollback", service=planned.spec.service).accepted  # OpsMind got there first
    for _ in range(10):
        sim.step()
    assert not fault.cause_present()
    sent: list[Any] = []
    sim.actuator.apply = lambda action, **params: sent.append(action)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        demo._remedy(planned, fault)
    assert sent == [] and "already gone" in caplog.text
