"""Remediations and the automation switch over real HTTP: a risky remediation waits for a person,
approval lets it run, rejection ends it, bad bodies are 422, unknown ids 404, a second decision 409;
automation off refuses, dry run records without acting; 503 while healing is disabled.

Incidents come in through Alertmanager's webhook, as in production. The actuator is a test double that
records what it is asked to do: the point is the engine's bookkeeping, not a target's reaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from opsmind.act.base import ActionResult
from opsmind.api.app import create_app
from opsmind.engine import Engine
from opsmind.heal.executor import ActionRequest
from opsmind.types import AuditEntry, Series, SeriesSamples
from tests.conftest import RunningServer

# A restart whose verification needs no waiting (for_s 0), so a real-time test is quick; risk high
# so that it needs a person's approval above the default level (medium).
RUNBOOK = """\
name: test_restart
description: Restart the service (test runbook).
fault_kinds: [unknown]
risk: high
steps:
  - name: restart
    precheck: {metric: replicas_ready, service: "{service}", op: ">", value: 0}
    action: restart
    params: {service: "{service}"}
    verify: {metric: error_ratio, service: "{service}", op: "<", value: 0.05, timeout_s: 30}
    rollback: none
"""


class RecordingActuator:
    """A double: records each request and its dry-run flag (from the engine's worker threads)."""

    def __init__(self) -> None:
        self.calls: list[tuple[ActionRequest, bool]] = []
        self._lock = threading.Lock()

    def __call__(self, request: ActionRequest, dry_run: bool) -> ActionResult:
        with self._lock:
            self.calls.append((request, dry_run))
        return ActionResult(True, False, f"recorded {request.action}", None, dry_run)


class Healing(RunningServer):
    actuator: RecordingActuator


@pytest.fixture
def healing(make_settings: Any, tmp_path: Path) -> Iterator[Healing]:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    (folder / "test_restart.yaml").write_text(RUNBOOK)
    settings = make_settings(
        predict={"enabled": False},
        heal={
            "enabled": True,
            "mode": "on",
            "bundled_runbooks": False,
            "runbook_dirs": [str(folder)],
            "tick_interval_s": 0.05,
            "impact_priority": 0,  # every incident affects users: act on the best guess
        },
    )
    actuator = RecordingActuator()
    engine = Engine(settings, remediators={"log": actuator})
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine), host="127.0.0.1", port=settings.api.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    running = Healing(f"http://127.0.0.1:{settings.api.port}", engine, settings)
    running.actuator = actuator
    wait(lambda: _up(running.url))
    yield running
    server.should_exit = True
    thread.join(timeout=15)


def _up(url: str) -> bool:
    try:
        return httpx.get(url + "/api/v1/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait(cond: Callable[[], Any], timeout: float = 15) -> Any:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if got := cond():
            return got
        time.sleep(0.03)
    raise AssertionError("condition not met in time")


def open_incident(srv: Healing, service: str) -> None:
    """Healthy-looking metrics for the precheck and verification, then two firing alerts."""
    now = time.time()
    ts = (now - 10, now)
    srv.engine.store.append(
        [
            SeriesSamples(Series.of("replicas_ready", {"service": service}), ts, (3.0, 3.0)),
            SeriesSamples(Series.of("error_ratio", {"service": service}), ts, (0.01, 0.01)),
        ]
    )
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    alerts = [
        {"status": "firing", "labels": {"alertname": name, "service": service}, "startsAt": stamp}
        for name in ("HighLatency", "HighErrors")
    ]
    with srv.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json={"version": "4", "status": "firing", "alerts": alerts})
        assert r.status_code == 200, r.text


def remediation_of(c: httpx.Client, service: str, state: str | None = None) -> dict[str, Any]:
    params = {"service": service, **({"state": state} if state else {})}
    return wait(lambda: next(iter(c.get("/api/v1/remediations", params=params).json()), None))


