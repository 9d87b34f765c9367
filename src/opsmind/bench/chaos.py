"""``opsmind bench chaos``: fault scenarios on the simulated fleet with OpsMind healing on its own.

**Scenarios.** By default (``default_scenarios``): every fault kind x ``seeds`` seeds from
:data:`~opsmind.bench.heal_data.BENCH_SEEDS` (target and start drawn from the seed), ``seeds`` scenarios
with two faults at once on two services, and ``seeds`` with a fault at the daily traffic peak (15:00 UTC,
at 1.5 times the usual peak load). Latency injected into a batch worker is left out of the drawn targets:
a few hundred milliseconds on jobs that take seconds changes nothing anyone could observe. ``--scenario
FILE`` runs scenario files instead (docs/SCENARIOS.md's format; each needs at least one fault).

**Training.** The fault classifier is trained first on incidents of :data:`~opsmind.bench.heal_data.
TRAIN_SEEDS` (disjoint from the benchmark's seeds), observed as the loop observes them. The knowledge
base starts empty and learns across the scenarios in the order run (seeds interleaved, so the learning
curve is not one kind after another).

**Scoring**, from the simulator's ground truth (the loop never reads it), per fault:

- ``detection_rate``: faults with an incident open within ``DETECT_WINDOW_S`` of their start;
- ``auto_resolution_rate``: faults recovered (cause gone and the SLOs met again) after an action of the
  policy and not by their own expiry;
- ``mttr_median_s`` / ``mttr_p90_s``: fault start to recovery in simulated time; a fault never recovered
  counts with the time it was left running (censored at the scenario's end), so failures weigh in;
- ``harmful_actions``: actions after which the SLO got worse and that were not rolled back. Worse than
  what? The fault itself often degrades the SLO for a while whatever anyone does, so "worse than before
  the action" would blame the remedy for the fault. The simulator is deterministic for a seed, so each
  scenario is also run untouched (no policy), and an action is harmful when the share of steps violating
  the SLO in the ``HARM_WINDOW_S`` after it took effect exceeds the untouched run's share over the same
  window by ``HARM_MARGIN`` or more;
- ``rolled_back``: remediations that ended rolled back; ``escalations``: times a person was told
  (refusals, approvals asked, failures, nothing left to try).

**Loops.** ``loop="engine"`` (the default) runs every scenario through the real
:class:`~opsmind.engine.Engine` in process on a simulated clock (:mod:`opsmind.bench.chaos_engine`:
ingest, detect, incidents, the heal stage), as users run it, with one difference: the per-service
multivariate detector is off (it costs ten times the rest of the engine per step). ``loop="bench"`` runs
OpsMind in the benchmark's own loop (:mod:`opsmind.bench.chaos_loop`: its detection, incident rule and
timers around the shared healer and follow-up policy). The baseline ``restart_most_anomalous`` always
runs in the bench loop (same scenarios, the loop's detection and incident rule).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from opsmind.bench.chaos_engine import run_engine_task
from opsmind.bench.chaos_loop import OBSERVE_S, POLICIES, Trace, run_scenario
from opsmind.bench.heal_data import BENCH_SEEDS, KINDS, TRAIN_SEEDS, make_case
from opsmind.bench.rca_cases import FAULT_AT_S, targets, topology
from opsmind.heal.classify import FaultClassifier
from opsmind.heal.knowledge import KnowledgeBase
from opsmind.sim.runner import ScenarioError, load_scenario, scenario_from_data
from opsmind.sim.spec import Scenario

TAIL_S = 900.0  # how long a scenario runs after its (first) fault
DETECT_WINDOW_S = 300.0
HARM_WINDOW_S = 120.0
HARM_EFFECT_S = 30.0  # an action takes effect within this (the simulator's delays are 5-30 s)
HARM_MARGIN = 0.25
DAY_S = 86_400.0
PEAK_HOUR_S = 15 * 3600.0  # the synthetic load's daily peak
PEAK_LOAD = 1.5
TRAIN_N = 10
LOOPS = ("bench", "engine")
METRICS = (
    "detection_rate",
    "auto_resolution_rate",
    "mttr_median_s",
    "mttr_p90_s",
    "harmful_actions",
    "rolled_back",
    "escalations",
)


# -- scenarios ---------------------------------------------------------------------------------------------


def _chaos_targets(kind: str, base: dict[str, Any]) -> list[str]:
    probe = scenario_from_data({**base, "name": "probe"}, "chaos case")
    names = targets(kind, probe)
    if kind == "latency_injection":
        names = [n for n in names if probe.services[n].kind != "worker"]
    return names


def _fault(kind: str, target: str, at: float) -> dict[str, Any]:
    return {"kind": kind, "at_s": at} | ({} if kind == "traffic_spike" else {"service": target})


def default_scenarios(seeds: int) -> list[Scenario]:
    """Single faults (every kind x ``seeds``), two faults at once, faults at the traffic peak; seed-major."""
    base = topology("default")
    out: list[Scenario] = []
    for seed in BENCH_SEEDS[:seeds]:
        for kind in KINDS:
            rng = np.random.default_rng([seed, KINDS.index(kind), 77])
            choices = _chaos_targets(kind, base)
            if choices:
                target, at = str(rng.choice(choices)), float(rng.choice(FAULT_AT_S))
                name = f"chaos/{kind}/{target}/seed{seed}"
                out.append(_with_faults(base, name, seed, at, [_fault(kind, target, at)]))
        rng = np.random.default_rng([seed, 2])
        a, b = (
            str(k) for k in rng.choice([k for k in KINDS if k not in ("traffic_spike",)], 2, replace=False)
        )
        at = float(rng.choice(FAULT_AT_S))
        first = str(rng.choice(_chaos_targets(a, base)))
        tb = _chaos_targets(b, base)
        second = str(rng.choice([t for t in tb if t != first] or tb))
        out.append(
            _with_faults(
                base, f"chaos-two/{a}+{b}/seed{seed}", seed, at, [_fault(a, first, at), _fault(b, second, at)]
            )
        )
        rng = np.random.default_rng([seed, 3])
        kind = str(rng.choice([k for k in KINDS if k != "traffic_spike"]))
        target = str(rng.choice(_chaos_targets(kind, base)))
        at = 1800.0
        peak = {**base, "start": 1_767_225_600.0 + PEAK_HOUR_S - at}
        peak["load"] = {**base["load"], "peak_rps": base["load"].get("peak_rps", 600) * PEAK_LOAD}
        out.append(
            _with_faults(peak, f"chaos-peak/{kind}/{target}/seed{seed}", seed, at, [_fault(kind, target, at)])
        )
    return out


def _with_faults(
    base: dict[str, Any], name: str, seed: int, at: float, faults: list[dict[str, Any]]
) -> Scenario:
    data = {**base, "name": name, "seed": seed, "duration_s": at + TAIL_S, "faults": faults}
    return scenario_from_data(data, name)


def select(scenarios: list[Scenario], only: Sequence[str] = ()) -> list[Scenario]:
    """The scenarios whose name contains one of ``only`` (all of them when it is empty), in order."""
    return [sc for sc in scenarios if not only or any(part in sc.name for part in only)]


def scenarios_from_files(paths: list[Path]) -> list[Scenario]:
    out = []
    for p in paths:
        sc = load_scenario(p)
        if not sc.faults:
            raise ScenarioError(f"{p}: a chaos scenario needs at least one fault")
        out.append(sc)
    return out


LOOP_TEXT = {
    "engine": "OpsMind ran in the real engine (`opsmind.bench.chaos_engine`: ingest, detect, incidents and "
    "the heal stage in process on a simulated clock, the fleet declared as the demo declares it), with "
    "one difference from `opsmind run`: the per-service multivariate detector is off. The baseline runs "
    "in the benchmark's own loop.",
    "bench": "OpsMind ran in the benchmark's own loop (`opsmind.bench.chaos_loop`), not the engine; both "
    "policies share its detection and incident rule.",
}

# -- training ----------------------------------------------------------------------------------------------


def _train_case(task: tuple[str, int]) -> Any:
    return make_case(task[0], task[1], OBSERVE_S)


def train_classifier(n_seeds: int = TRAIN_N, workers: int = 2) -> tuple[FaultClassifier, int]:
    tasks = [(k, s) for s in TRAIN_SEEDS[:n_seeds] for k in KINDS]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        made = [c for c in pool.map(_train_case, tasks) if c is not None and c.observation is not None]
    clf = FaultClassifier().fit([c.observation for c in made], [c.kind for c in made])
    return clf, len(made)


# -- scoring -----------------------------------------------------------------------------------------------


def _share_violating(trace: Trace, start: float, end: float, untouched: bool = False) -> float:
    times = np.asarray(trace.times)
    ok = np.asarray(trace.slo_untouched if untouched else trace.slo_ok)
    sel = (times >= start) & (times < end)
    return float(1.0 - ok[sel].mean()) if sel.any() else 0.0


def harmful(trace: Trace, at: float) -> bool:
    """The SLO was violated clearly more often after an action at ``at`` took effect than it was over the
    same window in the same scenario left alone."""
    start, end = at + HARM_EFFECT_S, at + HARM_EFFECT_S + HARM_WINDOW_S
    return _share_violating(trace, start, end) - _share_violating(trace, start, end, True) >= HARM_MARGIN


def score(traces: list[Trace]) -> dict[str, Any]:
    faults = detected = auto = n_harmful = rolled_back = escalations = actions = 0
    mttr: list[float] = []
    for tr in traces:
        acted = [a.at for a in tr.actions if not a.rollback]
        undone = {rid for rid, state in tr.remediations.items() if state == "rolled_back"}
        rolled_back += len(undone)
        escalations += tr.escalations
        for a in tr.actions:
            if a.rollback or (a.remediation_id is not None and a.remediation_id in undone):
                continue
            actions += 1
            n_harmful += harmful(tr, a.at)
        for rec, expired in zip(tr.truth, tr.expired, strict=False):
            faults += 1
            if any(
                (opened <= rec.start + DETECT_WINDOW_S) and (closed is None or closed >= rec.start)
                for opened, closed in tr.incidents
            ):
                detected += 1
            recovered = rec.recovered_at is not None
            by_policy = (
                recovered
                and not expired
                and any(t <= (rec.end or rec.start) for t in acted if t >= rec.start)
            )
            auto += by_policy
            mttr.append((rec.recovered_at if recovered else tr.end) - rec.start)  # type: ignore[operator]
    n = max(faults, 1)
    return {
        "detection_rate": round(detected / n, 3),
        "auto_resolution_rate": round(auto / n, 3),
        "mttr_median_s": round(float(np.median(mttr)), 1) if mttr else None,
        "mttr_p90_s": round(float(np.percentile(mttr, 90)), 1) if mttr else None,
        "harmful_actions": int(n_harmful),
        "rolled_back": rolled_back,
        "escalations": escalations,
        "actions": actions,
        "faults": faults,
    }


def learning_curve(traces: list[Trace], parts: int = 3) -> list[dict[str, Any]]:
    """OpsMind's figures over consecutive parts of the run, in order: the knowledge base learns as it goes."""
    out = []
    for i, chunk in enumerate(np.array_split(np.arange(len(traces)), parts)):
        if len(chunk):
            s = score([traces[j] for j in chunk])
            first = [_first_remediation_ok(traces[j]) for j in chunk]
            first_ok = [f for f in first if f is not None]
            out.append(
                {
                    "part": i + 1,
                    "scenarios": len(chunk),
                    "auto_resolution_rate": s["auto_resolution_rate"],
                    "mttr_median_s": s["mttr_median_s"],
                    "first_choice_success": round(float(np.mean(first_ok)), 3) if first_ok else None,
                }
            )
    return out


