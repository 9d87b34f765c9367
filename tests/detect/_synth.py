"""Small synthetic series shared by the detector tests."""

from __future__ import annotations

import numpy as np

from opsmind.detect.base import F64

STEP = 300.0


def noisy(n: int = 600, seed: int = 0, level: float = 50.0, sigma: float = 1.0) -> tuple[F64, F64]:
    rng = np.random.default_rng(seed)
    ts = 1.7e9 + np.arange(n) * STEP
    return ts, level + sigma * rng.normal(size=n)


def run(det: object, ts: F64, xs: F64, learn_all: bool = True) -> F64:
    """Score then learn one point at a time through the vectorised interface (one row)."""
    rows = np.zeros(1, dtype=np.int64)
    out = np.empty(len(xs))
    for i in range(len(xs)):
        t, x = ts[i : i + 1], xs[i : i + 1]
        s = det.score_many(rows, t, x)  # type: ignore[attr-defined]
        out[i] = s[0]
        det.learn_many(rows, t, x, np.array([learn_all]))  # type: ignore[attr-defined]
    return out
