"""How much, and how early, each metric changed at a fault: the evidence root-cause ranking starts from.

Both scorers split a column at the fault time: the rows before it are the *normal* period, the rows from
it on the *anomalous* period (gaps are ignored).

* :func:`nsigma` - the NSigma baseline of RCAEval: ``max |x - mean| / std`` over the anomalous period,
  mean and standard deviation from the normal period.
* :func:`robust_change` - OpsMind's score, BARO-like (Pham et al., FSE 2024: median and inter-quartile
  range of the normal period, so one outlier before the fault does not hide a change): ``max |x - median|
  / scale`` over the anomalous period. The scale is the IQR (as a standard deviation: IQR / 1.349)
  floored by the normal period's typical step (``1.25 * median |diff|``), by ``1e-3`` of the column's
  largest absolute value and by ``1e-9``, so a metric that was flat before the fault (an error ratio of
  0, an empty queue) scores at most about 1,000 for leaving its flat line instead of dividing by zero -
  otherwise a queue that goes from 0 to anything would outrank every genuine change. Each column also
  gets an *onset*: the seconds from the fault time to the first row whose deviation passes ``ONSET_Z``;
  a root cause changes before the services that feel it, so the ranker prefers earlier onsets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from opsmind.rca.frame import F64, MetricFrame

ONSET_Z = 4.0
IQR_TO_SIGMA = 1.349


@dataclass(frozen=True)
class ColumnScores:
    score: F64  # [M] change magnitude (0 where a column has too little data)
    onset: F64  # [M] seconds from the fault time to the first large deviation (inf: never)
    direction: F64  # [M] +1 the metric rose, -1 it fell, 0 no data


def _split(frame: MetricFrame, fault_time: float) -> tuple[F64, F64, F64]:
    before = frame.times < fault_time
    if before.sum() < 2 or (~before).sum() < 1:
        raise ValueError(
            f"the fault time {fault_time:.0f} leaves {int(before.sum())} rows before it and "
            f"{int((~before).sum())} after it; ranking needs at least 2 before and 1 after"
        )
    return frame.values[before], frame.values[~before], frame.times[~before] - fault_time


def _peak(dev: F64) -> tuple[F64, F64]:
    """Largest absolute deviation per column and its sign (NaN rows ignored)."""
    a = np.where(np.isnan(dev), -1.0, np.abs(dev))
    k = np.argmax(a, axis=0)
    peak = a[k, np.arange(a.shape[1])]
    sign = np.sign(dev[k, np.arange(a.shape[1])])
    valid = peak >= 0.0
    return np.where(valid, peak, 0.0), np.where(valid, np.nan_to_num(sign), 0.0)


def nsigma(frame: MetricFrame, fault_time: float) -> ColumnScores:
    normal, anomalous, after = _split(frame, fault_time)
    with np.errstate(all="ignore"):
        mean = np.nanmean(normal, axis=0)
        std = np.nanstd(normal, axis=0)
        dev = (anomalous - mean) / np.where(std > 0, std, 1e-9)
    peak, sign = _peak(dev)
    peak = np.nan_to_num(peak, nan=0.0)
    return ColumnScores(peak, _onsets(dev, after), sign)


def robust_change(frame: MetricFrame, fault_time: float) -> ColumnScores:
    normal, anomalous, after = _split(frame, fault_time)
    # A column with no value before the fault is all NaN: its median is NaN and its scores are NaN below,
    # which is handled; numpy's "All-NaN slice" warning about it is noise.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(normal, axis=0)
        q75, q25 = np.nanpercentile(normal, [75, 25], axis=0)
        iqr = (q75 - q25) / IQR_TO_SIGMA
        step = 1.25 * np.nanmedian(np.abs(np.diff(normal, axis=0)), axis=0) if len(normal) > 2 else 0.0
        level = np.fmax(np.abs(med), np.nanmax(np.abs(frame.values), axis=0))
        scale = np.fmax(np.fmax(np.fmax(iqr, step), 1e-3 * level), 1e-9)
        dev = (anomalous - med) / scale
    dev = np.where(np.isnan(med)[None, :], np.nan, dev)
    peak, sign = _peak(dev)
    return ColumnScores(peak, _onsets(dev, after), sign)


def _onsets(dev: F64, after: F64) -> F64:
    big = np.nan_to_num(np.abs(dev), nan=0.0) >= ONSET_Z
    first = np.argmax(big, axis=0)
    return np.where(big.any(axis=0), after[first], np.inf)
