"""Service health over real HTTP: samples pushed through the JSON API, the score read back."""

from __future__ import annotations

import math
import time
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import RunningServer

STEP = 15.0


def series(metric: str, labels: dict[str, str], values: list[float], t_end: float) -> dict[str, Any]:
    n = len(values)
    return {
        "metric": metric,
        "labels": labels,
        "timestamps": [t_end - STEP * (n - 1 - i) for i in range(n)],
        "values": values,
    }


def golden(service: str, t_end: float, error_tail: float | None = None, n: int = 60) -> list[dict[str, Any]]:
    """Fifteen minutes of a steady service; with ``error_tail`` the last two minutes fail that often."""
    labels = {"service": service}
    errors = [0.002 + 0.0005 * (i % 3) for i in range(n)]
    if error_tail is not None:
        errors[-8:] = [error_tail] * 8
    return [
        series("request_rate", labels, [100.0 + (i % 5) for i in range(n)], t_end),
        series("error_ratio", labels, errors, t_end),
        series(
            "latency_seconds", {**labels, "quantile": "0.95"}, [0.2 + 0.01 * (i % 4) for i in range(n)], t_end
        ),
        series("latency_seconds", {**labels, "quantile": "0.5"}, [0.05] * n, t_end),
        series("cpu_utilisation", labels, [0.4 + 0.02 * (i % 3) for i in range(n)], t_end),
    ]


def push(server: RunningServer, body: list[dict[str, Any]]) -> None:
    with server.client() as c:
        r = c.post("/api/v1/ingest", json={"series": body})
        assert r.status_code == 200, r.text


SCORE = "opsmind_service_health_score"
STATUS = "opsmind_service_health_status"


def scrape(c: httpx.Client) -> dict[str, dict[str, Any]]:
    """``/metrics`` parsed: the score by service, the statuses by service (``{status: value}``), and every
    other sample's name under ``"other"``."""
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    out: dict[str, dict[str, Any]] = {SCORE: {}, STATUS: {}, "other": {}}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            if sample.name == SCORE:
                assert sample.labels["service"] not in out[SCORE], "one sample per service"
                out[SCORE][sample.labels["service"]] = sample.value
            elif sample.name == STATUS:
                out[STATUS].setdefault(sample.labels["service"], {})[sample.labels["status"]] = sample.value
            else:
                out["other"][sample.name] = sample.value
    return out


def test_a_steady_service_is_healthy_and_exported(server: RunningServer) -> None:
    push(server, golden("checkout", time.time() - 1))
    with server.client() as c:
        r = c.get("/api/v1/services/checkout/health")
        metrics = scrape(c)
    assert r.status_code == 200, r.text
    h = r.json()
    assert h["service"] == "checkout" and h["status"] == "ok" and h["score"] >= 90, h
    assert h["missing"] == []
    signals = {c["signal"] for c in h["contributions"]}
    assert signals == {"errors", "latency", "saturation", "traffic", "anomalies"}
    latency = next(c for c in h["contributions"] if c["signal"] == "latency")
    assert 'quantile="0.95"' in latency["series"] and latency["baseline"] is not None
    assert metrics[SCORE]["checkout"] == h["score"]
    # A reader asking about another window gets that window's score, but the exported score stays the
    # default reading's (a viewer's ?window=0.001 set it to NaN).
    with server.client() as c:
        assert c.get("/api/v1/services/checkout/health", params={"window": 0.001}).status_code == 200
        nan = c.get("/api/v1/services/checkout/health", params={"window": "NaN"})
        assert scrape(c)[SCORE]["checkout"] == h["score"]
    assert nan.status_code == 422 and "must be a finite number, not NaN" in nan.text, nan.text


def test_high_errors_make_a_service_critical(server: RunningServer) -> None:
    push(server, golden("payments", time.time() - 1, error_tail=0.4))
    with server.client() as c:
        h = c.get("/api/v1/services/payments/health").json()
    assert h["status"] == "critical" and h["score"] < 50, h
    assert h["contributions"][0]["signal"] == "errors"
    assert "errors" in h["explanation"]


