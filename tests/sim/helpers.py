"""Reading the simulator the way the engine would: from the exposed samples and events of each step."""

from __future__ import annotations

from collections.abc import Callable
from statistics import fmean
from typing import Any, Literal

from opsmind.sim.model import FleetEvent
from opsmind.sim.runner import SimRun, Step, default_scenario

Agg = Literal["one", "max", "min", "sum", "mean"]
_AGGS: dict[str, Callable[[list[float]], float]] = {
    "max": max,
    "min": min,
    "sum": sum,
    "mean": fmean,
}


def metric(step: Step, name: str, service: str, quantile: str | None = None, agg: Agg = "one") -> float:
    """The value of ``name`` for ``service`` in one step. Per-pod metrics (several series) need ``agg``;
    ``one`` insists on exactly one series. Raises KeyError when the service exposes no such metric."""
    values = [
        v
        for s, v in step.samples
        if s.name == name
        and dict(s.labels).get("service") == service
        and dict(s.labels).get("quantile") == quantile
    ]
    if not values:
        raise KeyError(f"no {name} for {service} (quantile {quantile}) in this step")
    if agg == "one":
        if len(values) != 1:
            raise ValueError(f"{name} for {service} has {len(values)} series; pass agg")
        return values[0]
    return _AGGS[agg](values)


class Probe:
    """A SimRun that keeps every step, with times in seconds since the scenario start."""

    def __init__(self, run: SimRun) -> None:
        self.run = run
        self.start = run.scenario.start
        self.steps: list[Step] = []

    @classmethod
    def default(cls, seed: int = 7, duration_s: float = 7200.0, **overrides: Any) -> Probe:
        return cls(SimRun(default_scenario(seed=seed, duration_s=duration_s, **overrides)))

    @classmethod
    def with_fault(cls, kind: str, at_s: float, duration_s: float = 3600.0, **fault: Any) -> Probe:
        """The default fleet with one fault (``service``, ``node``, ``zone``, ``params``, ...)."""
        return cls.default(duration_s=duration_s, faults=[{"kind": kind, "at_s": at_s, **fault}])

    @property
    def t(self) -> float:
        return self.run.fleet.t

    def until(self, t: float) -> Probe:
        while self.run.fleet.t < t - 1e-9:
            self.steps.append(self.run.step())
        return self

    def values(
        self, name: str, service: str, t0: float, t1: float, quantile: str | None = None, agg: Agg = "one"
    ) -> list[float]:
        return [metric(s, name, service, quantile, agg) for s in self.steps if t0 <= s.ts - self.start < t1]

    def mean(
        self, name: str, service: str, t0: float, t1: float, quantile: str | None = None, agg: Agg = "one"
    ) -> float:
        vals = self.values(name, service, t0, t1, quantile, agg)
        assert vals, f"no steps between {t0} and {t1}"
        return fmean(vals)

    def events(self, reason: str | None = None, t0: float = 0.0) -> list[FleetEvent]:
        return [
            e
            for s in self.steps
            for e in s.events
            if (reason is None or e.reason == reason) and e.ts - self.start >= t0
        ]

    def rel(self, ts: float | None) -> float | None:
        """A ground-truth timestamp as seconds since the scenario start."""
        return None if ts is None else ts - self.start
