"""Feedback over real HTTP: verdicts stored with a feature snapshot and audited, the classifier retrained."""

from __future__ import annotations

from typing import Any

import pytest

from opsmind.engine import Engine
from opsmind.types import AuditEntry, Feedback, Incident
from tests.conftest import RunningServer


def stored_incident(server: RunningServer, n: int, noisy: bool) -> Incident:
    """A noise-like (one CPU series, a few anomalies) or actionable-like (latency and errors on two
    services, many anomalies) incident, put straight into the engine's store."""
    svc = f"svc{n}"
    series = (
        (f'cpu_utilisation{{service="{svc}"}}',)
        if noisy
        else (
            f'latency_seconds{{service="{svc}"}}',
            f'error_ratio{{service="{svc}"}}',
            'latency_seconds{service="gateway"}',
        )
    )
    inc = Incident(
        at=1000.0 + n,
        service=svc,
        services=(svc,) if noisy else (svc, "gateway"),
        title=f"incident {n}",
        opened_at=1000.0 + n,
        last_anomaly_at=1000.0 + n + (60 if noisy else 1800),
        anomaly_count=3 if noisy else 40,
        series=series,
        max_probability=0.999 if noisy else 1.0 - 1e-12,
    )
    server.engine.store.put(inc)
    return inc


def verdict(v: str = "noise", **extra: Any) -> dict[str, Any]:
    return {"verdict": v, "by": "ana", "comment": "nightly batch", **extra}


def test_feedback_is_stored_with_a_snapshot_audited_and_listed(server: RunningServer) -> None:
    inc = stored_incident(server, 0, noisy=True)
    with server.client() as c:
        r = c.post(f"/api/v1/incidents/{inc.id}/feedback", json=verdict())
        assert r.status_code == 201, r.text
        body = r.json()
        fb = body["feedback"]
        assert (fb["incident_id"], fb["verdict"], fb["by"], fb["service"]) == (inc.id, "noise", "ana", "svc0")
        assert fb["features"]["share_saturation"] == 1.0 and fb["features"]["services"] == 1.0
        assert body["classifier"]["ready"] is False
        assert body["classifier"]["examples"] == {"noise": 1, "actionable": 0}
        listed = c.get("/api/v1/feedback").json()
        assert [f["id"] for f in listed] == [fb["id"]]
        assert c.get("/api/v1/feedback", params={"incident_id": "other"}).json() == []
        assert len(c.get("/api/v1/feedback", params={"service": "svc0"}).json()) == 1
    stored = server.engine.store.get(Feedback, fb["id"])
    assert stored is not None and stored.comment == "nightly batch"
    audits = [e for e in server.engine.store.find(AuditEntry) if e.verb == "feedback"]
    assert [(e.actor, e.subject, e.detail["verdict"]) for e in audits] == [("user:ana", inc.id, "noise")]


def test_enough_verdicts_train_the_engines_classifier(server: RunningServer, make_settings: Any) -> None:
    noisy = [stored_incident(server, n, noisy=True) for n in range(5)]
    real = [stored_incident(server, n, noisy=False) for n in range(5, 10)]
    with server.client() as c:
        for inc in noisy:
            assert c.post(f"/api/v1/incidents/{inc.id}/feedback", json=verdict()).status_code == 201
        for inc in real[:-1]:
            c.post(f"/api/v1/incidents/{inc.id}/feedback", json=verdict("actionable"))
        assert server.engine.noise.ready is False
        last = c.post(f"/api/v1/incidents/{real[-1].id}/feedback", json=verdict("actionable")).json()
    assert last["classifier"]["ready"] is True
    assert last["classifier"]["examples"] == {"noise": 5, "actionable": 5}
    p_noise, _ = server.engine.noise.noise_probability(stored_incident(server, 20, noisy=True))
    p_real, _ = server.engine.noise.noise_probability(stored_incident(server, 21, noisy=False))
    assert p_noise > 0.5 > p_real
    # Another engine on the same database learns the stored verdicts: nothing is lost on restart.
    again = Engine(make_settings(storage={"path": server.settings.storage.path}))
    assert again.retrain_noise()["ready"] is True
    again.store.close()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (verdict("spam"), "verdict"),
        (verdict(extra=1), "extra"),
        ({"verdict": "noise"}, "by"),
        (verdict(by=""), "by"),
    ],
)
def test_bad_feedback_is_refused_with_the_reason(
    server: RunningServer, payload: dict[str, Any], reason: str
) -> None:
    inc = stored_incident(server, 0, noisy=True)
    with server.client() as c:
        r = c.post(f"/api/v1/incidents/{inc.id}/feedback", json=payload)
        assert r.status_code == 422, r.text
        assert reason in r.text
        assert c.get("/api/v1/feedback").json() == []  # nothing stored


def test_feedback_on_an_unknown_incident_is_404(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/incidents/nope/feedback", json=verdict())
        assert r.status_code == 404 and "nope" in r.json()["detail"]
        assert c.get("/api/v1/feedback").json() == []
    assert not [e for e in server.engine.store.find(AuditEntry) if e.verb == "feedback"]
