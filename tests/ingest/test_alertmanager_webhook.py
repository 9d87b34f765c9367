"""Alertmanager webhooks (v4) into OpsMind over real HTTP: with and without newer fields, repeated
notifications, resolved alerts, and malformed bodies refused with a reason; and a REAL Alertmanager
(Debian prometheus-alertmanager) on loopback whose webhook receiver is OpsMind."""

from __future__ import annotations

import copy
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmind.ingest.alertmanager import parse
from opsmind.ingest.errors import IngestError
from opsmind.types import Anomaly, Incident, IncidentStatus
from tests.conftest import RunningServer, free_port, need_alertmanager, start_server

V4: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}:{alertname="HighLatency"}',
    "status": "firing",
    "receiver": "opsmind",
    "groupLabels": {"alertname": "HighLatency"},
    "commonLabels": {"alertname": "HighLatency", "service": "checkout"},
    "commonAnnotations": {},
    "externalURL": "http://am:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "HighLatency", "service": "checkout", "severity": "critical"},
            "annotations": {"summary": "p99 over 1 s"},
            "startsAt": "2026-01-01T00:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prom:9090/graph",
            "fingerprint": "abc",
        },
        {
            "status": "firing",
            "labels": {"alertname": "HighErrors", "job": "payments"},
            "startsAt": "2026-01-01T00:00:05Z",
        },
        {"status": "resolved", "labels": {"alertname": "Old", "service": "checkout"}},
    ],
}


def test_parse_maps_alerts_to_anomalies() -> None:
    got = parse(V4, now=1_800_000_000.0)
    assert got.resolved_total == 1 and len(got.resolved) == 1 and len(got.firing) == 2
    a, b = got.firing
    assert a.service == "checkout" and a.detector == "alertmanager" and a.probability == 0.999999
    assert a.series == 'ALERTS{alertname="HighLatency",service="checkout",severity="critical"}'
    assert a.ts == 1_767_225_600.0
    assert b.service == "payments" and b.probability == 0.999  # no severity label
    again = parse(copy.deepcopy(V4), now=1_800_000_100.0).firing
    assert [x.id for x in again] == [a.id, b.id]  # a repeated notification is the same anomaly


def test_newer_and_missing_fields_are_tolerated() -> None:
    newer = copy.deepcopy(V4)
    newer["truncatedAlerts"] = 0
    newer["alerts"][0]["someFutureField"] = {"x": 1}
    assert len(parse(newer, now=0.0).firing) == 2
    minimal = {"alerts": [{"labels": {"alertname": "Bare"}}]}
    (only,) = parse(minimal, now=42.0).firing
    assert only.service == "external" and only.ts == 42.0


def test_a_resolved_alert_names_the_anomaly_its_firing_made() -> None:
    firing = copy.deepcopy(V4)
    resolved = copy.deepcopy(V4)
    for alert in resolved["alerts"]:
        alert["status"] = "resolved"
        alert["endsAt"] = "2026-01-01T01:00:00Z"
    made = parse(firing, now=1_800_000_000.0)
    ended = parse(resolved, now=1_800_003_600.0)  # an hour later: ids do not follow arrival
    assert ended.firing == [] and ended.resolved_total == 3
    # The third alert was resolved in both bodies and has no startsAt: its id follows when it arrived,
    # like a firing alert's would, so only the first two can be checked against a firing anomaly.
    assert ended.resolved[:2] == [a.id for a in made.firing]
    assert len(set(ended.resolved)) == 3
    # Another start is another firing of the alert: another anomaly, another id.
    resolved["alerts"][0]["startsAt"] = "2026-01-01T00:30:00Z"
    assert parse(resolved, now=1_800_003_600.0).resolved[0] != made.firing[0].id


