"""The week-ahead capacity outlook with a tiny seasonal-naive forecaster defined here."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.predict.base import Forecast, Forecaster
from opsmind.predict.capacity_forecast import (
    DAY,
    ServiceLoadHistory,
    forecast_capacity,
    forecast_service,
    season_lengths,
)

MONDAY = 1704067200.0  # 2024-01-01 00:00 UTC
HOUR = 3600.0


class RepeatLastSeason:
    """Repeats the last (longest) season; the upper bound is 5 % (80) or 10 % (95) above the mean."""

    widths = {80: 0.05, 95: 0.10}

    def __init__(self, seasons: tuple[int, ...], levels: tuple[int, ...] | None = None) -> None:
        self.seasons = seasons
        self.levels = levels
        self.y = np.zeros(0)

    def fit(self, y: np.ndarray) -> None:
        self.y = np.asarray(y, dtype=float)

    def update(self, y_new: np.ndarray) -> None:
        self.y = np.concatenate((self.y, y_new))

    def predict(self, h: int, levels: tuple[int, ...] = (80, 95)) -> Forecast:
        season = max(self.seasons, default=1)
        mean = np.resize(self.y[-season:], h)
        use = self.levels if self.levels is not None else levels
        return Forecast(
            mean=mean,
            lo={lv: mean * (1 - self.widths[lv]) for lv in use},
            hi={lv: mean * (1 + self.widths[lv]) for lv in use},
            model=f"RepeatLastSeason{season}",
        )


def factory(seasons: tuple[int, ...]) -> Forecaster:
    return RepeatLastSeason(seasons)


def weekly_history(service: str = "api", capacity: float = 70.0, max_replicas: int = 3) -> ServiceLoadHistory:
    """Three weeks hourly: 50 at night, 150 at 14:00 daily, 200 at 14:00 on Wednesdays."""
    t = MONDAY + HOUR * np.arange(21 * 24)
    hour, weekday = (t // HOUR) % 24, (t // DAY + 3) % 7  # 1970-01-01 was a Thursday
    y = np.where(hour == 14, np.where(weekday == 2, 200.0, 150.0), 50.0)
    return ServiceLoadHistory(service, t, y, capacity_per_replica=capacity, max_replicas=max_replicas)


def test_daily_peaks_headroom_and_first_exceedance() -> None:
    seen: list[tuple[int, ...]] = []

    def spy(seasons: tuple[int, ...]) -> Forecaster:
        seen.append(seasons)
        return RepeatLastSeason(seasons)

    out = forecast_service(weekly_history(), spy)
    assert seen == [(24, 168)]
    assert out.ceiling == 210.0 and out.level == 95 and out.model == "RepeatLastSeason168"
    assert len(out.days) == 7
    assert [d.day_start for d in out.days] == [MONDAY + (21 + i) * DAY for i in range(7)]
    wednesday = out.days[2]
    assert wednesday.at == MONDAY + (23 * 24 + 14) * HOUR
    assert wednesday.mean == 200.0 and wednesday.upper == pytest.approx(220.0)
    assert wednesday.replicas_needed == 4  # 220 / 70
    assert out.days[0].upper == pytest.approx(165.0) and out.days[0].replicas_needed == 3
    assert out.first_exceed_at == wednesday.at
    assert out.headroom == pytest.approx(1 - 220 / 210)
    assert out.peak == wednesday


def test_enough_ceiling_means_no_exceedance() -> None:
    out = forecast_service(weekly_history(max_replicas=5), factory)
    assert out.first_exceed_at is None
    assert out.headroom == pytest.approx(1 - 220 / 350)


def test_falls_back_to_the_widest_interval_offered() -> None:
    out = forecast_service(weekly_history(), lambda s: RepeatLastSeason(s, levels=(80,)))
    assert out.level == 80
    assert out.days[2].upper == pytest.approx(210.0)
    assert out.first_exceed_at is None  # 210 does not exceed 210


def test_many_services_tightest_first() -> None:
    outs = forecast_capacity([weekly_history("roomy", max_replicas=10), weekly_history("tight")], factory)
    assert [o.service for o in outs] == ["tight", "roomy"]


def test_season_lengths_need_two_cycles() -> None:
    assert season_lengths(HOUR, 100) == (24,)
    assert season_lengths(HOUR, 400) == (24, 168)
    assert season_lengths(60.0, 20_000) == (1440,)
    assert season_lengths(7 * HOUR, 10_000) == (24,)  # a week is 24 steps of 7 h; a day is no whole number


def test_rejects_uneven_history() -> None:
    h = weekly_history()
    t = h.timestamps.copy()
    t[5] += 10
    with pytest.raises(ValueError, match="evenly spaced"):
        forecast_service(ServiceLoadHistory("x", t, h.peak_load, 70.0, 3), factory)
