"""Ground truth, for scorers only: which fault, where, when it started and ended, and when the fleet
met its SLOs again. The engine never imports this module nor reads what it writes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from opsmind.sim.faults import ActiveFault
from opsmind.sim.fleet import Fleet

HEALTHY_STEPS = 6  # SLOs must hold this many consecutive steps to count as recovered


@dataclass
class TruthRecord:
    kind: str
    target: str | None
    root_service: str | None
    start: float
    end: float | None = None
    recovered_at: float | None = None
    details: dict[str, Any] | None = None


class GroundTruth:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.records: list[TruthRecord] = []
        self._live: list[tuple[ActiveFault, TruthRecord]] = []
        self._healthy_run = 0

    def started(self, fault: ActiveFault) -> None:
        spec = fault.spec
        root = spec.service
        if root is None and spec.kind == "traffic_spike":
            root = self.fleet.scenario.load.entry
        rec = TruthRecord(spec.kind, fault.target, root, self.fleet.now, details=dict(fault.details) or None)
        self.records.append(rec)
        self._live.append((fault, rec))

    def slo_ok(self) -> bool:
        """The fleet meets its objectives now: the entry's p99 latency and error ratio, and every model
        within 5% of its baseline accuracy."""
        fleet = self.fleet
        sc = fleet.scenario
        entry = fleet.services[sc.load.entry]
        models_ok = all(
            s.model is None or s.model.accuracy >= 0.95 * s.model.baseline_accuracy
            for s in fleet.services.values()
        )
        return (
            entry.p99_s * 1000 <= sc.slo_latency_ms and entry.error_ratio <= sc.slo_error_ratio and models_ok
        )

    def step(self) -> None:
        fleet = self.fleet
        self._healthy_run = self._healthy_run + 1 if self.slo_ok() else 0
        still: list[tuple[ActiveFault, TruthRecord]] = []
        for fault, rec in self._live:
            if rec.end is None and not fault.cause_present():
                rec.end = fleet.now
            if rec.end is not None and self._healthy_run >= HEALTHY_STEPS:
                rec.recovered_at = max(rec.end, fleet.now - (HEALTHY_STEPS - 1) * fleet.dt)
                continue
            still.append((fault, rec))
        self._live = still

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(r) for r in self.records]
