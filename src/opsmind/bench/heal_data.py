"""Labelled incidents for the fault-kind classifier, generated on the simulated fleet.

One case is the default fleet with one fault of one kind (target and start drawn from the seed), run on
the simulator. The label comes from the ground truth; everything else is what the engine would see: the
service-level metrics (:func:`opsmind.bench.rca_cases.observe`'s columns), the platform events, the time
OpsMind's detector opens the incident (:func:`~opsmind.bench.rca_cases.incident_openings`) and the
root-cause ranking at that time. The :class:`~opsmind.heal.classify.IncidentObservation` is built
``OBSERVE_AFTER_S`` after the incident opened by the engine's own builder,
:func:`opsmind.heal.observation.observe_columns` (signals in onset order, events, trends of the ranking's
top service, the ranking itself), with the fleet's declared call graph and inventory.

Training seeds and benchmark seeds are disjoint ranges (:data:`TRAIN_SEEDS`, :data:`BENCH_SEEDS`).
``python -m opsmind.bench.heal_data [train_n] [test_n]`` trains on the first and reports held-out
accuracy per kind on the second.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_args

import numpy as np

from opsmind.bench.rca_cases import (
    WARMUP_S,
    call_graph,
    incident_openings,
    inventory,
    observe,
    single_fault,
    topology,
)
from opsmind.heal.classify import FaultClassifier, IncidentObservation
from opsmind.heal.fields import SeenEvent
from opsmind.heal.observation import observe_columns
from opsmind.rca.frame import F64
from opsmind.sim.runner import SimRun
from opsmind.sim.spec import FaultKind, Scenario

KINDS: tuple[str, ...] = tuple(get_args(FaultKind))
TRAIN_SEEDS = range(5000, 6000)
BENCH_SEEDS = range(9000, 10000)  # the chaos benchmark's seeds live here; training never uses them
OBSERVE_AFTER_S = 120.0


@dataclass(frozen=True)
class LabelledCase:
    name: str
    kind: str  # ground truth: the label
    observation: IncidentObservation | None  # None: the detector opened no incident after the fault


def build_observation(
    scenario: Scenario, times: F64, cols: dict[str, F64], events: Iterable[Any], opened: float
) -> IncidentObservation:
    """The observation the engine would have ``OBSERVE_AFTER_S`` after an incident opened at ``opened``."""
    return observe_incident(scenario, times, cols, events, opened, opened + OBSERVE_AFTER_S)[0]


def observe_incident(
    scenario: Scenario,
    times: F64,
    cols: dict[str, F64],
    events: Iterable[Any],
    opened: float,
    t: float,
    rank_index: int = 0,
) -> tuple[IncidentObservation, str]:
    """The observation at time ``t`` of an incident opened at ``opened``, and the service it is filed
    under: the top of the root-cause ranking, or the one at ``rank_index`` (0-based) for a second look.
    The engine's own builder (:func:`opsmind.heal.observation.observe_columns`) over the fleet's columns,
    its declared call graph and inventory; ``events`` are the simulator's fleet events."""
    seen = [
        e if isinstance(e, SeenEvent) else SeenEvent(e.ts, e.reason, e.message, e.service, e.node)
        for e in events
    ]
    return observe_columns(
        times, cols, seen, opened, t, call_graph(scenario), inventory(scenario), rank_index
    )


def make_case(kind: str, seed: int, observe_after_s: float = OBSERVE_AFTER_S) -> LabelledCase | None:
    """One simulated incident of ``kind`` (target and start drawn from ``seed``), or None when the kind
    has no target in the fleet."""
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    made = single_fault(topology("default"), kind, seed, rng, "", 900.0)
    if made is None:
        return None
    scenario, at = made
    name = scenario.name
    run = SimRun(scenario)
    events: list[Any] = []
    step = run.step

    def stepping() -> Any:  # keep the events the observer loop would otherwise drop
        s = step()
        events.extend(s.events)
        return s

    run.step = stepping  # type: ignore[method-assign]
    times, cols = observe(run, scenario.duration_s)
    # The fault's own start (the first observed step comes one step after the scenario's start).
    start = run.truth.records[0].start if run.truth.records else times[0] + at
    opened = next((o for o in incident_openings(times, cols, times[0] + WARMUP_S) if o >= start), None)
    if opened is None:
        return LabelledCase(name, kind, None)
    observation, _ = observe_incident(scenario, times, cols, events, opened, opened + observe_after_s)
    return LabelledCase(name, kind, observation)


def cases(
    seeds: Iterable[int], kinds: Iterable[str] = KINDS, observe_after_s: float = OBSERVE_AFTER_S
) -> list[LabelledCase]:
    out = []
    for seed in seeds:
        for kind in kinds:
            c = make_case(kind, seed, observe_after_s)
            if c is not None:
                out.append(c)
    return out


def accuracy_report(train: list[LabelledCase], test: list[LabelledCase]) -> dict[str, Any]:
    """Train on ``train``'s detected cases, predict ``test``'s: accuracy overall and per kind (an
    undetected case counts as a miss; ``unknown`` answers are counted apart)."""
    usable = [c for c in train if c.observation is not None]
    clf = FaultClassifier().fit([c.observation for c in usable if c.observation], [c.kind for c in usable])
    per: dict[str, list[int]] = {}
    unknown = 0
    for c in test:
        got = "undetected" if c.observation is None else clf.predict(c.observation).kind
        unknown += got == "unknown"
        per.setdefault(c.kind, []).append(int(got == c.kind))
    hits = [h for v in per.values() for h in v]
    return {
        "train_cases": len(usable),
        "test_cases": len(test),
        "accuracy": float(np.mean(hits)) if hits else 0.0,
        "unknown": unknown,
        "per_kind": {k: float(np.mean(v)) for k, v in sorted(per.items())},
    }


def main(argv: list[str]) -> None:
    n_train = int(argv[0]) if argv else 6
    n_test = int(argv[1]) if len(argv) > 1 else 3
    train = cases(TRAIN_SEEDS[:n_train])
    test = cases(BENCH_SEEDS[:n_test])
    report = accuracy_report(train, test)
    print(f"train {report['train_cases']} cases, test {report['test_cases']} cases (seeds disjoint)")
    print(f"held-out accuracy {report['accuracy']:.3f}, unknown answers {report['unknown']}")
    for kind, acc in report["per_kind"].items():
        print(f"  {kind:20s} {acc:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
