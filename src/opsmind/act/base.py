"""The actuator contract: carry out a scale action on a target, dry-run by default, bounded, reversible.

Every actuator answers with an ``ActionResult`` saying whether it worked, whether trying again could
help (as Alertmanager's notifiers do), what happened in words, and a revert token that undoes it. Bounds
are checked before anything is sent, so an out-of-range action never reaches the target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ScaleAction:
    """Set the replica count of ``name`` in ``namespace`` (the simulator ignores the namespace)."""

    namespace: str
    name: str
    replicas: int
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a scale action needs the name of its target")
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int):
            raise ValueError(f"replicas must be an integer, got {self.replicas!r}")

    @property
    def target(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class ActionResult:
    ok: bool
    retryable: bool
    detail: str
    revert_token: str | None = None
    dry_run: bool = True


@dataclass(frozen=True, slots=True)
class ReplicaBounds:
    """The replica range an actuator will ever ask for; the default keeps at least one replica."""

    min_replicas: int = 1
    max_replicas: int = 100

    def __post_init__(self) -> None:
        if not 0 <= self.min_replicas <= self.max_replicas:
            raise ValueError(
                f"need 0 <= min_replicas <= max_replicas, got {self.min_replicas}..{self.max_replicas}"
            )

    def refusal(self, action: ScaleAction) -> ActionResult | None:
        """A non-retryable refusal when ``action`` is out of bounds, else None."""
        if self.min_replicas <= action.replicas <= self.max_replicas:
            return None
        return ActionResult(
            ok=False,
            retryable=False,
            detail=(
                f"refused: {action.target} to {action.replicas} replicas is outside the bounds "
                f"{self.min_replicas}..{self.max_replicas}; nothing was sent"
            ),
        )


@dataclass(frozen=True, slots=True)
class ScaleRevert:
    """What a revert token holds: the target, the replicas before the action and the replicas it set."""

    namespace: str
    name: str
    previous: int
    applied: int

    def encode(self) -> str:
        return json.dumps(
            {
                "kind": "scale",
                "namespace": self.namespace,
                "name": self.name,
                "previous": self.previous,
                "applied": self.applied,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, token: str) -> ScaleRevert:
        """Parse a token from ``encode``; ``ValueError`` says what is wrong with it."""
        try:
            data = json.loads(token)
        except (TypeError, ValueError):
            raise ValueError("not a revert token (not JSON)") from None
        if not isinstance(data, dict) or data.get("kind") != "scale":
            raise ValueError("not a scale revert token")
        namespace, name = data.get("namespace"), data.get("name")
        previous, applied = data.get("previous"), data.get("applied")
        if not (isinstance(namespace, str) and isinstance(name, str) and name):
            raise ValueError("revert token lacks its target")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (previous, applied)):
            raise ValueError("revert token lacks its replica counts")
        assert isinstance(previous, int) and isinstance(applied, int)
        return cls(namespace, name, previous, applied)

    def action(self) -> ScaleAction:
        return ScaleAction(self.namespace, self.name, self.previous, f"revert to {self.previous} replicas")


@runtime_checkable
class Actuator(Protocol):
    def apply(self, action: ScaleAction, dry_run: bool = True) -> ActionResult:
        """Carry out ``action``; with ``dry_run`` change nothing and say what would happen."""
        ...

    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        """Undo the action that returned ``token``."""
        ...


def bad_token(token: str, exc: ValueError) -> ActionResult:
    return ActionResult(False, False, f"cannot revert: {exc} ({token[:60]!r})")