def test_approval_lets_a_risky_remediation_run(healing: Healing) -> None:
    open_incident(healing, "checkout")
    with healing.client() as c:
        rem = remediation_of(c, "checkout", "proposed")
        assert rem["runbook"] == "test_restart" and rem["risk"] == 2
        # An incident's page asks for its remediations by incident, whatever service they target.
        mine = c.get("/api/v1/remediations", params={"incident_id": rem["incident_id"]}).json()
        assert [r["id"] for r in mine] == [rem["id"]]
        assert c.get("/api/v1/remediations", params={"incident_id": "no-such"}).json() == []
        assert c.get("/api/v1/remediations", params={"incident_id": ""}).status_code == 422
        url = f"/api/v1/remediations/{rem['id']}/approve"
        time.sleep(0.2)  # a few ticks: still waiting, nothing sent
        assert healing.actuator.calls == []
        for bad in ({"who": "ana"}, {"who": " ", "why": "ok"}, {"who": "ana", "why": ""}, {}):
            r = c.post(url, json=bad)
            assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
        assert c.post("/api/v1/remediations/nope/approve", json={"who": "a", "why": "b"}).status_code == 404
        r = c.post(url, json={"who": "ana", "why": "checked the dashboards"})
        assert r.status_code == 200, r.text
        done = wait(lambda: c.get(f"/api/v1/remediations/{rem['id']}").json()["state"] == "succeeded")
        assert done
        again = c.post(url, json={"who": "ana", "why": "twice"})
        assert again.status_code == 409 and "not awaiting approval" in again.json()["detail"]
        shown = c.get(f"/api/v1/remediations/{rem['id']}").json()
    assert [(req.action, dict(req.params), dry) for req, dry in healing.actuator.calls] == [
        ("restart", {"service": "checkout"}, False)
    ]
    states = [t["target"] for t in shown["transitions"]]
    assert states == ["proposed", "approved", "executing", "verifying", "succeeded"]
    approval = shown["transitions"][1]
    assert approval["by"] == "user:ana" and approval["why"] == "checked the dashboards"
    verbs = [a["verb"] for a in shown["audit"]]
    assert {"propose", "awaiting_approval", "approve", "send", "succeeded"} <= set(verbs)


def test_rejection_ends_it_without_acting(healing: Healing) -> None:
    open_incident(healing, "checkout")
    with healing.client() as c:
        rem = remediation_of(c, "checkout", "proposed")
        url = f"/api/v1/remediations/{rem['id']}/reject"
        r = c.post(url, json={"who": "bo", "why": "a deploy is rolling out"})
        assert r.status_code == 200 and r.json()["state"] == "rejected"
        assert c.post(url, json={"who": "bo", "why": "again"}).status_code == 409
        approve = c.post(f"/api/v1/remediations/{rem['id']}/approve", json={"who": "ana", "why": "go"})
        assert approve.status_code == 409
        assert c.get("/api/v1/remediations", params={"state": "rejected"}).json()[0]["id"] == rem["id"]
        assert c.get("/api/v1/remediations", params={"state": "nonsense"}).status_code == 422
    time.sleep(0.2)
    assert healing.actuator.calls == []
    (entry,) = [a for a in healing.engine.store.find(AuditEntry) if a.verb == "reject"]
    assert entry.actor == "user:bo" and entry.detail["reason"] == "a deploy is rolling out"


def test_automation_off_refuses_and_dry_run_records_without_acting(healing: Healing) -> None:
    with healing.client() as c:
        assert c.get("/api/v1/automation").json()["mode"] == "on"
        assert c.put("/api/v1/automation", json={"mode": "maybe", "who": "a", "why": "b"}).status_code == 422
        assert c.put("/api/v1/automation", json={"mode": "off", "who": "a"}).status_code == 422
        r = c.put("/api/v1/automation", json={"mode": "off", "who": "cy", "why": "incident review"})
        assert r.status_code == 200 and r.json()["mode"] == "off"
        assert r.json()["changed"]["who"] == "cy" and r.json()["changed"]["previous"] == "on"
        open_incident(healing, "checkout")
        refused = remediation_of(c, "checkout", "escalated")
        assert "automation is switched off" in refused["history"][-1]["why"]

        r = c.put("/api/v1/automation", json={"mode": "dry_run", "who": "cy", "why": "watch it first"})
        assert r.json()["mode"] == "dry_run"
        open_incident(healing, "payments")
        dry = remediation_of(c, "payments", "succeeded")  # no approval asked in a dry run
        assert dry["dry_run"] is True
    assert [dry_run for _, dry_run in healing.actuator.calls] == [True]
    modes = [a.detail["mode"] for a in healing.engine.store.find(AuditEntry) if a.verb == "automation_mode"]
    assert sorted(modes) == ["dry_run", "off"]


def test_healing_disabled_answers_503(server: RunningServer) -> None:
    with server.client() as c:
        for r in (
            c.get("/api/v1/remediations"),
            c.get("/api/v1/automation"),
            c.post("/api/v1/remediations/x/approve", json={"who": "a", "why": "b"}),
            c.put("/api/v1/automation", json={"mode": "on", "who": "a", "why": "b"}),
        ):
            assert r.status_code == 503 and "heal.enabled" in r.json()["detail"]
