"""Every automated operation has an override, and each override works and is audited.

The engine runs with detection, notification, scaling and healing on, on a fake clock, behind the real
app (ASGI in process). ``GET /api/v1/overrides`` is read first; it must list the operations of the table
in docs/DASHBOARD.md, each route it names must exist, and every override it names is called here by a
checker that shows its effect (a paused service's incident is refused by the healer, pinned replicas are
the scale decision, a silenced incident's notification is muted, a rollback ends ``rolled_back``...) and
that the audit log says who did it and why.

Then the new routes' edges: a pause survives a restart; the rollback's 404/409/422; running a runbook by
hand (404 incident or runbook, 409 with the guard's reason, 422 naming the missing field, a dry run) and
the ranked candidates of an incident; 503 without healing.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from opsmind.act.base import ActionResult
from opsmind.api.app import create_app
from opsmind.clock import SimClock
from opsmind.config import Settings, load_settings
from opsmind.engine import Engine
from opsmind.heal.executor import ActionRequest
from opsmind.heal.state import Remediation
from opsmind.notify.base import NotifyResult
from opsmind.notify.stage import NotifyStage, RetryPolicy
from opsmind.types import AuditEntry, Incident, Series, SeriesSamples

T0 = 1_700_000_000.0
DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "DASHBOARD.md"

# A high-risk runbook for any incident (the classifier is untrained: every kind is unknown), which sets a
# flag and declares how to set it back; verification needs no waiting.
RUNBOOK = """\
name: test_flag
description: Turn the risky feature flag off (test runbook).
fault_kinds: [unknown]
risk: high
steps:
  - name: flag off
    precheck: {metric: replicas_ready, service: "{service}", op: ">", value: 0}
    action: set_config
    params: {service: "{service}", key: risky_flag, value: "off"}
    verify: {metric: error_ratio, service: "{service}", op: "<", value: 0.05, timeout_s: 60}
    rollback:
      action: set_config
      params: {service: "{service}", key: risky_flag, value: "on"}
"""
NEEDS_VERSION = """\
name: test_deploy_previous
description: Deploy the version before (needs previous_version).
fault_kinds: [bad_deployment]
risk: low
steps:
  - name: deploy
    precheck: {metric: replicas_ready, service: "{service}", op: ">", value: 0}
    action: deploy
    params: {service: "{service}", version: "{previous_version}"}
    verify: {metric: error_ratio, service: "{service}", op: "<", value: 0.05, timeout_s: 60}
    rollback: none
