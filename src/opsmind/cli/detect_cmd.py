"""``opsmind detect FILE.csv``: the anomaly probability of every row of any ``timestamp,value`` CSV.

The file is scored strictly online (row i sees rows 0..i only) as the engine's detect stage would score
the series live, so users can try OpsMind on their own data: ``anomaly_probability`` is the default
ensemble's, ``context_novelty`` CAD OSE's reported novelty (:mod:`opsmind.detect.cad`), and ``anomaly``
is 1 when either reaches its alarm level (the ensemble's threshold, CAD's ``CONTEXT_ALARM``). Rows whose
value is not a finite number get empty scores; a row whose timestamp cannot be read is an error naming the
line, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from opsmind.detect.cad import cad_series
from opsmind.detect.ensemble import Ensemble
from opsmind.detect.points import CONTEXT_ALARM
from opsmind.ingest.replay import parse_timestamp


class DetectFileError(ValueError):
    """The input file cannot be scored; the message names the file and the line."""


def read_series(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Timestamps as written, Unix seconds and values (NaN where a value is missing or not a number)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectFileError(f"{path}: cannot read: {exc}") from exc
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or len(header) < 2:
        raise DetectFileError(f"{path}: needs a header row 'timestamp,value'")
    raw_ts: list[str] = []
    ts: list[float] = []
    values: list[float] = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) < 2:
            raise DetectFileError(f"{path}:{line}: expected timestamp,value")
        try:
            ts.append(parse_timestamp(row[0]))
        except ValueError as exc:
            raise DetectFileError(f"{path}:{line}: timestamp: {exc}") from exc
        try:
            v = float(row[1])
        except ValueError:
            v = math.nan
        raw_ts.append(row[0])
        values.append(v if math.isfinite(v) else math.nan)
    if not ts:
        raise DetectFileError(f"{path}: no rows")
    return raw_ts, np.asarray(ts), np.asarray(values)


def score_file(path: Path) -> tuple[str, int, int]:
    """Score ``path``; return (CSV text, rows, rows flagged anomalous)."""
    raw_ts, ts, values = read_series(path)
    ensemble = Ensemble()
    prob = ensemble.score_series(ts, values)
    novelty = cad_series(values)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["timestamp", "value", "anomaly_probability", "context_novelty", "anomaly"])
    alarms = 0
    for t, v, p, c in zip(raw_ts, values.tolist(), prob.tolist(), novelty.tolist(), strict=True):
        if math.isnan(v):
            w.writerow([t, "", "", "", ""])
            continue
        flag = (not math.isnan(p) and p >= ensemble.threshold) or c >= CONTEXT_ALARM
        alarms += flag
        w.writerow([t, repr(v), "" if math.isnan(p) else f"{p:.6f}", f"{c:.6f}", int(flag)])
    return buf.getvalue(), len(raw_ts), alarms
