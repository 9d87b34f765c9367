"""Incidents as Alertmanager alerts, against a REAL Alertmanager (Debian prometheus-alertmanager) started
on loopback: an opened incident is active in its /api/v2/alerts, and resolved there when it resolves."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opsmind.config import AlertmanagerSettings
from opsmind.incidents import grouping
from opsmind.incidents.muting import ALERTNAME
from opsmind.notify.alertmanager import AlertmanagerNotifier, alert_of, severity
from opsmind.types import Anomaly
from tests.conftest import free_port, need_alertmanager

CONFIG = """
route:
  receiver: blackhole
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: blackhole
"""


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    binary = need_alertmanager()
    port = free_port()
    (tmp_path / "am.yml").write_text(CONFIG)
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        else:
            pytest.fail("alertmanager did not become ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def incident(now: float):  # type: ignore[no-untyped-def]
    a = Anomaly(
        at=now,
        service="checkout",
        series='latency_seconds{service="checkout"}',
        ts=now - 30,
        value=2.0,
        expected=0.2,
        score=6.0,
        probability=0.999999,
        detector="ensemble",
    )
    inc = grouping.open_incident(a, now)
    return inc.model_copy(
        update={"root_causes": ({"service": "db", "score": 3.0, "evidence": "cpu rose 9 sd"},)}
    )


def ours(url: str, **params: str) -> list[dict]:  # type: ignore[type-arg]
    alerts = httpx.get(f"{url}/api/v2/alerts", params={"filter": f'alertname="{ALERTNAME}"', **params}).json()
    return [a for a in alerts if a["labels"].get("alertname") == ALERTNAME]


@pytest.mark.slow
async def test_an_incident_fires_and_resolves_in_a_real_alertmanager(alertmanager: str) -> None:
    now = time.time()
    inc = incident(now)
    notifier = AlertmanagerNotifier(AlertmanagerSettings(url=alertmanager, extra_labels={"team": "sre"}))
    try:
        result = await notifier.notify("opened", inc)
        assert result.ok, result.detail
        active = ours(alertmanager)
        assert len(active) == 1
        alert = active[0]
        assert alert["status"]["state"] == "active"
        assert alert["labels"]["incident_id"] == inc.id and alert["labels"]["service"] == "checkout"
        assert alert["labels"]["team"] == "sre" and alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["root_cause"].startswith("db: cpu rose")
        resolved = grouping.resolve(inc, time.time(), "quiet")
        assert (await notifier.notify("resolved", resolved)).ok
        # Resolved alerts are no longer listed as active.
        assert ours(alertmanager, active="true") == []
    finally:
        await notifier.aclose()


@pytest.mark.slow
async def test_a_change_of_labels_leaves_no_stale_alert_firing(alertmanager: str) -> None:
    """An incident's severity grows as worse anomalies join it (warning -> critical). Alertmanager
    identifies an alert by its labels, so the warning alert must be resolved when the critical one
    replaces it, or it would stay active until its endsAt (an hour) after the incident is over."""
    now = time.time()
    inc = incident(now).model_copy(update={"max_probability": 0.99995})
    notifier = AlertmanagerNotifier(AlertmanagerSettings(url=alertmanager))
    try:
        assert (await notifier.notify("opened", inc)).ok
        assert [a["labels"]["severity"] for a in ours(alertmanager, active="true")] == ["warning"]
        worse = inc.model_copy(update={"max_probability": 0.9999999})
        assert (await notifier.notify("updated", worse)).ok
        assert [a["labels"]["severity"] for a in ours(alertmanager, active="true")] == ["critical"]
        assert (await notifier.notify("resolved", grouping.resolve(worse, time.time(), "quiet"))).ok
        assert ours(alertmanager, active="true") == []
    finally:
        await notifier.aclose()


async def test_refusals_and_unreachable_servers_say_whether_to_retry() -> None:
    now = time.time()
    inc = incident(now)

    def reply(status: int) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(status, text="no")))

    # httpx.MockTransport stands in for the server here: the real one cannot be made to return these.
    settings = AlertmanagerSettings(url="http://127.0.0.1:9")
    bad = await AlertmanagerNotifier(settings, reply(400)).notify("opened", inc)
    busy = await AlertmanagerNotifier(settings, reply(503)).notify("opened", inc)
    down = await AlertmanagerNotifier(AlertmanagerSettings(url=f"http://127.0.0.1:{free_port()}")).notify(
        "opened", inc
    )
    assert not bad.ok and not bad.retryable
    assert not busy.ok and busy.retryable
    assert not down.ok and down.retryable


def test_alert_fields() -> None:
    now = time.time()
    inc = incident(now)
    firing = alert_of(inc, now)
    assert firing["startsAt"].endswith("Z") and firing["endsAt"] > firing["startsAt"]
    resolved = alert_of(grouping.resolve(inc, now + 5, "quiet"), now + 10)
    assert resolved["endsAt"] < firing["endsAt"]
    assert severity(inc.model_copy(update={"max_probability": 0.5})) == "info"
