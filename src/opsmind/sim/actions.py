"""The simulator's actuator: what an operator (or OpsMind) can do to the fleet.

Each action is checked at once (a bad request is refused with a reason), takes effect after a realistic
delay, can fail (``failure_rate``, seeded), and is visible as events: ``ActionStarted`` and then
``ActionSucceeded`` or ``ActionFailed`` with the action's id, plus what the platform itself logs
(``ScalingReplicaSet``, ``Killing``, ``Deployment``, ...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsmind.sim.fleet import Fleet
from opsmind.sim.model import Node, ServiceState, Version

ACTIONS = (
    "scale",
    "restart",
    "rollback",
    "deploy",
    "set_traffic_weights",
    "drain_node",
    "replace_node",
    "failover",
    "flush_cache",
    "retrain_model",
    "rollback_model",
    "set_config",
)
DELAYS_S = {
    "scale": 5,
    "restart": 5,
    "rollback": 10,
    "deploy": 10,
    "set_traffic_weights": 5,
    "drain_node": 10,
    "replace_node": 120,
    "failover": 30,
    "flush_cache": 5,
    "retrain_model": 0,
    "rollback_model": 30,
    "set_config": 10,
}


class ActionRejected(ValueError):
    """The action cannot be carried out as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    id: str
    action: str
    accepted: bool
    reason: str
    params: dict[str, Any] = field(default_factory=dict)


