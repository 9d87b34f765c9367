"""One chaos scenario through the real engine: ``opsmind bench chaos --loop engine``.

The simulated fleet (:class:`~opsmind.bench.sim_world.SimWorld`, as in the demo) runs the scenario, and
an :class:`~opsmind.engine.Engine` runs in this process on a :class:`~opsmind.clock.SimClock`, configured
as the demo configures it: the fleet declared by its operator (call graph, inventory, entry service:
:meth:`SimWorld.declare`), detection, incidents and healing on (prediction, scaling, notifications and
the live hub off: the benchmark measures healing), the trained fault classifier loaded from
``heal.classifier_path``, and guards equivalent to :func:`~opsmind.bench.chaos_loop.chaos_guards` (mode
on, approval above medium risk). Runbook actions reach the simulator through ``SimWorld.remediate``.

Every 5 s step of the simulator: the clock moves to the step's time; the step's metrics and platform
events are ingested (what a real fleet gives, nothing of the ground truth); the loop waits until the
pipeline has handled them (every topic acked by every group: detect -> anomalies -> incidents -> heal);
then the incident stage's and the heal stage's timers run (``tick``), as their tick loops would with
``incidents.check_interval_s`` and ``heal.tick_interval_s`` of 5 s - called here in that order, after the
step is handled, so a run is deterministic whatever the machine's speed.

The :class:`~opsmind.bench.chaos_loop.Trace` the scorer reads is built from what the engine recorded in
its store (incidents opened and resolved, remediations, the heal stage's decisions and escalations in
the audit log) and from the actions sent to the simulator; the SLO state per step and the truth records
come from the simulator, for the scorer only.

What the engine learned carries from one scenario to the next as it does across a restart: the
remediation outcomes of the previous scenarios' stores are written into the next one's before its engine
starts (its knowledge base rebuilds from them).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from opsmind.act.base import ActionResult
from opsmind.bench.chaos_loop import Action, Trace, chaos_guards
from opsmind.bench.sim_world import SimWorld, to_events
from opsmind.clock import SimClock
from opsmind.config import Settings, load_settings
from opsmind.engine import Engine
from opsmind.heal.executor import ActionRequest
from opsmind.heal.guards import RateLimit
from opsmind.heal.healer import RISK_LEVEL
from opsmind.heal.knowledge import RemediationOutcome
from opsmind.heal.state import Remediation
from opsmind.sim.spec import Scenario
from opsmind.store.sqlite import SqliteStore
from opsmind.types import AuditEntry, Incident

STEP_S = 5.0
NEVER_S = 10.0**9  # a tick loop's interval that never comes round: the loop calls the ticks itself
IDLE_POLL_S = 0.0005
IDLE_LIMIT_S = 120.0  # real seconds the pipeline may take over one step before the run is abandoned
TOPICS = ("samples", "anomalies", "incidents")


def engine_settings(db_path: Path, classifier_path: Path | None, multivariate: bool = False) -> Settings:
    """The engine's settings for a chaos run, before the fleet is declared (:meth:`SimWorld.declare`):
    the demo's incident timing, healing acting through the simulator with the benchmark's guards.
    ``multivariate``: the per-service IsolationForest of the detect stage (on by default in the product),
    off here unless asked: scoring every service's vector costs about 0.25 s of CPU per simulated step,
    ten times the rest of the engine, which would make a run of the default set take hours."""
    guards = chaos_guards().settings
    level = {v: k for k, v in RISK_LEVEL.items()}
    return load_settings(
        storage={"path": str(db_path)},
        detect={"multivariate": multivariate},
        notify={"log": False},
        predict={"enabled": False},
        live={"enabled": False},
        incidents={"resolve_after_s": 120, "check_interval_s": NEVER_S},
        heal={
            "enabled": True,
            "mode": guards.mode.value,
            "actuator": "simulator",
            "approval_above_risk": level[guards.approval_above_risk],
            "cooldown_service_s": guards.cooldown_service_s,
            "cooldown_runbook_s": guards.cooldown_runbook_s,
            "rate_service": _rate(guards.rate_service),
            "rate_global": _rate(guards.rate_global),
            "classifier_path": None if classifier_path is None else str(classifier_path),
            "tick_interval_s": NEVER_S,
        },
    )


def _rate(limit: RateLimit) -> dict[str, float]:
    return {"max_count": limit.max_count, "window_s": limit.window_s}


async def _idle(engine: Engine) -> None:
    """Wait (real time) until every message published so far has been handled and acked by every group:
    a handler publishes what it produced before its message is acked, so nothing is left in flight."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IDLE_LIMIT_S
    while any(engine.bus.backlog(t) for t in TOPICS):
        if loop.time() > deadline:
            raise TimeoutError("the engine did not handle a step's samples in time")
        await asyncio.sleep(IDLE_POLL_S)


