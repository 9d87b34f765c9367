"""CadDetector / cad_series (CAD OSE): a learned pattern scores low, a novel one high, the rest-period rule,
a constant series, NaN/inf/gaps, strictly online, the per-row protocol, fixed vs running range."""

from __future__ import annotations

import numpy as np
import pytest

from opsmind.detect.cad import BASE_THRESHOLD, CadDetector, _CadSeries, cad_series
from tests.detect._synth import STEP, run

REST = 20


def _ts(n: int) -> np.ndarray:
    return 1.7e9 + np.arange(n) * STEP


def _raw(values: np.ndarray, **kw: object) -> np.ndarray:
    """CAD's score of every point before the rest-period rule."""
    s = _CadSeries(rest_period=REST, **kw)  # type: ignore[arg-type]
    out = []
    for x in values.tolist():
        p = s.plan(x)
        s.commit(p)
        out.append(p.raw)
    return np.array(out)


def _pattern(repeats: int) -> np.ndarray:
    return np.tile(np.array([0.0, 7.0, 3.0, 5.0, 1.0, 6.0, 2.0, 4.0]), repeats)


def test_a_repeated_pattern_is_learned_and_scores_low() -> None:
    raw = _raw(_pattern(100))
    assert raw[:8].mean() > 0.45  # nothing known yet
    assert raw[400:].max() < 0.1  # every transition of the cycle is predicted
    s = cad_series(_pattern(100), rest_period=REST, range_warmup=0)  # the running range throughout
    assert np.all((s >= 0.0) & (s <= 1.0))
    assert s[400:].max() < 0.1


def test_a_novel_pattern_scores_high_and_is_reported_once() -> None:
    learned = _pattern(100)
    novel = np.array([7.0, 7.0, 0.0, 0.0, 7.0, 0.0, 7.0, 0.0])  # same range, unseen transitions
    xs = np.concatenate([learned, novel, _pattern(20)])
    raw = _raw(xs)
    assert raw[800:808].max() > 0.7
    assert raw[800:808].max() > 10 * raw[400:800].max()
    s = cad_series(xs, rest_period=REST, range_warmup=0)
    first = 800 + int(np.argmax(s[800:808] > 0.5))
    assert s[first] > 0.5 and s[first] == pytest.approx(raw[first])
    # The rest-period rule: once a raw score reached the base threshold, the next REST points report 0.
    hot = [i for i in range(800, 808) if raw[i] >= BASE_THRESHOLD]
    assert hot
    assert np.all(s[hot[0] + 1 : hot[0] + 1 + REST] == 0.0)


def test_the_first_rest_period_reports_zero() -> None:
    rng = np.random.default_rng(3)
    s = cad_series(rng.normal(size=200), rest_period=REST)
    assert np.all(s[:REST] == 0.0)
    assert s[REST:].max() > 0.0


def test_a_constant_series_is_flat_and_a_step_off_it_is_novel() -> None:
    # A constant series has one context, id 0, which NAB's CAD never selects when no zero-level context
    # was created in the step (its ``False != 0`` quirk, kept): every point scores 0.5, as in NAB, below
    # the base threshold, so it is reported and never an alarm's 1.0.
    for level in (0.0, -3.5, 1e6):
        xs = np.full(300, level)
        raw = _raw(xs)
        np.testing.assert_array_equal(raw[2:], 0.5)
        np.testing.assert_array_equal(cad_series(xs, rest_period=REST)[REST + 2 :], 0.5)  # after 1.0 at 1
        xs[250] = level + 1.0
        assert _raw(xs)[250] == 1.0
        s = cad_series(xs, rest_period=REST)
        assert s[250] == 1.0 and np.all(s[251 : 251 + REST] == 0.0)


