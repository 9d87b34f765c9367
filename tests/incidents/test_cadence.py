"""The scrape interval the correlator learns from anomalies: a run's gap, not a constant."""

from __future__ import annotations

from opsmind.incidents.cadence import RUN_INTERVALS, UNLEARNED_INTERVAL_S, Cadence
from opsmind.types import Anomaly


def anomaly(series: str, ts: float) -> Anomaly:
    return Anomaly(at=ts, series=series, ts=ts, value=1, score=9, probability=0.99, detector="t")


def feed(c: Cadence, service: str, series: str, *times: float) -> None:
    for ts in times:
        c.observe(anomaly(series, ts), service)


def test_until_a_series_repeats_the_interval_is_assumed() -> None:
    c = Cadence()
    assert c.interval("db") == UNLEARNED_INTERVAL_S
    assert c.run_gap("db") == RUN_INTERVALS * UNLEARNED_INTERVAL_S
    feed(c, "db", "a", 100)
    feed(c, "db", "b", 105)  # two series, not one series twice: nothing learned
    assert c.interval("db") == UNLEARNED_INTERVAL_S


def test_consecutive_scrapes_of_one_series_teach_the_fleet_its_interval() -> None:
    c = Cadence()
    feed(c, "api", "latency", 0, 5)
    assert c.interval("api") == 5 and c.interval("db") == 5  # db borrows the fleet's
    feed(c, "api", "latency", 5.2)  # jitter below a second is no interval
    assert c.interval("api") == 5


def test_a_service_scraped_less_often_earns_its_own_interval_by_repeating_it() -> None:
    c = Cadence()
    feed(c, "api", "latency", 0, 15)
    feed(c, "batch", "lag", 0, 300)  # once: two stray points far apart look the same
    assert c.interval("batch") == 15
    feed(c, "batch", "lag", 601)  # the same gap again (within jitter): its own scrape interval
    assert c.interval("batch") == 300
    feed(c, "batch", "lag", 1500, 1530)  # a shorter gap starts over
    assert c.interval("batch") == 15


def test_an_early_long_gap_does_not_loosen_the_assumption() -> None:
    c = Cadence()
    feed(c, "db", "latency", 0, 3600)
    assert c.interval("db") == UNLEARNED_INTERVAL_S


def test_a_fleet_scraped_every_minute_is_learned_once_the_gap_repeats() -> None:
    c = Cadence()
    feed(c, "api", "latency", 0, 60)
    assert c.interval("db") == UNLEARNED_INTERVAL_S  # once could be two stray points
    feed(c, "web", "errors", 30, 90)
    assert c.interval("db") == 60 and c.interval("api") == 60
