"""The predict stage's latency-SLO warnings by the learned rule: every complete minute of load and latency
reaches the service's learner in order, it learns in the running stage, its model is saved on a refit and
restored by a restarted stage (which then warns with it at once, not the gate alone for half a day), and a
saved model that no longer fits is ignored with a note rather than crashing the stage. A real SQLite store;
the forecaster is a test double (seasonal naive), so the test is about the stage, not forecast quality."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from opsmind.bus.memory import MemoryBus
from opsmind.clock import SimClock
from opsmind.config import load_settings
from opsmind.predict.base import Forecast
from opsmind.predict.bottleneck import LATENCY_SLO_RISK
from opsmind.predict.stage import PredictStage
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Series, SeriesSamples, WarningModel

PERIOD = 60  # minutes of the load's cycle
START = 1_700_000_040.0  # a whole minute


class SeasonalNaive:
    """A test double: the value one period ago, +-10 %."""

    def fit(self, y: np.ndarray) -> None:
        self.y = list(map(float, y))

    def update(self, y_new: np.ndarray) -> None:
        self.y.extend(map(float, y_new))

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        back = np.asarray(self.y[-PERIOD:] * 2)
        mean = back[:h] if len(self.y) >= PERIOD else np.full(h, self.y[-1])
        return Forecast(mean, dict.fromkeys(levels, mean * 0.9), dict.fromkeys(levels, mean * 1.1), "snaive")


def fill(store: SqliteStore, minutes: int) -> None:
    """``minutes`` of one service: load cycling 22-42/s an hour on 4 replicas of 10/s each; p95 over the
    0.5 s SLO while the load is over 40/s (a breach every hour)."""
    rng = np.random.default_rng(1)
    ts = tuple(START + 60 * k + 30 for k in range(minutes))
    load = [32 + 10 * math.sin(2 * math.pi * k / PERIOD) + rng.normal(0, 0.5) for k in range(minutes)]
    p95 = tuple(0.9 if x > 40 else 0.1 for x in load)
    store.append(
        [
            SeriesSamples(Series.of("request_rate", {"service": "api"}), ts, tuple(load)),
            SeriesSamples(Series.of("latency_seconds", {"service": "api", "quantile": "0.95"}), ts, p95),
            SeriesSamples(Series.of("replicas_ready", {"service": "api"}), ts, (4.0,) * minutes),
        ]
    )


def stage(store: SqliteStore) -> PredictStage:
    clock = SimClock(START)
    telemetry = Telemetry()
    settings = load_settings(predict={"min_history": 30, "refit_every": 60, "outlook_interval_s": 10**9})
    return PredictStage(
        MemoryBus(telemetry=telemetry, clock=clock),
        clock,
        telemetry,
        store,
        store,
        settings.predict,
        SeasonalNaive,
        known_capacity={"api": 10.0},
    )


def test_the_stage_learns_saves_and_a_restarted_stage_warns_with_the_saved_model(tmp_path: Path) -> None:
    minutes = 1100  # 720 labelled minutes, then up to an hour until its refit phase comes round
    with SqliteStore(str(tmp_path / "s.db")) as store:
        fill(store, minutes)
        first = stage(store)
        fired = 0
        for k in range(1, minutes + 1):
            first.step(START + 60 * k + 1)
            fired += any(w.kind == LATENCY_SLO_RISK for w in first.views["api"].warnings)
        learned = first._states["api"].learned
        assert learned is not None and learned.learner.ready
        # It learned from the minutes the stage fed it, one per step, none twice.
        assert learned.learner.minute == minutes - 1 and learned.learner.labelled >= 720
        assert fired > 0 and first.views["api"].notes["latency_warning"].startswith("learned rule")
        saved = store.get(WarningModel, f"api/{LATENCY_SLO_RISK}")
        assert saved is not None and saved.params == learned.learner.export_model()

        second = stage(store)
        second.step(START + 60 * (minutes + 1) + 1)
        again = second._states["api"].learned
        assert again is not None and again.learner.ready and again.learner.fits == learned.learner.fits
        assert again.learner.labelled == 0  # the examples are not kept: only the model
        assert second.views["api"].notes["latency_warning"].startswith("learned rule")


def test_a_saved_model_that_does_not_fit_is_ignored(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "s.db")) as store:
        fill(store, 60)
        store.put(
            WarningModel(
                id=f"api/{LATENCY_SLO_RISK}",
                at=START,
                service="api",
                warning=LATENCY_SLO_RISK,
                params={"features": ["something else"]},
            )
        )
        s = stage(store)
        s.step(START + 60 * 61 + 1)
        learned = s._states["api"].learned
        assert learned is not None and not learned.learner.ready
        assert s.views["api"].notes["latency_warning"].startswith("the gate alone while the rule learns")
        assert "error" not in s.views["api"].notes


def test_without_learn_warnings_the_gate_alone_decides(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "s.db")) as store:
        fill(store, 60)
        s = stage(store)
        s.settings = s.settings.model_copy(update={"learn_warnings": False})
        s.step(START + 60 * 61 + 1)
        assert s._states["api"].learned is None and "latency_warning" not in s.views["api"].notes
