"""``opsmind demo`` as a user runs it: health within 60 s, anomalies and an incident within 2 minutes;
access control is on (the users of ``--auth-file``) and healing is on."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import free_port

pytestmark = pytest.mark.slow


def test_demo_serves_health_then_shows_an_incident(tmp_path: Path) -> None:
    port = free_port()
    users = tmp_path / "users.yaml"
    users.write_text(yaml.safe_dump({"olga": {"password": "demo-operator-pw", "role": "operator"}}))
    start = time.time()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsmind",
            "demo",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
            "--fault-after",
            "5",
            "--auth-file",
            str(users),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        while True:
            assert time.time() - start < 60, "no /api/v1/health within 60 s"
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "demo exited"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert httpx.get(url + "/incidents", timeout=5).status_code == 401  # access control is on
        login = {"username": "olga", "password": "demo-operator-pw"}
        token = httpx.post(url + "/auth/login", json=login, timeout=5).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        # The first demo fault slows personalization: an incident with it must open within two minutes
        # (its callers slow down with it, and the declared call graph groups them into one incident), and
        # its root-cause ranking names personalization first.
        services_with_incidents: set[object] = set()
        mine: list[dict[str, Any]] = []
        while time.time() - start < 120 and not mine:
            incidents = httpx.get(url + "/incidents", headers=auth, timeout=5).json()
            services_with_incidents = {s for i in incidents for s in (i["service"], *i["services"])}
            mine = [i for i in incidents if "personalization" in (i["service"], *i["services"])]
            time.sleep(1)
        assert mine, f"incidents only on {services_with_incidents}"
        deadline = time.time() + 30  # the ranking follows the incident's opening
        while not mine[0]["root_causes"] and time.time() < deadline:
            time.sleep(1)
            mine[0] = httpx.get(url + f"/incidents/{mine[0]['id']}", headers=auth, timeout=5).json()
        assert mine[0]["root_causes"][0]["service"] == "personalization", mine[0]["root_causes"][:3]
        params = {"service": "personalization"}
        anomalies = httpx.get(url + "/anomalies", params=params, headers=auth, timeout=5).json()
        assert anomalies and all(a["service"] == "personalization" for a in anomalies)
        services = {s["name"] for s in httpx.get(url + "/services", headers=auth, timeout=5).json()}
        assert {
            "gateway",
            "personalization",
            "churn-prevention",
            "comms-optimizer",
            "model-training",
            "postgres",
            "redis",
        } <= services
        # A fault injected by hand shows up as the platform would report it: a Deployment event.
        base = f"http://127.0.0.1:{port}"
        cli = [sys.executable, "-m", "opsmind", "demo", "inject", "--token", token]
        done = subprocess.run(
            [*cli, "bad_deployment", "--service", "comms-optimizer", "-p", "error_rate=0.4", "--url", base],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        refused = subprocess.run(
            [*cli, "bad_deployment", "--service", "nope", "--url", base],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode == 2 and "unknown service" in refused.stdout + refused.stderr
        reasons: set[str] = set()
        while time.time() - start < 150 and "Deployment" not in reasons:
            reasons = {e["reason"] for e in httpx.get(url + "/events", headers=auth, timeout=5).json()}
            time.sleep(1)
        assert "Deployment" in reasons, f"platform events did not reach the engine: {reasons}"
        # Healing is on and acting; riskier runbooks wait for an operator's approval.
        automation = httpx.get(url + "/automation", headers=auth, timeout=5).json()
        assert automation["mode"] == "on" and automation["approval_above_risk"] == 0
    finally:
        proc.terminate()
        proc.wait(20)