def test_nan_inf_and_gaps_do_not_crash_and_are_not_learned() -> None:
    xs = _pattern(60)
    bad = xs.copy()
    bad[[100, 101, 200]] = [np.nan, np.inf, -np.inf]
    s = cad_series(bad, rest_period=REST)
    assert np.isnan(s[100]) and s[101] == np.inf and s[200] == np.inf
    clean = np.delete(bad, [100, 101, 200])
    np.testing.assert_array_equal(np.delete(s, [100, 101, 200]), cad_series(clean, rest_period=REST))
    # The per-row interface: NaN scores NaN, inf scores inf, neither changes the state.
    det = CadDetector(rest_period=REST)
    ts = _ts(len(xs))
    run(det, ts[:200], xs[:200])
    rows = np.zeros(1, dtype=np.int64)
    before = det.score_many(rows, ts[200:201], xs[200:201]).copy()
    for v in (np.nan, np.inf, -np.inf):
        out = det.score_many(rows, ts[200:201], np.array([v]))
        assert np.isnan(out[0]) if np.isnan(v) else out[0] == np.inf
        det.learn_many(rows, ts[200:201], np.array([v]), np.array([True]))
    np.testing.assert_array_equal(det.score_many(rows, ts[200:201], xs[200:201]), before)


def test_scores_never_depend_on_future_points() -> None:
    rng = np.random.default_rng(5)
    xs = np.sin(np.arange(600) / 9.0) + rng.normal(0, 0.1, 600)
    changed = xs.copy()
    changed[400:] = 50.0 + rng.normal(0, 5, 200)  # a far larger range later on
    a, b = cad_series(xs, rest_period=REST), cad_series(changed, rest_period=REST)
    np.testing.assert_array_equal(a[:400], b[:400])
    assert not np.array_equal(a[400:], b[400:])


def test_score_many_does_not_change_state_and_the_rows_equal_the_series_path() -> None:
    rng = np.random.default_rng(9)
    a = np.sin(np.arange(400) / 7.0) + rng.normal(0, 0.2, 400)
    b = np.cumsum(rng.normal(size=400))
    det = CadDetector(rest_period=REST)
    rows = np.array([0, 1], dtype=np.int64)
    got = np.empty((400, 2))
    for i in range(400):
        t, x = np.full(2, _ts(400)[i]), np.array([a[i], b[i]])
        first = det.score_many(rows, t, x)
        det.score_many(rows, t, x[::-1].copy())  # a second look (other values) must not change anything
        got[i] = det.score_many(rows, t, x)
        np.testing.assert_array_equal(first, got[i])
        det.learn_many(rows, t, x, np.array([True, True]))
    np.testing.assert_array_equal(got[:, 0], cad_series(a, rest_period=REST))
    np.testing.assert_array_equal(got[:, 1], cad_series(b, rest_period=REST))
    assert det.nbytes_per_series > 1000


def test_a_point_not_learned_is_skipped_by_the_sequence() -> None:
    xs = _pattern(40)
    det = CadDetector(rest_period=REST)
    ts = _ts(len(xs))
    learn = np.ones(len(xs), dtype=bool)
    learn[150] = False
    rows = np.zeros(1, dtype=np.int64)
    out = []
    for i in range(len(xs)):
        out.append(det.score_many(rows, ts[i : i + 1], xs[i : i + 1])[0])
        det.learn_many(rows, ts[i : i + 1], xs[i : i + 1], learn[i : i + 1])
    want = cad_series(np.delete(xs, 150), rest_period=REST)
    np.testing.assert_array_equal(np.delete(out, 150), want)


def test_a_fixed_range_is_used_as_given_and_the_running_range_differs_early() -> None:
    xs = np.concatenate([np.full(50, 5.0), np.linspace(0.0, 10.0, 50)])
    fixed = _raw(xs, value_range=(0.0, 10.0))
    running = _raw(xs)
    assert not np.array_equal(fixed, running)
    # With the range known, 5.0 is level int(5 / (10 / 7)) = 3 from the start: bits 1, 1, 0.
    s = _CadSeries(value_range=(0.0, 10.0))
    assert s.sensed(s.level(5.0)) == (1, 3, 4)
    assert s.level(-1.0) == 0 and s.level(11.0) == 7  # outside a given range: clipped
    with pytest.raises(ValueError):
        _CadSeries(rest_period=0)