def test_missing_signals_are_reported_and_counters_become_rates(server: RunningServer) -> None:
    t_end = time.time() - 1
    counter = [1000.0 + 150.0 * i for i in range(60)]  # 10 requests per second
    counter[30:] = [v - counter[30] for v in counter[30:]]  # a restart halfway: the counter resets
    push(server, [series("http_requests_total", {"service": "search", "code": "200"}, counter, t_end)])
    with server.client() as c:
        h = c.get("/api/v1/services/search/health").json()
    assert h["missing"] == ["errors", "latency", "saturation"]
    traffic = next(c for c in h["contributions"] if c["signal"] == "traffic")
    assert abs(traffic["value"] - 10.0) < 1e-6 and abs(traffic["baseline"] - 10.0) < 1e-6
    assert "missing signals" in h["explanation"]


def test_an_ml_service_is_judged_by_its_model_too(server: RunningServer) -> None:
    """ML-model health: accuracy falling in the last two minutes, the golden signals steady."""
    t_end = time.time() - 1
    accuracy = [0.91] * 52 + [0.72] * 8
    drift = [0.02] * 52 + [0.95] * 8
    labels = {"service": "recommender"}
    body = [
        *golden("recommender", t_end),
        series("model_accuracy", labels, accuracy, t_end),
        series("model_drift_score", labels, drift, t_end),
    ]
    push(server, body)
    with server.client() as c:
        h = c.get("/api/v1/services/recommender/health").json()
    assert h["status"] != "ok" and h["missing"] == [], h
    assert [c["signal"] for c in h["contributions"][:2]] == ["model_quality", "model_drift"]
    assert "model_quality 0.72 vs baseline 0.91" in h["explanation"]


def test_a_service_without_golden_signals_has_no_score(server: RunningServer) -> None:
    push(server, [series("queue_depth", {"service": "worker"}, [1.0, 2.0], time.time() - 1)])
    with server.client() as c:
        h = c.get("/api/v1/services/worker/health").json()
    assert h["score"] is None and h["status"] == "unknown"


def test_unknown_service_is_a_404_problem_document(server: RunningServer) -> None:
    with server.client() as c:
        r = c.get("/api/v1/services/nope/health")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "nope" in r.json()["detail"]


def test_anomalies_on_old_points_do_not_hurt_current_health(server: RunningServer) -> None:
    from opsmind.types import Anomaly

    now = time.time()
    push(server, golden("billing", now - 1))
    with server.client() as c:
        key = next(
            s["key"]
            for s in c.get("/api/v1/series", params={"match": "service=billing"}).json()
            if s["name"] == "error_ratio" or "error" in s["name"]
        )
    # Detected just now, but about a point from an hour ago (a backfill or a replay).
    server.engine.store.put(
        Anomaly(
            at=now,
            service="billing",
            series=key,
            ts=now - 3600,
            value=1.0,
            score=9.0,
            probability=0.999999,
            detector="ensemble",
        )
    )
    with server.client() as c:
        h = c.get("/api/v1/services/billing/health").json()
    assert h["status"] == "ok" and h["score"] >= 90, h


def test_predictions_do_not_make_a_healthy_service_critical(server: RunningServer) -> None:
    # After a fault was cured, its spent error budget (a prediction, probability 1) kept the service's
    # health "critical" although every golden signal was back within its baseline.
    from opsmind.types import Anomaly

    now = time.time()
    push(server, golden("billing", now - 1))
    server.engine.store.put(
        Anomaly(
            at=now,
            service="billing",
            series='predicted_error_budget_burn{service="billing"}',
            ts=now,
            value=1.0,
            score=1.0,
            probability=1.0,
            detector="prediction:error_budget_burn",
            type="prediction",
        )
    )
    with server.client() as c:
        h = c.get("/api/v1/services/billing/health").json()
    assert h["status"] == "ok" and h["score"] >= 90, h


