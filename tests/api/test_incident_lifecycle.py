"""The incident lifecycle over real HTTP: acknowledge, mitigate, resolve, reopen; moves that are not
possible refused with 409 and the reason, unknown incidents with 404, bad bodies with 422."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from opsmind.types import AuditEntry, Incident
from tests.conftest import RunningServer


def alerts(service: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    return {
        "version": "4",
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": name, "service": service}, "startsAt": stamp}
            for name in ("HighLatency", "HighErrors")
        ],
    }


def open_incident(server: RunningServer, service: str) -> Incident:
    with server.client() as c:
        assert c.post("/api/v1/alerts/alertmanager", json=alerts(service)).status_code == 200
    for _ in range(250):
        found = [i for i in server.engine.store.find(Incident) if i.service == service]
        if found:
            return found[0]
        time.sleep(0.02)
    raise AssertionError("no incident opened")


def move(status: str, **extra: Any) -> dict[str, Any]:
    return {"status": status, "by": "ana", "reason": "on it", **extra}


def test_acknowledge_mitigate_resolve_reopen(server: RunningServer) -> None:
    inc = open_incident(server, "checkout")
    url = f"/api/v1/incidents/{inc.id}/status"
    with server.client() as c:
        r = c.post(url, json=move("acknowledged"))
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "acknowledged"
        assert r.json()["timeline"][-1]["by"] == "ana"
        assert c.post(url, json=move("mitigating")).json()["status"] == "mitigating"
        done = c.post(url, json=move("resolved", reason="rolled back"))
        assert done.json()["status"] == "resolved" and done.json()["resolved_at"] is not None
        # A resolved incident cannot be acknowledged, only reopened.
        refused = c.post(url, json=move("acknowledged"))
        assert refused.status_code == 409 and "resolved cannot become acknowledged" in refused.text
        again = c.post(url, json=move("open", reason="still broken"))
        assert again.status_code == 200 and again.json()["status"] == "open"
        assert c.get(f"/api/v1/incidents/{inc.id}").json()["status"] == "open"
    verbs = [e.verb for e in server.engine.store.find(AuditEntry) if e.subject == inc.id and e.actor == "ana"]
    assert sorted(verbs) == ["acknowledged", "mitigating", "open", "resolved"]


def test_bad_moves_are_refused_with_the_reason(server: RunningServer) -> None:
    inc = open_incident(server, "payments")
    url = f"/api/v1/incidents/{inc.id}/status"
    with server.client() as c:
        assert c.post("/api/v1/incidents/nope/status", json=move("resolved")).status_code == 404
        r = c.post(url, json=move("sleeping"))
        assert r.status_code == 422 and "status" in r.text
        r = c.post(url, json=move("resolved", extra=1))
        assert r.status_code == 422 and "extra" in r.text
        r = c.post(url, json={"status": "resolved"})
        assert r.status_code == 422 and "by" in r.text
        r = c.post(url, json=move("open"))
        assert r.status_code == 409 and "open cannot become open" in r.text
        assert c.get(f"/api/v1/incidents/{inc.id}").json()["status"] == "open"  # nothing changed
