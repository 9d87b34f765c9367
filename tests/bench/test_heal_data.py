"""Labelled incidents from the simulator for the fault classifier: built from what the engine sees."""

from __future__ import annotations

from opsmind.bench.heal_data import BENCH_SEEDS, TRAIN_SEEDS, make_case


def test_training_and_benchmark_seeds_are_disjoint() -> None:
    assert not set(TRAIN_SEEDS) & set(BENCH_SEEDS)


def test_a_memory_leak_case_shows_a_deploy_and_growing_memory() -> None:
    case = make_case("memory_leak", TRAIN_SEEDS[0])
    assert case is not None and case.kind == "memory_leak"
    obs = case.observation
    assert obs is not None
    assert "Deployment" in {e.reason for e in obs.events}
    assert obs.memory_slope is not None and obs.memory_slope > 0
    assert "memory" in obs.signals