def test_the_range_learned_in_the_warm_up_then_fixed_equals_knowing_it_from_the_start() -> None:
    rng = np.random.default_rng(3)
    xs = np.sin(np.arange(1500) / 20.0) + rng.normal(0, 0.2, 1500)
    xs[1000:1010] += 4.0  # beyond the warm-up's range: clipped to the top level, and novel there
    warm = 300
    lo, hi = xs[:warm].min(), xs[:warm].max()
    pad = 0.5 * (hi - lo)
    known = cad_series(xs, rest_period=REST, value_range=(lo - pad, hi + pad))
    learned = cad_series(xs, rest_period=REST, range_warmup=warm, range_margins=(0.5,))
    # After the warm-up the memory was rebuilt with the frozen range: identical scores from then on.
    np.testing.assert_array_equal(learned[warm:], known[warm:])
    # During it the running range was used (strictly online), so the early scores differ.
    assert not np.array_equal(learned[:warm], known[:warm])
    assert learned[1000:1010].max() > BASE_THRESHOLD
    s = _CadSeries(rest_period=REST, range_warmup=warm, range_margin=0.5)
    for x in xs[:warm].tolist():
        s.commit(s.plan(x))
    assert s.fixed == (lo - pad, hi + pad) and s.warmup is None


def test_the_warm_up_waits_for_a_range_and_a_later_change_does_not_move_it() -> None:
    xs = np.concatenate([np.full(80, 2.0), np.tile([2.0, 3.0], 60), np.full(100, 50.0)])
    s = _CadSeries(rest_period=REST, range_warmup=50, range_margin=1.0)
    for x in xs[:80].tolist():
        s.commit(s.plan(x))
    assert s.fixed is None  # a constant warm-up has no range yet: keep the running one
    s.commit(s.plan(3.0))
    assert s.fixed == (1.0, 4.0)  # [2, 3] widened by one span on each side
    for x in xs[81:].tolist():
        s.commit(s.plan(x))
    assert s.fixed == (1.0, 4.0) and s.level(50.0) == 7  # values above the range clip to the top level
    with pytest.raises(ValueError):
        _CadSeries(range_warmup=-1)
    with pytest.raises(ValueError):
        _CadSeries(range_margin=float("nan"))


def test_several_resolutions_report_the_highest_of_their_scores() -> None:
    rng = np.random.default_rng(4)
    xs = np.sin(np.arange(900) / 15.0) + rng.normal(0, 0.1, 900)
    xs[600:604] -= 3.0
    fine, coarse = (
        cad_series(xs, rest_period=REST, range_warmup=200, range_margins=(m,)) for m in (0.5, 3.0)
    )
    both = cad_series(xs, rest_period=REST, range_warmup=200, range_margins=(0.5, 3.0))
    np.testing.assert_array_equal(both, np.maximum(fine, coarse))
    assert not np.array_equal(fine, coarse)
    det = CadDetector(rest_period=REST, range_warmup=200, range_margins=(0.5, 3.0))
    rows, got = np.zeros(1, dtype=np.int64), []
    for i in range(len(xs)):
        t, x = _ts(len(xs))[i : i + 1], xs[i : i + 1]
        got.append(det.score_many(rows, t, x)[0])
        det.learn_many(rows, t, x, np.ones(1, dtype=bool))
    np.testing.assert_array_equal(got, both)
    # With the range given (or never frozen) the margins change nothing: one memory is kept.
    assert len(CadDetector(value_range=(0.0, 1.0))._new_series().members) == 1
    with pytest.raises(ValueError):
        cad_series(xs, range_margins=())


def test_a_full_memory_is_cleared_and_learns_again_with_its_range_kept() -> None:
    rng = np.random.default_rng(8)
    s = _CadSeries(rest_period=REST, range_warmup=100, range_margin=0.5, max_contexts=300)
    sizes = []
    for x in rng.normal(0, 1, 3000).tolist():
        s.commit(s.plan(x))
        sizes.append(s.contexts)
    assert s.resets >= 2 and max(sizes) <= 300
    assert s.fixed is not None and s.warmup is None  # the range learned in the warm-up stays
    unbounded = _CadSeries(rest_period=REST, range_warmup=100, range_margin=0.5, max_contexts=10**9)
    for x in rng.normal(0, 1, 3000).tolist():
        unbounded.commit(unbounded.plan(x))
    assert unbounded.resets == 0 and unbounded.contexts > 300
