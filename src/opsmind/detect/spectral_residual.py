"""Spectral-residual saliency of the newest point (after Ren et al., KDD 2019, "Time-Series Anomaly
Detection Service at Microsoft"), vectorised across rows with one batched real FFT.

The paper's transform of a window ``x``: amplitude ``A = |F(x)|`` and phase ``P`` of its Fourier
transform, log amplitude ``L = log A``, its average over ``q = 3`` neighbouring frequencies ``AL``, the
spectral residual ``R = L - AL``, and the saliency map ``S = |F^-1(exp(R + iP))|``; a point is salient
when ``(S - mean S) / mean S`` is large. Because the newest point sits at the edge of the window, the
paper appends ``kappa`` estimated points after it; here they are ``kappa`` copies of the last learned
value (the paper extrapolates a gradient that includes the newest point, which carries a spike into the
extension and hides it). Two more deviations, both for operational series: the zero-frequency term is
dropped (a large level would otherwise dominate the log spectrum and flatten the saliency), and
``log(A + eps)`` uses ``eps = 1e-6 * mean A`` per row so flat windows stay finite.

State per row: a ring of the last ``window - 1 - kappa`` learned values plus ``kappa + 1`` scratch slots,
``ring = window`` float64 in all. Scoring gathers each row's ring (a contiguous copy), writes the new value
and the extension into the oldest slots and transforms the ring as it lies: the circular FFT of a
rotated window is the rotated saliency of the ordered window, so no reordering is needed and the newest
point's saliency is read at its slot. Score = ``max(0, S_new / mean S - 1)``.

Edge cases: NaN until the ring is full of learned values; NaN value -> NaN, ``+-inf`` -> ``inf``;
neither is learned. O(window log window) per point, independent of the series length.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft

from opsmind.detect.base import F64, I64, B, grow
from opsmind.detect.jit import kernel


class SpectralResidualDetector:
    name = "spectral_residual"

    def __init__(self, window: int = 32, kappa: int = 3) -> None:
        if window < 8 or kappa < 1 or kappa + 5 > window:
            raise ValueError("need window >= 8 and 1 <= kappa <= window - 5")
        self.window = window
        self.kappa = kappa
        self.ring = np.zeros((0, window), dtype=np.float32)
        self.pos = np.zeros(0, dtype=np.int64)  # slot of the oldest value = where the next one goes
        self.n = np.zeros(0, dtype=np.int64)
        self.last = np.zeros(0)

    def ensure_rows(self, n_rows: int) -> None:
        self.ring = grow(self.ring, n_rows, 0.0)
        self.pos = grow(self.pos, n_rows, 0)
        self.n = grow(self.n, n_rows, 0)
        self.last = grow(self.last, n_rows, np.nan)

    @property
    def nbytes_per_series(self) -> int:
        return self.window * 4 + 3 * 8

    def score_many(self, rows: I64, ts: F64, values: F64) -> F64:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        out = np.full(len(rows), np.nan)
        warm = (self.n[rows] >= self.window - 1 - self.kappa) & np.isfinite(values)
        out[np.isinf(values)] = np.inf
        if not warm.any():
            return out
        r = rows[warm]
        pos = self.pos[r]
        m = _windows(self.ring, self.last, r, pos, values[warm], self.kappa)
        out[warm] = self._saliency_ratio(m, pos)
        return out

    @staticmethod
    def _saliency_ratio(m: npt.NDArray[np.float32], pos: I64) -> F64:
        # Single precision through scipy's FFT: about 2.5x faster than double for 32-point windows, and
        # a saliency ratio needs no more than 6 significant digits.
        f = scipy.fft.rfft(m, axis=1)
        f[:, 0] = 0.0  # drop the zero frequency: the level must not dominate the log spectrum
        # exp(R + iP) = exp(L - AL) * F / |F| = F * exp(-AL)  (L = log |F|, up to eps). numpy's SIMD abs,
        # log and exp over the whole batch, compiled loops for the per-row glue between them.
        amp = np.abs(f)
        _add_eps(amp)
        lg = np.log(amp, out=amp)
        filt = np.exp(_minus_neighbour_mean(lg))
        f *= filt
        return _newest_ratio(scipy.fft.irfft(f, n=m.shape[1], axis=1), pos)

    def learn_many(self, rows: I64, ts: F64, values: F64, learn: B) -> None:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        ok = learn & np.isfinite(values)
        _learn_rings(rows[ok], values[ok], self.ring, self.pos, self.n, self.last)


@kernel
def _windows(
    ring: npt.NDArray[np.float32], last: F64, rows: I64, pos: I64, values: F64, kappa: int
) -> npt.NDArray[np.float32]:
    """Each row's ring (a copy) with the new value in its oldest slot and ``kappa`` copies of the last
    learned value after it."""
    k, w = len(rows), ring.shape[1]
    m = np.empty((k, w), dtype=np.float32)
    for i in range(k):
        m[i] = ring[rows[i]]
        m[i, pos[i]] = values[i]
        ext = np.float32(last[rows[i]])
        for j in range(1, kappa + 1):
            m[i, (pos[i] + j) % w] = ext
    return m


@kernel
def _newest_ratio(inv: npt.NDArray[np.float32], pos: I64) -> F64:
    """``max(0, S_new / mean S - 1)`` per row, ``S = |inverse transform|``; 0 where the mean is 0."""
    k, w = inv.shape
    out = np.zeros(k)
    for i in range(k):
        total = 0.0
        for j in range(w):
            total += abs(np.float64(inv[i, j]))
        ratio = abs(np.float64(inv[i, pos[i]])) / (total / w) if total > 0.0 else 0.0
        out[i] = max(ratio - 1.0, 0.0) if np.isfinite(ratio) else 0.0
    return out


@kernel
def _learn_rings(rows: I64, x: F64, ring: npt.NDArray[np.float32], pos: I64, n: I64, last: F64) -> None:
    """Each learned value into its row's oldest slot."""
    w = ring.shape[1]
    for i in range(len(rows)):
        r = rows[i]
        ring[r, pos[r]] = x[i]
        pos[r] = (pos[r] + 1) % w
        n[r] += 1
        last[r] = x[i]


@kernel
def _add_eps(amp: npt.NDArray[np.float32]) -> None:
    """``A + eps`` in place, ``eps = 1e-6 * mean A`` of the row (and 1e-30), so flat rows stay finite."""
    nf = amp.shape[1]
    scale = np.float32(1e-6 / nf)
    for i in range(amp.shape[0]):
        total = np.float32(0.0)
        for j in range(nf):
            total += amp[i, j]
        eps = scale * total + np.float32(1e-30)
        for j in range(nf):
            amp[i, j] += eps


@kernel
def _minus_neighbour_mean(lg: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``-AL``: minus the mean of each log amplitude and its two neighbours (q = 3; the edges repeat,
    and the dropped zero frequency counts as its neighbour at 1)."""
    k, nf = lg.shape
    out = np.empty_like(lg)
    third = np.float32(-1.0 / 3.0)
    for i in range(k):
        out[i, 0] = 0.0  # unused: the zero frequency's coefficient is 0
        for j in range(1, nf - 1):
            lo = lg[i, j - 1] if j > 1 else lg[i, 1]
            out[i, j] = (lo + lg[i, j] + lg[i, j + 1]) * third
        out[i, nf - 1] = (lg[i, nf - 2] + lg[i, nf - 1] + lg[i, nf - 1]) * third
    return out
