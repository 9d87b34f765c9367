"""The simulator's input: a fleet (services, calls, nodes), its load and a fault schedule, from YAML.

Everything a scenario can say is declared here with its default, so the scenario format is documented
by these models (``docs/SCENARIOS.md`` walks through them) and a bad file is refused with the key and why.
So are the fault kinds: their parameters (``FAULT_PARAMS``) and what each does (``FAULT_CATALOGUE``).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    value_column: str | None = Field(
        None,
        description="trace column to use; default: one named value, requests, count or rps, else the last",
    )
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


@dataclass(frozen=True, slots=True)
class FaultParam:
    """One parameter of a fault kind: its default (None: it depends on the target, see
    docs/SCENARIOS.md) and the numbers allowed (``low``..``high``) or the strings (``choices``; empty:
    any string)."""

    default: float | str | None
    low: float = 0.0
    high: float = 1e9
    choices: tuple[str, ...] = ()

    def problem(self, value: float | str) -> str | None:
        if isinstance(self.default, str):
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                return "must be " + (f"one of {', '.join(self.choices)}" if self.choices else "a string")
            return None
        if isinstance(value, str) or not self.low <= value <= self.high:
            return f"must be a number from {self.low:g} to {self.high:g}"
        return None


FAULT_PARAMS: dict[str, dict[str, FaultParam]] = {
    "crash_loop": {},
    "memory_leak": {"mb_per_min": FaultParam(40.0, 0.001)},
    "cpu_saturation": {"steal": FaultParam(0.7, 0.01, 0.95)},
    "latency_injection": {"delay_ms": FaultParam(400.0, 0.001)},
    "dependency_outage": {},
    "bad_deployment": {"error_rate": FaultParam(0.2, 0.0, 1.0), "slowdown": FaultParam(1.0, 0.1, 100.0)},
    "config_error": {
        "key": FaultParam("feature_flags"),
        "value": FaultParam("broken"),
        "error_rate": FaultParam(0.3, 0.0, 1.0),
    },
    "pool_exhaustion": {"leak_per_min": FaultParam(15.0, 0.001), "leak_for_s": FaultParam(600.0, 1.0)},
    "disk_full": {"gb_per_hour": FaultParam(None, 0.001)},
    "traffic_spike": {"factor": FaultParam(3.0, 0.1, 1000.0)},
    "cache_failure": {},
    "node_failure": {},
    "model_drift": {
        "accuracy_loss_per_hour": FaultParam(0.2, 0.0001, 10.0),
        "cause": FaultParam("model", choices=("model", "data")),
    },
}


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """What a fault kind does, as an operator would see it: symptoms, remedies that end it, and what
    wrong remedies do. Checked by tests/sim/test_faults.py."""

    symptoms: str
    remedies: tuple[str, ...]  # actions that end the fault (its cause is gone afterwards)
    wrong: str  # what other plausible actions do: nothing, brief relief or harm
    events: tuple[str, ...] = ()  # event reasons the fault itself makes the platform log


_I = FaultInfo
FAULT_CATALOGUE: dict[str, FaultInfo] = {
    "crash_loop": _I(
        "a Deployment event (strategy Recreate: every pod replaced at once), then BackOff events; "
        "replicas_ready falls to 0, pod restarts climb, the service fails every call (at once: no "
        "endpoints), callers' errors rise",
        ("rollback",),
        "restart: the new pods crash the same way; scale: more crashing pods",
        ("Deployment", "BackOff"),
    ),
    "memory_leak": _I(
        "a Deployment event (a rolling update); pod memory climbs steadily to the limit, OOMKilled events, "
        "restarts, error and latency blips when pods die",
        ("rollback",),
        "restart: memory resets, then climbs again (temporary relief); scale: more leaking pods",
        ("Deployment", "OOMKilled"),
    ),
    "cpu_saturation": _I(
        "a noisy neighbour takes CPU on one node: CPU of the pods there near 100%, the latency tail (p95, "
        "p99) up on the services with pods there and on their callers; medians barely move",
        ("drain_node", "replace_node"),
        "restart: the scheduler does not see CPU steal, pods keep landing on the node and the fault goes on "
        "for whatever runs there; scale: the new pods may be clean, the tail stays (partial relief)",
    ),
    "latency_injection": _I(
        "latency up by a fixed delay at every quantile of one service, CPU unchanged; its callers slow down "
        "too, and callers that hold a slot while they wait (several calls per request) can saturate and "
        "cascade",
        ("restart",),
        "scale: new pods are clean but the old ones still add the delay: the median may improve, the tail "
        "does not (partial relief)",
    ),
    "dependency_outage": _I(
        "an Unhealthy event; the dependency's error_ratio at 1 while its replicas stay ready but idle; every"
        " caller fails the requests that need it (fast: connections are refused)",
        ("failover",),
        "restarting the dependency, or restarting or scaling its callers, changes nothing: the primary is "
        "gone until the standby is promoted",
        ("Unhealthy",),
    ),
    "bad_deployment": _I(
        "a Deployment event, then (as the new pods become ready) errors and/or latency up on that service "
        "and its callers",
        ("rollback",),
        "restart or scale: the defective version keeps serving",
        ("Deployment",),
    ),
    "config_error": _I(
        "a ConfigChanged event, then errors up on that service and its callers",
        ("set_config",),
        "restart or rollback: the configuration stays wrong (rollback is refused without a previous version)",
        ("ConfigChanged",),
    ),
    "pool_exhaustion": _I(
        "pool_in_use_ratio climbs to 1 while connections leak, then latency to the timeout and errors on "
        "that service and its callers",
        ("restart",),
        "scale: new pods have fresh pools, errors fall by their share (partial relief); set_config pool_size"
        " higher: relief, but the leaked connections stay held (and fill the larger pool while the leak "
        "lasts)",
    ),
    "disk_full": _I(
        "a ConfigChanged event (log_level debug), then disk_used_ratio climbs; write errors above 95% used, "
        "on the service and its callers",
        ("set_config",),
        "restart or scale: the disk is persistent and the debug logging goes on, nothing changes",
        ("ConfigChanged",),
    ),
    "traffic_spike": _I(
        "request_rate multiplied at the entry and down the call graph; utilisation, latency and overflow "
        "errors up where capacity runs short (often a slower dependency first, then its callers: a cascade)",
        ("scale",),
        "restart: fresh pods have the same capacity; scaling only the entry: its slots still wait on the "
        "saturated dependency",
    ),
    "cache_failure": _I(
        "the cache hangs: its error_ratio at 1; callers wait for the client timeout (50 ms) per read, then "
        "read the backing database: its request_rate and utilisation up; callers making several reads a "
        "request can saturate and cascade",
        ("restart", "failover"),
        "flush_cache: a hung cache cannot be flushed (ActionFailed); scaling the cache leaves the hung pods "
        "in place; scaling callers adds database load",
    ),
    "node_failure": _I(
        "a NodeNotReady event; replicas_ready falls on the services with pods there; after 5 minutes Evicted"
        " events and the pods are rescheduled on healthy nodes (the fault then ends by itself)",
        ("drain_node", "replace_node"),
        "scale: capacity on healthy nodes at once, but the pods on the dead node stay until evicted "
        "(mitigation); restart: moves only the restarted service's pods",
        ("NodeNotReady", "Evicted"),
    ),
    "model_drift": _I(
        "model_accuracy decays and model_drift_score rises on one ML service (first a ModelDeployed event "
        "when the cause is a new model); latency and errors normal",
        ("retrain_model", "rollback_model"),
        "rollback_model when the data drifted (cause data): the previous model is as stale, or the rollback "
        "is refused when there is none; restart, scale or rollback of the service: the model is the same",
        ("ModelDeployed",),
    ),
}


# Kinds that may leave out ``service`` (they act on a node, a zone or the entry's load).
NO_SERVICE_KINDS = ("node_failure", "cpu_saturation", "traffic_spike")


class FaultSpec(_Spec):
    kind: FaultKind
    at_s: float = Field(ge=0, description="seconds after the scenario start")
    service: str | None = Field(None, description="target service (or the dependency that fails)")
    node: str | None = Field(None, description="node_failure / cpu_saturation: node name, e.g. node-a-0")
    zone: str | None = Field(None, description="node_failure: fail every node of this zone")
    duration_s: float | None = Field(None, gt=0, description="ends by itself after this; None: until fixed")
    params: dict[str, float | str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> FaultSpec:
        rules = FAULT_PARAMS[self.kind]
        for name, value in self.params.items():
            if name not in rules:
                known = ", ".join(rules) or "none"
                raise ValueError(f"params.{name}: unknown parameter of {self.kind} (known: {known})")
            problem = rules[name].problem(value)
            if problem is not None:
                raise ValueError(f"params.{name}: {problem}")
        if self.kind not in NO_SERVICE_KINDS and self.service is None:
            raise ValueError(f"{self.kind} needs a service")
        if self.zone is not None and self.kind != "node_failure":
            raise ValueError(f"zone: only node_failure takes a zone, not {self.kind}")
        if self.node is not None and self.kind not in ("node_failure", "cpu_saturation"):
            raise ValueError(f"node: only node_failure and cpu_saturation take a node, not {self.kind}")
        return self


def node_names(nodes: NodeSpec) -> list[str]:
    """The fleet's node names, ``node-<zone>-<i>``."""
    return [f"node-{z}-{i}" for z in nodes.zones for i in range(nodes.nodes_per_zone)]


