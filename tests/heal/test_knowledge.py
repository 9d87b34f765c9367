"""The remediation knowledge base: Beta posteriors, persistence through the EventStore, and a ranking that
learns which runbook works as outcomes accumulate."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.heal.knowledge import (
    UNKNOWN,
    Candidate,
    KnowledgeBase,
    Recommender,
    RemediationOutcome,
    prior,
)
from opsmind.store import SqliteStore


def test_prior_only_posterior_is_uniform() -> None:
    st = KnowledgeBase().stats("memory_leak", "rollback")
    assert (st.alpha, st.beta, st.trials) == (1.0, 1.0, 0)
    assert st.mean == pytest.approx(0.5)
    assert st.low == pytest.approx(0.05) and st.high == pytest.approx(0.95)
    assert st.mttr_s is None


def test_posterior_counts_mean_interval_and_mttr() -> None:
    kb = KnowledgeBase()
    for i, ok in enumerate([True, True, True, False]):
        kb.record("memory_leak", "rollback", ok, at=float(i), recovery_s=100.0 + 20 * i if ok else None)
    st = kb.stats("memory_leak", "rollback")
    assert (st.successes, st.failures) == (3, 1)
    assert st.mean == pytest.approx(4 / 6)
    assert st.low < st.mean < st.high
    assert st.mttr_s == pytest.approx(120.0)
    # more evidence narrows the interval
    for i in range(40):
        kb.record("memory_leak", "rollback", i % 3 != 0, at=10.0 + i)
    wide, narrow = (
        st.high - st.low,
        kb.stats("memory_leak", "rollback").high - kb.stats("memory_leak", "rollback").low,
    )
    assert narrow < wide


def test_prior_success_sets_the_prior_mean_with_two_pseudo_outcomes() -> None:
    assert prior(0.8) == pytest.approx((1.6, 0.4))
    assert KnowledgeBase().stats("k", "rb", prior_success=0.8).mean == pytest.approx(0.8)
    with pytest.raises(ValueError):
        prior(1.5)


def test_unknown_kind_pools_the_runbook_over_kinds() -> None:
    kb = KnowledgeBase()
    kb.record("a", "restart", True, at=0.0)
    kb.record("b", "restart", False, at=1.0)
    kb.record("b", "rollback", True, at=2.0)
    st = kb.stats(UNKNOWN, "restart")
    assert (st.successes, st.failures) == (1, 1)


def test_persistence_round_trip_rebuilds_on_start(tmp_path: object) -> None:
    path = f"{tmp_path}/kb.sqlite"
    store = SqliteStore(path)
    kb = KnowledgeBase(store)
    kb.record("crash_loop", "rollback", True, at=1.0, recovery_s=90.0, incident_id="i1")
    kb.record("crash_loop", "rollback", False, at=2.0)
    kb.record("crash_loop", "restart", False, at=3.0)
    store.close()
    store = SqliteStore(path)
    again = KnowledgeBase(store)
    assert again.pairs() == [("crash_loop", "restart"), ("crash_loop", "rollback")]
    assert again.stats("crash_loop", "rollback") == kb.stats("crash_loop", "rollback")
    stored = store.find(RemediationOutcome, newest_first=False)
    assert [o.incident_id for o in stored] == ["i1", None, None]  # append-only, one record per outcome
    store.close()


def test_explanations_name_evidence_risk_and_rank() -> None:
    kb = KnowledgeBase()
    for i in range(5):
        kb.record("memory_leak", "rollback", i != 0, at=float(i), recovery_s=60.0)
    choices = Recommender(kb).rank(
        "memory_leak", [Candidate("restart", risk="low"), Candidate("rollback", risk="medium")], 0.9
    )
    assert [c.runbook for c in choices] == ["rollback", "restart"]
    top = choices[0].explanation
    assert top.startswith("rollback ranked 1 of 2")
    assert "4 of 5 past runs on memory_leak succeeded" in top
    assert "mean time to recover 60 s" in top and "90% credible" in top
    assert "no past runs on memory_leak, prior only" in choices[1].explanation


def test_unknown_or_unsure_prefers_low_risk() -> None:
    kb = KnowledgeBase()
    for i in range(12):  # the risky runbook is clearly better on evidence
        kb.record("bad_deployment", "rollback", True, at=float(i))
        kb.record("bad_deployment", "restart", i % 2 == 0, at=float(i))
    cands = [Candidate("rollback", risk="high"), Candidate("restart", risk="low")]
    rec = Recommender(kb)
    assert rec.rank("bad_deployment", cands, 0.95)[0].runbook == "rollback"
    assert rec.rank("bad_deployment", cands, 0.3)[0].runbook == "restart"
    unsure = rec.rank(UNKNOWN, cands, 0.9)
    assert unsure[0].runbook == "restart" and "unknown" in unsure[0].explanation


def test_cost_breaks_an_evidence_tie_and_validation() -> None:
    rec = Recommender(KnowledgeBase())
    out = rec.rank("k", [Candidate("a", risk=0.1, cost=0.9), Candidate("b", risk=0.1, cost=0.1)])
    assert [c.runbook for c in out] == ["b", "a"]
    with pytest.raises(ValueError):
        rec.rank("k", [Candidate("a"), Candidate("a")])
    with pytest.raises(ValueError):
        rec.rank("k", [Candidate("a", risk="extreme")])
    with pytest.raises(ValueError):
        rec.rank("k", [Candidate("a")], confidence=1.5)


def _learning_curve(seed: int, rounds: int) -> np.ndarray:
    """Per round, 1 when the recommender's first choice was the truly best runbook."""
    truth = {"rb0": 0.35, "rb1": 0.55, "rb2": 0.9, "rb3": 0.2}
    rng = np.random.default_rng(seed)
    kb = KnowledgeBase()
    rec = Recommender(kb, thompson=True, seed=seed)
    cands = [Candidate(name, risk=0.2) for name in truth]
    hits = np.zeros(rounds)
    for t in range(rounds):
        pick = rec.rank("pool_exhaustion", cands, 1.0)[0].runbook
        hits[t] = pick == "rb2"
        kb.record("pool_exhaustion", pick, bool(rng.random() < truth[pick]), at=float(t))
    return hits


def test_ranking_improves_as_outcomes_accumulate() -> None:
    curves = np.array([_learning_curve(seed, 120) for seed in range(10)])
    early, late = curves[:, :20].mean(), curves[:, -40:].mean()
    assert early < 0.6
    assert late >= 0.85
    assert late > early + 0.3


def test_posterior_mean_ranking_converges_to_the_true_order() -> None:
    truth = {"rb0": 0.3, "rb1": 0.6, "rb2": 0.85}
    rng = np.random.default_rng(7)
    kb = KnowledgeBase()
    rec = Recommender(kb)
    cands = [Candidate(name, risk=0.2) for name in truth]
    for t in range(60):  # round-robin exploration
        for name, p in truth.items():
            kb.record("k", name, bool(rng.random() < p), at=float(t))
    assert [c.runbook for c in rec.rank("k", cands)] == ["rb2", "rb1", "rb0"]


def test_thompson_is_reproducible_with_a_seed() -> None:
    kb = KnowledgeBase()
    cands = [Candidate(f"rb{i}") for i in range(5)]
    a = [c.runbook for c in Recommender(kb, thompson=True, seed=3).rank("k", cands)]
    b = [c.runbook for c in Recommender(kb, thompson=True, seed=3).rank("k", cands)]
    assert a == b
