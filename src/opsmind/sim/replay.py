"""One service replaying a recorded load trace, for comparing scaling policies on real traffic.

The fleet simulator (:mod:`opsmind.sim.fleet`) models a whole platform; a scaling comparison over 87
days of traffic needs only one service, stepped fast. This world keeps what decides the outcome:

* pods are paid for from the moment they are created, but serve only after ``startup_s`` (image pull,
  process start, readiness probe) - the delay that makes reactive scaling late;
* the ready pods form an M/M/c queue (:func:`opsmind.sim.queueing.mmc`, the same arithmetic as the
  fleet), so latency climbs steeply as utilisation nears 1;
* a pod's CPU use is its share of the served load over its capacity, capped at 1 (the CPU limit equals
  the request), with a little per-pod imbalance as real load balancers leave;
* scaling down removes the youngest pods first (unready ones before ready ones), as a ReplicaSet does.

The world steps in ``step_s`` ticks (15 s: the HPA's sync period). A policy only sees what a real one
would: the incoming request rate and each pod's readiness and CPU use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from opsmind.sim.queueing import mmc


@dataclass(frozen=True, slots=True)
class ReplaySpec:
    capacity_rps: float = 10.0  # requests per second one pod serves at 100 % CPU
    startup_s: float = 90.0  # from pod creation to ready
    slo_p95_s: float = 0.5  # the latency objective a minute is judged by
    timeout_s: float = 5.0
    min_replicas: int = 2
    max_replicas: int = 200
    initial_replicas: int = 2
    imbalance: float = 0.05  # relative spread of load across pods
    seed: int = 0

    @property
    def service_s(self) -> float:
        return 1.0 / self.capacity_rps


@dataclass(frozen=True, slots=True)
class PodView:
    name: str
    started_s: float
    ready: bool
    ready_since_s: float | None
    cpu: float  # fraction of the request


@dataclass(slots=True)
class StepResult:
    ready: int
    pods: int
    utilisation: float
    p95_s: float
    overflow_rps: float


@dataclass(slots=True)
class ServiceReplay:
    spec: ReplaySpec
    now: float = 0.0
    _started: list[float] = field(default_factory=list)
    _names: list[int] = field(default_factory=list)
    _next_name: int = 0
    _cpu: np.ndarray = field(default_factory=lambda: np.zeros(0))
    _served_cutoff: float = -math.inf  # pods started by then served during the last step
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.spec.seed)
        # The service has been running a while when the replay starts: its first pods are ready.
        for _ in range(self.spec.initial_replicas):
            self._add(self.now - self.spec.startup_s)

    def _add(self, started: float) -> None:
        self._started.append(started)
        self._names.append(self._next_name)
        self._next_name += 1

    @property
    def replicas(self) -> int:
        return len(self._started)

    def ready_count(self) -> int:
        cutoff = self.now - self.spec.startup_s
        return sum(1 for s in self._started if s <= cutoff)

    def scale_to(self, replicas: int) -> None:
        replicas = max(self.spec.min_replicas, min(self.spec.max_replicas, int(replicas)))
        while self.replicas < replicas:
            self._add(self.now)
        if self.replicas > replicas:
            # Youngest first: they are the unready ones, and ReplicaSets prefer deleting them.
            order = sorted(range(self.replicas), key=lambda i: -self._started[i])
            drop = set(order[: self.replicas - replicas])
            self._started = [s for i, s in enumerate(self._started) if i not in drop]
            self._names = [n for i, n in enumerate(self._names) if i not in drop]

    def step(self, arrival_rps: float, dt: float) -> StepResult:
        """Serve ``arrival_rps`` for ``dt`` seconds with the pods ready now, then advance the clock."""
        spec = self.spec
        ready = self.ready_count()
        q = mmc(max(arrival_rps, 0.0), ready, spec.service_s, spec.timeout_s)
        # CPU is busy with what arrives, up to the limit: an overloaded pod burns 100 %, not the
        # queue model's 98 % stability cap, and that is what a metrics API shows the HPA.
        util = min(1.0, max(arrival_rps, 0.0) / (ready * spec.capacity_rps)) if ready else 0.0
        n = self.replicas
        cpu = np.zeros(n)
        if ready:
            cutoff = self.now - spec.startup_s
            is_ready = np.array([s <= cutoff for s in self._started])
            share = util * (1.0 + spec.imbalance * self._rng.standard_normal(int(is_ready.sum())))
            cpu[is_ready] = np.clip(share, 0.0, 1.0)
        self._cpu = cpu
        self._served_cutoff = self.now - spec.startup_s
        self.now += dt
        return StepResult(ready, n, util, q.p95_s if ready else spec.timeout_s, q.overflow_rps)

    def pods(self) -> list[PodView]:
        """Each pod as a metrics API would show it after the last step: CPU over that step for the pods
        that served in it, nothing (NaN) for the ones still starting. Call it before scaling."""
        cutoff = self._served_cutoff
        out = []
        for i, (name, started) in enumerate(zip(self._names, self._started, strict=True)):
            ready = started <= cutoff
            cpu = float(self._cpu[i]) if ready and i < len(self._cpu) else math.nan
            out.append(
                PodView(f"pod-{name}", started, ready, started + self.spec.startup_s if ready else None, cpu)
            )
        return out
