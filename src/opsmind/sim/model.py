"""The simulated fleet's state: nodes, services, pods, versions, configuration, models.

Faults do not set symptoms directly; they change causes (a defective version, a hung cache, a noisy
neighbour on a node, leaked connections), and the step arithmetic in :mod:`opsmind.sim.fleet` turns
causes into symptoms. So a remedy works for the reason it would in reality - a rollback removes the
defective version, a restart resets a pod's memory but not the leak in its code - and a wrong remedy
does what it would do: nothing, brief relief, or harm.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsmind.sim.spec import ServiceSpec


@dataclass(frozen=True, slots=True)
class Version:
    """A build of a service and its (hidden) defects."""

    name: str
    error_rate: float = 0.0
    slowdown: float = 1.0
    leak_mb_per_min: float = 0.0
    crashes_on_start: bool = False


@dataclass(frozen=True, slots=True)
class FleetEvent:
    """What a real platform would log: Kubernetes-style reason and message, never the fault itself."""

    ts: float
    service: str | None
    reason: str
    message: str
    pod: str | None = None
    node: str | None = None


@dataclass(slots=True)
class Node:
    name: str
    zone: str
    ready: bool = True
    cordoned: bool = False  # drained: no new pods are scheduled here
    cpu_steal: float = 0.0  # share of CPU taken by a noisy neighbour


@dataclass(slots=True)
class Pod:
    name: str
    node: str
    version: str
    started_at: float
    ready_at: float
    memory_mb: float
    generation: int = 0  # bumped by a rolling restart, so old pods can be told from new ones
    restarts: int = 0
    ready: bool = False
    crashing: bool = False
    extra_latency_s: float = 0.0  # e.g. a misbehaving sidecar injecting delay
    leaked_connections: float = 0.0
    hung: bool = False  # the process accepts connections and answers nothing; a fresh process is not hung
    cpu_utilisation: float = 0.0


@dataclass(slots=True)
class ModelState:
    version: str
    accuracy: float
    baseline_accuracy: float
    decay_per_s: float = 0.0
    history: list[tuple[str, float]] = field(default_factory=list)
    retrain_done_at: float | None = None  # simulated time (s) a running retrain finishes
    drift_cause: str | None = None  # "model" (a bad model version) or "data" (the world changed)

    def retrained(self) -> None:
        """A model trained on current data replaces the served one: back to the baseline quality."""
        self.version = f"m{len(self.history) + 1}"
        self.accuracy, self.decay_per_s, self.drift_cause = self.baseline_accuracy, 0.0, None
        self.history.append((self.version, self.accuracy))
        self.retrain_done_at = None


@dataclass(slots=True)
class ServiceState:
    name: str
    spec: ServiceSpec
    desired: int
    versions: dict[str, Version]
    version_history: list[str]
    pods: list[Pod] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)
    config_defects: dict[tuple[str, str], float] = field(default_factory=dict)  # (key, value) -> error rate
    pool_size: int = 40
    down: bool = False  # the primary is gone (databases); calls fail fast
    disk_used_gb: float = 0.0
    disk_growth_gb_per_s: float = 0.0
    queue_depth: float = 0.0
    model: ModelState | None = None
    pod_seq: int = 0
    generation: int = 0
    cache_cold_until: float = -1.0
    # Per-step results, read by callers and by the observer.
    arrival_rps: float = 0.0
    served_rps: float = 0.0
    error_ratio: float = 0.0
    own_error_ratio: float = 0.0
    p50_s: float = 0.0
    p95_s: float = 0.0
    p99_s: float = 0.0
    utilisation: float = 0.0
    pool_in_use: float = 0.0

    @property
    def version(self) -> Version:
        return self.versions[self.version_history[-1]]

    @property
    def ready_pods(self) -> list[Pod]:
        return [p for p in self.pods if p.ready]

    @property
    def hung(self) -> bool:
        """A hung process is still running (caches: clients wait for it, then fall back to the backing
        store); it stops being hung when it is replaced by a fresh one or its standby takes over."""
        return any(p.hung for p in self.pods)

    def rotate_logs(self) -> None:
        """Normal logging again: the disk stops filling and log rotation frees what debug logs took."""
        self.disk_growth_gb_per_s = 0.0
        self.disk_used_gb = self.spec.disk_gb * self.spec.disk_used_ratio

    def config_error_rate(self) -> float:
        return max(
            (rate for (k, v), rate in self.config_defects.items() if self.config.get(k) == v), default=0.0
        )
