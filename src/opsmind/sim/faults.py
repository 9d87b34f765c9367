"""Fault injection: each kind changes a cause in the fleet, never a metric directly.

Every kind has a documented set of symptoms (what shows in the metrics and events) and of remedies that
end it: ``FAULT_CATALOGUE``, declared beside the kinds' parameters in :mod:`opsmind.sim.spec`, and
docs/SCENARIOS.md. A fault is *over* when its cause is gone - by a remedy or by its own duration - which
``cause_present`` checks; the ground truth records when that happened and when the fleet met its SLOs
again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from opsmind.sim.fleet import Fleet
from opsmind.sim.model import ServiceState, Version
from opsmind.sim.spec import (
    FAULT_CATALOGUE,
    FAULT_PARAMS,
    FaultInfo,
    FaultKind,
    FaultSpec,
    fault_target_problem,
)

__all__ = ["FAULT_CATALOGUE", "ActiveFault", "FaultInfo", "inject"]


@dataclass
class ActiveFault:
    spec: FaultSpec
    started_at: float
    cause_present: Callable[[], bool]
    expire: Callable[[], None] | None = None
    ended_at: float | None = None
    target: str | None = None
    details: dict[str, str | float] = field(default_factory=dict)


def _param(spec: FaultSpec, name: str, default: float = 0.0) -> float:
    """A numeric parameter (FaultSpec has checked its type and range), else its default."""
    value = spec.params.get(name, FAULT_PARAMS[spec.kind][name].default)
    return default if value is None or isinstance(value, str) else float(value)


def _text(spec: FaultSpec, name: str) -> str:
    return str(spec.params.get(name, FAULT_PARAMS[spec.kind][name].default))


def _service(fleet: Fleet, spec: FaultSpec) -> ServiceState:
    return fleet.services[spec.service or ""]  # inject() has checked it exists


def inject(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    """Start ``spec`` now and return its live record; ValueError if the fleet has no such target."""
    sc = fleet.scenario
    problem = fault_target_problem(spec, sc.services, sc.nodes)
    if problem is not None:
        raise ValueError(f"{spec.kind}: {problem}")
    kind: FaultKind = spec.kind
    return _HANDLERS[kind](fleet, spec)


def _defective_build(
    fleet: Fleet, spec: FaultSpec, recreate: bool, build: Callable[[str], Version]
) -> ActiveFault:
    """Deploy a new version of the target with hidden defects (``build(name)``); over once no pod runs
    it and it is no longer the version the Deployment asks for."""
    svc = _service(fleet, spec)
    n = len(svc.versions) + 1
    while f"v{n}" in svc.versions:
        n += 1
    bad = build(f"v{n}")
    svc.versions[bad.name] = bad
    fleet.emit(svc.name, "Deployment", f"deployment {svc.name} updated to {bad.name}")
    if recreate:  # strategy Recreate: every pod is replaced at once
        svc.pods.clear()
        svc.version_history.append(bad.name)
        for _ in range(svc.desired):
            fleet.create_pod(svc, bad.name)
    else:
        fleet.rollout(svc, bad.name)

    def expire() -> None:  # someone else (or a progress deadline) rolls it back
        if svc.version.name == bad.name:
            previous = svc.version_history[-2]
            fleet.emit(svc.name, "Deployment", f"deployment {svc.name} rolled back to {previous}")
            fleet.rollout(svc, previous)

    return ActiveFault(
        spec,
        fleet.t,
        lambda: svc.version.name == bad.name or any(p.version == bad.name for p in svc.pods),
        expire,
        target=svc.name,
        details={"version": bad.name},
    )


def _crash_loop(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    return _defective_build(fleet, spec, True, lambda name: Version(name, crashes_on_start=True))


def _memory_leak(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    leak = _param(spec, "mb_per_min")
    return _defective_build(fleet, spec, False, lambda name: Version(name, leak_mb_per_min=leak))


def _bad_deployment(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    error_rate, slowdown = _param(spec, "error_rate"), _param(spec, "slowdown")
    return _defective_build(
        fleet, spec, False, lambda name: Version(name, error_rate=error_rate, slowdown=slowdown)
    )


def _node_for(fleet: Fleet, spec: FaultSpec) -> str:
    if spec.node:
        return spec.node
    if spec.service:
        counts: dict[str, int] = {}
        for p in fleet.services[spec.service].pods:
            counts[p.node] = counts.get(p.node, 0) + 1
        if counts:
            return min(counts, key=lambda n: (-counts[n], n))
    return sorted(fleet.nodes)[0]


def _hosts_pods(fleet: Fleet, node: str) -> bool:
    return any(p.node == node for s in fleet.services.values() for p in s.pods)


def _cpu_saturation(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    name = _node_for(fleet, spec)
    node = fleet.nodes[name]
    node.cpu_steal = _param(spec, "steal")

    def expire() -> None:
        node.cpu_steal = 0.0

    def present() -> bool:
        # The neighbour may stay; the fault is over for the fleet once none of our pods share its node.
        return node.cpu_steal > 0 and fleet.nodes.get(name) is node and _hosts_pods(fleet, name)

    return ActiveFault(spec, fleet.t, present, expire, target=name)


def _latency_injection(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = _service(fleet, spec)
    delay = _param(spec, "delay_ms") / 1000.0
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
    svc = _service(fleet, spec)
    svc.down = True
    fleet.emit(svc.name, "Unhealthy", f"{svc.name} primary is not accepting connections")

    def expire() -> None:
        svc.down = False

    return ActiveFault(spec, fleet.t, lambda: svc.down, expire, target=svc.name)


def _config_error(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = _service(fleet, spec)
    key, value = _text(spec, "key"), _text(spec, "value")
    good = svc.config.get(key, "")
    svc.config_defects[(key, value)] = _param(spec, "error_rate")
    svc.config[key] = value
    # Like a config audit log, the change event shows the old value too.
    fleet.emit(svc.name, "ConfigChanged", f"{svc.name} config {key} set to {value!r} (was {good!r})")

    def expire() -> None:  # someone else sets it back
        if svc.config.get(key) == value:
            svc.config[key] = good
            fleet.emit(svc.name, "ConfigChanged", f"{svc.name} config {key} set to {good!r} (was {value!r})")

    return ActiveFault(
        spec,
        fleet.t,
        lambda: svc.config.get(key) == value,
        expire,
        target=svc.name,
        details={"key": key, "bad_value": value, "good_value": good},
    )


def _pool_exhaustion(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = _service(fleet, spec)
    per_min = _param(spec, "leak_per_min")
    leak_for = _param(spec, "leak_for_s")
    leaking = {p.name for p in svc.pods}
    start = fleet.t

    def leak() -> None:
        # Connections leak while the trigger lasts (e.g. a dependency blip); leaked ones never return.
        if fleet.t - start < leak_for and leaking:
            for p in svc.pods:
                if p.name in leaking:
                    p.leaked_connections = min(
                        float(svc.pool_size), p.leaked_connections + per_min / 60 * fleet.dt
                    )
            fleet.after(fleet.dt, leak)

    def expire() -> None:  # the server side times the idle connections out
        leaking.clear()
        for p in svc.pods:
            p.leaked_connections = 0.0

    leak()
    return ActiveFault(
        spec, fleet.t, lambda: any(p.leaked_connections > 0 for p in svc.pods), expire, target=svc.name
    )


def _disk_full(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = _service(fleet, spec)
    rate = _param(spec, "gb_per_hour", svc.spec.disk_gb) / 3600.0  # default: a whole disk an hour
    was = svc.config.get("log_level", "info")
    svc.config["log_level"] = "debug"
    fleet.emit(svc.name, "ConfigChanged", f"{svc.name} config log_level set to 'debug' (was {was!r})")
    svc.disk_growth_gb_per_s = rate

    def expire() -> None:  # someone else turns the debug logging off
        if svc.disk_growth_gb_per_s:
            svc.config["log_level"] = "info"
            fleet.emit(svc.name, "ConfigChanged", f"{svc.name} config log_level set to 'info' (was 'debug')")
            svc.rotate_logs()

    return ActiveFault(spec, fleet.t, lambda: svc.disk_growth_gb_per_s > 0, expire, target=svc.name)


SPIKE_HEADROOM = 0.85  # a spike is absorbed once every serving service stays below this utilisation
SPIKE_CALM_S = 60.0  # ... for this long


def _traffic_spike(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    factor = _param(spec, "factor")
    fleet.load.multiplier *= factor
    state: dict[str, float | None] = {"calm_since": None, "on": 1.0}

    def expire() -> None:
        if state["on"]:
            fleet.load.multiplier /= factor
            state["on"] = 0.0

    def present() -> bool:
        # The extra traffic is not ours to stop; the fault is over when the fleet has the capacity for
        # it (or the spike ends): no request-serving service saturated for a minute.
        if not state["on"]:
            return False
        serving = (s for s in fleet.services.values() if s.spec.kind != "worker")
        if any(s.utilisation >= SPIKE_HEADROOM for s in serving):
            state["calm_since"] = None
            return True
        calm_since = state["calm_since"]
        if calm_since is None:
            state["calm_since"] = calm_since = fleet.t
        return fleet.t - calm_since < SPIKE_CALM_S

    return ActiveFault(
        spec, fleet.t, present, expire, target=spec.service or fleet.scenario.load.entry, details={}
    )


def _cache_failure(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = _service(fleet, spec)
    for p in svc.pods:
        p.hung = True  # e.g. a blocking command or swapping: the processes answer nothing

    def expire() -> None:
        for p in svc.pods:
            p.hung = False

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
            if fleet.nodes.get(n.name) is n:
                n.ready = True
                fleet.node_down_since.pop(n.name, None)
                fleet.emit(None, "NodeReady", f"node {n.name} status is now Ready", node=n.name)

    def present() -> bool:
        # Over once no pod of ours is left on a failed node: it is back, replaced or drained, or its pods
        # were evicted and rescheduled elsewhere.
        return any(fleet.nodes.get(n.name) is n and not n.ready and _hosts_pods(fleet, n.name) for n in nodes)

    return ActiveFault(spec, fleet.t, present, expire, target=spec.zone or names[0])


def _model_drift(fleet: Fleet, spec: FaultSpec) -> ActiveFault:
    svc = _service(fleet, spec)
    m = svc.model
    if m is None:  # inject() has checked; kept for the type checker
        raise ValueError(f"model_drift needs an ML service; {svc.name} serves no model")
    m.decay_per_s = _param(spec, "accuracy_loss_per_hour") / 3600.0
    cause = _text(spec, "cause")
    m.drift_cause = cause
    if cause == "model":
        m.version = f"m{len(m.history) + 1}"
        m.history.append((m.version, m.accuracy))
        fleet.emit(svc.name, "ModelDeployed", f"{svc.name} now serves model {m.version}")

    def expire() -> None:  # the scheduled retraining pipeline catches up
        if m.decay_per_s > 0:
            m.retrained()
            fleet.emit(svc.name, "ModelDeployed", f"{svc.name} now serves retrained model {m.version}")

    return ActiveFault(
        spec, fleet.t, lambda: m.decay_per_s > 0, expire, target=svc.name, details={"cause": cause}
    )


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
assert set(_HANDLERS) == set(FAULT_CATALOGUE) == set(FAULT_PARAMS)