def test_a_service_label_with_a_slash_is_fetched_by_its_name(server: RunningServer) -> None:
    """Prometheus labels may hold '/' (a job named "namespace/name"); such a service was listed but its
    page, health and registration answered 404 or 405. The dashboard sends the name URL-encoded."""
    push(server, golden("shop/cart", time.time() - 1))
    with server.client() as c:
        listed = [s["name"] for s in c.get("/api/v1/services").json()]
        one = c.get("/api/v1/services/shop%2Fcart")
        health = c.get("/api/v1/services/shop%2Fcart/health")
        plain = c.get("/api/v1/services/shop/cart/health")
        register = c.put("/api/v1/services/shop%2Fcart", json={"by": "ana", "type": "api"})
        pause = c.put("/api/v1/automation/services/shop%2Fcart", json={"paused": True, "why": "test"})
        forecast = c.get("/api/v1/forecasts/shop%2Fcart")
    assert "shop/cart" in listed
    assert one.status_code == 200 and one.json()["name"] == "shop/cart", one.text
    assert health.status_code == 200 and health.json()["service"] == "shop/cart", health.text
    assert plain.status_code == 200 and plain.json()["service"] == "shop/cart", plain.text
    # A registration's name is a DNS-style name: the reason, not a 405.
    assert register.status_code == 422 and "service name 'shop/cart'" in register.text, register.text
    assert pause.status_code in (200, 503), pause.text  # 503 when healing is off in this server
    assert forecast.status_code in (200, 404) and "shop/cart" in forecast.text, forecast.text


def test_metrics_export_every_service_fresh_at_each_scrape(server: RunningServer) -> None:
    """The exported score was set only by REST requests: services nobody asked about were missing, a
    score froze at the last request, and a service without a score was a NaN alert rules choke on."""
    now = time.time()
    # checkout's data ends two minutes ago: its current value is its last point until newer points come.
    push(server, [*golden("checkout", now - 130), *golden("payments", now - 1)])
    push(server, [series("queue_depth", {"service": "worker"}, [1.0, 2.0], now - 1)])
    with server.client() as c:
        first = scrape(c)
        assert set(first[SCORE]) == {"checkout", "payments"}  # worker has no score: absent, not NaN
        assert all(math.isfinite(v) for v in first[SCORE].values())
        assert first[STATUS]["worker"] == {"ok": 0.0, "degraded": 0.0, "critical": 0.0, "unknown": 1.0}
        assert first[STATUS]["checkout"]["ok"] == 1.0 and sum(first[STATUS]["checkout"].values()) == 1.0
        assert first[SCORE]["checkout"] >= 90
        # The data changes: checkout starts failing, a new service reports. Nobody calls the REST route.
        push(server, [series("error_ratio", {"service": "checkout"}, [0.4] * 8, time.time() - 1)])
        push(server, golden("redis", time.time() - 1))
        second = scrape(c)
        assert set(second[SCORE]) == {"checkout", "payments", "redis"}
        assert second[SCORE]["checkout"] < 50 and second[STATUS]["checkout"]["critical"] == 1.0, second
        assert second[STATUS]["checkout"]["ok"] == 0.0
        # The same numbers the route reports, asked only now.
        for name in ("checkout", "payments", "redis", "worker"):
            h = c.get(f"/api/v1/services/{name}/health").json()
            assert second[SCORE].get(name) == h["score"], (name, h)
            assert second[STATUS][name][h["status"]] == 1.0
    assert "opsmind_ingest_samples_total" in second["other"], "the engine's own metrics are there too"


def test_metrics_survive_a_store_that_does_not_answer(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    push(server, golden("checkout", time.time() - 1))

    def down(*args: object, **kwargs: object) -> object:
        raise OSError("database server went away")

    monkeypatch.setattr(server.engine.store, "series", down)
    with server.client() as c:
        metrics = scrape(c)
    assert metrics[SCORE] == {} and metrics[STATUS] == {}
    assert "opsmind_ingest_samples_total" in metrics["other"], "the engine's own metrics are still served"
