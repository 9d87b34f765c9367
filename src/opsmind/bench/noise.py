"""``opsmind bench noise``: how many pages the fleet's faults cause, raw and through OpsMind.

Runs come from :mod:`opsmind.bench.noise_cases` (three topologies x ``seeds`` seeds from 1000, four
faults each; the correlator's defaults and rules were set while looking at seeds 1-6 only, never the
scored ones: ``first_seed`` scores other seeds, for such work). Per grouping:

* **raw alerts**: what per-metric alerting would page on - one alert per series per anomalous episode
  (a series' anomalies less than ``EPISODE_GAP_S`` apart are one episode), not one per sample;
* **incidents**: incidents the correlator opened (a reopened incident is the same incident; reopenings
  are reported beside);
* **compression** = 1 - incidents / raw alerts;
* **purity**: among incidents holding at least one anomaly inside a fault's window, the share whose
  anomalies all lie in that one fault's window (an anomaly outside every window counts as another
  source, so mixing in background noise is impure too);
* **missed**: faults with no incident holding an anomaly inside their window;
* **false incidents**: incidents with no anomaly inside any fault's window.

Groupings side by side, in the same run on the same anomalies: ``opsmind`` (by service, topology and
time with the declared call graph), ``service`` (by service and time alone - Alertmanager's
``group_by: [service]``), and ``opsmind+feedback``: the same incidents, where the operators' noise
classifier (:mod:`opsmind.incidents.feedback`) suppresses the ones like those marked noise. The classifier
is trained on separate runs (seeds from ``FEEDBACK_SEED``), where each incident is marked as an operator
would after the fact (noise when it held no fault's anomaly, actionable otherwise), and judges each
scored incident as it was when it opened, as the notify stage would.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from opsmind.bench.noise_cases import FAULTS, Run, run
from opsmind.bench.rca_cases import TOPOLOGIES
from opsmind.incidents.feedback import ACTIONABLE, NOISE, NoiseClassifier, incident_features, judge

EPISODE_GAP_S = 300.0
FIRST_SEED = 1000
FEEDBACK_SEED = 500
FEEDBACK_SEEDS = 12  # per topology: enough runs for a few incidents marked noise (3 in 15 runs)
ROWS = ("opsmind", "service", "opsmind+feedback")


def _run(task: tuple[str, int]) -> Run:
    return run(*task)


def raw_alerts(r: Run) -> int:
    last: dict[str, float] = {}
    episodes = 0
    for series, _, ts in sorted(r.anomalies, key=lambda a: a[2]):
        prev = last.get(series)
        if prev is None or ts - prev > EPISODE_GAP_S:
            episodes += 1
        last[series] = ts
    return episodes


def fault_of(r: Run, ts: float) -> int | None:
    for i, f in enumerate(r.faults):
        if f.start <= ts <= f.end:
            return i
    return None


@dataclass
class Tally:
    raw: int = 0
    incidents: int = 0
    with_fault: int = 0
    pure: int = 0
    false: int = 0
    faults: int = 0
    missed: int = 0
    reopened: int = 0

    def add(self, r: Run, grouping: str, keep: set[str] | None = None) -> None:
        obs = r.observed[grouping]
        self.raw += raw_alerts(r)
        self.faults += len(r.faults)
        self.reopened += obs.reopened
        found: set[int] = set()
        for iid in obs.incidents:
            if keep is not None and iid not in keep:
                continue
            self.incidents += 1
            labels = {fault_of(r, ts) for _, ts in obs.members.get(iid, [])}
            faults = {x for x in labels if x is not None}
            found |= faults
            if not faults:
                self.false += 1
                continue
            self.with_fault += 1
            self.pure += len(labels) == 1
        self.missed += len(r.faults) - len(found)

    def as_json(self) -> dict[str, Any]:
        return {
            "raw_alerts": self.raw,
            "incidents": self.incidents,
            "compression": round(1 - self.incidents / self.raw, 4) if self.raw else 0.0,
            "purity": round(self.pure / self.with_fault, 4) if self.with_fault else 0.0,
            "missed": self.missed,
            "faults": self.faults,
            "false_incidents": self.false,
            "reopened": self.reopened,
        }


def labelled_openings(runs: list[Run]) -> tuple[list[dict[str, float]], list[str]]:
    """What operators would have said about each incident of the training runs, with the incident's
    features as it opened."""
    feats, labels = [], []
    for r in runs:
        obs = r.observed["topology"]
        for iid, inc in obs.at_opening.items():
            held = {fault_of(r, ts) for _, ts in obs.members.get(iid, [])} - {None}
            feats.append(incident_features(inc))
            labels.append(ACTIONABLE if held else NOISE)
    return feats, labels


def scored_tasks(seeds: int, first_seed: int = FIRST_SEED) -> list[tuple[str, int]]:
    """The runs scored: every topology with ``seeds`` seeds from ``first_seed``. The default seeds are the
    reported ones; tune and diagnose on others (a different ``first_seed``, away from ``FEEDBACK_SEED``'s
    training runs), so the reported figure stays a measurement on runs nothing was fitted to."""
    return [(t, s) for t in TOPOLOGIES for s in range(first_seed, first_seed + seeds)]


def run_noise_benchmark(
    seeds: int, out: Path, json_out: bool, console: Console, workers: int = 2, first_seed: int = FIRST_SEED
) -> dict[str, Any]:
    scored = scored_tasks(seeds, first_seed)
    training = [(t, s) for t in TOPOLOGIES for s in range(FEEDBACK_SEED, FEEDBACK_SEED + FEEDBACK_SEEDS)]
    console.print(
        f"simulating {len(scored)} scored runs ({len(TOPOLOGIES)} topologies x {seeds} seeds, {FAULTS} "
        f"faults each) and {len(training)} feedback-training runs ..."
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        runs = list(pool.map(_run, scored + training))
    sim_s = time.perf_counter() - started
    scored_runs, training_runs = runs[: len(scored)], runs[len(scored) :]
    feats, labels = labelled_openings(training_runs)
    classifier = NoiseClassifier()
    try:
        classifier.fit(feats, labels)
        trained = classifier.state()
    except ValueError as exc:
        trained = {"ready": False, "status": str(exc)}
    tallies = {row: Tally() for row in ROWS}
    suppressed = 0
    for r in scored_runs:
        tallies["opsmind"].add(r, "topology")
        tallies["service"].add(r, "service")
        obs = r.observed["topology"]
        keep = {iid for iid, inc in obs.at_opening.items() if judge(classifier, inc)[0] != "suppress"}
        suppressed += len(obs.at_opening) - len(keep)
        tallies["opsmind+feedback"].add(r, "topology", keep)
    rows = {row: t.as_json() for row, t in tallies.items()}
    head = rows["opsmind"]
    result: dict[str, Any] = {
        **head,
        "runs": len(scored_runs),
        "first_seed": first_seed,
        "baselines": {"service_grouping": rows["service"]},
        "feedback": {
            **rows["opsmind+feedback"],
            "suppressed": suppressed,
            "training_examples": {NOISE: labels.count(NOISE), ACTIONABLE: labels.count(ACTIONABLE)},
            "classifier": trained.get("status", ""),
        },
    }
    lines = _markdown(rows, seeds, first_seed, len(scored_runs), result, sim_s)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if json_out:
        print(json.dumps(result))
        return result
    table = Table(title="opsmind bench noise")
    for col in COLUMNS:
        table.add_column(col)
    for row, vals in rows.items():
        table.add_row(*_cells(row, vals))
    Console().print(table)
    console.print(f"written to {out}")
    return result


COLUMNS = ("grouping", "raw alerts", "incidents", "compression", "purity", "missed", "false incidents")


def _cells(row: str, v: dict[str, Any]) -> list[str]:
    return [
        row,
        str(v["raw_alerts"]),
        str(v["incidents"]),
        f"{v['compression']:.3f}",
        f"{v['purity']:.3f}",
        f"{v['missed']} of {v['faults']}",
        str(v["false_incidents"]),
    ]


def _markdown(
    rows: dict[str, dict[str, Any]],
    seeds: int,
    first_seed: int,
    n: int,
    result: dict[str, Any],
    sim_s: float,
) -> list[str]:
    fb = result["feedback"]
    other = "" if first_seed == FIRST_SEED else f" (first_seed={first_seed}, not the reported seeds)"
    lines = [
        "# Alert noise benchmark",
        "",
        f"`opsmind bench noise --seeds {seeds}`{other} - {n} runs of the simulated fleet ({len(TOPOLOGIES)} "
        f"topologies x {seeds} seeds from {first_seed}), {FAULTS} faults of different kinds per run, "
        "every step through the detect stage's scorer and the incident correlator. Definitions are in "
        "`src/opsmind/bench/noise.py`; a raw alert is one per series per anomalous episode.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    lines += ["| " + " | ".join(_cells(r, v)) + " |" for r, v in rows.items()]
    lines += [
        "",
        "Goals (issue 5): compression >= 0.95 (BigPanda's measured median across 125 organisations is "
        "0.87), purity >= 0.95, missed = 0.",
        "",
        f"Feedback: the classifier was trained on {sum(fb['training_examples'].values())} incidents of "
        f"separate runs ({fb['training_examples'][NOISE]} marked noise); it suppressed {fb['suppressed']} "
        f"incidents here. Its state: {fb['classifier']}",
        "",
        f"Simulation and scoring took {sim_s:.0f} s.",
        "",
    ]
    return lines
