"""What every scaling decision returns: the value and the chain of reasons that produced it.

Following the HPA's split (``replica_calculator.go`` vs ``horizontal.go``), calculators are pure
functions returning a ``ScaleDecision``; controllers hold history and clock and call them. Every
normalisation step (tolerance, limits, stabilisation, bounds) appends a reason, so the decision is
explained wherever it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    replicas: int
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def explain(self) -> str:
        return "; ".join(self.reasons)
