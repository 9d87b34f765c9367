"""Carrying out runbook actions: the heal executor's ``actuate(request, dry_run)`` over the act layer.

The executor speaks the runbooks' vocabulary (:data:`opsmind.heal.runbook.ACTION_SPECS`); an actuator
here translates it for one target and answers an :class:`~opsmind.act.base.ActionResult`:

- ``log``: writes what it was asked to the log and changes nothing (the safe default, so a fresh
  install with ``heal.mode: on`` still touches nothing until an actuator is chosen);
- ``kubernetes``: :class:`~opsmind.act.kubernetes_remediate.KubernetesRemediator` (rollout restart,
  rollout undo, pod deletion, scaling); actions it cannot do are refused, not guessed at;
- ``simulator``: must be handed to the engine by whoever owns the simulator (the engine may not import
  :mod:`opsmind.sim`), as ``Engine(remediators={"simulator": ...})``.

The executor records an idempotency key before each call and never sends a recorded key again, so these
adapters need no deduplication of their own.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

from opsmind.act.base import ActionResult
from opsmind.act.kubernetes_remediate import KubernetesRemediator
from opsmind.config import ConfigError, Settings
from opsmind.heal.executor import ActionRequest, Actuate, ActuatorReply

log = logging.getLogger(__name__)


def log_actuate(request: ActionRequest, dry_run: bool) -> ActuatorReply:
    """Say what would be done; nothing is changed (so a verification will see no effect)."""
    what = f"{request.action} {dict(request.params)} for remediation {request.remediation_id}"
    log.warning("heal (log actuator, changes nothing%s): %s", ", dry run" if dry_run else "", what)
    return ActionResult(True, False, f"logged {what}; the log actuator changes nothing", None, dry_run)


class KubernetesActuate:
    """Runbook actions on ``apps/v1`` Deployments named after the service; the client is built on first
    use, so a missing kubeconfig fails the first action (retryable) rather than the engine's start.
    ``actions`` names what it can do: the healer does not choose runbooks that need anything else."""

    actions = frozenset({"restart", "rollout_restart", "delete_pod", "rollback", "rollout_undo", "scale"})

    def __init__(self, namespace: str, factory: Callable[[], KubernetesRemediator]) -> None:
        self.namespace = namespace
        self._factory = factory
        self._k8s: KubernetesRemediator | None = None

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActuatorReply:
        try:
            if self._k8s is None:
                self._k8s = self._factory()
        except Exception as exc:  # no cluster configuration: nothing was sent, it may work later
            return ActionResult(False, True, f"no Kubernetes client: {exc}", None, dry_run)
        return self._do(self._k8s, request.action, dict(request.params), dry_run)

    def _do(self, k8s: KubernetesRemediator, action: str, p: dict[str, Any], dry_run: bool) -> ActionResult:
        ns = str(p.get("namespace", self.namespace))
        if action == "revert":
            return k8s.revert(str(p.get("revert_token", "")), dry_run)
        if action in ("restart", "rollout_restart") and "pod" not in p:
            return k8s.rollout_restart(ns, str(p.get("deployment", p.get("service"))), dry_run)
        if action in ("restart", "delete_pod"):
            return k8s.delete_pod(ns, str(p["pod"]), dry_run)
        if action in ("rollback", "rollout_undo"):
            revision = int(p["revision"]) if "revision" in p else None
            return k8s.rollout_undo(ns, str(p.get("deployment", p.get("service"))), revision, dry_run)
        if action == "scale":
            name = str(p["service"])
            try:
                now = k8s.scaler.read_replicas(ns, name)
            except Exception as exc:
                return ActionResult(
                    False, True, f"reading {ns}/{name}'s replicas failed: {exc}", None, dry_run
                )
            return k8s.scale(ns, name, _target(now, p), dry_run, reason="runbook scale")
        return ActionResult(
            False, False, f"the kubernetes actuator cannot {action}; nothing sent", None, dry_run
        )


def _target(now: int, p: Mapping[str, Any]) -> int:
    """A scale step's replica count from ``replicas``, ``factor`` or ``add``, capped by ``max_replicas``."""
    if "replicas" in p:
        target = int(p["replicas"])
    elif "factor" in p:
        target = math.ceil(now * float(p["factor"]))
    else:
        target = now + int(p.get("add", 0))
    return max(1, min(int(p.get("max_replicas", 500)), target))


def build_actuate(settings: Settings, given: Mapping[str, Actuate]) -> Actuate:
    """The actuator ``heal.actuator`` names: one given by the caller, else one built from settings."""
    kind = settings.heal.actuator
    if kind in given:
        return given[kind]
    if kind == "log":
        return log_actuate
    if kind == "kubernetes":
        s = settings.scale
        return KubernetesActuate(
            settings.heal.namespace,
            lambda: KubernetesRemediator.from_environment(kubeconfig=s.kubeconfig, context=s.kube_context),
        )
    raise ConfigError(
        f"heal.actuator: no {kind} actuator in this process; the simulator's remediator must be passed "
        "to Engine(remediators=...) by whoever runs the simulator (the demo)"
    )
