"""The simulator's input: a fleet (services, calls, nodes), its load and a fault schedule, from YAML.

Everything a scenario can say is declared here with its default, so the scenario format is documented
by these models (``docs/SCENARIOS.md`` walks through them) and a bad file is refused with the key and why.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ServiceKind = Literal["api", "ml", "worker", "database", "cache"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InstanceSpec(_Spec):
    provider: Literal["aws", "gcp", "azure"] = "aws"
    region: str = "eu-west-1"
    type: str = "m5.large"
    price_per_hour: float = Field(0.107, ge=0, description="USD per replica-hour on this instance type")


class ModelSpec(_Spec):
    """The ML model an ``ml`` service serves: its quality signal and how long a retrain takes."""

    version: str = "m1"
    accuracy: float = Field(0.92, gt=0, le=1)
    retrain_s: float = Field(600, gt=0, description="time a retrain takes before the new model serves")


class CacheSpec(_Spec):
    """Reads go to ``via`` first; misses (and every read while the cache is down) go to ``backing``."""

    via: str
    backing: str
    hit_ratio: float = Field(0.85, ge=0, le=1)


class ServiceSpec(_Spec):
    kind: ServiceKind = "api"
    replicas: int = Field(2, ge=0)
    concurrency: int = Field(8, ge=1, description="requests one replica serves at once")
    service_time_ms: float = Field(20, gt=0, description="mean time a request holds a slot, unloaded")
    startup_s: float = Field(60, ge=0, description="from pod start to ready")
    timeout_ms: float = Field(2000, gt=0, description="callers give up after this; counted as errors")
    base_error_rate: float = Field(0.001, ge=0, le=1)
    cpu_cores: float = Field(1.0, gt=0)
    memory_mb: float = Field(400, gt=0, description="resident memory of a fresh replica")
    memory_limit_mb: float = Field(1024, gt=0)
    pool_size: int = Field(40, ge=1, description="connections per replica to its dependencies")
    disk_gb: float = Field(0, ge=0, description="persistent disk (databases); 0 for none")
    disk_used_ratio: float = Field(0.4, ge=0, le=1)
    calls: dict[str, float] = Field(default_factory=dict, description="dependency -> calls per request")
    cache: CacheSpec | None = None
    version: str = "v1"
    model: ModelSpec | None = None
    instance: InstanceSpec = Field(default_factory=InstanceSpec)
    jobs_per_request: float = Field(0, ge=0, description="workers: jobs queued per entry request")

    @model_validator(mode="after")
    def _check(self) -> ServiceSpec:
        if self.memory_mb >= self.memory_limit_mb:
            raise ValueError("memory_mb must be below memory_limit_mb")
        if self.kind == "ml" and self.model is None:
            object.__setattr__(self, "model", ModelSpec())
        return self


class NodeSpec(_Spec):
    zones: list[str] = Field(default_factory=lambda: ["a", "b", "c"], min_length=1)
    nodes_per_zone: int = Field(3, ge=1)


class LoadSpec(_Spec):
    """Requests per second arriving at ``entry``: from a trace file or generated."""

    entry: str = "gateway"
    trace: str | None = Field(None, description="CSV(.gz) with a time column and a value column")
    value_column: str | None = Field(None, description="trace column to use; default: the last numeric one")
    peak_rps: float = Field(600, gt=0, description="the trace or the daily cycle is scaled to this peak")
    daily_amplitude: float = Field(0.5, ge=0, le=1, description="synthetic: trough = peak*(1-amplitude)")
    weekly_amplitude: float = Field(0.15, ge=0, le=1, description="synthetic: weekend dip")
    noise: float = Field(0.03, ge=0, description="synthetic: relative noise per step")
    bursts_per_day: float = Field(2, ge=0, description="synthetic: short random bursts")
    burst_factor: float = Field(1.6, ge=1)


FaultKind = Literal[
    "crash_loop",
    "memory_leak",
    "cpu_saturation",
    "latency_injection",
    "dependency_outage",
    "bad_deployment",
    "config_error",
    "pool_exhaustion",
    "disk_full",
    "traffic_spike",
    "cache_failure",
    "node_failure",
    "model_drift",
]


class FaultSpec(_Spec):
    kind: FaultKind
    at_s: float = Field(ge=0, description="seconds after the scenario start")
    service: str | None = Field(None, description="target service (or the dependency that fails)")
    node: str | None = Field(None, description="node_failure / cpu_saturation: node name, e.g. node-a-0")
    zone: str | None = Field(None, description="node_failure: fail every node of this zone")
    duration_s: float | None = Field(None, gt=0, description="ends by itself after this; None: until fixed")
    params: dict[str, float | str] = Field(default_factory=dict)


class Scenario(_Spec):
    name: str = "scenario"
    seed: int = 1
    start: float = Field(1_767_225_600.0, description="Unix time of the first step (2026-01-01 00:00 UTC)")
    duration_s: float = Field(3600, gt=0)
    resolution_s: float = Field(5, gt=0, le=60)
    services: dict[str, ServiceSpec]
    nodes: NodeSpec = Field(default_factory=NodeSpec)
    load: LoadSpec = Field(default_factory=LoadSpec)
    faults: list[FaultSpec] = Field(default_factory=list)
    slo_latency_ms: float = Field(500, gt=0, description="entry p99 objective, for recovery in ground truth")
    slo_error_ratio: float = Field(0.01, gt=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        names = set(self.services)
        if self.load.entry not in names:
            raise ValueError(f"load.entry {self.load.entry!r} is not a service")
        for name, svc in self.services.items():
            for dep in svc.calls:
                if dep not in names:
                    raise ValueError(f"services.{name}.calls: unknown service {dep!r}")
            if svc.cache and not {svc.cache.via, svc.cache.backing} <= names:
                raise ValueError(f"services.{name}.cache: via and backing must be services")
        _topological_order(self.services)  # raises on a cycle
        zones = set(self.nodes.zones)
        for i, f in enumerate(self.faults):
            if f.service is not None and f.service not in names:
                raise ValueError(f"faults[{i}].service: unknown service {f.service!r}")
            if f.zone is not None and f.zone not in zones:
                raise ValueError(f"faults[{i}].zone: unknown zone {f.zone!r}")
            needs_service = f.kind not in ("node_failure", "cpu_saturation", "traffic_spike")
            if needs_service and f.service is None:
                raise ValueError(f"faults[{i}]: {f.kind} needs a service")
        return self

    def order(self) -> list[str]:
        """Services with every caller before its dependencies."""
        return _topological_order(self.services)


def _topological_order(services: dict[str, ServiceSpec]) -> list[str]:
    deps = {
        n: set(s.calls) | ({s.cache.via, s.cache.backing} if s.cache else set()) for n, s in services.items()
    }
    callers: dict[str, int] = dict.fromkeys(services, 0)
    for ds in deps.values():
        for d in ds:
            callers[d] += 1
    ready = sorted(n for n, c in callers.items() if c == 0)
    out: list[str] = []
    while ready:
        n = ready.pop(0)
        out.append(n)
        for d in sorted(deps[n]):
            callers[d] -= 1
            if callers[d] == 0:
                ready.append(d)
    if len(out) != len(services):
        cyclic = sorted(set(services) - set(out))
        raise ValueError(f"the call graph has a cycle through {cyclic}")
    return out
