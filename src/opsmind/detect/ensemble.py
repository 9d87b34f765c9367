"""The ensemble: four online detectors, calibrated per series, combined into one anomaly probability.

Detectors (one default configuration for every series, no per-series tuning):
:class:`~opsmind.detect.seasonal.SeasonalDetector` (robust per-phase baseline, period picked online),
:class:`~opsmind.detect.ewma.EwmaDetector` (fast level, EW residual sigma),
:class:`~opsmind.detect.cusum.CusumDetector` (level shifts) and
:class:`~opsmind.detect.spectral_residual.SpectralResidualDetector` (local saliency). Each raw score goes
through its own :class:`~opsmind.detect.calibrate.Calibrator`, giving an upper-tail probability ``q_i``.

Combination: surprises ``s_i = -log10 q_i`` (a cold detector contributes 0), combined as
``S = max_i w_i s_i + AGREEMENT * (second largest w_i s_i)`` - the strongest detector decides, a second
one agreeing adds a bonus - and ``probability = 1 - 10^-S``. A NaN value (or every detector still cold)
gives NaN; an infinite value gives 1.

Self-protection and relearning (:meth:`Ensemble.step`): a point with ``probability >= threshold`` is not
learned, except that after ``relearn_after`` consecutive anomalous points of a row every further point of
the streak is learned, so a lasting shift becomes the new normal after a bounded time. The calibrators
see every finite score (with bounded influence, see :mod:`opsmind.detect.calibrate`).

Warm-up (off by default: ``warmup_s`` 0, the detect stage's ``detect.new_series_warmup_s``): a series is
learned but not judged (probability NaN, as in the detectors' own cold start; an infinite value still
gives 1) while it is younger than ``warmup_s`` (``WARMUP_S``, five minutes since its first point, is the
value meant when it is switched on) *and* has fewer than ``warmup_points`` (``WARMUP_POINTS``, 60) points.
A new series is very often a new process - a pod, a job, a new instance - and its first minutes are its
start-up, not its normal: a pod is not ready, then ready; its CPU is busy loading, then idle until traffic
arrives. Learned as normal and then judged, that start-up made every new pod's readiness and CPU "level
shifts", each alarmed until the ``relearn_after`` rule accepted it. Five minutes is what Kubernetes' own
``startupProbe`` example grants a slow container (30 x 10 s); the point cap bounds the wait for a
fast-scraped series, whose statistics are ready long before (at the demo's 5 s scrape both end together).
Every point of the warm-up is learned, anomalous or not: there is no normal yet to protect. It is off by
default because the same blindness cost detections in ``opsmind bench chaos``: with a 5-minute warm-up
three of its eight memory-leak faults were no longer healed (two with 2 minutes; auto-resolution over the
80 faults 1.0 -> 0.963), their incidents closing before the healer was sure, most likely because a leak's
restarted pods are new series. Direction alone (below) already keeps a new pod becoming ready from
alarming; what the warm-up adds is a new pod's CPU start-up (busy, idle, then its load). A series is new
to *this* ensemble, so after an engine restart every series warms up again (as the detectors' cold start
already did, for 10 to 30 points). At 5-minute steps only a series' first point is in the warm-up, inside
the detectors' cold start: such series (the benchmarks' synthetic fleet, files in NAB's layout) score
exactly as without it.

Direction: a metric whose name says only one direction is bad (:func:`opsmind.detect.golden.direction_of`:
readiness, ``up``, availability, success ratios higher-is-better; error ratios and model drift
lower-is-better) scores 0 - not anomalous, and so learned - on a point on its good side of the expected
value (the seasonal baseline's): a pod becoming ready, errors falling back after a fault. The other side
is judged as before. The direction comes from the series key's metric name, so it applies to series
stepped by key (:meth:`Ensemble.step`, the detect stage); rows stepped without a key
(:meth:`Ensemble.score_series`, the benchmarks) are judged both ways.

Tuning procedure (honest): data generated in code by :func:`opsmind.bench.detect.synthetic` (daily/hourly
seasonality or none, Gaussian and heavy-tailed noise, random walks, quantised and constant series, with
injected spikes, level shifts, variance changes and drifts); 2,000 series x 1,000 points of seed 1 to tune,
seed 101 to check (``tests/bench/test_detect_bench.py``). The detectors' rates and ``relearn_after`` are
set by hand to common values, not searched. ``WEIGHTS`` equalise the detectors' 99.9th-percentile
surprise on quiet points of seed 1. ``threshold`` is the lowest of 0.999 / 0.9999 / 0.99999 / 0.999999
with a false-alarm rate <= 0.2 % on seed 1's quiet points (0.9999: 0.21 %, so 0.99999: 0.04 %, event
recall 0.63 - spikes 0.98, shifts 0.77, variance 0.66, drifts 0.06 within 20 points). The calibrator
(peaks over threshold) and the onset refractory were chosen on a corpus in NAB's layout made from the
production traces (:mod:`opsmind.bench.nab_synth`, seed 1; seed 2 held out to check). NAB was never used
to choose a value.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opsmind.detect.base import F64, I64, B, Detector, SeriesIndex, as_run, grow
from opsmind.detect.calibrate import Calibrator
from opsmind.detect.cusum import CusumDetector
from opsmind.detect.ewma import EwmaDetector
from opsmind.detect.golden import EITHER, direction_of
from opsmind.detect.jit import kernel
from opsmind.detect.robust import Resolution
from opsmind.detect.seasonal import SeasonalDetector
from opsmind.detect.spectral_residual import SpectralResidualDetector

AGREEMENT = 0.5
# Equalise the detectors' 99.9th-percentile surprise on quiet synthetic points (seed 1: 2.83, 2.75, 2.81,
# 3.12) so that each contributes about the same false-alarm rate.
WEIGHTS: dict[str, float] = {"seasonal": 0.99, "ewma": 1.02, "cusum": 1.0, "spectral_residual": 0.90}
MAX_SURPRISE = 15.0
ONSET_REFRACTORY = 200  # points; see Ensemble.onset_series  # probability resolution: 1 - 1e-15
WARMUP_S = 300.0  # detect.new_series_warmup_s when switched on: learned, not judged, while younger ...
WARMUP_POINTS = 60  # ... and shorter than this (see the module docstring)


@dataclass(frozen=True)
class EnsembleScores:
    rows: I64
    probability: F64
    expected: F64
    detector_names: tuple[str, ...]
    detector_surprise: F64  # [rows, detectors]: -log10 of each detector's calibrated tail
    surprise: F64  # -log10(1 - probability) before the cap, for callers that need resolution beyond 1e-15

    @property
    def per_detector(self) -> dict[str, F64]:
        """Calibrated probability of each detector (computed on demand: the hot path needs surprises)."""
        return {
            n: 1.0 - np.power(10.0, -self.detector_surprise[:, i]) for i, n in enumerate(self.detector_names)
        }


class KeyedIndex(SeriesIndex):
    """A :class:`SeriesIndex` that also keeps each row's key (``keys[row]``), so the ensemble can read
    what a new row's metric name says about it (its direction) once, when the row appears."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def row(self, key: str) -> int:
        r = self._rows.get(key)
        if r is None:
            r = self._rows[key] = len(self.keys)
            self.keys.append(key)
        return r


