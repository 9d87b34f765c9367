"""An actuator that only writes what it would do to the log: the safe default for trying scaling out.

It remembers the replicas it "set" per target, so its revert tokens and its "from N to M" read like a
real actuator's; nothing outside the process changes, whatever ``dry_run`` says.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from opsmind.act.base import ActionResult, ReplicaBounds, ScaleAction, ScaleRevert, bad_token

log = logging.getLogger(__name__)


class LogScaler:
    """An ``Actuator`` that logs scale actions and keeps the replicas it was asked for in memory."""

    def __init__(self, bounds: ReplicaBounds | None = None) -> None:
        self.bounds = bounds if bounds is not None else ReplicaBounds()
        self.replicas: dict[str, int] = {}

    def apply(self, action: ScaleAction, dry_run: bool = True) -> ActionResult:
        refusal = self.bounds.refusal(action)
        if refusal is not None:
            return replace(refusal, dry_run=dry_run)
        target, n = action.target, action.replicas
        previous = self.replicas.get(target)
        origin = "" if previous is None else f" from {previous}"
        why = f" ({action.reason})" if action.reason else ""
        if dry_run:
            return ActionResult(True, False, f"dry run: would scale {target}{origin} to {n}{why}", None, True)
        self.replicas[target] = n
        log.info("scale %s%s to %d%s (log actuator: nothing outside OpsMind changed)", target, origin, n, why)
        token = ScaleRevert(
            action.namespace, action.name, previous if previous is not None else n, n
        ).encode()
        return ActionResult(True, False, f"logged: scale {target}{origin} to {n}{why}", token, False)

    def revert(self, token: str, dry_run: bool = True) -> ActionResult:
        try:
            undo = ScaleRevert.decode(token)
        except ValueError as exc:
            return replace(bad_token(token, exc), dry_run=dry_run)
        return self.apply(undo.action(), dry_run)
