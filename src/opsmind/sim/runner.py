"""Running a scenario: faults start on schedule, the fleet steps, observations and events come out.

``SimRun.step`` is the one loop body used everywhere: by ``opsmind sim run`` (which writes files), by
the demo (which feeds the engine in process) and by the benchmarks. Time runs as fast as possible, at a
chosen speed-up, or at real time (speed 1); the output never depends on which.
"""

from __future__ import annotations

import gzip
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from opsmind.sim.actions import SimActuator
from opsmind.sim.faults import ActiveFault, inject
from opsmind.sim.fleet import Fleet
from opsmind.sim.model import FleetEvent
from opsmind.sim.observe import Observer
from opsmind.sim.spec import FaultSpec, Scenario
from opsmind.sim.truth import GroundTruth
from opsmind.types import Series, SeriesSamples


class ScenarioError(ValueError):
    """A scenario file is unusable; the message names the file, the key and the reason."""


FLEETS_DIR = Path(__file__).parent / "fleets"


def _read_yaml(p: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{p}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{p}: the top level must be a mapping")
    return data


def fleet_data(name: str, relative_to: Path | None = None) -> dict[str, Any]:
    """A fleet file's content: a built-in name (``default``) or a path to a YAML file."""
    builtin = FLEETS_DIR / f"{name}.yaml"
    p = builtin if builtin.is_file() else (relative_to / name if relative_to else Path(name))
    if not p.is_file():
        known = ", ".join(sorted(f.stem for f in FLEETS_DIR.glob("*.yaml")))
        raise ScenarioError(f"fleet {name!r}: neither a built-in fleet ({known}) nor a file")
    return _read_yaml(p)


def scenario_from_data(data: dict[str, Any], where: str, base_dir: Path | None = None) -> Scenario:
    """Validate scenario data. ``fleet: NAME`` takes services, nodes and load from a fleet file; keys
    of the scenario itself override (``load`` is merged key by key)."""
    data = dict(data)
    fleet_name = data.pop("fleet", None)
    if fleet_name is not None:
        if not isinstance(fleet_name, str):
            raise ScenarioError(f"{where}: fleet must be a name or a path")
        base = fleet_data(fleet_name, base_dir)
        merged = {**base, **data}
        if isinstance(base.get("load"), dict) and isinstance(data.get("load"), dict):
            merged["load"] = {**base["load"], **data["load"]}
        data = merged
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(x) for x in e['loc']) or '(top level)'}: "
            f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
            for e in exc.errors()
        ]
        raise ScenarioError(f"{where}: invalid scenario\n" + "\n".join(lines)) from exc


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    return scenario_from_data(_read_yaml(p), str(p), p.parent)


def default_scenario(**overrides: Any) -> Scenario:
    """The default fleet with no faults, for the demo and the benchmarks."""
    return scenario_from_data({"fleet": "default", "name": "default", **overrides}, "default fleet")


@dataclass(frozen=True, slots=True)
class Step:
    ts: float
    samples: list[tuple[Series, float]]
    events: list[FleetEvent]

    def as_batch(self) -> list[SeriesSamples]:
        """The step as the engine's ingestion takes it (one point per series)."""
        ts = (self.ts,)
        return [SeriesSamples(s, ts, (v,)) for s, v in self.samples]


class SimRun:
    def __init__(self, scenario: Scenario, base_dir: Path | None = None, failure_rate: float = 0.0) -> None:
        self.scenario = scenario
        self.fleet = Fleet(scenario, base_dir)
        self.actuator = SimActuator(self.fleet, failure_rate)
        self.observer = Observer(self.fleet, scenario.seed)
        self.truth = GroundTruth(self.fleet)
        self._pending = sorted(scenario.faults, key=lambda f: f.at_s)
        self.active: list[ActiveFault] = []

    @property
    def done(self) -> bool:
        return self.fleet.t >= self.scenario.duration_s

    def inject(self, spec: FaultSpec) -> ActiveFault:
        """Start a fault now (scheduled ones come here too; the demo injects by hand)."""
        fault = inject(self.fleet, spec)
        self.active.append(fault)
        self.truth.started(fault)
        return fault

    def step(self) -> Step:
        fleet = self.fleet
        fleet.step()
        while self._pending and self._pending[0].at_s <= fleet.t:
            self.inject(self._pending.pop(0))
        for fault in self.active:
            d = fault.spec.duration_s
            if fault.ended_at is None and d is not None and fleet.t - fault.started_at >= d:
                fault.ended_at = fleet.t
                if fault.expire is not None:
                    fault.expire()
        self.truth.step()
        events, fleet.events = fleet.events, []
        return Step(fleet.now, self.observer.collect(), events)


def _pace(started: float, sim_elapsed: float, speed: float | None) -> None:
    if speed:
        ahead = sim_elapsed / speed - (time.perf_counter() - started)
        if ahead > 0:
            time.sleep(ahead)


def run_to_dir(
    scenario: Scenario,
    out: Path,
    speed: float | None = None,
    base_dir: Path | None = None,
    progress: object = None,
) -> dict[str, float]:
    """Run ``scenario`` to its end and write ``metrics.csv.gz`` (``timestamp,series,value``),
    ``events.ndjson`` and ``ground_truth.json`` to ``out``. Same seed, same bytes."""
    out.mkdir(parents=True, exist_ok=True)
    run = SimRun(scenario, base_dir)
    started = time.perf_counter()
    steps = samples = n_events = 0
    # mtime=0 keeps the gzip header free of wall-clock time, so equal runs give equal bytes.
    with (
        open(out / "metrics.csv.gz", "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        open(out / "events.ndjson", "w", encoding="utf-8") as ev,
    ):
        gz.write(b"timestamp,series,value\n")
        while not run.done:
            step = run.step()
            steps += 1
            ts = repr(step.ts)
            gz.write(
                "".join(
                    f'{ts},"{s.key.replace(chr(34), chr(34) * 2)}",{v!r}\n' for s, v in step.samples
                ).encode()
            )
            samples += len(step.samples)
            for e in step.events:
                ev.write(
                    json.dumps(
                        {
                            "ts": e.ts,
                            "service": e.service,
                            "reason": e.reason,
                            "message": e.message,
                            "pod": e.pod,
                            "node": e.node,
                        }
                    )
                    + "\n"
                )
            n_events += len(step.events)
            if callable(progress):
                progress(run.fleet.t, scenario.duration_s)
            _pace(started, run.fleet.t, speed)
    truth = {"scenario": scenario.name, "seed": scenario.seed, "faults": run.truth.as_json()}
    (out / "ground_truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return {
        "steps": steps,
        "samples": samples,
        "events": n_events,
        "faults": len(run.truth.records),
        "wall_s": time.perf_counter() - started,
    }
