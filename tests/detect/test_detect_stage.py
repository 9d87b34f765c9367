"""The detect stage on batches as ingestion delivers them: one point per series, several steps of the
same series in one batch (a backfill), and several points per series."""

from __future__ import annotations

import random

import numpy as np

from opsmind.bus.memory import MemoryBus
from opsmind.bus.protocols import Message
from opsmind.clock import SimClock
from opsmind.config import DetectSettings
from opsmind.detect.cad import CadDetector
from opsmind.detect.ensemble import Ensemble
from opsmind.detect.points import PointScorer
from opsmind.detect.stage import DetectStage, rounds
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, SeriesSamples


def stage() -> tuple[DetectStage, Telemetry, SqliteStore]:
    tel = Telemetry()
    store = SqliteStore(":memory:")
    settings = DetectSettings()
    return DetectStage(MemoryBus(telemetry=tel), SimClock(), tel, store, settings), tel, store


def steps(n_series: int, n_steps: int, spike_at: int | None = None) -> list[SeriesSamples]:
    rng = random.Random(0)
    series = [Series.of("m", {"service": f"s{i}"}) for i in range(n_series)]
    out = []
    for t in range(n_steps):
        for i, s in enumerate(series):
            v = 50.0 if (spike_at == t and i == 0) else 10 + rng.gauss(0, 0.3)
            out.append(SeriesSamples(s, (1000.0 + t,), (v,)))
    return out


async def test_a_backfill_batch_is_scored_in_rounds_and_finds_the_spike() -> None:
    st, tel, store = stage()
    await st.handle(Message(1, "samples", steps(30, 80, spike_at=70), 1))
    # Every point after each series' cold start is scored, in rounds of 30 series.
    scored = tel.value("opsmind_detect_points_scored_total")
    assert 30 * 40 <= scored <= 30 * 79
    found = {(a.service, a.ts) for a in store.find(Anomaly)}
    assert ("s0", 1070.0) in found
    # Calibration is still settling this early in 2,400 noisy points; a stray alarm or two is tolerated.
    assert len(found) <= 3


async def test_single_point_batches_and_multi_point_series_agree() -> None:
    a, tel_a, store_a = stage()
    b, tel_b, store_b = stage()
    data = steps(5, 100, spike_at=90)
    for t in range(100):
        await a.handle(Message(t, "samples", data[t * 5 : (t + 1) * 5], 1))
    by_series: dict[Series, list[SeriesSamples]] = {}
    for ss in data:
        by_series.setdefault(ss.series, []).append(ss)
    merged = [
        SeriesSamples(s, tuple(x.timestamps[0] for x in v), tuple(x.values[0] for x in v))
        for s, v in by_series.items()
    ]
    await b.handle(Message(1, "samples", merged, 1))
    assert store_a.find(Anomaly)  # the spike, after the warm-up
    assert tel_a.value("opsmind_detect_points_scored_total") == tel_b.value(
        "opsmind_detect_points_scored_total"
    )
    assert [x.id for x in store_a.find(Anomaly)] == [x.id for x in store_b.find(Anomaly)]


async def test_redelivered_batch_is_not_scored_twice() -> None:
    st, tel, store = stage()
    batch = steps(3, 100, spike_at=90)
    await st.handle(Message(1, "samples", batch, 1))
    scored = tel.value("opsmind_detect_points_scored_total")
    await st.handle(Message(1, "samples", batch, 2))
    assert tel.value("opsmind_detect_points_scored_total") == scored
    assert len(store.find(Anomaly)) == 1


async def test_counters_are_scored_as_rates_and_bad_points_are_counted() -> None:
    st, tel, store = stage()
    s = Series.of("requests_total", {"service": "api"})
    # A counter growing 10/s, with a restart (reset to 0) half-way: as a rate it is flat, so no anomaly.
    values, total = [], 0.0
    for t in range(200):
        step = 10 + random.Random(t).gauss(0, 0.3)
        total = step if t == 100 else total + step  # the process restarted and counted from zero
        values.append(total)
    batch = [SeriesSamples(s, tuple(1000.0 + t for t in range(200)), tuple(values))]
    await st.handle(Message(1, "samples", batch, 1))
    assert store.find(Anomaly) == []
    dup = [SeriesSamples(s, (1199.0, 1150.0, 1300.0), (values[-1], 5.0, float("nan")))]
    await st.handle(Message(2, "samples", dup, 1))
    for reason in ("duplicate", "out_of_order", "non_finite"):
        assert tel.value("opsmind_detect_points_skipped_total", {"reason": reason}) == 1, reason


def _pattern_batch(novel_at: int, n: int) -> list[SeriesSamples]:
    """A cycle of eight levels, then (from ``novel_at``) the same levels in an order never seen (no noise:
    a value at the warm-up's extreme sits on a level boundary of the wide resolution, see detect.cad)."""
    cycle, novel = [0, 7, 3, 5, 1, 6, 2, 4], [7, 7, 0, 0, 7, 0, 7, 0]
    s = Series.of("queue_depth", {"service": "api"})
    out = []
    for t in range(n):
        level = (novel if novel_at <= t < novel_at + 8 else cycle)[t % 8]
        out.append(SeriesSamples(s, (1000.0 + 15 * t,), (10.0 + level,)))
    return out


class _BlindEnsemble(Ensemble):
    """The real ensemble, except that it flags nothing: a stand-in so CAD's own path is seen alone."""

    def is_anomalous(self, probability: np.ndarray) -> np.ndarray:
        return np.zeros(len(probability), dtype=bool)


def _scorer(ensemble: Ensemble, context: bool) -> PointScorer:
    return PointScorer(ensemble, Telemetry(), context=CadDetector() if context else None)


def _score(scorer: PointScorer, batch: list[SeriesSamples]) -> list[Anomaly]:
    found = []
    for r in rounds(batch):
        found.extend(scorer.score_round(r, 0.0))
    return found


def test_the_contextual_detector_reports_a_novel_sequence_the_ensemble_let_pass() -> None:
    batch = _pattern_batch(novel_at=1600, n=1700)
    cad = _score(_scorer(_BlindEnsemble(), context=True), batch)
    assert cad and {a.detector for a in cad} == {"cad"}
    assert all(1600 <= (a.ts - 1000.0) / 15 < 1700 for a in cad)
    assert all(0.75 <= a.probability <= 1.0 and a.expected is None for a in cad)
    assert not _score(_scorer(_BlindEnsemble(), context=False), batch)
    # With the real ensemble, which flags the same points first, a point gives one anomaly, not two.
    both = _score(_scorer(Ensemble(), context=True), batch)
    assert both and len({a.ts for a in both}) == len(both)


async def test_the_stage_runs_the_contextual_detector_unless_it_is_off() -> None:
    tel, store = Telemetry(), SqliteStore(":memory:")
    on = DetectStage(MemoryBus(telemetry=tel), SimClock(), tel, store, DetectSettings(context=True))
    off = DetectStage(MemoryBus(telemetry=tel), SimClock(), tel, store, DetectSettings())
    assert isinstance(on.scorer.context, CadDetector) and off.scorer.context is None
    # Only the first ``context_series`` series seen get a CAD memory.
    settings = DetectSettings(context=True, context_series=2)
    few = DetectStage(MemoryBus(telemetry=tel), SimClock(), tel, store, settings)
    await few.handle(Message(1, "samples", steps(5, 3), 1))
    assert few.scorer.context is not None and len(few.scorer.context.series) == 2