def fault_target_problem(fault: FaultSpec, services: dict[str, ServiceSpec], nodes: NodeSpec) -> str | None:
    """Why ``fault`` cannot be injected into this fleet (None: it can). Checked when a scenario is
    loaded and again when a fault is injected by hand."""
    if fault.service is not None:
        svc = services.get(fault.service)
        if svc is None:
            return f"service: unknown service {fault.service!r}"
        needs = {
            "disk_full": (svc.disk_gb > 0, "a service with a disk (disk_gb > 0)"),
            "model_drift": (svc.model is not None, "an ML service (one with a model)"),
            "cache_failure": (svc.kind == "cache", "a cache service (kind: cache)"),
            "dependency_outage": (svc.kind in ("database", "cache"), "a database or cache service"),
        }.get(fault.kind)
        if needs is not None and not needs[0]:
            return f"service: {fault.kind} needs {needs[1]}; {fault.service!r} is not one"
    if fault.zone is not None and fault.zone not in nodes.zones:
        return f"zone: unknown zone {fault.zone!r}"
    if fault.node is not None and fault.node not in node_names(nodes):
        return f"node: unknown node {fault.node!r} (nodes are node-<zone>-<i>, e.g. {node_names(nodes)[0]})"
    return None


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
        for i, f in enumerate(self.faults):
            problem = fault_target_problem(f, self.services, self.nodes)
            if problem is not None:
                raise ValueError(f"faults[{i}].{problem}")
        return self

    def order(self) -> list[str]:
        """Services with every caller before its dependencies."""
        return _topological_order(self.services)

    def call_graph(self) -> dict[str, list[str]]:
        """Service -> the services it calls, as the fleet's operator would declare it (OpsMind's
        ``incidents.topology``): its calls and, for a cache-aside reader, the cache and the store
        behind it."""
        graph: dict[str, list[str]] = {}
        for name, svc in self.services.items():
            callees = list(svc.calls)
            if svc.cache is not None:
                callees += [c for c in (svc.cache.via, svc.cache.backing) if c not in callees]
            graph[name] = callees
        return graph


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
