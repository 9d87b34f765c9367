"""``opsmind bench sim``: how fast the default fleet simulates on one core.

The headline, ``sim_seconds_per_wall_second``, runs the default fleet (11 services, 5 s steps) as fast as
possible for ``hours`` simulated hours, producing every observation an in-process feed would hand the
engine. Beside it, in the same run: the fleet arithmetic alone (no observations) and the full
``opsmind sim run`` path that also writes the compressed metrics file, so the cost of each part shows.
There is no external peer for this figure; the goal (2,000x, a simulated day in under 45 s) is the bar.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from opsmind.bench.procs import pin
from opsmind.sim.fleet import Fleet
from opsmind.sim.runner import SimRun, default_scenario, run_to_dir

GOAL = 2000.0


@dataclass
class Row:
    mode: str
    wall_s: float
    sim_seconds_per_wall_second: float
    samples_per_s: float | None

    def cells(self) -> list[str]:
        sps = "-" if self.samples_per_s is None else f"{self.samples_per_s:,.0f}"
        return [self.mode, f"{self.wall_s:.2f}", f"{self.sim_seconds_per_wall_second:,.0f}", sps]


COLUMNS = ("mode", "wall s", "simulated s per wall s", "samples/s")


def _timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    n = fn()
    return time.perf_counter() - start, n


def run_sim_benchmark(hours: float, out: Path, json_out: bool, console: Console) -> None:
    pin(os.getpid(), 0)
    seconds = hours * 3600.0
    scenario = default_scenario(duration_s=seconds)

    def fleet_only() -> int:
        fleet = Fleet(scenario)
        steps = 0
        while fleet.t < seconds:
            fleet.step()
            steps += 1
        return steps

    def observed() -> int:
        run = SimRun(scenario)
        samples = 0
        while not run.done:
            samples += len(run.step().samples)
        return samples

    def written() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            return int(run_to_dir(scenario, Path(tmp))["samples"])

    rows: list[Row] = []
    for name, fn, counts_samples in (
        ("simulate + observe (in-process feed)", observed, True),
        ("fleet arithmetic only", fleet_only, False),
        ("simulate + observe + write files (sim run)", written, True),
    ):
        console.print(f"running: {name} ...")
        wall, n = _timed(fn)
        rows.append(Row(name, wall, seconds / wall, n / wall if counts_samples else None))
    series = len(SimRun(scenario).step().samples)
    result = {
        "sim_seconds_per_wall_second": round(rows[0].sim_seconds_per_wall_second, 1),
        "services": len(scenario.services),
        "series": series,
        "resolution_s": scenario.resolution_s,
        "simulated_hours": hours,
        "rows": [asdict(r) for r in rows],
    }
    lines = [
        "# Simulator benchmark",
        "",
        f"`opsmind bench sim` - the default fleet ({len(scenario.services)} services, {series} series, "
        f"{scenario.resolution_s:.0f} s steps) for {hours:g} simulated hours, as fast as possible, pinned to "
        "one core. No external peer exists for this figure; the goal is the bar.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    lines += ["", f"Goal: >= {GOAL:,.0f} simulated seconds per wall second (first row).", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    if json_out:
        print(json.dumps(result))
        return
    t = Table(title="opsmind bench sim")
    for col in COLUMNS:
        t.add_column(col)
    for r in rows:
        t.add_row(*r.cells())
    Console().print(t)
    console.print(f"written to {out}")
