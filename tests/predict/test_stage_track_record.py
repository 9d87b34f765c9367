"""The predict stage keeps each service's latency-warning record from its first live step: every complete
minute's breach (p95 over the SLO) is matched with the decision made right after it, the record is in the
view, in the warnings' evidence and in the outcome counters. A real SQLite store; the forecaster is the
seasonal-naive test double of test_stage_learned_warnings."""

from __future__ import annotations

from pathlib import Path

from opsmind.predict import readings
from opsmind.predict.bottleneck import LATENCY_SLO_RISK
from opsmind.predict.track_record import WarningTrackRecord
from opsmind.store.sqlite import SqliteStore
from opsmind.types import Series, SeriesSamples
from tests.predict.test_stage_learned_warnings import START, fill, stage


def breached(store: SqliteStore, minute: int) -> bool:
    series = Series.of("latency_seconds", {"service": "api", "quantile": "0.95"})
    t0 = START + 60 * minute
    _, values = readings.read_fresh(store, series, t0, t0 + 60)
    return bool(values[0] > 0.5)


def test_the_record_matches_each_minute_with_the_decision_after_it(tmp_path: Path) -> None:
    minutes = 400
    with SqliteStore(str(tmp_path / "s.db")) as store:
        fill(store, minutes)
        s = stage(store)
        s.step(START + 60 + 1)  # first sight: minute 0 is history, the record starts after it
        oracle = WarningTrackRecord(window=15)
        evidence = []
        for k in range(2, minutes + 1):
            s.step(START + 60 * k + 1)
            view = s.views["api"]
            fired = [w for w in view.warnings if w.kind == LATENCY_SLO_RISK]
            oracle.minute(bool(fired), breached(store, k - 1))  # the decision made once minute k-1 is in
            if fired:
                evidence.append(
                    s._bottleneck_anomaly(fired[0], START + 60 * k + 1, view.track_record).evidence
                )
        record = s.views["api"].track_record
        assert record == oracle.record
        assert record is not None and record.warnings > 3 and record.breaches > 3
        assert record.precision is not None and record.recall is not None
        assert evidence and evidence[-1].endswith(f"this service's record: {record.summary(60.0)}")
        registry = s.telemetry.registry
        came_true = registry.get_sample_value(
            "opsmind_predict_latency_warnings_settled_total", {"service": "api", "outcome": "came_true"}
        )
        false_alarm = registry.get_sample_value(
            "opsmind_predict_latency_warnings_settled_total", {"service": "api", "outcome": "false_alarm"}
        )
        missed = registry.get_sample_value(
            "opsmind_predict_latency_breaches_settled_total", {"service": "api", "outcome": "missed"}
        )
        assert came_true == record.came_true and false_alarm == record.warnings - record.came_true
        assert missed == record.breaches - record.warned_of


def test_a_late_tick_keeps_the_earlier_minutes_under_the_decision_before_it(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "s.db")) as store:
        fill(store, 200)
        s = stage(store)
        for k in range(1, 120):
            s.step(START + 60 * k + 1)
        before = s._states["api"].record.t
        s.step(START + 60 * 125 + 1)  # five minutes at once
        assert s._states["api"].record.t == before + 6


def test_without_a_latency_series_there_is_no_record(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "s.db")) as store:
        ts = tuple(START + 60 * k + 30 for k in range(60))
        store.append([SeriesSamples(Series.of("request_rate", {"service": "api"}), ts, (5.0,) * 60)])
        s = stage(store)
        s.step(START + 60 * 61 + 1)
        assert s.views["api"].track_record is None
