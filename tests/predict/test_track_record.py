"""The online warning track record: the same figures as a plain batch reading of its definitions, on
random flag sequences with random settings; settled no earlier than it can be; bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.predict.track_record import TrackRecord, WarningTrackRecord


def runs(mask: np.ndarray, merge_gap: int = 0) -> list[tuple[int, int]]:
    """Runs of True as (start, end exclusive), merged over gaps shorter than ``merge_gap``."""
    out: list[tuple[int, int]] = []
    for i, on in enumerate(mask.tolist()):
        if not on:
            continue
        if out and i - out[-1][1] < max(merge_gap, 1):
            out[-1] = (out[-1][0], i + 1)
        else:
            out.append((i, i + 1))
    return out


def batch(
    warning: np.ndarray, breach: np.ndarray, start: int, window: int, tolerance: int, detect: int, gap: int
) -> tuple[int, int, int, int, float | None]:
    """The definitions read over the whole sequence at once (the oracle)."""
    n = breach.size
    eps = runs(breach, gap)
    counted = warning.copy()
    for s, e in eps:
        counted[s:e] = False
    counted[:start] = False
    reach = window + tolerance
    starts = [s for s, _ in eps]
    warns = [w for w, _ in runs(counted) if w + reach < n]
    hits = sum(any(w < s <= w + reach for s in starts) for w in warns)
    scored = [s for s in starts if s >= start + window]
    leads = [s - min(c) for s in scored if (c := [w for w in warns if 1 <= s - w <= detect])]
    return len(warns), hits, len(scored), len(leads), float(np.median(leads)) if leads else None


def flags(rng: np.random.Generator, n: int, p_on: float) -> np.ndarray:
    """Runs of True: switch on with p_on, stay on with 0.7."""
    out = np.zeros(n, dtype=bool)
    on = False
    for i in range(n):
        on = bool(rng.random() < (0.7 if on else p_on))
        out[i] = on
    return out


def online(warning: np.ndarray, breach: np.ndarray, **settings: int) -> TrackRecord:
    record = WarningTrackRecord(**settings)
    for w, b in zip(warning.tolist(), breach.tolist(), strict=True):
        record.minute(w, b)
    record.close()
    return record.record


@pytest.mark.parametrize("seed", range(6))
def test_online_record_equals_the_batch_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(120):
        n = int(rng.integers(1, 260))
        breach, warning = flags(rng, n, rng.uniform(0.01, 0.4)), flags(rng, n, rng.uniform(0.01, 0.5))
        start, window, tolerance = int(rng.integers(0, 40)), int(rng.integers(1, 20)), int(rng.integers(0, 8))
        detect, gap = int(rng.integers(1, 40)), int(rng.integers(1, 9))
        r = online(
            warning, breach, start=start, window=window, tolerance=tolerance, detect=detect, merge_gap=gap
        )
        got = (r.warnings, r.came_true, r.breaches, r.warned_of, r.median_lead_minutes)
        assert got == batch(warning, breach, start, window, tolerance, detect, gap), (n, start, window, gap)


def test_settled_only_once_it_is_known() -> None:
    record = WarningTrackRecord()  # look-ahead 15 + 5, detect 30, merge gap 5
    for t in range(60):
        record.minute(warning=10 <= t < 13, breach=False)
    # The warning started at 10 and nothing followed by minute 30: one warning, not come true.
    assert (record.record.warnings, record.record.came_true) == (1, 0)
    for t in range(60, 200):
        record.minute(warning=70 <= t < 72, breach=80 <= t < 83)
        if t == 89:  # minute 89 known: the breach at 80 is not settled yet (warnings up to 79 count at 99)
            assert record.record.breaches == 0
            assert (record.record.warnings, record.record.came_true) == (1, 0)
    r = record.record
    assert (r.warnings, r.came_true, r.breaches, r.warned_of) == (2, 1, 1, 1)
    assert r.precision == pytest.approx(0.5) and r.recall == 1.0 and r.median_lead_minutes == 10.0
    assert r.summary() == "1 of 2 warnings came true, 1 of 1 breaches warned of, median lead 10 min"


def test_a_warning_held_through_a_breach_is_not_a_new_one_inside_it() -> None:
    record = WarningTrackRecord()
    for t in range(120):
        # One warning from 20 to 60; breaches 30-34 and 37-39 (one episode, the gap of 2 merges).
        record.minute(warning=20 <= t < 60, breach=30 <= t < 35 or 37 <= t < 40)
    r = record.record
    # The warning from 20 came true; its minutes after the episode (40-59) are a new warning that did not.
    assert (r.warnings, r.came_true, r.breaches, r.warned_of) == (2, 1, 1, 1)


def test_memory_stays_bounded_over_a_long_run() -> None:
    rng = np.random.default_rng(7)
    record = WarningTrackRecord()
    for w, b in zip(flags(rng, 50_000, 0.05).tolist(), flags(rng, 50_000, 0.03).tolist(), strict=True):
        record.minute(w, b)
    assert record.record.warnings > 500 and record.record.breaches > 300
    assert (
        max(len(record._starts), len(record._unsettled), len(record._breach_starts), len(record._pending))
        < 60
    )


def test_nothing_yet_and_bad_settings() -> None:
    record = WarningTrackRecord()
    assert record.record.precision is None and record.record.recall is None
    assert record.record.summary() == "no warning or breach settled yet"
    with pytest.raises(ValueError, match="merge_gap"):
        WarningTrackRecord(merge_gap=0)
    with pytest.raises(ValueError, match="tolerance and start"):
        WarningTrackRecord(start=-1)