def metric_name(key: str) -> str:
    """The metric name of a series key (``name{labels}``; a metric name never contains ``{``)."""
    return key.partition("{")[0]


def default_detectors(res: Resolution | None = None) -> list[Detector]:
    """The four detectors; with ``res`` the three that floor their scale by the data's resolution share
    one tracker (same points, same state), which the caller then learns once per step."""
    return [
        SeasonalDetector(res=res),
        EwmaDetector(res=res),
        CusumDetector(res=res),
        SpectralResidualDetector(),
    ]


def alarm_onsets(surprise: F64, refractory: int = ONSET_REFRACTORY) -> F64:
    """A surprise kept only where it beats every surprise of the previous ``refractory`` points (an
    alarm's onset), else 0; NaN counts 0 (see :meth:`Ensemble.onset_series`)."""
    s = np.nan_to_num(np.asarray(surprise, dtype=np.float64), nan=0.0, posinf=MAX_SURPRISE * 4)
    out = np.zeros(len(s))
    recent: deque[float] = deque(maxlen=max(1, refractory))
    for i, v in enumerate(s.tolist()):
        if not recent or v > max(recent):
            out[i] = v
        recent.append(v)
    return out


class Ensemble:
    def __init__(
        self,
        threshold: float = 0.99999,
        relearn_after: int = 10,
        detectors: list[Detector] | None = None,
        weights: dict[str, float] | None = None,
        agreement: float = AGREEMENT,
        warmup_s: float = 0.0,
        warmup_points: int = WARMUP_POINTS,
        direction: Callable[[str], int] | None = direction_of,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        if warmup_s < 0 or warmup_points < 0:
            raise ValueError("warmup_s and warmup_points must not be negative")
        self.threshold = threshold
        self.relearn_after = relearn_after
        self.warmup_s = warmup_s
        self.warmup_points = warmup_points
        self.direction = direction
        # The default detectors share one resolution tracker, learned here after they all learned.
        self.shared_res = Resolution() if detectors is None else None
        self.detectors = detectors if detectors is not None else default_detectors(self.shared_res)
        self.weights = np.array([(weights or WEIGHTS).get(d.name, 1.0) for d in self.detectors])
        self.agreement = agreement
        self.calibrator = Calibrator.for_detectors([d.name for d in self.detectors])
        self.index = KeyedIndex()
        self.streak = np.zeros(0, dtype=np.int64)
        self.seen = np.zeros(0, dtype=np.int64)  # points stepped per row in its warm-up (its length)
        self.born = np.zeros(0)  # a row's first timestamp, NaN before it (the warm-up's age)
        # Rows still in their warm-up, and how many: once none is, a step skips the warm-up's arithmetic
        # (a fleet in its steady state), and a row that has left its warm-up never goes back.
        self.warming = np.zeros(0, dtype=np.bool_)
        self._n_rows = 0
        self._n_warming = 0
        self.sign = np.zeros(0, dtype=np.int8)  # a row's direction (golden.direction_of), 0 = either
        self._any_sign = False
        self._signed = 0  # rows of the index below this have their direction set
        self._directions: dict[str, int] = {}  # by metric name: a fleet repeats a name over many series

    @property
    def nbytes_per_series(self) -> int:
        shared = Resolution.NBYTES if self.shared_res is not None else 0
        own = 8 + 8 + 8 + 1 + 1  # streak, seen, born, warming, sign
        return sum(d.nbytes_per_series + Calibrator.NBYTES for d in self.detectors) + shared + own

    def _ensure(self, rows: I64) -> None:
        n = int(rows.max()) + 1 if len(rows) else 0
        self.streak = grow(self.streak, n, 0)
        self.seen = grow(self.seen, n, 0)
        self.born = grow(self.born, n, np.nan)
        self.warming = grow(self.warming, n, True)
        if n > self._n_rows:
            self._n_warming += n - self._n_rows
            self._n_rows = n
        self.sign = grow(self.sign, max(n, len(self.index)), EITHER)
        for d in self.detectors:
            d.ensure_rows(n)
        self.calibrator.ensure_rows(n)
        keys = self.index.keys
        if len(keys) > self._signed:
            # New series: their direction, from their metric name, once per row.
            if self.direction is not None:
                for r in range(self._signed, len(keys)):
                    name = metric_name(keys[r])
                    way = self._directions.get(name)
                    if way is None:
                        way = self._directions[name] = self.direction(name)
                    self.sign[r] = way
                    self._any_sign |= way != EITHER
            self._signed = len(keys)

    def is_anomalous(self, probability: F64) -> B:
        with np.errstate(invalid="ignore"):
            return np.asarray(probability >= self.threshold)

    def _score_rows(self, rows: I64, ts: F64, values: F64) -> tuple[EnsembleScores, F64, B | None]:
        """Scores, the detectors' raw scores and which rows are young (in their warm-up; None when no row
        of the ensemble is)."""
        self._ensure(rows)
        raws = np.stack([d.score_many(rows, ts, values) for d in self.detectors], axis=1)  # [rows, detectors]
        surprises = self.calibrator.surprise(rows, raws)
        prob, total = _combine(surprises, self.weights, self.agreement, values)
        seasonal = next((d for d in self.detectors if isinstance(d, SeasonalDetector)), None)
        if seasonal is not None:
            expected = seasonal.last_expected
        else:
            expected = np.full(len(rows), np.nan)
        young = self._judge(rows, ts, values, expected, prob, total)
        names = tuple(d.name for d in self.detectors)
        return EnsembleScores(rows, prob, expected, names, surprises, total), raws, young

    def _judge(self, rows: I64, ts: F64, values: F64, expected: F64, prob: F64, total: F64) -> B | None:
        """The warm-up and the direction (see the module), in place on the combined ``prob`` / ``total``.
        The per-detector surprises are left as the detectors saw the point. Returns which rows are young
        (None when no row of the ensemble is)."""
        young = None
        idx = as_run(rows)
        if self._n_warming:
            with np.errstate(invalid="ignore"):
                # NaN ``born`` (a first point) compares False, so a first point is in the warm-up.
                young = self.warming[idx] & (self.seen[idx] < self.warmup_points)
                young &= ~(ts - self.born[idx] >= self.warmup_s)
            warm = young & np.isfinite(values)  # an infinite value stays certain (the contract of _combine)
            if warm.any():
                prob[warm] = np.nan
                total[warm] = np.nan
        if not self._any_sign:
            return young
        sign = self.sign[idx]
        if sign.any():
            with np.errstate(invalid="ignore"):
                # NaN expected (nothing learned yet) compares False: judged both ways.
                good = ((sign > 0) & (values > expected)) | ((sign < 0) & (values < expected))
            good &= ~np.isnan(prob)
            if good.any():
                prob[good] = 0.0
                total[good] = 0.0
        return young

    def score_many(self, keys: list[str], ts: F64, values: F64) -> EnsembleScores:
        """Score one new point per (distinct) key without changing any state."""
        return self._score_rows(self.index.rows(keys), ts, values)[0]

    def step_rows(self, rows: I64, ts: F64, values: F64) -> EnsembleScores:
        """Score, then learn (rows distinct): the vectorised path for callers that own their row numbers."""
        out, raws, young = self._score_rows(rows, ts, values)
        anomalous = self.is_anomalous(out.probability)
        streak = np.where(anomalous, self.streak[rows] + 1, 0)
        self.streak[rows] = streak
        if young is not None:
            idx = as_run(rows)
            self.seen[idx] += 1
            born = self.born[idx]
            self.born[idx] = np.where(np.isnan(born), ts, born)
            grown = self.warming[idx] & ~young  # judged this time: out of the warm-up for good
            if grown.any():
                self.warming[rows[grown]] = False
                self._n_warming -= int(np.count_nonzero(grown))
        learn = ~anomalous | (streak >= self.relearn_after)
        fin = np.isfinite(values)
        for d in self.detectors:
            d.learn_many(rows, ts, values, learn)
        if self.shared_res is not None:
            self.shared_res.learn(rows, values, learn)
        self.calibrator.learn(rows, raws, fin)
        return out

    def step(self, keys: list[str], ts: F64, values: F64) -> EnsembleScores:
        """Score one new point per (distinct) key, then learn it unless it is anomalous (see module)."""
        return self.step_rows(self.index.rows(keys), ts, values)

    def score_series(self, timestamps: F64, values: F64) -> F64:
        """Probabilities of a whole single series, strictly online (point i sees points 0..i only), on a
        fresh ensemble of this one's configuration (this ensemble's state is not touched)."""
        return self._fresh()._series(timestamps, values)[0]

    def surprise_series(self, timestamps: F64, values: F64) -> F64:
        """:meth:`score_series` as uncapped surprises ``-log10(1 - p)`` (same order, full resolution)."""
        return self._fresh()._series(timestamps, values)[1]

    def _fresh(self) -> Ensemble:
        """A new ensemble of this one's configuration (default detectors), with no state."""
        fresh = Ensemble(
            self.threshold,
            self.relearn_after,
            None,
            None,
            self.agreement,
            self.warmup_s,
            self.warmup_points,
            self.direction,
        )
        fresh.weights = self.weights.copy()
        return fresh

    def onset_series(self, timestamps: F64, values: F64, refractory: int = ONSET_REFRACTORY) -> F64:
        """Alarm *onsets* of a whole series, strictly online: a point keeps its surprise only when it is
        higher than every surprise of the previous ``refractory`` points; otherwise it is an ongoing
        anomaly already reported, and scores 0. The same idea as an alert that fires once and is not
        repeated while it stays firing. ``refractory`` (200 points) was first chosen on a synthetic corpus
        in NAB's layout and confirmed on the trace corpus (:mod:`opsmind.bench.nab_synth`, seed 1: 200
        scored 33.6 against 31.6 / 27.5 / 23.3 for 50 / 500 / 1000 points), never on NAB."""
        return alarm_onsets(self.surprise_series(timestamps, values), refractory)

    def _series(self, timestamps: F64, values: F64) -> tuple[F64, F64]:
        rows = np.zeros(1, dtype=np.int64)
        ts = np.asarray(timestamps, dtype=np.float64)
        xs = np.asarray(values, dtype=np.float64)
        prob, surprise = np.empty(len(xs)), np.empty(len(xs))
        for i in range(len(xs)):
            o = self.step_rows(rows, ts[i : i + 1], xs[i : i + 1])
            prob[i], surprise[i] = o.probability[0], o.surprise[0]
        return prob, surprise


def warm_kernels() -> None:
    """Build every compiled loop the default ensemble uses (loaded from numba's on-disk cache, or compiled
    on a machine's first run: a few seconds) by running a throwaway ensemble past every cold start."""
    ens = Ensemble()
    rows = np.arange(2)
    for i in range(64):
        ens.step_rows(rows, np.full(2, 1.7e9 + 300.0 * i), np.array([1.0 + i % 3, 5.0 - i % 2]))


@kernel
def _combine(surprises: F64, weights: F64, agreement: float, values: F64) -> tuple[F64, F64]:
    """Per row: ``S = max_i w_i s_i + agreement * (second largest w_i s_i)`` (a cold detector's NaN
    counts 0) and ``probability = 1 - 10^-min(S, MAX_SURPRISE)``; NaN when every detector is cold or the
    value is NaN, 1 (``S = inf``) for an infinite value."""
    k, width = surprises.shape
    prob, total = np.empty(k), np.empty(k)
    for i in range(k):
        top = second = 0.0
        cold = True
        for c in range(width):
            x = surprises[i, c] * weights[c]
            if x == x:
                cold = False
                second = max(second, min(top, x))
                top = max(top, x)
        s = top + agreement * second if width > 1 else top
        p = np.nan if cold else 1.0 - 10.0 ** -min(s, MAX_SURPRISE)
        if np.isinf(values[i]):
            p = 1.0
        elif values[i] != values[i]:
            p = np.nan
        prob[i] = p
        total[i] = np.nan if p != p else (np.inf if p == 1.0 else s)
    return prob, total
