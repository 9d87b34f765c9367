"""A REAL Prometheus server (Debian package ``prometheus``) scrapes the running fleet simulator.

The simulator runs the default fleet in a background thread, one 5 s step every 0.1 s of wall time, and
hands every step to an :class:`~opsmind.sim.exposition.ExpositionServer`. Prometheus, started on loopback
with a temporary configuration, scrapes ``/metrics`` (every series) and ``/metrics/personalization``
(one target per service) every second. Once Prometheus has stored healthy values, the test injects a bad
deployment into ``personalization`` and waits until Prometheus' query API shows the error ratio up.

Only the background thread touches the ``SimRun``: the fault reaches it through a queue.
CI sets OPSMIND_REQUIRE_PROMETHEUS=1 so a missing binary fails the run instead of skipping the test.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest

from opsmind.sim.exposition import ExpositionServer
from opsmind.sim.runner import SimRun, default_scenario
from opsmind.sim.spec import FaultSpec
from tests.conftest import free_port, need_prometheus

pytestmark = [pytest.mark.slow, pytest.mark.prometheus]

STEP_WALL_S = 0.1  # one simulated step (5 s) every 0.1 s of wall time: 50x real time
SERVICE = "personalization"
ALL = f'error_ratio{{service="{SERVICE}",job="opsmind-sim"}}'  # honor_labels keeps the sim's job label
ONE = 'error_ratio{job="sim-personalization"}'  # the per-service target, under Prometheus' job label


@dataclass
class PacedSim:
    """A SimRun stepping in its own thread; the only way in is the fault queue."""

    exposition: ExpositionServer
    faults: queue.Queue[FaultSpec] = field(default_factory=queue.Queue)
    stop: threading.Event = field(default_factory=threading.Event)
    injected_at: list[float] = field(default_factory=list)  # simulated time of each injection
    steps: int = 0
    error: BaseException | None = None

    def run(self) -> None:
        try:
            run = SimRun(default_scenario(duration_s=86_400))
            next_tick = time.monotonic()
            while not self.stop.is_set() and not run.done:
                while True:
                    try:
                        spec = self.faults.get_nowait()
                    except queue.Empty:
                        break
                    run.inject(spec)
                    self.injected_at.append(run.fleet.t)
                step = run.step()
                self.exposition.update(step.samples)
                self.steps += 1
                next_tick += STEP_WALL_S
                self.stop.wait(max(0.0, next_tick - time.monotonic()))
        except BaseException as exc:  # re-raised by the test
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError("the simulator thread failed") from self.error


@pytest.fixture
def sim() -> Iterator[PacedSim]:
    with ExpositionServer() as exposition:
        paced = PacedSim(exposition)
        thread = threading.Thread(target=paced.run, name="paced-sim", daemon=True)
        thread.start()
        try:
            yield paced
        finally:
            paced.stop.set()
            thread.join(timeout=10)
    paced.check()


def _start_prometheus(binary: str, tmp_path: Path, sim_port: int) -> tuple[subprocess.Popen[bytes], str]:
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sim
    honor_labels: true
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:{sim_port}"]
  - job_name: sim-{SERVICE}
    metrics_path: /metrics/{SERVICE}
    static_configs:
      - targets: ["127.0.0.1:{sim_port}"]
""")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return proc, f"http://127.0.0.1:{prom_port}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _wait_for(
    what: str,
    probe: Callable[[], float | None],
    done: Callable[[float], bool],
    timeout_s: float,
    alive: Callable[[], None],
) -> float:
    """Poll ``probe`` until ``done`` holds for its value; fail with the last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: float | None = None
    while time.monotonic() < deadline:
        alive()
        last = probe()
        if last is not None and done(last):
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}; last value {last}")


def test_real_prometheus_scrapes_the_simulator_and_sees_a_fault(sim: PacedSim, tmp_path: Path) -> None:
    binary = need_prometheus()
    proc, prom_url = _start_prometheus(binary, tmp_path, sim.exposition.port)
    started = time.monotonic()
    try:
        with httpx.Client(base_url=prom_url, timeout=5) as client:

            def alive() -> None:
                sim.check()
                if proc.poll() is not None:
                    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                    pytest.fail(f"prometheus exited with {proc.returncode}: {err[-2000:]}")

            def query(promql: str) -> float | None:
                """The single value of an instant query, None while there is none (or not ready)."""
                try:
                    r = client.get("/api/v1/query", params={"query": promql})
                except httpx.TransportError:
                    return None  # still starting
                if r.status_code == 503:
                    return None  # not ready yet
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["status"] == "success", body
                result = body["data"]["result"]
                if not result:
                    return None
                assert len(result) == 1, f"{promql} matched several series: {result}"
                return float(result[0]["value"][1])

            # 1. Healthy: both targets are up and Prometheus has stored several low error ratios.
            for promql in (f"count_over_time({ALL}[1m])", f"count_over_time({ONE}[1m])"):
                _wait_for(f"3 samples of {promql}", partial(query, promql), lambda v: v >= 3, 20, alive)
            assert query('sum(up{job=~"sim|sim-personalization"})') == 2
            healthy_max = query(f"max_over_time({ALL}[1m])")
            assert healthy_max is not None and healthy_max < 0.1, healthy_max
            # The per-service target carries that service's series only (besides Prometheus' own
            # per-target series such as up and scrape_duration_seconds, which have no service label).
            own = f'job="sim-{SERVICE}",__name__!~"up|scrape_.+"'
            assert query(f"count(count by (service) ({{{own}}}))") == 1
            assert query(f'count({{{own},service!="{SERVICE}"}})') is None
            # Every sample Prometheus took from /metrics parsed: nothing was dropped or rejected.
            samples_scraped = query('scrape_samples_scraped{job="sim"}')
            assert samples_scraped is not None and samples_scraped > 100
            assert query('scrape_samples_post_metric_relabeling{job="sim"}') == samples_scraped

            # 2. The fault, handed to the simulator thread (the only one that touches the SimRun).
            sim.faults.put(
                FaultSpec(kind="bad_deployment", service=SERVICE, at_s=0, params={"error_rate": 0.5})
            )
            faulty = _wait_for(f"{ALL} > 0.3", lambda: query(ALL), lambda v: v > 0.3, 15, alive)
            assert sim.injected_at, "the simulator thread never took the fault"
            assert faulty <= 1.0
            _wait_for(f"{ONE} > 0.3", lambda: query(ONE), lambda v: v > 0.3, 10, alive)

            # 3. Prometheus' own history holds both: low before the fault, high after.
            assert (query(f"min_over_time({ALL}[2m])") or 1.0) < 0.1
            assert (query(f"max_over_time({ALL}[2m])") or 0.0) > 0.3
    finally:
        _stop(proc)
    assert time.monotonic() - started < 40
    assert sim.steps > 0