class SimActuator:
    def __init__(self, fleet: Fleet, failure_rate: float = 0.0) -> None:
        self.fleet = fleet
        self.failure_rate = failure_rate
        self._n = 0
        self.outcomes: dict[str, str] = {}  # action id -> "pending" | "succeeded" | "failed: why"

    def apply(self, action: str, **params: Any) -> ActionResult:
        """Validate ``action`` now and schedule its effect; a refused action changes nothing."""
        self._n += 1
        aid = f"act-{self._n}"
        try:
            if action not in ACTIONS:
                raise ActionRejected(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
            effect = getattr(self, f"_{action}")(**params)
        except TypeError as exc:
            return ActionResult(aid, action, False, f"bad parameters: {exc}", params)
        except ActionRejected as exc:
            return ActionResult(aid, action, False, str(exc), params)
        fleet = self.fleet
        service, node = params.get("service"), params.get("node")
        fleet.emit(service, "ActionStarted", f"{aid} {action} {params}", node=node)
        self.outcomes[aid] = "pending"
        failed = self.failure_rate > 0 and float(fleet.action_rng.random()) < self.failure_rate

        def finish() -> None:
            message = "the platform returned an error" if failed else effect()
            self.outcomes[aid] = "succeeded" if message is None else f"failed: {message}"
            reason = "ActionSucceeded" if message is None else "ActionFailed"
            text = f"{aid} {action}" + ("" if message is None else f" failed: {message}")
            fleet.emit(service, reason, text, node=node)

        fleet.after(DELAYS_S[action], finish)
        return ActionResult(
            aid, action, True, f"{action} accepted, takes effect in {DELAYS_S[action]} s", params
        )

    # -- validation now, effect later (each returns the effect: None on success or a failure reason) --
    def _svc(self, service: str) -> ServiceState:
        svc = self.fleet.services.get(service)
        if svc is None:
            raise ActionRejected(f"unknown service {service!r}")
        return svc

    def _node(self, node: str) -> Node:
        n = self.fleet.nodes.get(node)
        if n is None:
            raise ActionRejected(f"unknown node {node!r}")
        return n

    def _scale(self, service: str, replicas: int) -> Callable[[], str | None]:
        svc = self._svc(service)
        if not isinstance(replicas, int) or replicas < 0 or replicas > 500:
            raise ActionRejected("replicas must be an integer between 0 and 500")

        def effect() -> str | None:
            old, svc.desired = svc.desired, replicas
            self.fleet.emit(service, "ScalingReplicaSet", f"scaled {service} from {old} to {replicas}")
            return None

        return effect

    def _restart(self, service: str, pod: str | None = None) -> Callable[[], str | None]:
        svc = self._svc(service)
        if pod is not None and not any(p.name == pod for p in svc.pods):
            raise ActionRejected(f"{service} has no pod {pod!r}")

        def effect() -> str | None:
            fleet = self.fleet
            if pod is None:
                fleet.emit(service, "Killing", f"rolling restart of {service}")
                fleet.rollout(svc, svc.version.name, restart=True)
                return None
            victim = next((p for p in svc.pods if p.name == pod), None)
            if victim is None:
                return f"pod {pod} no longer exists"
            fleet.emit(service, "Killing", f"stopping container of {pod}", pod, victim.node)
            fleet.delete_pod(svc, victim)  # the ReplicaSet creates its replacement at the next step
            return None

        return effect

    def _rollback(self, service: str) -> Callable[[], str | None]:
        svc = self._svc(service)
        if len(svc.version_history) < 2:
            raise ActionRejected(f"{service} has no previous version to roll back to")
        target = svc.version_history[-2]

        def effect() -> str | None:
            self.fleet.emit(service, "Deployment", f"deployment {service} rolled back to {target}")
            self.fleet.rollout(svc, target)
            return None

        return effect

    def _deploy(self, service: str, version: str) -> Callable[[], str | None]:
        svc = self._svc(service)
        if not version or not isinstance(version, str):
            raise ActionRejected("version must be a non-empty string")

        def effect() -> str | None:
            svc.versions.setdefault(version, Version(version))
            self.fleet.emit(service, "Deployment", f"deployment {service} updated to {version}")
            self.fleet.rollout(svc, version)
            return None

        return effect

    def _set_traffic_weights(self, weights: dict[str, float]) -> Callable[[], str | None]:
        zones = set(self.fleet.scenario.nodes.zones)
        if not isinstance(weights, dict) or not weights or not set(weights) <= zones:
            raise ActionRejected(f"weights must map zones ({', '.join(sorted(zones))}) to numbers")
        if (
            any(not isinstance(w, int | float) or w < 0 for w in weights.values())
            or sum(weights.values()) <= 0
        ):
            raise ActionRejected("weights must be non-negative and not all zero")

        def effect() -> str | None:
            self.fleet.zone_weights = {z: float(weights.get(z, 0.0)) for z in sorted(zones)}
            self.fleet.emit(None, "TrafficShifted", f"entry traffic weights now {self.fleet.zone_weights}")
            return None

        return effect

    def _drain_node(self, node: str) -> Callable[[], str | None]:
        n = self._node(node)

        def effect() -> str | None:
            n.cordoned = True
            fleet = self.fleet
            fleet.emit(None, "NodeDrained", f"node {node} cordoned and drained", node=node)
            for svc in fleet.services.values():
                for pod in [p for p in svc.pods if p.node == node]:
                    fleet.delete_pod(svc, pod)
                    fleet.emit(svc.name, "Evicted", f"{pod.name} evicted from {node}", pod.name, node)
            fleet.node_down_since.pop(node, None)
            return None

        return effect

    def _replace_node(self, node: str) -> Callable[[], str | None]:
        self._node(node)
        drain = self._drain_node(node)

        def effect() -> str | None:
            drain()
            old = self.fleet.nodes[node]
            self.fleet.nodes[node] = Node(node, old.zone)  # a fresh machine: ready, no neighbours
            self.fleet.emit(None, "NodeReady", f"node {node} replaced and Ready", node=node)
            return None

        return effect

    def _failover(self, service: str) -> Callable[[], str | None]:
        svc = self._svc(service)
        if svc.spec.kind not in ("database", "cache"):
            raise ActionRejected(
                f"{service} is a {svc.spec.kind} service; failover is for databases and caches"
            )

        def effect() -> str | None:
            svc.down = False
            for p in svc.pods:
                p.hung = False  # the standby takes the primary's place: clients talk to a live process
            self.fleet.emit(service, "Failover", f"standby of {service} promoted to primary")
            return None

        return effect

    def _flush_cache(self, service: str) -> Callable[[], str | None]:
        svc = self._svc(service)
        if svc.spec.kind != "cache":
            raise ActionRejected(f"{service} is not a cache")

        def effect() -> str | None:
            if svc.hung:
                return "FLUSHALL timed out: the cache does not answer"
            svc.cache_cold_until = self.fleet.t + 120.0  # an empty cache misses until it warms up again
            self.fleet.emit(service, "CacheFlushed", f"{service} flushed")
            return None

        return effect

    def _retrain_model(self, service: str) -> Callable[[], str | None]:
        svc = self._svc(service)
        m, spec_model = svc.model, svc.spec.model
        if m is None or spec_model is None:
            raise ActionRejected(f"{service} serves no model")

        def effect() -> str | None:
            fleet = self.fleet
            fleet.emit(service, "RetrainStarted", f"retraining the model of {service}")

            def done() -> None:
                m.retrained()
                fleet.emit(service, "ModelDeployed", f"{service} now serves retrained model {m.version}")

            m.retrain_done_at = fleet.t + spec_model.retrain_s
            fleet.after(spec_model.retrain_s, done)
            return None

        return effect

    def _rollback_model(self, service: str) -> Callable[[], str | None]:
        svc = self._svc(service)
        m = svc.model
        if m is None or len(m.history) < 2:
            raise ActionRejected(f"{service} has no previous model to roll back to")

        def effect() -> str | None:
            prev_version, prev_accuracy = m.history[-2]
            m.version = prev_version
            m.history.append((prev_version, prev_accuracy))
            if m.drift_cause == "model":
                m.accuracy, m.decay_per_s, m.drift_cause = max(m.accuracy, prev_accuracy), 0.0, None
            # With drifting data the previous model is as out of date as the current one: it keeps decaying.
            self.fleet.emit(service, "ModelDeployed", f"{service} rolled back to model {prev_version}")
            return None

        return effect

    def _set_config(self, service: str, key: str, value: str) -> Callable[[], str | None]:
        svc = self._svc(service)
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise ActionRejected("key and value must be strings")
        if key == "pool_size" and (not value.isdigit() or not 1 <= int(value) <= 10_000):
            raise ActionRejected("pool_size must be an integer between 1 and 10000")

        def effect() -> str | None:
            was = svc.config.get(key, "")
            svc.config[key] = value
            if key == "pool_size":
                svc.pool_size = int(value)
            if key == "log_level" and value != "debug" and svc.disk_growth_gb_per_s:
                svc.rotate_logs()
            self.fleet.emit(
                service, "ConfigChanged", f"{service} config {key} set to {value!r} (was {was!r})"
            )
            return None

        return effect
