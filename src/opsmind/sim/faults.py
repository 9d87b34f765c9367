"""Fault injection: each kind changes a cause in the fleet, never a metric directly.

Every kind has a documented set of symptoms (what shows in the metrics and events) and of remedies that
end it (see ``FAULT_CATALOGUE`` and docs/SCENARIOS.md). A fault is *over* when its cause is gone - by
a remedy or by its own duration - which ``cause_present`` checks; the ground truth records when that
happened and when the fleet met its SLOs again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opsmind.sim.fleet import Fleet
from opsmind.sim.model import ServiceState, Version
from opsmind.sim.spec import FaultKind, FaultSpec


@dataclass(frozen=True, slots=True)
class FaultInfo:
    symptoms: str
    remedies: tuple[str, ...]
    wrong: str


FAULT_CATALOGUE: dict[str, FaultInfo] = {
    "crash_loop": FaultInfo(
        "a Deployment event, then BackOff events; replicas_ready falls, pod restarts climb, errors rise",
        ("rollback",),
        "restart: new pods crash the same way; scale: more crashing pods",
    ),
    "memory_leak": FaultInfo(
        "a Deployment event; pod memory climbs steadily to the limit, OOMKilled events, restarts, "
        "error and latency blips when pods die",
        ("rollback",),
        "restart: memory resets, then climbs again (temporary relief); scale: more leaking pods",
    ),
    "cpu_saturation": FaultInfo(
        "CPU of the pods on one node near 100%, latency up on the services with pods there",
        ("drain_node",),
        "restart: the pod comes back on the same node; scale: partial relief",
    ),
    "latency_injection": FaultInfo(
        "latency percentiles up by a fixed delay on one service and its callers, CPU unchanged",
        ("restart",),
        "scale: new pods are clean but old ones still add delay (partial relief)",
    ),
    "dependency_outage": FaultInfo(
        "the dependency's error ratio at 1 and its replicas not serving; callers' errors rise",
        ("failover",),
        "restarting or scaling the callers changes nothing",
    ),
    "bad_deployment": FaultInfo(
        "a Deployment event, then errors and/or latency up on that service and its callers",
        ("rollback",),
        "restart or scale: the defective version keeps serving",
    ),
    "config_error": FaultInfo(
        "a ConfigChanged event, then errors up on that service",
        ("set_config",),
        "restart or rollback: the configuration stays wrong",
    ),
    "pool_exhaustion": FaultInfo(
        "pool_in_use_ratio climbs to 1, then latency to the timeout and errors",
        ("restart",),
        "scale: new pods have fresh pools (partial relief); raising pool_size: relief until it fills",
    ),
    "disk_full": FaultInfo(
        "disk_used_ratio climbs after a ConfigChanged event (log_level=debug); write errors above 95%",
        ("set_config",),
        "restart or scale: the disk is persistent, nothing changes",
    ),
    "traffic_spike": FaultInfo(
        "request rate at the entry multiplied; utilisation, latency and overflow errors up",
        ("scale",),
        "restart: capacity dips while pods restart (harm)",
    ),
    "cache_failure": FaultInfo(
        "cache errors at 1, reads shift to the database: its request rate, utilisation and latency up",
        ("restart",),
        "flush_cache: a hung cache cannot be flushed; scaling callers adds database load",
    ),
    "node_failure": FaultInfo(
        "NodeNotReady event; replicas_ready falls on services with pods there; Evicted after 5 minutes",
        ("drain_node", "scale"),
        "restart: pods on the dead node stay dead",
    ),
    "model_drift": FaultInfo(
        "model_accuracy decays and model_drift_score rises on one ML service; latency and errors normal",
        ("retrain_model", "rollback_model"),
        "restart, scale or rollback of the service: the model is the same",
    ),
}


@dataclass
class ActiveFault:
    spec: FaultSpec
    started_at: float
    cause_present: Callable[[], bool]
    expire: Callable[[], None] | None = None
    ended_at: float | None = None
    target: str | None = None
    details: dict[str, str | float] = field(default_factory=dict)


def _param(spec: FaultSpec, name: str, default: float) -> float:
    value = spec.params.get(name, default)
    return float(value)


def _deploy_defect(fleet: Fleet, svc: ServiceState, version: Version, recreate: bool) -> None:
    svc.versions[version.name] = version
    fleet.emit(svc.name, "Deployment", f"deployment {svc.name} updated to {version.name}")
    if recreate:
        # Strategy Recreate: every pod is replaced at once by the new version.
        svc.pods.clear()
        svc.version_history.append(version.name)
        for _ in range(svc.desired):
            fleet.create_pod(svc, version.name)
    else:
        fleet.rollout(svc, version.name)


def inject(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    """Start ``spec`` now and return its live record."""
    kind: FaultKind = spec.kind
    handler = _HANDLERS[kind]
    return handler(fleet, spec)


def _new_version_name(svc: ServiceState) -> str:
    return f"v{len(svc.versions) + 1}"


def _crash_loop(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    bad = Version(_new_version_name(svc), crashes_on_start=True)
    _deploy_defect(fleet, svc, bad, recreate=True)
    return ActiveFault(
        spec, fleet.t, lambda: svc.version.name == bad.name, target=svc.name, details={"version": bad.name}
    )


def _memory_leak(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    bad = Version(_new_version_name(svc), leak_mb_per_min=_param(spec, "mb_per_min", 40))
    _deploy_defect(fleet, svc, bad, recreate=False)
    return ActiveFault(
        spec,
        fleet.t,
        lambda: any(p.version == bad.name for p in svc.pods),
        target=svc.name,
        details={"version": bad.name},
    )


def _bad_deployment(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    bad = Version(
        _new_version_name(svc),
        error_rate=_param(spec, "error_rate", 0.2),
        slowdown=_param(spec, "slowdown", 1.0),
    )
    _deploy_defect(fleet, svc, bad, recreate=False)
    return ActiveFault(
        spec,
        fleet.t,
        lambda: any(p.version == bad.name and p.ready for p in svc.pods) or svc.version.name == bad.name,
        target=svc.name,
        details={"version": bad.name},
    )


def _node_for(fleet: Fleet, spec: FaultSpec) -> str:
    if spec.node:
        if spec.node not in fleet.nodes:
            raise ValueError(f"unknown node {spec.node!r}")
        return spec.node
    if spec.service:
        counts: dict[str, int] = {}
        for p in fleet.services[spec.service].pods:
            counts[p.node] = counts.get(p.node, 0) + 1
        return min(counts, key=lambda n: (-counts[n], n))
    return sorted(fleet.nodes)[0]


def _cpu_saturation(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    name = _node_for(fleet, spec)
    node = fleet.nodes[name]
    node.cpu_steal = _param(spec, "steal", 0.7)

    def expire() -> None:
        node.cpu_steal = 0.0

    def present() -> bool:
        # The neighbour may stay; the fault is over for the fleet once none of our pods share its node.
        return (
            node.cpu_steal > 0
            and fleet.nodes.get(name) is node
            and any(p.node == name for s in fleet.services.values() for p in s.pods)
        )

    return ActiveFault(spec, fleet.t, present, expire, target=name)


def _latency_injection(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    delay = _param(spec, "delay_ms", 400) / 1000.0
    hit = {p.name for p in svc.pods}
    for p in svc.pods:
        p.extra_latency_s = delay

    def expire() -> None:
        for p in svc.pods:
            p.extra_latency_s = 0.0

    return ActiveFault(
        spec,
        fleet.t,
        lambda: any(p.name in hit and p.extra_latency_s > 0 for p in svc.pods),
        expire,
        target=svc.name,
    )


def _dependency_outage(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    svc.down = True
    fleet.emit(svc.name, "Unhealthy", f"{svc.name} primary is not accepting connections")

    def expire() -> None:
        svc.down = False

    return ActiveFault(spec, fleet.t, lambda: svc.down, expire, target=svc.name)


def _config_error(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    key = str(spec.params.get("key", "feature_flags"))
    value = str(spec.params.get("value", "broken"))
    good = svc.config.get(key, "")
    svc.config_defects[(key, value)] = _param(spec, "error_rate", 0.3)
    svc.config[key] = value
    fleet.emit(svc.name, "ConfigChanged", f"{svc.name} config {key} set to {value!r}")

    def expire() -> None:
        svc.config[key] = good

    return ActiveFault(
        spec,
        fleet.t,
        lambda: svc.config.get(key) == value,
        expire,
        target=svc.name,
        details={"key": key, "bad_value": value, "good_value": good},
    )


def _pool_exhaustion(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    per_min = _param(spec, "leak_per_min", 15)
    leak_for = _param(spec, "leak_for_s", 600)
    leaking = {p.name for p in svc.pods}
    start = fleet.t

    def leak() -> None:
        # Connections leak while the trigger lasts (e.g. a dependency blip); leaked ones never return.
        if fleet.t - start < leak_for:
            for p in svc.pods:
                if p.name in leaking:
                    p.leaked_connections = min(
                        float(svc.pool_size), p.leaked_connections + per_min / 60 * fleet.dt
                    )
            fleet.after(fleet.dt, leak)

    leak()
    return ActiveFault(
        spec, fleet.t, lambda: any(p.leaked_connections > 0 for p in svc.pods), target=svc.name
    )


def _disk_full(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    if not svc.spec.disk_gb:
        raise ValueError(f"disk_full needs a service with a disk; {svc.name} has disk_gb 0")
    rate = _param(spec, "gb_per_hour", svc.spec.disk_gb) / 3600.0
    svc.config["log_level"] = "debug"
    fleet.emit(svc.name, "ConfigChanged", f"{svc.name} config log_level set to 'debug'")
    svc.disk_growth_gb_per_s = rate
    return ActiveFault(spec, fleet.t, lambda: svc.disk_growth_gb_per_s > 0, target=svc.name)


def _traffic_spike(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    fleet.load.multiplier = _param(spec, "factor", 3.0)

    def expire() -> None:
        fleet.load.multiplier = 1.0

    return ActiveFault(
        spec,
        fleet.t,
        lambda: fleet.load.multiplier != 1.0,
        expire,
        target=spec.service or fleet.scenario.load.entry,
    )


def _cache_failure(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    svc.hung = True

    def expire() -> None:
        svc.hung = False

    return ActiveFault(spec, fleet.t, lambda: svc.hung, expire, target=svc.name)


def _node_failure(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    names = (
        [n.name for n in fleet.nodes.values() if n.zone == spec.zone]
        if spec.zone
        else [_node_for(fleet, spec)]
    )
    for name in names:
        fleet.nodes[name].ready = False
        fleet.node_down_since[name] = fleet.t
        fleet.emit(None, "NodeNotReady", f"node {name} status is now NotReady", node=name)
    nodes = [fleet.nodes[n] for n in names]

    def expire() -> None:
        for n in nodes:
            n.ready = True
            fleet.node_down_since.pop(n.name, None)
            fleet.emit(None, "NodeReady", f"node {n.name} status is now Ready", node=n.name)

    def present() -> bool:
        # Over once every failed node is back, replaced, or drained (its pods rescheduled elsewhere).
        return any(fleet.nodes.get(n.name) is n and not n.ready and not n.cordoned for n in nodes)

    return ActiveFault(spec, fleet.t, present, expire, target=spec.zone or names[0])


def _model_drift(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = fleet.services[spec.service or ""]
    m = svc.model
    if m is None:
        raise ValueError(f"model_drift needs an ML service; {svc.name} serves no model")
    m.decay_per_s = _param(spec, "accuracy_loss_per_hour", 0.2) / 3600.0
    cause = str(spec.params.get("cause", "model"))
    if cause not in ("model", "data"):
        raise ValueError("model_drift cause must be 'model' or 'data'")
    m.drift_cause = cause
    if cause == "model":
        m.version = f"m{len(m.history) + 1}"
        m.history.append((m.version, m.accuracy))
        fleet.emit(svc.name, "ModelDeployed", f"{svc.name} now serves model {m.version}")
    return ActiveFault(spec, fleet.t, lambda: m.decay_per_s > 0, target=svc.name, details={"cause": cause})


_HANDLERS: dict[str, Callable[[Fleet, FaultSpec], ActiveFault]] = {
    "crash_loop": _crash_loop,
    "memory_leak": _memory_leak,
    "cpu_saturation": _cpu_saturation,
    "latency_injection": _latency_injection,
    "dependency_outage": _dependency_outage,
    "bad_deployment": _bad_deployment,
    "config_error": _config_error,
    "pool_exhaustion": _pool_exhaustion,
    "disk_full": _disk_full,
    "traffic_spike": _traffic_spike,
    "cache_failure": _cache_failure,
    "node_failure": _node_failure,
    "model_drift": _model_drift,
}
assert set(_HANDLERS) == set(FAULT_CATALOGUE)
