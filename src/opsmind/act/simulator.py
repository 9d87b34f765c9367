"""Scaling the simulated fleet through the simulator's own actuator, seen only through a Protocol.

The engine may not import ``opsmind.sim`` (the simulator is a world outside it), so this adapter accepts
any object whose ``apply(action, **params)`` returns something with ``accepted`` and ``reason`` - the
simulator's ``SimActuator`` is one. ``accepted`` means the platform took the request; like a real one,
the simulator carries it out a few seconds later and reports the outcome as events.

The simulator's actuator cannot be asked for the current replicas, so reverting needs a reader: pass
``read_replicas`` (the CLI, which owns the simulator, can read the fleet) and every apply returns a revert
token; without it, actions are not reversible and say so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from opsmind.act.base import ActionResult, ReplicaBounds, ScaleAction, ScaleRevert, bad_token


class SimReply(Protocol):
    @property
    def accepted(self) -> bool: ...

    @property
    def reason(self) -> str: ...


class SimActuatorLike(Protocol):
    def apply(self, action: str, **params: Any) -> SimReply: ...


class SimulatorScaler:
    """An ``Actuator`` that scales simulated services (``ScaleAction.name`` is the service)."""

    def __init__(
        self,
        target: SimActuatorLike,
        bounds: ReplicaBounds | None = None,
        read_replicas: Callable[[str], int | None] | None = None,
    ) -> None:
        self.target = target
        self.bounds = bounds if bounds is not None else ReplicaBounds()
        self.read_replicas = read_replicas

    def _current(self, service: str) -> int | None:
        """The service's replicas now, or None when there is no reader or it does not know the service
        (the simulator then answers for an unknown service itself)."""
        if self.read_replicas is None:
            return None
        try:
            return self.read_replicas(service)
        except LookupError:
            return None

    def _send(self, service: str, replicas: int) -> SimReply:
        return self.target.apply("scale", service=service, replicas=replicas)

    def apply(self, action: ScaleAction, dry_run: bool = True) -> ActionResult:
        refusal = self.bounds.refusal(action)
        if refusal is not None:
            return replace(refusal, dry_run=dry_run)
        service, n = action.name, action.replicas
        why = f" ({action.reason})" if action.reason else ""
        current = self._current(service)
        origin = "" if current is None else f" from {current}"
        if dry_run:
            return ActionResult(
                True, False, f"dry run: would scale {service}{origin} to {n}{why}", None, True
            )
        reply = self._send(service, n)
        if not reply.accepted:
            return ActionResult(
                False, False, f"simulator refused scaling {service}: {reply.reason}", None, False
            )
        token = None if current is None else ScaleRevert(action.namespace, service, current, n).encode()
        note = "" if token is not None else "; not reversible (no replica reader)"
        return ActionResult(
            True, False, f"scaling {service}{origin} to {n}{why}: {reply.reason}{note}", token, False
        )

    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        try:
            undo = ScaleRevert.decode(token)
        except ValueError as exc:
            return replace(bad_token(token, exc), dry_run=dry_run)
        refusal = self.bounds.refusal(undo.action())
        if refusal is not None:
            return replace(refusal, dry_run=dry_run)
        current = self._current(undo.name)
        if current is not None and current != undo.applied:
            return ActionResult(
                False,
                False,
                f"not reverting {undo.name}: it wants {current} replicas, "
                f"not the {undo.applied} the action set",
                None,
                dry_run,
            )
        if dry_run:
            return ActionResult(
                True, False, f"dry run: would revert {undo.name} to {undo.previous}", None, True
            )
        reply = self._send(undo.name, undo.previous)
        if not reply.accepted:
            return ActionResult(
                False, False, f"simulator refused reverting {undo.name}: {reply.reason}", None, False
            )
        redo = ScaleRevert(undo.namespace, undo.name, undo.applied, undo.previous).encode()
        return ActionResult(
            True, False, f"reverting {undo.name} to {undo.previous}: {reply.reason}", redo, False
        )


class SimulatorTraffic:
    """Applies a placement's traffic weights (per ``provider/region``, see
    :mod:`opsmind.decide.placement`) to the simulator's entry traffic, which is split by zone. Which zone
    stands for which location is the operator's declaration (``zone_of``); weights of locations mapped to
    the same zone add up, and a location without a zone is refused rather than silently dropped."""

    def __init__(self, target: SimActuatorLike, zone_of: dict[str, str]) -> None:
        self.target = target
        self.zone_of = dict(zone_of)

    def apply(self, weights: dict[str, float], dry_run: bool = True) -> ActionResult:
        unknown = sorted(set(weights) - set(self.zone_of))
        if unknown:
            return ActionResult(False, False, f"no zone declared for {', '.join(unknown)}", None, dry_run)
        per_zone: dict[str, float] = {}
        for location, w in weights.items():
            per_zone[self.zone_of[location]] = per_zone.get(self.zone_of[location], 0.0) + float(w)
        shown = ", ".join(f"{z}={w:.2f}" for z, w in sorted(per_zone.items()))
        if dry_run:
            return ActionResult(True, False, f"dry run: would set traffic weights {shown}", None, True)
        reply = self.target.apply("set_traffic_weights", weights=per_zone)
        if not reply.accepted:
            return ActionResult(False, False, f"simulator refused the weights: {reply.reason}", None, False)
        return ActionResult(True, False, f"traffic weights {shown}: {reply.reason}", None, False)
