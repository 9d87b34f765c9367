"""The online-learned warning rule: labels only once due, the gate during the warm-up, and learning to
suppress a warning context that never leads to a breach while keeping one that does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from opsmind.predict.bottleneck import WarningGate
from opsmind.predict.warning_learner import LABEL_MINUTES, WarningLearner, default_model

SLO = 0.5
CAP = 100.0
CYCLE = 60


def minute(learner: WarningLearner, load: float, p95: float, p: float) -> bool:
    return learner.update(load, p95, CAP, np.full(15, p), load / CAP, load / CAP + 0.2)


def cycle(kind: str, k: int) -> tuple[float, float, float]:
    """Minute ``k`` of a one-hour cycle: the same raised P(exceed) over minutes 10-19 in both kinds; in
    "real" the load climbs and breaches at minutes 22-25, in "false" it stays low and never breaches."""
    p = 0.5 if 10 <= k < 20 else 0.0
    if kind == "real":
        load = 60.0 + 2.5 * max(0, k - 5) if k < 26 else 50.0
        return load, (0.8 if 22 <= k < 26 else 0.1), p
    return 40.0, 0.1, p


def test_rejects_levels_out_of_order() -> None:
    with pytest.raises(ValueError, match="start_p"):
        WarningLearner(slo_s=SLO, start_p=0.7, own_p=0.5)


def test_falls_back_to_the_gate_during_the_warm_up() -> None:
    learner = WarningLearner(slo_s=SLO, min_examples=10**6)
    gate = WarningGate()
    rng = np.random.default_rng(0)
    for t in range(600):
        p = float(rng.uniform(0.0, 0.4))
        load = 60.0 + 40.0 * p
        p95 = 0.8 if rng.uniform() < 0.05 else 0.1
        assert minute(learner, load, p95, p) == gate.update(p, 60.0 * t)
    assert not learner.ready and learner.probability is None and learner.labelled > 0


class Spy:
    """A classifier recording, at each fit, the labels it was given and when."""

    def __init__(self, log: list[tuple[int, list[bool]]], learner: list[WarningLearner]) -> None:
        self.log, self.learner, self.inner = log, learner, default_model()

    def fit(self, x: Any, y: Any) -> Any:
        self.log.append((self.learner[0].minute, [bool(v) for v in y]))
        return self.inner.fit(x, y)

    def predict_proba(self, x: Any) -> Any:
        return self.inner.predict_proba(x)


def test_never_trains_on_a_label_before_it_is_due() -> None:
    log: list[tuple[int, list[bool]]] = []
    holder: list[WarningLearner] = []
    learner = WarningLearner(
        slo_s=SLO, min_examples=50, min_positives=5, refit_every=7, model_factory=lambda: Spy(log, holder)
    )
    holder.append(learner)
    rng = np.random.default_rng(1)
    n = 400
    breach = rng.uniform(size=n) < 0.08
    for t in range(n):
        minute(learner, 80.0, 0.8 if breach[t] else 0.1, float(rng.uniform(0, 0.5)))
    # The truth from the whole stream: a breach starts at s after 5 minutes without one; minute u's label
    # is whether one starts in (u, u + 20]; breach minutes are not examples.
    starts = [s for s in range(n) if breach[s] and not breach[max(0, s - 5) : s].any()]
    examples = [u for u in range(n) if not breach[u]]
    truth = [any(u < s <= u + LABEL_MINUTES for s in starts) for u in examples]
    assert log, "the model was never fitted"
    for now, labels in log:
        due = [u for u in examples if u <= now - LABEL_MINUTES]
        assert len(labels) == len(due)  # nothing newer than LABEL_MINUTES ago
        assert labels == truth[: len(due)]
    assert learner.labelled == sum(1 for u in examples if u <= n - 1 - LABEL_MINUTES)


def test_learns_to_suppress_a_context_that_never_breaches() -> None:
    learner = WarningLearner(slo_s=SLO, min_examples=600, min_positives=20)
    gate = WarningGate()
    rng = np.random.default_rng(2)
    kinds = ["real" if rng.uniform() < 0.5 else "false" for _ in range(80)]
    gate_false = learned_false = gate_real = learned_real = 0
    for c, kind in enumerate(kinds):
        fired = gated = False
        for k in range(CYCLE):
            load, p95, p = cycle(kind, k)
            t = c * CYCLE + k
            g = gate.update(p, 60.0 * t)
            w = minute(learner, load, p95, p)
            if k < 22:  # before the breach (or where it would be)
                fired |= w
                gated |= g
        if c >= 40:  # the second half: the learner is warm
            assert learner.ready
            gate_false += int(kind == "false" and gated)
            learned_false += int(kind == "false" and fired)
            gate_real += int(kind == "real" and gated)
            learned_real += int(kind == "real" and fired)
    assert gate_false > 0 and gate_real > 0  # the gate warns in both contexts alike
    assert learned_false == 0  # the learner no longer warns where no breach ever followed
    assert learned_real == gate_real  # and still warns ahead of every breach the gate did
