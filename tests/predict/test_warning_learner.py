"""The online-learned warning rule: labels only once due, the gate during the warm-up, and learning to
suppress a warning context that never leads to a breach while keeping one that does."""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest

from opsmind.predict.base import Forecast
from opsmind.predict.bottleneck import LATENCY_SLO_RISK, WarningGate, breach_risk, warn
from opsmind.predict.capacity import CapacityModel
from opsmind.predict.warning_learner import (
    FEATURES,
    LABEL_MINUTES,
    LearnedWarningRule,
    WarningLearner,
    default_model,
)

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


def trained(learner: WarningLearner | None = None, seed: int = 2) -> WarningLearner:
    """A learner warmed on the real/false cycles of the test above."""
    if learner is None:
        learner = WarningLearner(slo_s=SLO, min_examples=600, min_positives=20)
    rng = np.random.default_rng(seed)
    for _ in range(40):
        kind = "real" if rng.uniform() < 0.5 else "false"
        for k in range(CYCLE):
            minute(learner, *cycle(kind, k))
    assert learner.ready
    return learner


@functools.cache
def saved_params() -> dict[str, Any] | None:
    return trained().export_model()


def test_a_saved_model_restored_gives_the_same_probabilities() -> None:
    learner = trained()
    params = learner.export_model()
    assert params is not None and params["features"] == list(FEATURES)
    fresh = WarningLearner(slo_s=SLO)
    assert not fresh.ready and fresh.export_model() is None
    fresh.restore_model(json.loads(json.dumps(params)))  # as the event store keeps it
    assert fresh.ready and fresh.fits == learner.fits
    rng = np.random.default_rng(5)
    for _ in range(20):
        x = rng.normal(size=len(FEATURES))
        assert fresh._q(x) == pytest.approx(learner._q(x), abs=1e-12)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"features": ["p_peak"]}, "features"),
        ({"coef": [0.0] * 3}, "coefficients"),
        ({"scale": [0.0] * len(FEATURES)}, "scales"),
        ({"intercept": "x"}, "malformed"),
        ({"intercept": float("nan")}, "intercept"),
    ],
)
def test_a_saved_model_that_does_not_fit_is_refused_with_the_reason(
    change: dict[str, Any], match: str
) -> None:
    params = trained().export_model()
    assert params is not None
    learner = WarningLearner(slo_s=SLO)
    with pytest.raises(ValueError, match=match):
        learner.restore_model({**params, **change})
    assert not learner.ready


def test_a_model_other_than_the_default_cannot_be_exported() -> None:
    learner = trained(WarningLearner(slo_s=SLO, min_examples=600, min_positives=20, model_factory=_Tree))
    with pytest.raises(TypeError, match="default model"):
        learner.export_model()


class _Tree:
    def __init__(self) -> None:
        from sklearn.tree import DecisionTreeClassifier

        self.inner = DecisionTreeClassifier(max_depth=3)

    def fit(self, x: Any, y: Any) -> Any:
        return self.inner.fit(x, y)

    def predict_proba(self, x: Any) -> Any:
        return self.inner.predict_proba(x)


def test_the_rule_feeds_each_minute_once_and_a_minute_without_a_decision_as_history() -> None:
    rule = LearnedWarningRule(WarningLearner(slo_s=SLO))
    p = np.full(15, 0.5)
    cap = np.full(15, CAP)
    mean, upper = np.full(15, 60.0), np.full(15, 80.0)
    rule.minute(60.0, 0.1)
    rule.minute(61.0, 0.1)  # no decision for the first: it is history
    assert rule.learner.minute == 0
    assert rule.decide(p, cap, mean, upper, 60.0) is False  # the gate wants two minutes at 0.2
    assert rule.learner.minute == 1
    assert rule.decide(p, cap, mean, upper, 90.0) is False  # no new minute: the last decision stands
    assert rule.learner.minute == 1
    rule.minute(62.0, 0.1)
    assert rule.decide(p, cap, mean, upper, 120.0) is True
    assert rule.learner.minute == 2 and rule.raise_p == rule.learner.gate.raise_p


