"""A multivariate detector per service: are the golden signals, taken together, unusual?

Each signal of a service can be within its own normal range while their combination is not: high traffic
with *low* latency means requests are failing fast or are not being served at all, a correlation break
that no single-series detector can see. :class:`ServiceMultivariate` keeps, per service, a bounded buffer
of recent normal vectors (one value per golden signal at a timestamp) and a scikit-learn
``IsolationForest`` fitted on it, and scores every new vector online.

**Features.** Before the forest, vectors are standardised and *whitened* with the buffer's covariance
(a small ridge keeps a flat direction finite). An isolation forest splits along the axes, so it sees a
point that is extreme on one axis much more easily than one that only breaks a correlation; whitening
turns "these two signals normally move together" into an axis of its own with unit variance, along which
a correlation break is a large value.

**Score and calibration.** The forest's anomaly score (``-score_samples``, higher is more anomalous)
describes the *shape* of the normal region (several operating modes, skewed signals). But a forest
saturates at the edge of its training data: a point beyond every training point follows the same path as
the most extreme one, so a correlation break ten standard deviations out scores like the edge of normal.
The *distance* in the whitened space (the Mahalanobis distance under the regularised covariance) says
how far beyond. Each is turned into a robust z-score against its values on the training buffer (distance
from their median in units of ``1.4826 * MAD``) and the larger one counts. The probability is
``z^2 / (z^2 + t^2)`` for ``z > 0`` (0 otherwise): 0.5 at the threshold ``t``, approaching 1 far above.

**Schedule and self-protection.** The model is refitted every ``refit_every`` new normal vectors. Vectors
scored anomalous are not added to the buffer, so an incident does not become the new normal - unless
``relearn_after`` of them arrive in a row, which means the service changed for good.

**Cold start.** Until ``min_fit`` vectors of a service have been buffered there is no model and
:meth:`ServiceMultivariate.update` returns None (the vectors are still buffered). A vector with a
non-finite entry, or a timestamp not after the service's last one, is ignored (None). A change in the
vector's length means the signals of the service changed: its state starts over.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import IsolationForest

from opsmind.detect.base import F64

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True)
class MultivariateScore:
    """The score of one service vector: the forest's raw score, the whitened distance, the larger of their
    robust z-scores and the calibrated probability."""

    raw: float
    distance: float
    z: float
    probability: float
    anomalous: bool


@dataclass(slots=True)
class _Model:
    mean: F64
    scale: F64
    whiten: F64
    forest: IsolationForest
    raw_median: float
    raw_spread: float
    dist_median: float
    dist_spread: float

    def whitened(self, x: F64) -> F64:
        return np.asarray(((x - self.mean) / self.scale) @ self.whiten, dtype=np.float64)


@dataclass(slots=True)
class _Service:
    dim: int
    buffer: deque[F64]
    last_ts: float = -math.inf
    since_fit: int = 0
    streak: int = 0
    model: _Model | None = None
    fits: int = 0


class ServiceMultivariate:
    """IsolationForest over whitened golden-signal vectors, one model per service, refitted on schedule."""

    name = "service_multivariate"

    def __init__(
        self,
        refit_every: int = 100,
        buffer: int = 1000,
        min_fit: int = 64,
        threshold: float = 6.0,
        relearn_after: int = 30,
        n_estimators: int = 100,
        ridge: float = 1e-3,
        random_state: int = 0,
    ) -> None:
        if min_fit < 8:
            raise ValueError("min_fit must be at least 8")
        if buffer < min_fit:
            raise ValueError("buffer must hold at least min_fit vectors")
        if refit_every < 1 or relearn_after < 1 or n_estimators < 1:
            raise ValueError("refit_every, relearn_after and n_estimators must be positive")
        if threshold <= 0 or ridge <= 0:
            raise ValueError("threshold and ridge must be positive")
        self.refit_every = refit_every
        self.buffer_size = buffer
        self.min_fit = min_fit
        self.threshold = threshold
        self.relearn_after = relearn_after
        self.n_estimators = n_estimators
        self.ridge = ridge
        self.random_state = random_state
        self._services: dict[str, _Service] = {}

    def __contains__(self, service: str) -> bool:
        return service in self._services

    def fitted(self, service: str) -> bool:
        """Whether ``service`` is past its cold start (it has a model)."""
        s = self._services.get(service)
        return s is not None and s.model is not None

    def fits(self, service: str) -> int:
        """How many times the model of ``service`` has been fitted (for tests and telemetry)."""
        s = self._services.get(service)
        return 0 if s is None else s.fits

    def reset(self, service: str) -> None:
        """Forget ``service``: its next vectors start a new cold start."""
        self._services.pop(service, None)

    def calibrate(self, z: float) -> float:
        """Map a robust z-score to a probability: 0 at or below 0, 0.5 at the threshold, towards 1 above."""
        if math.isnan(z) or z <= 0.0:
            return 0.0
        if math.isinf(z):
            return 1.0
        return z * z / (z * z + self.threshold * self.threshold)

    def update(self, service: str, ts: float, vector: list[float] | F64) -> MultivariateScore | None:
        """Score the vector of ``service`` at ``ts`` against its model (None in the cold start), then
        learn from it unless it is anomalous; refit when the schedule says so."""
        return self.update_many(service, [ts], [vector])[0]

    def update_many(
        self, service: str, stamps: Sequence[float], vectors: Sequence[list[float] | F64]
    ) -> list[MultivariateScore | None]:
        """What :meth:`update` would return for each ``(stamps[i], vectors[i])`` in turn, with the forest
        asked once per run of vectors that the same model scores rather than once per vector. A model
        only changes after ``refit_every - since_fit`` more vectors have been learned, so every vector up
        to there is scored by the model in place now. A backfill of an hour of a fleet is thousands of
        vectors, and one ``score_samples`` call costs milliseconds of Python (input checks, configuration)
        whatever its size: scored one by one, they held the interpreter for a minute and starved the API."""
        if len(stamps) != len(vectors):
            raise ValueError(f"{len(stamps)} timestamps but {len(vectors)} vectors")
        xs = [np.asarray(v, dtype=np.float64).reshape(-1) for v in vectors]
        out: list[MultivariateScore | None] = [None] * len(xs)
        i = 0
        while i < len(xs):
            s = self._services.get(service)
            model = None if s is None or s.dim != xs[i].size else s.model
            if s is None or model is None:  # cold start or a new shape: nothing to score ahead
                out[i] = self._learn(service, stamps[i], xs[i], None)
                i += 1
                continue
            ahead: list[int] = []
            end, last = i, s.last_ts
            while end < len(xs) and xs[end].size == s.dim and len(ahead) < self.refit_every - s.since_fit:
                if _usable(stamps[end], xs[end]) and stamps[end] > last:
                    ahead.append(end)
                    last = stamps[end]
                end += 1
            rows = np.stack([xs[k] for k in ahead]) if ahead else np.empty((0, s.dim))
            scored = dict(zip(ahead, self._score_rows(model, rows), strict=True))
            for k in range(i, end):
                out[k] = self._learn(service, stamps[k], xs[k], scored.get(k))
                if s.model is not model:  # refitted: what follows is scored by the new model
                    end = k + 1
                    break
            i = end
        return out

    def _learn(
        self, service: str, ts: float, x: F64, score: MultivariateScore | None
    ) -> MultivariateScore | None:
        """One step of :meth:`update` for ``x``, with its ``score`` by the current model when it was
        computed ahead (None: compute it here)."""
        if not _usable(ts, x):
            return None
        s = self._services.get(service)
        if s is None or s.dim != x.size:
            s = self._services[service] = _Service(x.size, deque(maxlen=self.buffer_size))
        if ts <= s.last_ts:
            return None
        s.last_ts = ts
        result = score
        if result is None and s.model is not None:
            result = self._score_rows(s.model, x[None, :])[0]
        if result is not None and result.anomalous:
            s.streak += 1
            if s.streak < self.relearn_after:
                return result
        else:
            s.streak = 0
        s.buffer.append(x)
        s.since_fit += 1
        if (s.model is None and len(s.buffer) >= self.min_fit) or (
            s.model is not None and s.since_fit >= self.refit_every
        ):
            self._fit(s)
        return result

    def _score_rows(self, m: _Model, X: F64) -> list[MultivariateScore]:
        with np.errstate(all="ignore"):
            W = m.whitened(X)
            finite = np.isfinite(W).all(axis=1)
            raw = np.full(len(W), math.inf)  # a row the whitening overflowed is beyond any normal
            if finite.any():
                raw[finite] = -m.forest.score_samples(W[finite])
            dist = np.sqrt((W * W).sum(axis=1))
        out = []
        for r, d in zip(raw.tolist(), dist.tolist(), strict=True):
            z = max(_robust_z(r, m.raw_median, m.raw_spread), _robust_z(d, m.dist_median, m.dist_spread))
            out.append(MultivariateScore(r, d, z, self.calibrate(z), z >= self.threshold))
        return out

    def _fit(self, s: _Service) -> None:
        X = np.asarray(s.buffer, dtype=np.float64)
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        scale = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        Z = (X - mean) / scale
        cov = np.atleast_2d(np.cov(Z, rowvar=False))
        eigval, eigvec = np.linalg.eigh(cov)
        whiten = eigvec / np.sqrt(np.maximum(eigval, 0.0) + self.ridge)
        forest = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=min(256, len(X)),
            random_state=self.random_state + s.fits,
        )
        W = Z @ whiten
        forest.fit(W)
        raw_med, raw_spread = _median_spread(np.asarray(-forest.score_samples(W), dtype=np.float64))
        dist_med, dist_spread = _median_spread(np.sqrt((W * W).sum(axis=1)))
        s.model = _Model(mean, scale, whiten, forest, raw_med, raw_spread, dist_med, dist_spread)
        s.since_fit = 0
        s.fits += 1


def _median_spread(a: F64) -> tuple[float, float]:
    """Median and robust standard deviation of training scores. A floor keeps a buffer of identical
    vectors (zero spread) from making every later change infinitely anomalous."""
    median = float(np.median(a))
    return median, max(MAD_TO_SIGMA * float(np.median(np.abs(a - median))), 1e-3)


def _usable(ts: float, x: F64) -> bool:
    """A vector the detector can take: some signals, all finite, at a finite time."""
    return x.size > 0 and bool(np.isfinite(x).all()) and math.isfinite(ts)


def _robust_z(value: float, median: float, spread: float) -> float:
    if math.isnan(value):
        return 0.0
    return (value - median) / spread