"""


class RecordingActuator:
    """A double: records each runbook action (from the heal stage's worker threads) and says it worked."""

    def __init__(self) -> None:
        self.calls: list[tuple[ActionRequest, bool]] = []
        self._lock = threading.Lock()

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        with self._lock:
            self.calls.append((request, dry_run))
        return ActionResult(True, False, f"recorded {request.action}", None, dry_run)

    def on(self, service: str) -> list[tuple[str, dict[str, Any], bool]]:
        with self._lock:
            return [(r.action, dict(r.params), dry) for r, dry in self.calls if r.service == service]


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[tuple[str, Incident]] = []

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        self.events.append((event, incident))
        return NotifyResult(ok=True)


@dataclass
class Rig:
    engine: Engine
    clock: SimClock
    app: FastAPI
    client: httpx.AsyncClient
    actuator: RecordingActuator
    collect: Collect
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def notify(self) -> NotifyStage:
        return next(s for s in self.engine.stages if isinstance(s, NotifyStage))


def settings(tmp_path: Path, **heal: Any) -> Settings:
    folder = tmp_path / "runbooks"
    folder.mkdir(exist_ok=True)
    (folder / "test_flag.yaml").write_text(RUNBOOK)
    (folder / "test_deploy_previous.yaml").write_text(NEEDS_VERSION)
    return load_settings(
        storage={"path": str(tmp_path / "opsmind.db")},
        notify={"log": False, "group_wait_s": 0},
        predict={"enabled": False},
        scale={"services": {"checkout": {"min_replicas": 1, "max_replicas": 6, "capacity_per_replica": 10}}},
        heal={
            "enabled": True,
            "mode": "on",
            "approval_above_risk": "low",  # the high-risk test runbook waits for a person
            "bundled_runbooks": False,
            "runbook_dirs": [str(folder)],
            "tick_interval_s": 3600,  # the tests drive the heal stage's ticks themselves
            "impact_priority": 0,  # every incident affects users: act on the best guess
            "cooldown_service_s": 0,
            "cooldown_runbook_s": 0,
            **heal,
        },
    )


async def start(tmp_path: Path, clock: SimClock, **heal: Any) -> Rig:
    actuator, collect = RecordingActuator(), Collect()
    engine = Engine(
        settings(tmp_path, **heal),
        clock=clock,
        notifiers=[(collect, RetryPolicy(0, 0.01))],
        remediators={"log": actuator},
    )
    await engine.start()
    app = create_app(engine, manage_engine=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://opsmind.test")
    return Rig(engine, clock, app, client, actuator, collect)


async def stop(rig: Rig) -> None:
    await rig.client.aclose()
    await rig.engine.stop()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    r = await start(tmp_path, SimClock(T0))
    yield r
    await stop(r)


async def wait_for(cond: Callable[[], Any], timeout: float = 10) -> Any:
    for _ in range(int(timeout / 0.02)):
        if got := cond():
            return got
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def known(rig: Rig, *services: str) -> None:
    """Make ``services`` known to OpsMind (a series carries each), as a pause needs."""
    now = rig.clock.now()
    batch = [SeriesSamples(Series.of("up", {"service": s}), (now,), (1.0,)) for s in services]
    await rig.engine.ingest(batch, "test")
    await wait_for(lambda: all(rig.engine.store.series({"service": s}, 1) for s in services))


async def open_incident(rig: Rig, service: str) -> Incident:
    """Healthy-looking metrics for the runbook's precheck and verification, then two firing alerts;
    returns the incident once the heal stage has made its remediation of it."""
    now = rig.clock.now()
    ts = (now - 10, now)
    await rig.engine.ingest(
        [
            SeriesSamples(Series.of("replicas_ready", {"service": service}), ts, (3.0, 3.0)),
            SeriesSamples(Series.of("error_ratio", {"service": service}), ts, (0.01, 0.01)),
        ],
        "test",
    )
    stamp = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    alerts = [
        {"status": "firing", "labels": {"alertname": name, "service": service}, "startsAt": stamp}
        for name in ("HighLatency", "HighErrors")
    ]
    r = await rig.client.post(
        "/api/v1/alerts/alertmanager", json={"version": "4", "status": "firing", "alerts": alerts}
    )
    assert r.status_code == 200, r.text
    inc: Incident = await wait_for(lambda: next(iter(rig.engine.store.find(Incident, service=service)), None))
    await wait_for(lambda: remediations(rig, service))
    return inc


def remediations(rig: Rig, service: str) -> list[Remediation]:
    return rig.engine.store.find(Remediation, service=service, limit=100)


def remediation(rig: Rig, service: str) -> Remediation:
    (rem,) = remediations(rig, service)
    return rem


async def refused(rig: Rig, service: str) -> Remediation:
    """The service's one remediation once a guard has refused it: the executor stores it as proposed
    first and refuses it a moment later, in the heal stage's worker thread."""
    return await wait_for(
        lambda: next((r for r in remediations(rig, service) if r.state.value != "proposed"), None)
    )


async def tick(rig: Rig, seconds: float = 5) -> None:
    await rig.clock.advance(seconds)
    assert rig.engine.healing is not None
    await rig.engine.healing.tick()


def audited(rig: Rig, who: str, why: str, verb: str) -> AuditEntry:
    """The audit entry of ``verb`` by ``who`` (as a person: ``user:who``, or plainly ``who``) whose
    detail carries ``why``."""
    entries = [
        a
        for a in rig.engine.store.find(AuditEntry, limit=10_000)
        if a.verb == verb and a.actor in (who, f"user:{who}") and why in json.dumps(a.detail)
    ]
    assert entries, f"no {verb!r} audit entry by {who} saying {why!r}"
    return entries[0]


# -- one checker per override route named by GET /api/v1/overrides ----------------------------------------
Checker = Callable[[Rig], Awaitable[None]]


async def check_approve(rig: Rig) -> None:
    await open_incident(rig, "svc-approve")
    rem = remediation(rig, "svc-approve")
    assert rem.state.value == "proposed"
    why = "the flag is the culprit"
    r = await rig.client.post(f"/api/v1/remediations/{rem.id}/approve", json={"who": "ana", "why": why})
    assert r.status_code == 200, r.text
    await wait_for(lambda: remediation(rig, "svc-approve").state.value == "verifying")
    await tick(rig)
    assert remediation(rig, "svc-approve").state.value == "succeeded"
    assert rig.actuator.on("svc-approve") == [
        ("set_config", {"service": "svc-approve", "key": "risky_flag", "value": "off"}, False)
    ]
    audited(rig, "ana", why, "approve")


async def check_reject(rig: Rig) -> None:
    await open_incident(rig, "svc-reject")
    rem = remediation(rig, "svc-reject")
    why = "a deploy is rolling out"
    r = await rig.client.post(f"/api/v1/remediations/{rem.id}/reject", json={"who": "bo", "why": why})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    await tick(rig)
    assert rig.actuator.on("svc-reject") == []
    audited(rig, "bo", why, "reject")


async def check_rollback(rig: Rig) -> None:
    await open_incident(rig, "svc-rollback")
    rem = remediation(rig, "svc-rollback")
    await rig.client.post(f"/api/v1/remediations/{rem.id}/approve", json={"who": "ana", "why": "go"})
    await wait_for(lambda: remediation(rig, "svc-rollback").state.value == "verifying")
    await tick(rig)
    assert remediation(rig, "svc-rollback").state.value == "succeeded"
    why = "checkout conversions fell after it"
    r = await rig.client.post(f"/api/v1/remediations/{rem.id}/rollback", json={"who": "cy", "why": why})
    assert r.status_code == 200, r.text
    assert (
        r.json()["state"] == "rolled_back" and remediation(rig, "svc-rollback").state.value == "rolled_back"
    )
    assert [params["value"] for _, params, _ in rig.actuator.on("svc-rollback")] == ["off", "on"]
    audited(rig, "cy", why, "rolled_back")


async def check_automation_mode(rig: Rig) -> None:
    why = "incident review"
    r = await rig.client.put("/api/v1/automation", json={"mode": "off", "who": "dee", "why": why})
    assert r.status_code == 200 and r.json()["mode"] == "off"
    await open_incident(rig, "svc-off")
    rem = await refused(rig, "svc-off")
    assert rem.state.value == "escalated" and "automation is switched off" in rem.history[-1].why
    audited(rig, "dee", why, "automation_mode")
    r = await rig.client.put("/api/v1/automation", json={"mode": "on", "who": "dee", "why": "review done"})
    assert r.json()["mode"] == "on"


async def check_pause_service(rig: Rig) -> None:
    url = "/api/v1/automation/services/svc-paused"
    why = "database migration in progress"
    for loose in ("yes", 1, "true"):  # a mistake to refuse, not a pause to guess
        r = await rig.client.put(url, json={"paused": loose, "who": "eve", "why": why})
        assert r.status_code == 422 and "paused" in r.text, r.text
    await known(rig, "svc-paused")
    r = await rig.client.put(url, json={"paused": True, "who": "eve", "why": why})
    assert r.status_code == 200 and r.json()["paused"] is True
    (listed,) = (await rig.client.get("/api/v1/automation/services")).json()
    assert (listed["service"], listed["who"], listed["why"]) == ("svc-paused", "eve", why)
    await open_incident(rig, "svc-paused")
    rem = await refused(rig, "svc-paused")
    assert rem.state.value == "escalated"
    assert f"paused by eve: {why}" in rem.history[-1].why  # the healer refuses, with who and why
    audited(rig, "eve", why, "service_pause")
    guard = next(
        a
        for a in rig.engine.store.find(AuditEntry, limit=1000)
        if a.verb == "refused" and a.subject == rem.id
    )
    assert guard.detail["guard"] == "service_paused"
    r = await rig.client.put(url, json={"paused": False, "who": "eve", "why": "migration done"})
    assert r.status_code == 200 and (await rig.client.get("/api/v1/automation/services")).json() == []
    audited(rig, "eve", "migration done", "service_resume")


async def check_run_runbook(rig: Rig) -> None:
    inc = await open_incident(rig, "svc-hand")
    assert remediation(rig, "svc-hand").state.value == "proposed"  # the healer's own proposal waits
    why = "I have seen this one before"
    r = await rig.client.post(
        f"/api/v1/incidents/{inc.id}/runbooks/test_flag/run", json={"who": "fay", "why": why}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["requested_by"] == "fay" and body["state"] == "approved"  # no approval asked
    await wait_for(lambda: rig.engine.store.get(Remediation, body["id"]).state.value == "verifying")
    await tick(rig)
    assert rig.engine.store.get(Remediation, body["id"]).state.value == "succeeded"
    assert rig.actuator.on("svc-hand")[0][0] == "set_config"
    audited(rig, "fay", why, "run_by_hand")


async def check_scale_override(rig: Rig) -> None:
    why = "launch day"
    r = await rig.client.post(
        "/api/v1/scaling/checkout/override", json={"replicas": 4, "by": "gil", "reason": why}
    )
    assert r.status_code == 200, r.text
    assert r.json()["replicas"] == 4 and r.json()["policy"] == "override"
    assert rig.engine.scaling is not None
    await rig.engine.scaling.tick()  # the next decision is the pin too
    assert rig.engine.scaling.decisions["checkout"]["replicas"] == 4
    audited(rig, "gil", why, "scale_override")


async def check_scale_release(rig: Rig) -> None:
    assert rig.engine.scaling is not None
    if "checkout" not in rig.engine.scaling.overrides:
        await check_scale_override(rig)
    why = "launch over"
    r = await rig.client.delete("/api/v1/scaling/checkout/override", params={"by": "gil", "reason": why})
    assert r.status_code == 200, r.text
    assert r.json()["policy"] == "predictive" and "checkout" not in rig.engine.scaling.overrides
    audited(rig, "gil", why, "scale_release")


async def check_silence(rig: Rig) -> None:
    why = "planned maintenance of svc-quiet"
    body = {
        "matchers": [{"name": "service", "value": "svc-quiet", "isRegex": False}],
        "endsAt": rig.clock.now() + 3600,
        "createdBy": "hal",
        "comment": why,
    }
    r = await rig.client.post("/api/v1/silences", json=body)
    assert r.status_code == 201, r.text
    rig.notes["silence"] = r.json()["id"]
    inc = await open_incident(rig, "svc-quiet")
    await rig.notify.tick()
    mute = await wait_for(
        lambda: next(
            (
                a
                for a in rig.engine.store.find(AuditEntry, limit=1000)
                if a.verb == "mute" and a.subject == inc.id
            ),
            None,
        )
    )
    assert mute.detail["muter"] == "silence" and why in mute.detail["reason"]
    # Muted: nobody was told of the incident (the healer's escalations are not notifications).
    assert not [e for e, i in rig.collect.events if i.id == inc.id and e != "remediation_escalated"]
    audited(rig, "hal", why, "silence")


async def check_expire_silence(rig: Rig) -> None:
    if "silence" not in rig.notes:
        await check_silence(rig)
    sid = rig.notes["silence"]
    why = "the maintenance ended early"
    r = await rig.client.delete(f"/api/v1/silences/{sid}", params={"by": "hal", "reason": why})
    assert r.status_code == 200 and r.json()["state"] == "expired"
    await rig.notify.tick()  # the held notification goes out now
    await wait_for(lambda: any(e == "opened" and i.service == "svc-quiet" for e, i in rig.collect.events))
    entry = audited(rig, "hal", why, "expire_silence")
    assert entry.subject == sid


async def check_incident_status(rig: Rig) -> None:
    inc = await open_incident(rig, "svc-status")
    rig.notes["status_incident"] = inc.id
    why = "ivy is on it"
    r = await rig.client.post(
        f"/api/v1/incidents/{inc.id}/status", json={"status": "acknowledged", "by": "ivy", "reason": why}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "acknowledged"
    stored = rig.engine.store.get(Incident, inc.id)
    assert stored is not None and stored.status.value == "acknowledged"
    audited(rig, "ivy", why, "acknowledged")


async def check_incident_feedback(rig: Rig) -> None:
    iid = rig.notes.get("status_incident") or (await open_incident(rig, "svc-verdict")).id
    why = "a known batch job, harmless"
    r = await rig.client.post(
        f"/api/v1/incidents/{iid}/feedback", json={"verdict": "noise", "by": "jo", "comment": why}
    )
    assert r.status_code == 201, r.text
    assert r.json()["feedback"]["verdict"] == "noise"
    audited(rig, "jo", why, "feedback")


CHECKS: dict[str, Checker] = {
    "approve": check_approve,
    "reject": check_reject,
    "rollback": check_rollback,
    "automation_mode": check_automation_mode,
    "pause_service": check_pause_service,
    "run_runbook": check_run_runbook,
    "scale_override": check_scale_override,
    "scale_release": check_scale_release,
    "silence": check_silence,
    "expire_silence": check_expire_silence,
    "incident_status": check_incident_status,
    "incident_feedback": check_incident_feedback,
}


def _dashboard_operations() -> list[str]:
    """The first column of the overrides table in docs/DASHBOARD.md."""
    text = DASHBOARD.read_text()
    table = text.split("## Overrides", 1)[1].split("\n\n", 2)[1]
    rows = [line for line in table.splitlines() if line.startswith("|")][2:]
    return [row.split("|")[1].strip() for row in rows]


def _route_shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


async def test_every_automated_operation_has_an_override_that_works_and_is_audited(rig: Rig) -> None:
    r = await rig.client.get("/api/v1/overrides")
    assert r.status_code == 200
    operations = r.json()
    assert [op["operation"] for op in operations] == _dashboard_operations()
    routes = {  # what the app serves, as its OpenAPI document says
        (method.upper(), _route_shape(path))
        for path, methods in rig.app.openapi()["paths"].items()
        for method in methods
    }
    named = [o for op in operations for o in op["overrides"]]
    for o in named:
        assert (o["method"], _route_shape(o["path"])) in routes, f"{o['method']} {o['path']} is not served"
    assert sorted(o["name"] for o in named) == sorted(CHECKS), "every override needs its checker here"
    for o in named:
        await CHECKS[o["name"]](rig)


# -- the edges of the new routes ---------------------------------------------------------------------------


async def test_a_pause_is_kept_across_a_restart(tmp_path: Path) -> None:
    clock = SimClock(T0)
    first = await start(tmp_path, clock)
    try:
        await known(first, "svc-a")
        r = await first.client.put(
            "/api/v1/automation/services/svc-a", json={"paused": True, "who": "ana", "why": "freeze"}
        )
        assert r.status_code == 200
        bad = await first.client.put("/api/v1/automation/services/svc-a", json={"paused": True, "why": " "})
        assert bad.status_code == 422
        extra = await first.client.put(
            "/api/v1/automation/services/svc-a", json={"paused": True, "why": "x", "who": "a", "mode": "off"}
        )
        assert extra.status_code == 422
    finally:
        await stop(first)
    again = await start(tmp_path, clock)
    try:
        (listed,) = (await again.client.get("/api/v1/automation/services")).json()
        assert (listed["service"], listed["who"], listed["why"]) == ("svc-a", "ana", "freeze")
        await open_incident(again, "svc-a")
        assert "paused by ana: freeze" in remediation(again, "svc-a").history[-1].why
    finally:
        await stop(again)


async def test_a_pause_needs_a_name_a_service_could_have(rig: Rig) -> None:
    # A pause is kept under the exact name: " checkout " answered 200 and left checkout unpaused, and
    # control characters or a 10,000-character name were stored (and kept across restarts).
    body = {"paused": True, "who": "ana", "why": "freeze"}
    for name in ("%20checkout%20", "checkout%0A", "%00", "x" * 10_000):
        r = await rig.client.put(f"/api/v1/automation/services/{name}", json=body)
        assert r.status_code == 422, (name[:20], r.text)
        assert "is not a service name" in r.json()["detail"]
    assert (await rig.client.get("/api/v1/automation/services")).json() == []
    await known(rig, "my svc")
    ok = await rig.client.put("/api/v1/automation/services/my%20svc", json=body)  # inner spaces are fine
    assert ok.status_code == 200 and ok.json()["service"] == "my svc"


async def test_rollback_answers_404_409_and_422(rig: Rig) -> None:
    missing = await rig.client.post("/api/v1/remediations/nope/rollback", json={"who": "a", "why": "b"})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    await open_incident(rig, "svc-edge")
    rem = remediation(rig, "svc-edge")
    url = f"/api/v1/remediations/{rem.id}/rollback"
    assert (await rig.client.post(url, json={"who": "a"})).status_code == 422
    assert (await rig.client.post(url, json={"who": "a", "why": "  "})).status_code == 422
    early = await rig.client.post(url, json={"who": "a", "why": "undo"})
    assert early.status_code == 409
    assert early.json()["allowed"] == ["executing", "succeeded", "verifying"]
    assert "proposed" in early.json()["detail"]


async def test_running_a_runbook_by_hand_edges(rig: Rig) -> None:
    inc = await open_incident(rig, "svc-run")
    base = f"/api/v1/incidents/{inc.id}/runbooks"
    body = {"who": "ana", "why": "try it"}
    assert (
        await rig.client.post("/api/v1/incidents/nope/runbooks/test_flag/run", json=body)
    ).status_code == 404
    unknown = await rig.client.post(f"{base}/no_such/run", json=body)
    assert unknown.status_code == 404 and "no_such" in unknown.json()["detail"]
    unbound = await rig.client.post(f"{base}/test_deploy_previous/run", json=body)
    assert unbound.status_code == 422 and unbound.json()["fields"] == ["previous_version"]
    assert "previous_version" in unbound.json()["detail"]
    assert (await rig.client.post(f"{base}/test_flag/run", json={"who": "ana"})).status_code == 422

    dry = await rig.client.post(f"{base}/test_flag/run", json={**body, "dry_run": True})
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    await wait_for(lambda: rig.engine.store.get(Remediation, dry.json()["id"]).state.value == "succeeded")
    assert rig.actuator.on("svc-run") == [
        ("set_config", {"service": "svc-run", "key": "risky_flag", "value": "off"}, True)
    ]

    live = await rig.client.post(f"{base}/test_flag/run", json=body)
    assert live.status_code == 200, live.text
    await wait_for(lambda: rig.engine.store.get(Remediation, live.json()["id"]).state.value == "verifying")
    busy = await rig.client.post(f"{base}/test_flag/run", json={"who": "bo", "why": "again"})
    assert busy.status_code == 409  # one remediation at a time holds for a person's run too
    assert busy.json()["guard"] == "one_at_a_time" and live.json()["id"] in busy.json()["detail"]
    # A refusal stores nothing that reads as pending work ("escalated" asks for a person): audited only.
    assert rig.engine.store.get(Remediation, busy.json()["remediation_id"]) is None
    # A dry run is not held by the live one: it changes nothing.
    preview = await rig.client.post(f"{base}/test_flag/run", json={**body, "dry_run": True})
    assert preview.status_code == 200, preview.text
    await wait_for(lambda: rig.engine.store.get(Remediation, preview.json()["id"]).state.value == "succeeded")
    off = {"mode": "off", "who": "ana", "why": "incident review"}
    assert (await rig.client.put("/api/v1/automation", json=off)).status_code == 200
    switched_off = await rig.client.post(f"{base}/test_flag/run", json={**body, "dry_run": True})
    assert switched_off.status_code == 409 and switched_off.json()["guard"] == "automation_switch"
    assert rig.engine.store.get(Remediation, switched_off.json()["remediation_id"]) is None
    assert not rig.engine.store.find(Remediation, status="escalated", limit=10)


async def test_an_incidents_candidate_runbooks_are_ranked_and_explained(rig: Rig) -> None:
    inc = await open_incident(rig, "svc-advice")
    r = await rig.client.get(f"/api/v1/incidents/{inc.id}/runbooks")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["service"] == "svc-advice"  # what a runbook run from here would act on
    assert body["classification"]["kind"] == "unknown" and body["classification"]["confidence"] == 0.0
    assert "not trained" in body["classification"]["reason"]
    (option,) = body["runbooks"]
    assert option["runbook"] == "test_flag" and option["rank"] == 1 and option["bindable"] is True
    assert option["tried"] is True  # the healer proposed it already
    assert "ranked 1 of 1" in option["explanation"] and option["risk"] == "high"
    assert (await rig.client.get("/api/v1/incidents/nope/runbooks")).status_code == 404


async def test_without_healing_the_heal_overrides_answer_503(tmp_path: Path) -> None:
    engine = Engine(
        load_settings(
            storage={"path": str(tmp_path / "o.db")}, notify={"log": False}, predict={"enabled": False}
        )
    )
    await engine.start()
    app = create_app(engine, manage_engine=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.get("/api/v1/overrides")).status_code == 200
            for r in (
                await c.get("/api/v1/automation/services"),
                await c.put("/api/v1/automation/services/a", json={"paused": True, "who": "a", "why": "b"}),
                await c.post("/api/v1/remediations/x/rollback", json={"who": "a", "why": "b"}),
                await c.get("/api/v1/incidents/x/runbooks"),
                await c.post("/api/v1/incidents/x/runbooks/y/run", json={"who": "a", "why": "b"}),
            ):
                assert r.status_code == 503 and "heal.enabled" in r.json()["detail"]
    finally:
        await engine.stop()


async def test_with_access_control_the_audit_names_the_signed_in_person(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    users.write_text(
        "kim:\n  password: kims-password\n  role: operator\nvic:\n  password: vics-pw\n  role: viewer\n"
    )
    base = settings(tmp_path)
    auth = base.api.auth.model_copy(update={"enabled": True, "users_file": str(users)})
    engine = Engine(
        base.model_copy(update={"api": base.api.model_copy(update={"auth": auth})}),
        clock=SimClock(T0),
        remediators={"log": RecordingActuator()},
    )
    await engine.start()
    await engine.ingest([SeriesSamples(Series.of("up", {"service": "svc-k"}), (T0,), (1.0,))], "test")
    app = create_app(engine, manage_engine=False)
    url = "/api/v1/automation/services/svc-k"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            assert (await c.put(url, json={"paused": True, "why": "x"})).status_code == 401

            async def token(name: str, password: str) -> dict[str, str]:
                r = await c.post("/api/v1/auth/login", json={"username": name, "password": password})
                return {"Authorization": f"Bearer {r.json()['token']}"}

            viewer = await token("vic", "vics-pw")
            assert (await c.put(url, json={"paused": True, "why": "x"}, headers=viewer)).status_code == 403
            assert (await c.get("/api/v1/overrides", headers=viewer)).status_code == 200
            operator = await token("kim", "kims-password")
            body = {"paused": True, "why": "load test", "who": "someone-else"}
            r = await c.put(url, json=body, headers=operator)
            assert r.status_code == 200 and r.json()["who"] == "kim"  # the body's who is not believed
        (entry,) = [a for a in engine.store.find(AuditEntry) if a.verb == "service_pause"]
        assert entry.actor == "user:kim" and entry.detail["why"] == "load test"
    finally:
        await engine.stop()


def test_every_override_route_has_a_control_in_the_dashboard() -> None:
    """The dashboard's sources call every override route of ``GET /api/v1/overrides`` with its method
    (the browser tests click them; this one makes sure none is missing when an override is added)."""
    from opsmind.api.routers.overrides import OVERRIDES

    web = Path(__file__).resolve().parents[2] / "web" / "src"
    source = "\n".join(p.read_text() for p in sorted(web.glob("*.js")))
    verbs = {"POST": "post", "PUT": "put", "DELETE": "del"}
    missing = []
    for op in OVERRIDES:
        for route in op.overrides:
            # a path parameter is any ${...} expression in a template string; approve|reject share one
            pattern = re.escape(route.path)
            pattern = re.sub(r"\\\{[a-z_]+\\\}", r"\\$\\{[^}]+\\}", pattern)
            pattern = pattern.replace("approve", "(approve|\\$\\{[^}]+\\})").replace(
                "reject", "(reject|\\$\\{[^}]+\\})"
            )
            call = rf"api\.{verbs[route.method]}\([\"'`]{pattern}[\"'`]"
            if not re.search(call, source):
                missing.append(f"{route.method} {route.path} ({op.key}: {route.name})")
    assert not missing, f"override routes the dashboard never calls: {missing}"


async def test_a_pause_names_a_service_opsmind_knows_and_a_paused_one_can_always_resume(rig: Rig) -> None:
    # A typo answered 200 and was listed as paused while the real service went on being healed.
    body = {"paused": True, "who": "ana", "why": "freeze"}
    await known(rig, "personalization")
    r = await rig.client.put("/api/v1/automation/services/personalisation", json=body)
    assert r.status_code == 404 and "GET /api/v1/services" in r.json()["detail"], r.text
    assert (await rig.client.get("/api/v1/automation/services")).json() == []
    # Registered without data yet, or named only by an open incident: known.
    reg = await rig.client.put("/api/v1/services/billing", json={"by": "ana"})
    assert reg.status_code in (200, 201), reg.text
    assert (await rig.client.put("/api/v1/automation/services/billing", json=body)).status_code == 200
    await open_incident(rig, "vault")
    assert (await rig.client.put("/api/v1/automation/services/vault", json=body)).status_code == 200
    # Paused, then deregistered (no series, no registration): resuming still works.
    assert (await rig.client.delete("/api/v1/services/billing?by=ana")).status_code == 200
    resume = {"paused": False, "who": "ana", "why": "done"}
    assert (await rig.client.put("/api/v1/automation/services/billing", json=resume)).status_code == 200
    assert [p["service"] for p in (await rig.client.get("/api/v1/automation/services")).json()] == ["vault"]
