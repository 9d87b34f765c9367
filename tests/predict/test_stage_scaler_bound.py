"""The upper bound the predict stage publishes for the scaler is the one ``opsmind bench autoscale`` scores:
the forecast's ``scale_level`` bound checked against its realised one-step errors
(:func:`opsmind.predict.outlook.trusted_upper`). The stage used to publish the model's own 80 % bound as
it was: a model whose interval is 150 times its mean (statsforecast's ETS(M,N,N) on a bursty trace) made
the scaler hold pods for a load 150 times the real one, and a model that kept missing was trusted to its
narrow interval. A real SQLite store; the forecasters are the last-value test double with the interval each
test needs (a test about what the stage does with a forecast, not about forecasting)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from opsmind.bus.memory import MemoryBus
from opsmind.clock import SimClock
from opsmind.config import load_settings
from opsmind.predict.outlook import TRUST_FACTOR, WIDTH_FLOOR
from opsmind.predict.stage import LoadPrediction, PredictStage
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Series, SeriesSamples
from tests.doubles import LastValue

START = 1_700_000_040.0  # a whole minute
LOAD = Series.of("request_rate", {"service": "api"})


class Wide(LastValue):
    """The last value, with an upper bound 150 times it at every level."""

    high = 150.0


class Narrow(LastValue):
    high = 1.01


def stage(store: SqliteStore, make: Callable[[], LastValue]) -> PredictStage:
    clock, telemetry = SimClock(START), Telemetry()
    settings = load_settings(predict={"min_history": 30})
    return PredictStage(
        MemoryBus(telemetry=telemetry, clock=clock), clock, telemetry, store, store, settings.predict, make
    )


def feed(store: SqliteStore, load: Callable[[int], float], minutes: range) -> None:
    ts = tuple(START + 60 * m + 30 for m in minutes)
    store.append([SeriesSamples(LOAD, ts, tuple(float(load(m)) for m in minutes))])


def run(predict: PredictStage, first: int, ticks: int) -> list[LoadPrediction]:
    out = []
    for k in range(first, first + ticks):
        (pred,), _ = predict.step(START + 60 * k + 1)
        out.append(pred)
    return out


def test_an_interval_far_wider_than_the_forecasts_misses_is_capped(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "s.db")) as store:
        feed(store, lambda m: 100.0, range(80))
        predict = stage(store, Wide)
        first = run(predict, 60, 1)[0]
        # No realised error yet: the model's own bound is all there is.
        assert first.upper[0] == pytest.approx(15_000.0)
        assert first.bound == "the model's 95 % bound (0 realised errors, 5 to check it)"
        later = run(predict, 61, 10)
    # Ten steps of a flat load, each forecast exact: the width the errors support is the floor, 5 % of the
    # forecast, and the model is trusted to TRUST_FACTOR times that.
    assert later[-1].upper[0] == pytest.approx(100.0 * (1 + TRUST_FACTOR * WIDTH_FLOOR))
    assert all(u == pytest.approx(later[-1].upper[0]) for u in later[-1].upper)
    assert later[-1].bound == "95 % bound checked against 10 realised one-step errors"


def test_a_model_that_keeps_missing_is_not_trusted_to_its_narrow_interval(tmp_path: Path) -> None:
    # The load alternates 100 / 140 every minute; the last-value forecast misses by 40 each step.
    def load(m: int) -> float:
        return 100.0 if m % 2 == 0 else 140.0

    with SqliteStore(str(tmp_path / "s.db")) as store:
        feed(store, load, range(90))
        predict = stage(store, Narrow)
        preds = run(predict, 60, 30)
    last = preds[-1]
    mean = last.observed  # the double forecasts the last value
    # Minutes 60..88 were forecast one step ahead (the first forecast was made at minute 60) and are complete.
    errors = np.array([load(m) - load(m - 1) for m in range(60, 89)])
    expected = mean + float(np.median(errors)) + 1.6448536 * float(np.std(errors))
    assert last.upper[0] == pytest.approx(expected, rel=1e-3)
    assert last.upper[0] > mean * Narrow.high + 20.0
