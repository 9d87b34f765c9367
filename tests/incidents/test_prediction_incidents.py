"""Predictions (warnings of a breach ahead) become incidents of their own kind, with their lead time."""

from __future__ import annotations

from opsmind.config import IncidentSettings
from opsmind.incidents.correlator import Correlator
from opsmind.types import Anomaly


def observed(service: str, ts: float) -> Anomaly:
    return Anomaly(
        at=ts,
        service=service,
        series=f'latency_seconds{{service="{service}"}}',
        ts=ts,
        value=1,
        score=5,
        probability=0.99999,
        detector="t",
    )


def predicted(service: str, ts: float, lead_s: float, warning: str = "saturation") -> Anomaly:
    return Anomaly(
        at=ts,
        service=service,
        series=f'predicted_{warning}{{service="{service}"}}',
        ts=ts,
        value=120.0,
        expected=100.0,
        score=0.9,
        probability=0.9,
        detector=f"prediction:{warning}",
        type="prediction",
        labels={"warning": warning, "lead_s": f"{lead_s:g}", "expected_at": f"{ts + lead_s:g}"},
        evidence="load forecast 120 in 10 min vs saturation 100",
    )


def settings() -> IncidentSettings:
    return IncidentSettings(group_window_s=300, min_anomalies=2, resolve_after_s=600)


def test_one_prediction_opens_an_incident_of_its_own_kind_with_its_lead_time() -> None:
    c = Correlator(settings())
    (change,) = c.add(predicted("api", 1000, 600), 1000)
    inc = change.incident
    assert change.event == "opened" and inc.type == "prediction"
    assert inc.labels["lead_s"] == "600" and inc.labels["first_lead_s"] == "600"
    assert inc.labels["expected_at"] == "1600"
    assert "Predicted saturation on api in 10 min" == inc.title
    assert inc.timeline[0]["evidence"].startswith("load forecast")


def test_a_burn_rate_alert_is_titled_by_its_burn_not_as_a_breach_ahead() -> None:
    # Its lead is when the budget runs out at this rate: "Predicted error budget burn in 0 min" said
    # nothing of what was happening (a budget already spent, still burning).
    c = Correlator(settings())
    spent = predicted("api", 1000, 0, "error_budget_burn")
    spent.labels["burn_rate"] = "14.40"
    (change,) = c.add(spent, 1000)
    assert change.incident.title == "Error budget of api burning at 14.4x: already spent"
    days = predicted("db", 1000, 21 * 86_400, "error_budget_burn")
    days.labels["burn_rate"] = "1.50"
    (change,) = c.add(days, 1000)
    assert change.incident.title == "Error budget of db burning at 1.5x: spent in 21 days at this rate"
    failing = predicted("web", 1000, 0, "error_budget_burn")  # every request fails against a 99.9 % SLO
    failing.labels["burn_rate"] = "1000.00"
    (change,) = c.add(failing, 1000)
    assert change.incident.title == "Error budget of web burning at 1000x: already spent"  # not "1e+03x"


def test_later_warnings_refresh_the_lead_and_keep_the_first() -> None:
    c = Correlator(settings())
    (opened,) = c.add(predicted("api", 1000, 600), 1000)
    (updated,) = c.add(predicted("api", 1060, 540), 1060)
    assert updated.event == "updated" and updated.incident.id == opened.incident.id
    assert updated.incident.labels["lead_s"] == "540" and updated.incident.labels["first_lead_s"] == "600"
    # Another kind of warning on the same service is a separate incident.
    (slo,) = c.add(predicted("api", 1060, 300, "latency_slo_risk"), 1060)
    assert slo.event == "opened" and slo.incident.id != opened.incident.id


def test_predictions_and_observed_anomalies_never_share_an_incident() -> None:
    c = Correlator(settings())
    (pred,) = c.add(predicted("api", 1000, 600), 1000)
    assert c.add(observed("api", 1010), 1010) == []  # waits for a second one, as before
    (obs,) = c.add(observed("api", 1020), 1020)
    assert obs.event == "opened" and obs.incident.type == "anomaly" and obs.incident.id != pred.incident.id
    (again,) = c.add(predicted("api", 1060, 540), 1060)
    assert again.incident.id == pred.incident.id


def test_a_prediction_incident_resolves_when_warnings_stop() -> None:
    c = Correlator(settings())
    c.add(predicted("api", 1000, 600), 1000)
    (done,) = c.tick(1700)
    assert done.event == "resolved" and done.incident.type == "prediction"
