"""Every fault the demo director injects can be injected on the default fleet, and the simulated
operator's remedy for it is accepted and ends it."""

from __future__ import annotations

from typing import Any

import pytest

from opsmind.cli.demo_fleet import ROTATION, DemoFleet
from opsmind.clock import SimClock


@pytest.mark.parametrize("index", range(len(ROTATION)), ids=[p.spec.kind for p in ROTATION])
def test_each_demo_fault_is_remedied_by_the_demo_operator(index: int) -> None:
    planned = ROTATION[index]
    # The director never touches the engine; the demo feeds it elsewhere.
    demo = DemoFleet(engine=None, clock=SimClock(start=1_767_225_600.0 + 14 * 3600), history_s=0)  # type: ignore[arg-type]
    sim = demo.sim
    for _ in range(12):
        sim.step()
    fault = sim.inject(planned.spec)
    for _ in range(30):
        sim.step()
    accepted: list[Any] = []
    original = sim.actuator.apply

    def record(action: str, **params: Any) -> Any:
        result = original(action, **params)
        accepted.append(result)
        return result

    sim.actuator.apply = record  # type: ignore[method-assign]
    demo._remedy(planned, fault)
    assert accepted and all(r.accepted for r in accepted), [r.reason for r in accepted]
    for _ in range(400):  # long enough for a retrain (900 s) and pods to start
        sim.step()
    record_ = sim.truth.records[-1]
    assert record_.end is not None, f"{planned.spec.kind} not ended by {planned.remedy}"