def _first_remediation_ok(trace: Trace) -> bool | None:
    """Did the first remediation of the scenario verify? None when there was none."""
    if not trace.notes:
        return None
    return next(iter(trace.notes.values())).split(":", 1)[0].endswith("succeeded")


# -- the command -------------------------------------------------------------------------------------------


def _run_policy(task: tuple[list[Scenario], str, str | None]) -> list[Trace]:
    scenarios, policy, clf_path = task
    clf = FaultClassifier.load(clf_path) if clf_path else None
    kb = KnowledgeBase()  # one knowledge base for the whole run: it learns from scenario to scenario
    return [run_scenario(sc, policy, clf, kb) for sc in scenarios]


def run_chaos_benchmark(
    *,
    seeds: int,
    scenario_files: list[Path],
    out: Path,
    json_out: bool,
    console: Console,
    train_seeds: int = TRAIN_N,
    only: Sequence[str] = (),
    loop: str = "engine",
) -> dict[str, Any]:
    """Run the benchmark (see the module docstring) and write its table to ``out``. ``only``: keep the
    scenarios whose name contains one of these strings (``chaos-two/`` for the two-fault ones, ``seed9001``
    for one seed), to iterate on a subset; the figures are then of that subset. ``loop``: what OpsMind
    runs in, ``bench`` or ``engine`` (the baseline runs in the bench loop either way)."""
    if loop not in LOOPS:
        raise ScenarioError(f"unknown loop {loop!r}; one of {', '.join(LOOPS)}")
    scenarios = select(
        scenarios_from_files(scenario_files) if scenario_files else default_scenarios(seeds), only
    )
    if not scenarios:
        raise ScenarioError(f"no scenario's name contains any of {list(only)}")
    started = time.perf_counter()
    console.print(
        f"training the fault classifier on {train_seeds} seeds x {len(KINDS)} kinds (seeds disjoint) ..."
    )
    clf, n_train = train_classifier(train_seeds)
    train_s = time.perf_counter() - started
    console.print(
        f"running {len(scenarios)} scenarios with OpsMind (in the {loop} loop) and with the baseline ..."
    )
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(max_workers=2) as pool:
        clf_path = str(Path(tmp) / "classifier.pkl")  # the classifier holds a lock: it travels as a file
        clf.save(clf_path)
        first = pool.submit(
            run_engine_task if loop == "engine" else _run_policy, (scenarios, POLICIES[0], clf_path)
        )
        second = pool.submit(_run_policy, (scenarios, POLICIES[1], None))
        ours, base = first.result(), second.result()
    run_s = time.perf_counter() - started - train_s
    result: dict[str, Any] = {
        **score(ours),
        "scenarios": len(scenarios),
        "loop": loop,
        "baselines": {"restart_most_anomalous": score(base)},
        "learning_curve": learning_curve(ours),
        "training_incidents": n_train,
        "per_kind": _per_kind(ours, base),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    text = _markdown(result, scenarios, scenario_files, seeds, train_seeds, train_s, run_s, ours, only)
    out.write_text(text)
    if json_out:
        print(json.dumps(result))
        return result
    table = Table(title="opsmind bench chaos")
    table.add_column("policy")
    for m in METRICS:
        table.add_column(m)
    for name, row in (
        ("opsmind", result),
        ("restart_most_anomalous", result["baselines"]["restart_most_anomalous"]),
    ):
        table.add_row(name, *(str(row[m]) for m in METRICS))
    Console().print(table)
    console.print(f"written to {out}")
    return result


def _kind_of(trace: Trace) -> str:
    kinds = sorted({r.kind for r in trace.truth})
    prefix = (
        "two: " if len(trace.truth) > 1 else ("peak: " if trace.scenario.startswith("chaos-peak") else "")
    )
    return prefix + "+".join(kinds)


def _per_kind(ours: list[Trace], base: list[Trace]) -> dict[str, Any]:
    groups: dict[str, tuple[list[Trace], list[Trace]]] = {}
    for o, b in zip(ours, base, strict=True):
        key = _kind_of(o)
        if key.startswith(("two: ", "peak: ")):
            key = key.split(":", 1)[0]
        groups.setdefault(key, ([], []))[0].append(o)
        groups[key][1].append(b)
    out = {}
    for key, (mine, theirs) in sorted(groups.items()):
        so, sb = score(mine), score(theirs)
        out[key] = {
            "faults": so["faults"],
            "auto_resolution_rate": so["auto_resolution_rate"],
            "mttr_median_s": so["mttr_median_s"],
            "baseline_auto_resolution_rate": sb["auto_resolution_rate"],
            "baseline_mttr_median_s": sb["mttr_median_s"],
        }
    return out


def _markdown(
    result: dict[str, Any],
    scenarios: list[Scenario],
    files: list[Path],
    seeds: int,
    train_seeds: int,
    train_s: float,
    run_s: float,
    ours: list[Trace],
    only: Sequence[str] = (),
) -> str:
    base = result["baselines"]["restart_most_anomalous"]
    source = f"{len(files)} scenario files" if files else f"the default set ({seeds} seeds)"
    command = "opsmind bench chaos" + ("" if files else f" --seeds {seeds}")
    command += "" if result["loop"] == "engine" else f" --loop {result['loop']}"
    command += "".join(f" --only {part}" for part in only)
    trained = result["training_incidents"]
    lines = [
        "# opsmind bench chaos",
        "",
        f"`{command}`: {len(scenarios)} scenarios from {source}, {result['faults']} faults; classifier "
        f"trained on {trained} incidents of {train_seeds} training seeds ({train_s:.0f} s); both policies "
        f"ran in {run_s:.0f} s.",
        "",
        LOOP_TEXT[result["loop"]],
        "",
        "| policy | " + " | ".join(METRICS) + " |",
        "| --- |" + " --- |" * len(METRICS),
        "| opsmind | " + " | ".join(str(result[m]) for m in METRICS) + " |",
        "| restart_most_anomalous | " + " | ".join(str(base[m]) for m in METRICS) + " |",
        "",
        "Goals (issue 7): detection_rate 1.0, auto_resolution_rate >= 0.90, mttr_median_s <= 120, "
        "harmful_actions 0. For comparison, AIOpsLab reports the best autonomous agents mitigating about "
        "55% of its problems (a different fleet and problem set; not run here).",
        "",
        "## Per fault kind",
        "",
        "| kind | faults | auto-resolved | MTTR median s | baseline auto-resolved | baseline MTTR median s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for key, row in result["per_kind"].items():
        lines.append(
            f"| {key} | {row['faults']} | {row['auto_resolution_rate']} | {row['mttr_median_s']} | "
            f"{row['baseline_auto_resolution_rate']} | {row['baseline_mttr_median_s']} |"
        )
    lines += [
        "",
        "## Learning curve (OpsMind, scenarios in run order)",
        "",
        "| part | scenarios | auto-resolved | MTTR median s | first remediation verified |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in result["learning_curve"]:
        lines.append(
            f"| {row['part']} | {row['scenarios']} | {row['auto_resolution_rate']} | "
            f"{row['mttr_median_s']} | {row['first_choice_success']} |"
        )
    unresolved = [tr for tr in ours if any(r.recovered_at is None for r in tr.truth)]
    lines += ["", "## Not recovered by OpsMind", ""]
    if not unresolved:
        lines.append("None.")
    for tr in unresolved:
        lines.append(f"- `{tr.scenario}`: " + ("; ".join(tr.decisions[:3]) or "no remediation chosen")[:600])
    lines += [
        "",
        "Scoring: see `opsmind/bench/chaos.py` (MTTR of a fault never recovered is censored at the "
        "scenario's end; harm compares the SLO-violating share of steps in the "
        f"{HARM_WINDOW_S:.0f} s after an action took effect with the same scenario left untouched).",
        "",
    ]
    return "\n".join(lines)
