"""Remediating the simulated fleet: the runbook vocabulary carried out by the simulator's actuator.

The runbooks speak one vocabulary (:data:`opsmind.heal.runbook.ACTION_SPECS`); the simulator's actuator
(:class:`opsmind.sim.actions.SimActuator`) takes the same action names with concrete parameters. This
adapter fills the gap the way a Kubernetes client would:

- ``scale`` by ``factor`` or ``add`` is turned into a replica count from the Deployment's desired
  replicas now, capped by ``max_replicas``; its revert token is the count before, so a rollback
  restores it;
- ``revert`` (the executor's undo when a step declared no rollback action) replays a revert token;
- a refused action (unknown service, nothing to roll back to, bad parameters) is a non-retryable
  failure with the simulator's reason; dry-run sends nothing (a scale still resolves its replica count,
  so the reply says what would be asked, and refuses an unknown service).

The simulator's actions take effect after a delay and may fail later; the reply says "accepted", and the
runbook's verification decides whether it helped. ``sent`` keeps every request sent, for scorers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from opsmind.act.base import ActionResult

# The simulator is seen only through these shapes (the act layer may not import it).


class _Reply(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def accepted(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class _Service(Protocol):
    @property
    def desired(self) -> int: ...


class _Fleet(Protocol):
    @property
    def now(self) -> float: ...

    @property
    def services(self) -> Mapping[str, _Service]: ...


class SimActuatorLike(Protocol):
    """What :class:`opsmind.sim.actions.SimActuator` offers: its fleet and ``apply``."""

    @property
    def fleet(self) -> _Fleet: ...

    def apply(self, action: str, **params: Any) -> _Reply: ...


SCALE_TOKEN = "scale:"


@dataclass
class SimulatorRemediator:
    actuator: SimActuatorLike
    sent: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, action: str, params: Mapping[str, Any], dry_run: bool) -> ActionResult:
        params = dict(params)
        token: str | None = None
        if action == "revert":
            return self._revert(str(params.get("revert_token", "")), dry_run)
        if action == "scale":
            resolved = self._replicas(params)
            if isinstance(resolved, ActionResult):
                return resolved
            replicas, before = resolved
            params = {"service": params["service"], "replicas": replicas}
            token = f"{SCALE_TOKEN}{params['service']}:{before}"
        if dry_run:
            return ActionResult(True, False, f"would send {action} {params}", token, dry_run=True)
        result = self.actuator.apply(action, **params)
        if not result.accepted:
            return ActionResult(False, False, result.reason, dry_run=False)
        self.sent.append((self.actuator.fleet.now, action, params))
        return ActionResult(True, False, f"{result.id}: {result.reason}", token, dry_run=False)

    def _replicas(self, params: Mapping[str, Any]) -> tuple[int, int] | ActionResult:
        svc = self.actuator.fleet.services.get(str(params.get("service")))
        if svc is None:
            return ActionResult(False, False, f"unknown service {params.get('service')!r}", dry_run=False)
        before = svc.desired
        try:
            if "replicas" in params:
                target = int(params["replicas"])
            elif "factor" in params:
                target = math.ceil(before * float(params["factor"]))
            else:
                target = before + int(params.get("add", 0))
            cap = int(params.get("max_replicas", 500))
        except (TypeError, ValueError) as exc:
            return ActionResult(False, False, f"bad scale parameters {dict(params)}: {exc}", dry_run=False)
        return max(1, min(cap, target)), before

    def _revert(self, token: str, dry_run: bool) -> ActionResult:
        if not token.startswith(SCALE_TOKEN):
            return ActionResult(
                False, False, f"cannot revert {token!r}: not a token of this actuator", dry_run=dry_run
            )
        service, _, replicas = token[len(SCALE_TOKEN) :].rpartition(":")
        if not replicas.isdigit():
            return ActionResult(False, False, f"cannot revert {token!r}: no replica count", dry_run=dry_run)
        return self("scale", {"service": service, "replicas": int(replicas)}, dry_run)