def test_the_rule_through_warn_matches_the_learner_fed_directly() -> None:
    """warn() hands the rule the look-ahead's P(exceed), capacity, mean and upper bound: the same
    decisions as the learner given them by hand (the benchmark scores the rule through warn)."""
    direct = WarningLearner(slo_s=SLO, min_examples=300, min_positives=10)
    rule = LearnedWarningRule(WarningLearner(slo_s=SLO, min_examples=300, min_positives=10))
    capacity = CapacityModel.known(25.0, 25.0, SLO)
    rng = np.random.default_rng(3)
    for c in range(16):
        kind = "real" if rng.uniform() < 0.5 else "false"
        for k in range(CYCLE):
            load, p95, _ = cycle(kind, k)
            t = c * CYCLE + k
            mean = np.full(15, load) + np.arange(15)
            fc = Forecast(mean, {80: mean * 0.9}, {80: mean * 1.1}, "test")
            risk = breach_risk(fc, 60.0, 4, capacity)
            expected = direct.update(
                load,
                p95,
                float(risk.slo_capacity[0]),
                risk.p_slo,
                float(np.max(mean / risk.slo_capacity)),
                float(np.max(mean * 1.1 / risk.slo_capacity)),
                60.0 * t,
            )
            rule.minute(load, p95)
            found = warn("s", fc, 60.0, 60.0 * t, 4, capacity, gates={LATENCY_SLO_RISK: rule})
            assert any(w.kind == LATENCY_SLO_RISK for w in found) == expected
    assert direct.ready and rule.learner.ready


def test_refits_only_in_its_phase_of_each_refit_period() -> None:
    """The stage gives each service its own phase so that their hourly refits do not all land in one tick."""
    at: list[int] = []
    box: list[WarningLearner] = []

    def factory() -> Any:
        at.append(box[0].minute)
        return default_model()

    learner = WarningLearner(
        slo_s=SLO, min_examples=30, min_positives=3, refit_every=10, refit_phase=3, model_factory=factory
    )
    box.append(learner)
    for t in range(200):
        minute(learner, *cycle("real", t % CYCLE))
    assert at and all(m % 10 == 3 for m in at)
    assert learner.fits == len(at)


def test_the_fast_probability_is_the_fitted_pipelines() -> None:
    """q is computed from the fitted scaler and coefficients directly: the same as sklearn's."""
    learner = trained()
    assert learner.model is not None
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.normal(size=len(FEATURES)) * 3
        expected = float(learner.model.predict_proba(x[None, :])[0, 1])
        assert learner._q(x) == pytest.approx(expected, abs=1e-12)


class Sure:
    """A model sure of a breach whatever it sees (P = 0.9)."""

    def fit(self, x: Any, y: Any) -> Any:
        return self

    def predict_proba(self, x: Any) -> Any:
        return np.array([[0.1, 0.9]])


def test_a_warning_without_a_breach_ends_after_max_minutes() -> None:
    """A learner sure of a breach that never comes: the warning ends after ``max_minutes`` (and may
    start again the minute after, a new warning); without the limit it fires throughout."""

    runs = {}
    for limit in (20, None):
        learner = WarningLearner(slo_s=SLO, min_examples=10**6, max_minutes=limit)
        learner.model = Sure()  # decides from the first minute; never refitted (min_examples)
        runs[limit] = [minute(learner, 90.0, 0.1, 0.5) for _ in range(45)]
    assert all(runs[None][1:])
    fired = runs[20]
    assert fired[0] and all(fired[:20]) and not fired[20] and fired[21]


def test_movement_features_weigh_the_headroom_by_how_much_the_load_moves() -> None:
    calm = np.full(30, 0.8)
    calm[::2] += 0.01
    wild = np.full(30, 0.8)
    wild[::2] += 0.2
    vol_calm, z_calm, near_calm = WarningLearner._movement(calm)
    vol_wild, z_wild, near_wild = WarningLearner._movement(wild)
    assert vol_wild > vol_calm > 0
    assert z_calm > z_wild > 0  # the same headroom is more moves away when the load is calm
    assert near_calm == 0.0 and near_wild == pytest.approx(0.5)


def test_no_learned_warning_in_the_quiet_minutes_after_a_breach() -> None:
    """A learner sure of a breach: after a breach minute it stays silent for ``quiet_minutes`` and then
    starts a new warning; with no quiet period it warns from the first minute after the breach."""

    runs = {}
    for quiet in (3, 0):
        learner = WarningLearner(slo_s=SLO, min_examples=10**6, quiet_minutes=quiet)
        learner.model = Sure()
        runs[quiet] = [minute(learner, 90.0, 0.9 if k == 5 else 0.1, 0.5) for k in range(12)]
    # Minute 5 breaches; during a breach the gate decides (P(exceed) 0.5 has held for over a minute).
    assert runs[3][:5] == [True] * 5 and runs[3][6:9] == [False] * 3 and all(runs[3][9:])
    assert all(runs[0][6:])
    with pytest.raises(ValueError, match="quiet_minutes"):
        WarningLearner(slo_s=SLO, quiet_minutes=-1)
