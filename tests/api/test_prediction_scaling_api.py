"""Prediction and scaling over real HTTP: forecasts, capacity, recommendations, scaling decisions and
overrides; 404 for unknown services, 422 for bad bodies."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from opsmind.api.routers.prediction import _track_record
from opsmind.config import ConfigError, load_settings
from opsmind.predict.track_record import TrackRecord
from opsmind.types import AuditEntry, Series, SeriesSamples
from tests.conftest import RunningServer, start_server


@pytest.fixture
def scaled(make_settings: Any) -> Iterator[RunningServer]:
    settings = make_settings(
        predict={"min_history": 30, "error_objective_overrides": {"api": 0.98}},
        scale={"services": {"api": {"min_replicas": 2, "max_replicas": 6, "capacity_per_replica": 10}}},
    )
    running, srv, thread = start_server(settings)
    yield running
    srv.should_exit = True
    thread.join(timeout=15)


def test_forecast_capacity_and_recommendations(scaled: RunningServer) -> None:
    now = time.time()
    ts = tuple(now - 60 * (120 - i) for i in range(120))
    load = tuple(20.0 + 5.0 * ((i % 30) / 30) for i in range(120))
    errors = tuple(0.01 for _ in ts)  # burn 0.5 of its 98 % objective: no alert
    scaled.engine.store.append(
        [
            SeriesSamples(Series.of("request_rate", {"service": "api"}), ts, load),
            SeriesSamples(Series.of("error_ratio", {"service": "api"}), ts, errors),
        ]
    )
    assert scaled.engine.predict is not None
    scaled.engine.predict.step(now)  # one tick, synchronously, with the real LoadForecaster
    with scaled.client() as c:
        r = c.get("/api/v1/forecasts/api")
        assert r.status_code == 200, r.text
        fc = r.json()["forecast"]
        assert fc["model"] and len(fc["mean"]) == len(fc["hi"]["80"]) == len(fc["lo"]["95"]) > 0
        assert r.json()["capacity"]["ok"] is True  # the configured capacity stands in
        slo = r.json()["slo"]
        assert slo["objective"] == 0.98 and slo["severity"] is None and slo["alerts"] == []
        # Two hours (121 minutes: the first sample counts the minute before it) at burn 0.5 spend 0.5 x
        # 121 min / 30 days of the budget - not half of it, which 0.5 over the whole period would.
        spent = 0.5 * 7260 / (30 * 86400)
        assert slo["error_ratio"] == pytest.approx(0.01) and slo["budget_covered_s"] == pytest.approx(7260)
        assert slo["budget_spent"] == pytest.approx(spent) and slo["budget_remaining"] == pytest.approx(
            1 - spent
        )
        assert slo["budget_exhausted_in_s"] is None  # no alert, no rate to run it out at
        # Only the windows two hours cover have a burn rate; the others say how much of them is covered.
        assert set(slo["window_burn"]) == {"300s", "1800s", "3600s", "7200s"}
        windows = {w["window_s"]: w for w in slo["windows"]}
        assert windows[259200]["complete"] is False and windows[259200]["covered_s"] == pytest.approx(7260)
        assert windows[259200]["burn_over_covered"] == pytest.approx(0.5)
        assert r.json()["warning_track_record"] is None  # no latency series: no breach to score against
        missing = c.get("/api/v1/forecasts/nope")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
        cap = c.get("/api/v1/capacity").json()
        assert cap[0]["service"] == "api" and cap[0]["outlook"] is None and "hours" in cap[0]["reason"]
        recs = c.get("/api/v1/recommendations")
        assert recs.status_code == 200
        priorities = [x["priority"] for x in recs.json()]
        assert priorities == sorted(priorities, reverse=True)


def test_a_budget_half_spent_reads_the_same_in_every_figure(scaled: RunningServer) -> None:
    # A fresh service (99.9 % over 30 days) failing every request - burn 1,000 - for 21.6 minutes has
    # spent exactly half its budget; the other half lasts 0.5 x 30 days / 1,000 = 21.6 minutes more.
    now = time.time()
    ts = tuple(now - 36.0 * (35 - i) for i in range(36))  # the first counts (now - 1296 s, now - 1260 s]
    scaled.engine.store.append(
        [
            SeriesSamples(Series.of("request_rate", {"service": "web"}), ts, (20.0,) * len(ts)),
            SeriesSamples(Series.of("error_ratio", {"service": "web"}), ts, (1.0,) * len(ts)),
        ]
    )
    assert scaled.engine.predict is not None
    _, anomalies = scaled.engine.predict.step(now)
    with scaled.client() as c:
        slo = c.get("/api/v1/forecasts/web").json()["slo"]
    assert slo["objective"] == 0.999 and slo["severity"] == "page"
    assert slo["budget_covered_s"] == pytest.approx(1296)
    assert slo["budget_spent"] == pytest.approx(0.5) and slo["budget_remaining"] == pytest.approx(0.5)
    assert slo["budget_exhausted_in_s"] == pytest.approx(1296)
    assert all("50.0% of the 30d error budget spent in 22 min" in reason for reason in slo["alerts"])
    (burn,) = [a for a in anomalies if a.service == "web" and a.labels.get("warning") == "error_budget_burn"]
    assert burn.labels["lead_s"] == "1296" and burn.labels["budget_remaining"] == "0.5000"
    assert burn.evidence.endswith(
        "50.0% of the 30d error budget spent in the 22 min of data, 50.0% left: "
        "at 1000x it is spent in 22 min"
    )


def test_scaling_override_and_release(scaled: RunningServer) -> None:
    url = "/api/v1/scaling/api/override"
    with scaled.client() as c:
        (row,) = c.get("/api/v1/scaling").json()
        assert row["service"] == "api" and row["override"] is None
        r = c.post(url, json={"replicas": 4, "by": "ana", "reason": "launch"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["replicas"] == 4 and body["dry_run"] is True and body["cost_per_hour"] > 0
        assert any("pinned to 4 by ana" in x for x in body["reasons"])
        (row,) = c.get("/api/v1/scaling").json()
        assert row["override"]["replicas"] == 4 and row["decision"]["replicas"] == 4
        assert c.post(url, json={"replicas": 40, "by": "ana"}).status_code == 422  # outside 2..6
        assert c.post(url, json={"replicas": 3}).status_code == 422  # no "by"
        assert c.post(url, json={"replicas": 3, "by": "a", "x": 1}).status_code == 422
        assert c.post("/api/v1/scaling/nope/override", json={"replicas": 3, "by": "a"}).status_code == 404
        assert c.delete(url, params={"by": "ana"}).status_code == 200
        assert c.delete(url).status_code == 404  # nothing to release any more
        assert c.get("/api/v1/scaling").json()[0]["override"] is None
    verbs = [a.verb for a in scaled.engine.store.find(AuditEntry) if a.actor == "user:ana"]
    assert sorted(verbs) == ["scale_override", "scale_release"]


def test_a_replica_count_must_be_a_json_integer(scaled: RunningServer) -> None:
    url = "/api/v1/scaling/api/override"
    with scaled.client() as c:
        assert c.post(url, json={"replicas": 4, "by": "ana"}).status_code == 200
        # Coerced before: true counted as 1 replica, false as 0, "3" as 3 (a 200 within the bounds).
        for bad in ({"replicas": True}, {"replicas": "3"}, {"min_replicas": False}, {"max_replicas": "5"}):
            r = c.post(url, json={**bad, "by": "ana"})
            assert r.status_code == 422, (bad, r.text)
            assert f"body.{next(iter(bad))}" in r.json()["detail"]
        (row,) = c.get("/api/v1/scaling").json()
    assert row["override"]["replicas"] == 4  # the pin already accepted stands


def test_scaling_is_empty_without_scaled_services(server: RunningServer) -> None:
    with server.client() as c:
        assert c.get("/api/v1/scaling").json() == []
        assert c.post("/api/v1/scaling/api/override", json={"replicas": 2, "by": "a"}).status_code == 404


def test_bad_prediction_and_scaling_settings_name_the_key() -> None:
    with pytest.raises(ConfigError, match="scale.services.api"):
        load_settings(scale={"services": {"api": {"min_replicas": 5, "max_replicas": 2}}})
    with pytest.raises(ConfigError, match="scale.services.api.policy"):
        load_settings(scale={"services": {"api": {"policy": "magic"}}})
    with pytest.raises(ConfigError, match="predict.warn_threshold"):
        load_settings(predict={"warn_threshold": 2})
    with pytest.raises(ConfigError, match="scale.interval"):
        load_settings(scale={"interval": 5})
    assert load_settings().scale.dry_run is True and load_settings().scale.services == {}


def test_the_warning_record_as_the_api_shows_it() -> None:
    shown = _track_record(
        TrackRecord(warnings=4, came_true=3, breaches=2, warned_of=1, median_lead_minutes=7.0), 30.0
    )
    assert shown == {
        "warnings": 4,
        "came_true": 3,
        "precision": 0.75,
        "breaches": 2,
        "warned_of": 1,
        "recall": 0.5,
        "median_lead_steps": 7.0,
        "summary": "3 of 4 warnings came true, 1 of 2 breaches warned of, median lead 3.5 min",  # 30 s steps
    }
