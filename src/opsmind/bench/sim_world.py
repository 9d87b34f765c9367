"""The simulated fleet as a world beside an engine: shared by the demo (:mod:`opsmind.cli.demo_fleet`) and
the chaos benchmark's engine loop (:mod:`opsmind.bench.chaos_engine`).

:class:`SimWorld` holds one :class:`~opsmind.sim.runner.SimRun` and the lock that serialises what is done
to it; it is the target of the engine's actuators (scaling and runbook actions carried out by the
simulator) and declares the fleet as its operator would (inventory, entry service, call graph, SLO
objectives). :func:`to_events` turns a simulator step's platform events into the engine's events. Nothing
here hands the engine the simulator's ground truth.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from opsmind.act.base import ActionResult, ReplicaBounds
from opsmind.act.sim_remediate import SimulatorRemediator
from opsmind.act.simulator import SimReply, SimulatorScaler
from opsmind.clock import Clock
from opsmind.config import HealInventoryEntry, ScaleServiceSettings, ScaleSettings, Settings
from opsmind.decide.prices import InstancePrice
from opsmind.heal.executor import ActionRequest
from opsmind.sim.runner import SimRun, Step, default_scenario
from opsmind.sim.spec import Scenario
from opsmind.types import Event


def to_events(step: Step) -> list[Event]:
    return [
        Event(
            at=e.ts,
            service=e.service,
            reason=e.reason,
            message=e.message,
            pod=e.pod,
            node=e.node,
            source="sim",
        )
        for e in step.events
    ]


# The services the engine scales in the demo, with their replica bounds: stateless, with the daily load.
# The gateway keeps one replica per zone at least.
SCALED: dict[str, tuple[int, int]] = {"personalization": (2, 10), "gateway": (3, 12)}


class SimWorld:
    """The simulated fleet, started ``history_s`` before the clock's now, and the lock that serialises what
    is done to it: the demo steps it on the event loop, the engine's scaling stage calls its actuator from a
    worker thread. As an actuator target (``apply``) it is what a ``SimulatorScaler`` drives."""

    def __init__(
        self, clock: Clock, history_s: float = 3600.0, seed: int = 7, scenario: Scenario | None = None
    ) -> None:
        """The default fleet (``seed``), started ``history_s`` before ``clock``'s now, running for ever;
        or ``scenario`` as it is (its own start, faults and end: the chaos benchmark's)."""
        if scenario is None:
            scenario = default_scenario(seed=seed, start=clock.now() - history_s, duration_s=10.0**9)
        self.sim = SimRun(scenario)
        self.lock = threading.Lock()

    def apply(self, action: str, **params: Any) -> SimReply:
        with self.lock:
            return self.sim.actuator.apply(action, **params)

    def remediate(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        """The heal stage's actuator: a runbook action carried out by the simulator (under the lock)."""
        with self.lock:
            return SimulatorRemediator(self.sim.actuator)(request.action, request.params, dry_run)

    def replicas(self, service: str) -> int:
        """The replicas ``service`` is asked to run now; KeyError for a service the fleet does not have."""
        with self.lock:
            return self.sim.fleet.services[service].desired

    def scale_settings(
        self,
        prices: tuple[InstancePrice, ...],
        scaled: Mapping[str, tuple[int, int]] = SCALED,
        interval_s: float = 15.0,
    ) -> ScaleSettings:
        """Predictive scaling of ``scaled`` (service -> min, max replicas) through the simulator, not dry
        run. Capacity per replica is what the simulator serves at 100 % (slots over the service time), used
        until one is learned; one replica per instance of the service's type, so a replica costs what its
        instance does."""
        services: dict[str, ScaleServiceSettings] = {}
        for name, (lo, hi) in scaled.items():
            spec = self.sim.fleet.services[name].spec
            inst = spec.instance
            key = (inst.provider, inst.region, inst.type)
            vcpu = next((p.vcpu for p in prices if (p.provider, p.region, p.instance_type) == key), 1)
            services[name] = ScaleServiceSettings(
                min_replicas=lo,
                max_replicas=hi,
                policy="predictive",
                actuator="simulator",
                dry_run=False,
                startup_s=spec.startup_s,
                capacity_per_replica=spec.concurrency / (spec.service_time_ms / 1000.0),
                provider=inst.provider,
                region=inst.region,
                instance_type=inst.type,
                vcpu_per_replica=float(vcpu),
            )
        return ScaleSettings(interval_s=interval_s, dry_run=False, services=services)

    def error_objectives(self) -> tuple[float, dict[str, float]]:
        """The availability SLOs the demo's operator declares: the fleet's own objective (the scenario's
        ``slo_error_ratio``, 99 % good requests) for every service, and 95 % for a batch worker, whose job
        fails when any of its many reads does (a training job makes 20 feature-store calls). The engine's
        default, 99.9 %, is tighter than this fleet runs when healthy (errors compound along the call
        graph: the gateway fails ~0.6 % of requests), so burn-rate alerts would open on nearly every
        service at start and drown the demo's faults."""
        scenario = self.sim.scenario
        fleet = 1.0 - scenario.slo_error_ratio
        workers = {name: 0.95 for name, spec in scenario.services.items() if spec.kind == "worker"}
        return fleet, workers

    def inventory(self) -> dict[str, Any]:
        """``heal.inventory`` and ``heal.entry_service`` as the fleet's operator declares them (what the
        fault classifier reads beside the metrics)."""
        scenario = self.sim.scenario
        declared = {
            name: HealInventoryEntry(kind=spec.kind, memory_limit_mb=spec.memory_limit_mb)
            for name, spec in scenario.services.items()
        }
        return {"inventory": declared, "entry_service": scenario.load.entry}

    def configure(self, settings: Settings, prices: tuple[InstancePrice, ...]) -> Settings:
        """``settings`` as :meth:`declare` declares the fleet, scaling the demo's services
        (:meth:`scale_settings`), with prediction reading the replicas the simulator's Deployments are
        asked for before the ready ones: an action shows in them at once, while new pods take
        ``startup_s`` to become ready (the HPA also counts desired replicas)."""
        settings = self.declare(settings)
        update = {"replicas_metrics": ["replicas_desired", "replicas_ready"]}
        predict = settings.predict.model_copy(update=update)
        return settings.model_copy(update={"scale": self.scale_settings(prices), "predict": predict})

    def declare(self, settings: Settings) -> Settings:
        """``settings`` with the fleet declared as its operator knows it, unless they declare their own:
        the call graph (``incidents.topology``), the services' kinds, memory limits and entry
        (:meth:`inventory`) and the objectives (:meth:`objectives`: what burn-rate alerts judge, and what
        keeps an incident open while users still feel it)."""
        if not settings.incidents.topology:
            incidents = settings.incidents.model_copy(update={"topology": self.sim.scenario.call_graph()})
            settings = settings.model_copy(update={"incidents": incidents})
        if not settings.heal.inventory:
            heal = settings.heal.model_copy(update=self.inventory())
            settings = settings.model_copy(update={"heal": heal})
        declared = self.objectives()
        if not set(declared) & settings.predict.model_fields_set:
            settings = settings.model_copy(update={"predict": settings.predict.model_copy(update=declared)})
        return settings

    def objectives(self) -> dict[str, Any]:
        """The fleet's objectives as its operator declares them: the entry's p99 latency SLO (the
        scenario's ``slo_latency_ms``) for every service at the 0.99 quantile, and the availability
        objectives of :meth:`error_objectives`."""
        fleet, workers = self.error_objectives()
        return {
            "latency_quantile": "0.99",
            "latency_slo_s": self.sim.scenario.slo_latency_ms / 1000.0,
            "error_objective": fleet,
            "error_objective_overrides": workers,
        }

    def scaler(self, settings: ScaleSettings) -> SimulatorScaler:
        """The simulator actuator for the engine, bounded by the widest range of ``settings``' services
        (the scaling stage keeps each service within its own)."""
        ranges = [(c.min_replicas, c.max_replicas) for c in settings.services.values()] or [(1, 100)]
        bounds = ReplicaBounds(min(lo for lo, _ in ranges), max(hi for _, hi in ranges))
        return SimulatorScaler(self, bounds, self.replicas)
