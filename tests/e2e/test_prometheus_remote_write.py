"""A REAL Prometheus server (Debian package ``prometheus``) remote-writes into OpsMind.

The test starts Prometheus on loopback with a temporary configuration: it scrapes a small exporter the
test runs (prometheus_client on a free port, with a metric whose value the test sets) and itself, and
remote-writes everything to OpsMind's ``/api/v1/write``. It asserts the samples arrived in OpsMind's store.
CI sets OPSMIND_REQUIRE_PROMETHEUS=1 so a missing binary fails the run instead of skipping the test.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from opsmind.types import Series
from tests.conftest import RunningServer, free_port, need_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]


def test_real_prometheus_remote_writes_into_opsmind(server: RunningServer, tmp_path: Path) -> None:
    binary = need_prometheus()
    registry = CollectorRegistry()
    gauge = Gauge("checkout_queue_depth", "queue depth", ["service"], registry=registry)
    gauge.labels("gateway").set(42.5)
    exporter_port = free_port()
    exporter, _ = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)

    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: exporter
    static_configs:
      - targets: ["127.0.0.1:{exporter_port}"]
  - job_name: prometheus
    static_configs:
      - targets: ["127.0.0.1:{prom_port}"]
remote_write:
  - url: {server.url}/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
""")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--storage.remote.flush-deadline=2s",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 60
        got: Any = None
        series = Series.of(
            "checkout_queue_depth",
            {"instance": f"127.0.0.1:{exporter_port}", "job": "exporter", "service": "gateway"},
        )
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "prometheus exited"
            with server.client() as c:
                r = c.get(
                    "/api/v1/series/query", params={"series": series.key, "start": 0, "resolution": "raw"}
                )
                assert r.status_code == 200, r.text
                got = r.json()
                if len(got["values"]) >= 2:
                    break
            time.sleep(0.5)
        assert got is not None and len(got["values"]) >= 2, f"no remote-written samples arrived: {got}"
        assert all(v == 42.5 for v in got["values"])
        # Prometheus' own metrics arrived too, and no request of Prometheus was rejected.
        with server.client() as c:
            up = c.get("/api/v1/series", params={"match": ["__name__=up", "job=prometheus"]}).json()
        assert up, "Prometheus' own 'up' series did not arrive"
        assert server.engine.telemetry.value("opsmind_ingest_samples_total", {"source": "remote_write"}) > 0
        rejected = sum(
            server.engine.telemetry.value(
                "opsmind_ingest_rejected_requests_total", {"source": "remote_write", "status": s}
            )
            for s in ("400", "413", "415", "422")
        )
        assert rejected == 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        exporter.shutdown()