async def run_engine_scenario(
    scenario: Scenario,
    classifier_path: Path | None,
    learned: list[RemediationOutcome],
    folder: Path,
) -> Trace:
    """Run ``scenario`` to its end with the engine healing it; ``learned`` (the remediation outcomes of
    earlier scenarios) is given to this engine's knowledge base and extended with its own."""
    trace = Trace(scenario.name, "opsmind")
    db = folder / f"engine-{len(learned)}-{abs(hash(scenario.name))}.db"
    if learned:
        seed = SqliteStore(str(db))
        try:
            seed.put_many(learned)
        finally:
            seed.close()
    clock = SimClock(scenario.start)
    world = SimWorld(clock, scenario=scenario)
    run = world.sim
    settings = world.declare(engine_settings(db, classifier_path))

    def actuate(request: ActionRequest, dry_run: bool) -> ActionResult:
        result = world.remediate(request, dry_run)
        if result.ok and not result.dry_run:
            undo = request.idempotency_key.endswith(":rollback")
            params = dict(request.params)
            trace.actions.append(Action(clock.now(), request.action, params, request.remediation_id, undo))
        return result

    engine = Engine(settings, clock=clock, notifiers=[], remediators={"simulator": actuate})
    incidents, healing = engine.incidents, engine.healing
    assert incidents is not None and healing is not None  # detection and healing are on
    await engine.start()
    try:
        while not run.done:
            with world.lock:
                step = run.step()
            await clock.advance(max(0.0, step.ts - clock.now()))
            trace.times.append(step.ts)
            trace.slo_ok.append(run.truth.slo_ok())
            await engine.ingest(step.as_batch(), "sim")
            await engine.ingest_events(to_events(step), "sim")
            await _idle(engine)
            await incidents.tick()
            await _idle(engine)
            await healing.tick()
            await _idle(engine)
        _read_back(engine, trace)
        learned[:] = engine.store.find(RemediationOutcome, limit=1_000_000, newest_first=False)
    finally:
        await engine.stop()
        for f in folder.glob(f"{db.name}*"):  # the database and its journals: what was learned is kept
            f.unlink()
    trace.finish(run)
    return trace


def _read_back(engine: Engine, trace: Trace) -> None:
    """What the engine recorded, in the trace's terms: incidents (opened, resolved), remediations in the
    order they were proposed with their final state and why, the heal stage's decisions and escalations."""
    found = engine.store.find(Incident, limit=100_000, newest_first=False)
    incidents = sorted((i for i in found if i.type != "prediction"), key=lambda i: i.opened_at)
    opened = {i.id: i.opened_at for i in incidents}
    trace.incidents = [(i.opened_at, None if i.status.active else i.resolved_at) for i in incidents]
    trace.record(sorted(engine.store.find(Remediation, limit=100_000), key=lambda r: (r.created_at, r.id)))
    for entry in engine.store.find(AuditEntry, limit=1_000_000, newest_first=False):
        if entry.actor != "opsmind:heal":
            continue
        if entry.verb == "escalate":
            trace.escalations += 1
        elif entry.verb == "heal_decide":
            since = entry.at - opened.get(entry.subject, entry.at)
            trace.decisions.append(f"{since:.0f}s {entry.service}: {entry.detail.get('explanation', '')}")


def run_engine_scenarios(scenarios: list[Scenario], classifier_path: Path | None) -> list[Trace]:
    """Every scenario in order through its own engine; what was learned carries over (see the module)."""
    learned: list[RemediationOutcome] = []
    out: list[Trace] = []
    with tempfile.TemporaryDirectory(prefix="opsmind-chaos-") as tmp:
        for scenario in scenarios:
            out.append(asyncio.run(run_engine_scenario(scenario, classifier_path, learned, Path(tmp))))
    return out


def run_engine_task(task: tuple[list[Scenario], str, Any]) -> list[Trace]:
    """Process-pool entry: ``(scenarios, "opsmind", classifier file)``."""
    scenarios, _, clf_path = task
    return run_engine_scenarios(scenarios, Path(clf_path) if clf_path else None)
