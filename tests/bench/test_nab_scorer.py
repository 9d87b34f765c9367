"""The NAB scorer on small synthetic corpora whose scores can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsmind.bench.nab_data import DEFAULT_PROFILES, Profile
from opsmind.bench.nab_scorer import (
    FileGeometry,
    evaluate,
    geometry,
    probation_rows,
    scaled_sigmoid,
    score_file,
    sweep,
)

STANDARD, LOW_FP, LOW_FN = DEFAULT_PROFILES


def scores_with(n: int, hits: dict[int, float], base: float = 0.0) -> np.ndarray:
    s = np.full(n, base)
    for i, v in hits.items():
        s[i] = v
    return s


def synthetic_corpus(seed: int) -> tuple[list[FileGeometry], list[tuple[int, int, list[tuple[int, int]]]]]:
    """Six files over three categories (one without windows), each with 0-3 windows after probation."""
    rng = np.random.default_rng(seed)
    specs = []
    for k in range(6):
        n = int(rng.integers(200, 600))
        windows: list[tuple[int, int]] = []
        left = probation_rows(n) + int(rng.integers(0, 20))
        for _ in range(0 if k == 0 else int(rng.integers(1, 4))):
            width = int(rng.integers(3, 30))
            if left + width >= n:
                break
            windows.append((left, left + width - 1))
            left += width + int(rng.integers(5, 80))
        specs.append((k, n, windows))
    cats = ["catEmpty", "catA", "catA", "catB", "catB", "catB"]
    geos = [geometry(f"{cats[k]}/f{k}.csv", n, w) for k, n, w in specs]
    return geos, specs


def test_scaled_sigmoid_and_probation() -> None:
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)  # 2/(1+e^-5) - 1
    assert scaled_sigmoid(3.0) == -1.0 and scaled_sigmoid(50.0) == -1.0
    assert probation_rows(20) == 3  # floor(0.15 * 20)
    assert probation_rows(4032) == 604  # floor(604.8)
    assert probation_rows(22695) == 750  # capped at 0.15 * 5000


def test_perfect_detector_scores_100_and_null_detector_0() -> None:
    geos, specs = synthetic_corpus(seed=3)
    perfect = [scores_with(n, {left: 1.0 for left, _ in w}) for _, n, w in specs]
    constant = [np.full(n, 0.5) for _, n, _ in specs]
    for profile in DEFAULT_PROFILES:
        [p] = evaluate(geos, perfect, [profile])
        assert p.score == 100.0
        assert p.threshold == 1.0
        assert p.total.tp == p.total.windows and p.total.fp == 0
        assert p.category_score("catA") == 100.0 and p.category_score("catB") == 100.0
        assert p.category_score("catEmpty") is None  # no windows: nothing to normalise by
        [z] = evaluate(geos, constant, [profile])
        assert z.score == 0.0
        assert math.isinf(z.threshold)  # detecting nothing beats detecting every row


def test_hand_computed_single_window() -> None:
    # 20 rows: rows 0-2 probationary (floor(0.15*20) = 3); one window, rows 10..14 (W = 5, R = 14).
    geo = geometry("c/a.csv", 20, [(10, 14)])
    s = scores_with(20, {1: 1.0, 5: 0.7, 12: 0.9, 17: 0.8}, base=0.1)
    # Threshold 0.7 detects rows 5, 12 and 17 (row 1 is probationary and ignored):
    # row 12 in the window: y = -(14 - 12 + 1)/5 = -0.6; sig(-0.6) = 2/(1 + e^-3) - 1 = 2/1.049787 - 1
    #   = 0.905148; / sig(-1) = 0.905148 / 0.986614 = 0.917429
    # row 17 after it: y = |14 - 17|/(5 - 1) = 0.75; sig(0.75) = 2/(1 + e^3.75) - 1 = 2/43.52108 - 1
    #   = -0.954045; x fpWeight 0.11 = -0.104945
    # row 5 before the first window: -fpWeight = -0.11
    # standard: 0.917429 - 0.104945 - 0.11 = 0.702484
    c = score_file(geo, s, 0.7, STANDARD)
    assert c.raw == pytest.approx(0.702484, abs=1e-5)
    assert (c.tp, c.fn, c.fp, c.windows) == (1, 0, 2, 1)
    # reward_low_FP_rate doubles the FP part: 0.917429 - 2 * (0.104945 + 0.11) = 0.487539
    assert score_file(geo, s, 0.7, LOW_FP).raw == pytest.approx(0.487539, abs=1e-5)
    # Above 0.9 nothing is detected: the missed window costs -fnWeight (1, or 2 for reward_low_FN_rate).
    assert score_file(geo, s, 0.95, STANDARD).raw == -1.0
    assert score_file(geo, s, 0.95, LOW_FN).raw == -2.0
    # The sweep tries 0.9 (0.917429), 0.8 (0.917429 - 0.104945 = 0.812484), 0.7 (0.702484), 0.1 (all rows)
    # and "nothing" (-1): 0.9 wins; normalised 100 * (0.917429 + 1) / (1 + 1) = 95.871.
    [r] = evaluate([geo], [s], [STANDARD])
    assert r.threshold == 0.9
    assert r.total.raw == pytest.approx(0.917429, abs=1e-5)
    assert r.score == pytest.approx(95.871, abs=1e-3)


def test_hand_computed_two_windows_fp_relative_to_preceding_window() -> None:
    # 60 rows: rows 0-8 probationary (floor(9.0)); windows rows 20..24 and 35..39 (both W = 5).
    geo = geometry("c/b.csv", 60, [(20, 24), (35, 39)])
    s = scores_with(60, {12: 1.0, 25: 1.0, 30: 1.0, 38: 1.0, 55: 1.0})
    # row 12, before the first window: -0.11
    # row 25, just after window 1 (R = 24): y = 1/4 = 0.25; sig = 2/(1 + e^1.25) - 1 = 2/4.490343 - 1
    #   = -0.554600; x 0.11 = -0.061006
    # row 30: y = 6/4 = 1.5; sig = 2/(1 + e^7.5) - 1 = 2/1809.042 - 1 = -0.998894; x 0.11 = -0.109878
    # row 38, in window 2 (R = 39): y = -(39 - 38 + 1)/5 = -0.4; sig = 2/(1 + e^-2) - 1 = 2/1.135335 - 1
    #   = 0.761594; / 0.986614 = 0.771927
    # row 55, after window 2: y = |39 - 55|/4 = 4 >= 3, so sig = -1; x 0.11 = -0.11
    # window 1 missed: -1
    # standard: -0.11 - 0.061006 - 0.109878 + 0.771927 - 0.11 - 1 = -0.618957
    c = score_file(geo, s, 1.0, STANDARD)
    assert c.raw == pytest.approx(-0.618957, abs=1e-5)
    assert (c.tp, c.fn, c.fp) == (1, 1, 4)
    # reward_low_FN_rate: the miss costs 2 -> -1.618957; reward_low_FP_rate: FP part doubles,
    # 0.771927 - 2 * 0.390884 - 1 = -1.009841
    assert score_file(geo, s, 1.0, LOW_FN).raw == pytest.approx(-1.618957, abs=1e-5)
    assert score_file(geo, s, 1.0, LOW_FP).raw == pytest.approx(-1.009841, abs=1e-5)


def test_probationary_rows_are_ignored() -> None:
    geo = geometry("c/a.csv", 20, [(10, 14)])
    quiet = scores_with(20, {10: 0.9})
    noisy = scores_with(20, {0: 5.0, 1: 5.0, 2: 5.0, 10: 0.9})  # rows 0-2: probationary
    assert score_file(geo, noisy, 0.5, STANDARD) == score_file(geo, quiet, 0.5, STANDARD)
    sw = sweep([geo], [noisy])
    assert 5.0 not in sw.thresholds  # a probationary score is never a candidate threshold
    [r] = evaluate([geo], [noisy], [STANDARD])
    assert r.total.raw == 1.0 and r.total.fp == 0
    # A window wholly inside the probationary period is not counted at all.
    early = geometry("c/e.csv", 100, [(2, 5), (50, 60)])
    assert early.windows == 1
    assert score_file(early, np.zeros(100), 1.0, STANDARD).raw == -1.0


def test_detections_in_a_window_count_once() -> None:
    geo = geometry("c/a.csv", 20, [(10, 14)])
    one = scores_with(20, {10: 1.0})
    many = scores_with(20, {10: 1.0, 11: 1.0, 12: 1.0, 13: 1.0, 14: 1.0})
    assert score_file(geo, many, 1.0, STANDARD).raw == score_file(geo, one, 1.0, STANDARD).raw == 1.0
    # The best (earliest) detection is the one that counts, whatever the order of the scores.
    late_high = scores_with(20, {11: 0.6, 14: 0.9})
    # row 11: y = -(14 - 11 + 1)/5 = -0.8; sig(-0.8) / sig(-1) = 0.964028 / 0.986614 = 0.977107
    assert score_file(geo, late_high, 0.5, STANDARD).raw == pytest.approx(0.977107, abs=1e-5)
    assert score_file(geo, late_high, 0.5, STANDARD).tp == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sweep_finds_the_best_of_every_distinct_threshold(seed: int) -> None:
    geos, specs = synthetic_corpus(seed)
    rng = np.random.default_rng(seed + 100)
    scores = [np.round(rng.random(n), 2) for _, n, _ in specs]  # many ties
    sw = sweep(geos, scores)
    profiles = [*DEFAULT_PROFILES, Profile("odd", 2.0, 0.5, 0.3)]
    for profile in profiles:
        candidates = np.unique(np.concatenate([s[g.probation :] for g, s in zip(geos, scores, strict=True)]))
        brute = {math.inf: -profile.fn_weight * sum(g.windows for g in geos)}
        for t in candidates:
            brute[float(t)] = sum(score_file(g, s, t, profile).raw for g, s in zip(geos, scores, strict=True))
        threshold, raw = sw.best(profile)
        assert raw == pytest.approx(max(brute.values()), abs=1e-9)
        assert brute[threshold] == pytest.approx(raw, abs=1e-9)
        assert np.allclose(sw.raw(profile), [brute[float(t)] for t in sw.thresholds], atol=1e-9)
