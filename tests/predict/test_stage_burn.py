"""The error-budget figures the predict stage publishes - the burn report in its view (what
``/api/v1/forecasts/{service}`` shows), and the burn alert's labels and evidence (an incident's title and
timeline) - are one set of figures. The demo's audit found them contradicting each other after 90
minutes of data: every window from 2 h to 3 d at the same burn, a 3-day ticket "41.7 % of the budget
spent in 3d", -317 % of the budget left, and a title "already spent" over a timeline "spent in 0.0 h".
A real SQLite store; the forecaster is the last-value test double (this is not about forecasting)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opsmind.bus.memory import MemoryBus
from opsmind.clock import SimClock
from opsmind.config import IncidentSettings, load_settings
from opsmind.incidents.correlator import Correlator
from opsmind.predict.slo import DAY, HOUR
from opsmind.predict.stage import ERROR_BUDGET_BURN, PredictStage
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Series, SeriesSamples
from tests.doubles import LastValue

START = 1_700_000_040.0  # a whole minute
MINUTES = 90
# The last sample's time: the data then cover exactly 90 minutes (each sample counts the minute before it).
NOW = START + 60 * (MINUTES - 1) + 30
PERIOD = 30 * DAY


def stage_with_errors(store: SqliteStore, error_ratio: float) -> PredictStage:
    ts = tuple(START + 60 * m + 30 for m in range(MINUTES))
    store.append(
        [
            SeriesSamples(Series.of("request_rate", {"service": "api"}), ts, (100.0,) * MINUTES),
            SeriesSamples(Series.of("error_ratio", {"service": "api"}), ts, (error_ratio,) * MINUTES),
        ]
    )
    clock, telemetry = SimClock(NOW), Telemetry()
    settings = load_settings(predict={"min_history": 30, "error_objective": 0.999})
    return PredictStage(
        MemoryBus(telemetry=telemetry, clock=clock),
        clock,
        telemetry,
        store,
        store,
        settings.predict,
        LastValue,
    )


def test_ninety_minutes_at_burn_four_claim_no_day_and_spend_under_one_percent(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "s.db")) as store:
        predict = stage_with_errors(store, 0.00417)
        _, anomalies = predict.step(NOW)
        report = predict.views["api"].burn
    assert report is not None
    assert not [a for a in anomalies if a.labels.get("warning") == ERROR_BUDGET_BURN]
    assert sorted(report.window_burn) == [300.0, 1800.0, HOUR]  # 2 h .. 3 d are not covered
    three_days = report.windows[3 * DAY]
    assert three_days.covered_s == pytest.approx(MINUTES * 60.0) and three_days.burn == pytest.approx(4.17)
    assert report.budget.covered_s == pytest.approx(MINUTES * 60.0)
    assert report.budget_remaining == pytest.approx(1 - 4.17 * 1.5 / 720)


def test_the_alert_title_timeline_and_view_agree(tmp_path: Path) -> None:
    # Burn 50 for 90 minutes: 50 x 1.5 h / 720 h = 10.4 % of the budget spent, 89.6 % left, which at
    # 50x lasts 0.896 x 720 h / 50 = 12.9 h; its last hour alone spent 50 / 720 = 6.9 %.
    with SqliteStore(str(tmp_path / "s.db")) as store:
        predict = stage_with_errors(store, 0.05)
        _, anomalies = predict.step(NOW)
        report = predict.views["api"].burn
    assert report is not None
    (burn,) = [a for a in anomalies if a.labels.get("warning") == ERROR_BUDGET_BURN]
    spent = 50 * 1.5 / 720
    left_s = (1 - spent) * PERIOD / 50
    assert report.budget.spent == pytest.approx(spent)
    assert report.exhausted_in_s == pytest.approx(left_s)
    assert float(burn.labels["lead_s"]) == pytest.approx(left_s, abs=1)
    assert float(burn.labels["budget_remaining"]) == pytest.approx(1 - spent, abs=1e-4)
    assert float(burn.labels["budget_spent"]) == pytest.approx(spent, abs=1e-4)
    assert burn.labels["burn_rate"] == "50.00" and burn.labels["severity"] == "page"
    assert burn.evidence == (
        "burn rate 50.0x over 1h and 50.0x over 5m exceed 14.4x: 6.9% of the 30d error budget spent in 1h; "
        "10.4% of the 30d error budget spent in the 90 min of data, 89.6% left: at 50x it is spent in 12.9 h"
    )
    (change,) = Correlator(IncidentSettings(group_window_s=300, min_anomalies=2)).add(burn, NOW)
    assert change.incident.title == "Error budget of api burning at 50x: spent in 13 h at this rate"
    assert change.incident.timeline[0]["evidence"] == burn.evidence


def test_an_overspent_budget_reads_spent_everywhere(tmp_path: Path) -> None:
    # Every request failing for 90 minutes: 1,000 x 1.5 h / 720 h = 208 % of the budget.
    with SqliteStore(str(tmp_path / "s.db")) as store:
        predict = stage_with_errors(store, 1.0)
        _, anomalies = predict.step(NOW)
        report = predict.views["api"].burn
    assert report is not None and report.budget_remaining == pytest.approx(1 - 1000 * 1.5 / 720)
    (burn,) = [a for a in anomalies if a.labels.get("warning") == ERROR_BUDGET_BURN]
    assert report.exhausted_in_s == 0.0 and burn.labels["lead_s"] == "0"
    assert burn.evidence.endswith("the 30d error budget is spent: 208.3% of it in the 90 min of data")
    (change,) = Correlator(IncidentSettings(group_window_s=300, min_anomalies=2)).add(burn, NOW)
    assert change.incident.title == "Error budget of api burning at 1000x: already spent"
    assert np.isfinite(float(burn.labels["expected_at"]))