def test_a_resolved_alert_that_cannot_be_named_is_only_counted() -> None:
    # Its firing notifications were refused for the same fault, so no anomaly can have its id; refusing
    # the batch would lose the other alerts in it.
    body = {
        "alerts": [
            {"status": "resolved", "labels": {"bad-label": "x"}},
            {"status": "resolved", "labels": {"alertname": "X"}, "startsAt": "yesterday"},
            {"status": "firing", "labels": {"alertname": "Y"}, "startsAt": "2026-01-01T00:00:00Z"},
        ]
    }
    got = parse(body, now=1_800_000_000.0)
    assert (len(got.firing), got.resolved, got.resolved_total) == (1, [], 2)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"version": "4"}, "alerts: Field required"),
        ({"alerts": {"labels": {}}}, "alerts"),
        ({"alerts": [{"annotations": {}}]}, "alerts.0.labels: Field required"),
        ({"alerts": [{"labels": {"alertname": "X"}, "status": "pending"}]}, "must be 'firing' or 'resolved'"),
        ({"alerts": [{"labels": {"alertname": "X"}, "startsAt": "yesterday"}]}, "not an RFC 3339 time"),
        ({"alerts": [{"labels": {"bad-label": "X"}}]}, "invalid label name"),
        ([1, 2], "(body)"),
    ],
)
def test_malformed_bodies_name_the_problem(body: Any, message: str) -> None:
    with pytest.raises(IngestError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        parse(body, now=0.0)
    assert info.value.status == 422


def test_webhooks_over_http_open_an_incident_and_refuse_bad_bodies(server: RunningServer) -> None:
    with server.client() as c:
        r = c.post("/api/v1/alerts/alertmanager", json=V4)
        assert r.status_code == 200, r.text
        assert r.json() == {"firing": 2, "resolved": 1}
        bad = c.post("/api/v1/alerts/alertmanager", json={"alerts": [{"labels": {"bad-label": "x"}}]})
        assert bad.status_code == 422 and "invalid label name" in bad.json()["detail"]
        assert bad.headers["content-type"].startswith("application/problem+json")
        notjson = c.post(
            "/api/v1/alerts/alertmanager", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert notjson.status_code == 400 and "not JSON" in notjson.json()["detail"]
        stored = c.get("/api/v1/anomalies", params={"service": "checkout"}).json()
        assert any(a["detector"] == "alertmanager" for a in stored)
    # The alert firing again (a new startsAt) joins the incident its first firing opened.
    with server.client() as c:
        c.post("/api/v1/alerts/alertmanager", json=V4)
        second = copy.deepcopy(V4)
        second["alerts"][0]["startsAt"] = "2026-01-01T00:00:20Z"
        c.post("/api/v1/alerts/alertmanager", json=second)
    for _ in range(100):
        incidents = [i for i in server.engine.store.find(Incident) if i.service == "checkout"]
        if incidents:
            break
        time.sleep(0.05)
    assert len(incidents) == 1
    assert len([a for a in server.engine.store.find(Anomaly) if a.service == "checkout"]) == 2


def test_a_start_far_ahead_of_the_clock_is_taken_as_now() -> None:
    # A sender whose clock is off by years stored an anomaly in 9999, the newest of every listing; refusing
    # it would lose the batch's other alerts, so it is firing now.
    body = {"alerts": [{"labels": {"alertname": "X", "service": "s"}, "startsAt": "9999-12-31T23:59:59Z"}]}
    (anomaly,) = parse(body, now=1_800_000_000.0).firing
    assert anomaly.ts == 1_800_000_000.0
    body["alerts"][0]["startsAt"] = "2027-01-15T08:05:00Z"  # within the grace: kept as sent
    (anomaly,) = parse(body, now=datetime(2027, 1, 15, 8, 0, tzinfo=UTC).timestamp()).firing
    assert anomaly.ts == datetime(2027, 1, 15, 8, 5, tzinfo=UTC).timestamp()


# Alertmanager's own timers shrunk to a second, so it re-sends the firing alert every second or two.
AM_CONFIG = """
route:
  receiver: opsmind
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1s
receivers:
  - name: opsmind
    webhook_configs:
      - url: {url}/api/v1/alerts/alertmanager
        send_resolved: true
"""
RESOLVE_AFTER_S = 8.0


def until(cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if got := cond():
            return got
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def metric(server: RunningServer, name: str) -> float:
    """The sum of a metric's samples (over all its labels, unless ``name`` gives them)."""
    with server.client() as c:
        text = c.get("/metrics").text
    found = re.findall(rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+]+)$", text, re.M)
    return sum(float(v) for v in found)


@pytest.fixture
def opsmind_behind_alertmanager(make_settings: Any, tmp_path: Path) -> Iterator[tuple[RunningServer, str]]:
    """OpsMind (min_anomalies at its default of 2) as the webhook receiver of a real Alertmanager; yields
    both, Alertmanager as its base URL."""
    binary = need_alertmanager()
    settings = make_settings(incidents={"resolve_after_s": RESOLVE_AFTER_S, "check_interval_s": 0.2})
    running, srv, thread = start_server(settings)
    port = free_port()
    (tmp_path / "am.yml").write_text(AM_CONFIG.format(url=running.url))
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    am = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{am}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        until(ready, timeout=10)
        yield running, am
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        srv.should_exit = True
        thread.join(timeout=15)


@pytest.mark.slow
def test_one_alert_from_a_real_alertmanager_opens_one_incident_its_repeats_do_not_count(
    opsmind_behind_alertmanager: tuple[RunningServer, str],
) -> None:
    server, am = opsmind_behind_alertmanager
    start = datetime.now(UTC)
    alert = {
        "labels": {"alertname": "QueueBacklog", "service": "event-ingest", "severity": "critical"},
        "annotations": {"summary": "events queue up"},
        "startsAt": start.isoformat(),
        "endsAt": datetime.fromtimestamp(start.timestamp() + 300, UTC).isoformat(),
    }
    assert httpx.post(f"{am}/api/v2/alerts", json=[alert]).status_code == 200

    def ours() -> list[Incident]:
        return [i for i in server.engine.store.find(Incident) if i.service == "event-ingest"]

    (inc,) = until(ours)  # the one alert, from Alertmanager's first notification
    assert inc.status is IncidentStatus.OPEN and inc.anomaly_count == 1
    # Alertmanager re-sends it while it fires: the same alert, not more of it.
    until(lambda: metric(server, 'opsmind_ingest_alerts_total{source="alertmanager"}') >= 3)
    (inc,) = ours()
    assert inc.status is IncidentStatus.OPEN and inc.anomaly_count == 1
    assert len(server.engine.store.find(Anomaly, service="event-ingest")) == 1
    # It resolves in Alertmanager, which sends the resolution; the incident resolves once quiet for
    # resolve_after_s since the alert started, and nothing reopened or duplicated it.
    ended = {**alert, "endsAt": datetime.now(UTC).isoformat()}
    assert httpx.post(f"{am}/api/v2/alerts", json=[ended]).status_code == 200
    (inc,) = until(lambda: [i for i in ours() if i.status is IncidentStatus.RESOLVED])
    time.sleep(2)  # Alertmanager's last notifications of the group have been delivered by now
    (inc,) = ours()
    assert inc.status is IncidentStatus.RESOLVED and inc.reopened == 0 and inc.anomaly_count == 1
    assert metric(server, "opsmind_ingest_rejected_requests_total") == 0  # its payloads were all accepted
