"""The capacity model the predict stage publishes - to the scaler, its bottleneck warnings and the
week-ahead outlook - is bounded by what a saturated fleet served. A configured capacity (or a fit) too
high was published as it was while every pod ran at 100 % CPU: no warning, and an outlook ceiling two or
five times the real one. A real SQLite store; the forecaster is a test double (the last value, +-10 %)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from opsmind.bus.memory import MemoryBus
from opsmind.clock import SimClock
from opsmind.config import load_settings
from opsmind.predict.bottleneck import SATURATION
from opsmind.predict.stage import LoadPrediction, PredictStage, ServiceView
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Series, SeriesSamples
from tests.doubles import LastValue

START = 1_700_000_040.0  # a whole minute
PER_POD = 10.0  # what one pod serves at most, req/s
PODS = 4
MAX_REPLICAS = 8
LOAD = Series.of("request_rate", {"service": "api"})
P95 = Series.of("latency_seconds", {"service": "api", "quantile": "0.95"})
READY = Series.of("replicas_ready", {"service": "api"})
DESIRED = Series.of("replicas_desired", {"service": "api"})
CPU = Series.of("cpu_utilisation", {"service": "api", "job": "opsmind-sim"})  # as a scrape labels it


def put(store: SqliteStore, series: Series, minutes: range, value: float | Callable[[int], float]) -> None:
    """One sample a minute (mid-minute) for each minute of ``minutes`` after START; ``value`` a number or
    a function of the minute."""
    ts = tuple(START + 60 * m + 30 for m in minutes)
    vs = tuple(float(value(m)) if callable(value) else float(value) for m in minutes)
    store.append([SeriesSamples(series, ts, vs)])


def saturated(store: SqliteStore, minutes: range) -> None:
    """4 ready pods, all busy: they serve PODS x PER_POD of a higher offered load, p95 3 s (SLO 0.5 s)."""
    put(store, LOAD, minutes, PODS * PER_POD)
    put(store, P95, minutes, 3.0)
    put(store, READY, minutes, PODS)
    put(store, CPU, minutes, 1.0)


def stage(store: SqliteStore, configured: float | None, at: float) -> PredictStage:
    clock, telemetry = SimClock(at), Telemetry()
    settings = load_settings(predict={"min_history": 30})
    return PredictStage(
        MemoryBus(telemetry=telemetry, clock=clock),
        clock,
        telemetry,
        store,
        store,
        settings.predict,
        LastValue,
        limits={"api": (1, MAX_REPLICAS)},
        known_capacity={} if configured is None else {"api": configured},
    )


def run(predict: PredictStage, at: float, ticks: int) -> tuple[LoadPrediction, list[str], ServiceView]:
    """``ticks`` minutes of the stage from ``at``: the last prediction, the warnings raised, the view."""
    warned: list[str] = []
    for k in range(ticks):
        (pred,), found = predict.step(at + 60 * k + 1)
        warned += [a.labels["warning"] for a in found]
    return pred, warned, predict.views["api"]


@pytest.mark.parametrize("configured", [20.0, 50.0])
def test_a_saturated_fleet_bounds_the_published_capacity_its_warnings_and_outlook(
    tmp_path: Path, configured: float
) -> None:
    # 50 h of a fleet of 4 at 100 % CPU (the outlook needs 48), configured at 2x and 5x what a pod serves;
    # the fit refuses data this saturated, so the configured figure stood: before, the published model
    # said 20 (50)/replica, no warning was raised and the outlook's ceiling was 160 (400) against a real
    # 80, headroom 0.72 (0.89), the peak day needing 3 (1) replicas.
    hours = 50
    end = START + hours * 3600
    with SqliteStore(str(tmp_path / "s.db")) as store:
        saturated(store, range(hours * 60))
        pred, warned, view = run(stage(store, configured, end), end, ticks=5)
        model = view.capacity
        assert model is not None and model.ok
        assert model.saturation_per_replica == pytest.approx(PER_POD)
        assert model.capacity_per_replica == pytest.approx(PER_POD)
        assert "a saturated fleet served no more" in model.reason, model.reason
        assert pred.capacity == model  # what the scaler gets is what warnings and the outlook use
        # The fleet serves all it can: a load at the bound is a risk of saturation now.
        assert SATURATION in warned, warned
        outlook = view.outlook
        assert outlook is not None
        assert outlook.ceiling == pytest.approx(MAX_REPLICAS * PER_POD)
        assert outlook.headroom == pytest.approx(1 - 1.1 * PODS * PER_POD / (MAX_REPLICAS * PER_POD))
        assert outlook.peak is not None and outlook.peak.replicas_needed == PODS + 1

        # A restarted stage reads the bound back from the store's last hours at once.
        pred, _, _ = run(stage(store, configured, end + 120), end + 120, ticks=1)
        assert pred.capacity is not None
        assert pred.capacity.saturation_per_replica == pytest.approx(PER_POD)


def test_a_fit_made_too_high_is_bounded_too(tmp_path: Path) -> None:
    # Six hours of a service that served 30/replica at saturation (p95 = 0.1 / (1 - x / 30), up to 50 % of
    # it): the fit says 24/replica within the SLO. Then a release makes it three times slower and its 4
    # pods saturate at 10/replica; the fit is redone every 15 minutes only (and refuses data that
    # saturated), so until then it stood as it was - 30/replica - while every pod ran at 100 % CPU.
    healthy = range(360)
    with SqliteStore(str(tmp_path / "s.db")) as store:

        def load(m: int) -> float:
            return PODS * (9.0 + 6.0 * math.sin(2 * math.pi * m / 60))

        put(store, LOAD, healthy, load)
        put(store, P95, healthy, lambda m: 0.1 / (1 - load(m) / PODS / 30.0))
        put(store, READY, healthy, PODS)
        put(store, CPU, healthy, lambda m: load(m) / PODS / 30.0)
        at = START + 60 * healthy.stop
        predict = stage(store, None, at)
        _, _, view = run(predict, at, ticks=1)
        fitted = view.capacity
        assert fitted is not None and fitted.ok and fitted.n_samples == 360, fitted
        assert fitted.saturation_per_replica == pytest.approx(30.0, rel=0.01)
        saturated(store, range(360, 370))
        pred, _, view = run(predict, at + 60, ticks=10)
        model = view.capacity
        assert model is not None and pred.capacity == model
        assert model.n_samples == 360  # still the fit, bounded
        assert model.saturation_per_replica == pytest.approx(PER_POD)
        assert model.capacity_per_replica == model.capacity_hi == pytest.approx(PER_POD)
        assert model.reason.endswith(f"not {fitted.reason}"), model.reason
        assert "a saturated fleet served no more" in model.reason, model.reason


def test_pods_still_starting_do_not_lower_the_bound(tmp_path: Path) -> None:
    # A fleet of 4, saturated, asks for 10 (replicas counted as desired); the 6 new pods take two minutes
    # to start (within SETTLE_S: a start-up longer than that is not caught), and the saturated minutes
    # meanwhile, 40 req/s over 10 counted, would put the bound at 4/replica, less than half what a pod
    # serves.
    with SqliteStore(str(tmp_path / "s.db")) as store:
        put(store, LOAD, range(62), PODS * PER_POD)
        put(store, CPU, range(62), 1.0)
        put(store, DESIRED, range(60), PODS)
        put(store, DESIRED, range(60, 70), 10)
        put(store, LOAD, range(62, 70), 70.0)  # 10 pods up, serving the offered 70 at 70 %
        put(store, CPU, range(62, 70), 0.7)
        end = START + 70 * 60
        pred, _, _ = run(stage(store, 20.0, START + 50 * 60), START + 50 * 60, ticks=21)
        assert pred.at > end
        assert pred.capacity is not None
        assert pred.capacity.saturation_per_replica == pytest.approx(PER_POD)
