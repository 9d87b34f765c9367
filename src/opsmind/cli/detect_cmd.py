"""``opsmind detect FILE.csv``: the anomaly probability of every row of any ``timestamp,value`` CSV.

The file is scored strictly online (row i sees rows 0..i only) as the engine's detect stage would score
the series live, so users can try OpsMind on their own data: ``anomaly_probability`` is the default
ensemble's, ``context_novelty`` CAD OSE's reported novelty (:mod:`opsmind.detect.cad`), and ``anomaly``
is 1 when either reaches its alarm level (the ensemble's threshold, CAD's ``CONTEXT_ALARM``). Columns
named ``timestamp`` and ``value`` in the header are used wherever they are; otherwise the first two
columns, and a first row that reads as data (a timestamp and a number) is data: the file has no header.
Rows whose value is not a finite number get empty scores (a gap, as a live series' missing scrape); the
summary counts them and names the first that is not empty and does not read as a number (a typo
in the file, say), and counts the timestamps not after the one before (out of order or repeated: the
detectors treat them as hygiene.py says). A row whose timestamp cannot be read is an error naming the
line, and nothing is written.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opsmind.detect.cad import cad_series
from opsmind.detect.ensemble import Ensemble
from opsmind.detect.points import CONTEXT_ALARM
from opsmind.ingest.replay import parse_timestamp


class DetectFileError(ValueError):
    """The input file cannot be scored; the message names the file and the line."""


@dataclass(slots=True)
class SeriesFile:
    """The rows of a file: timestamps as written, Unix seconds, values (NaN where a value is missing or
    not a number) and the first row whose value was text that is no number at all."""

    raw_ts: list[str]
    ts: np.ndarray
    values: np.ndarray
    first_not_a_number: tuple[int, str] | None = None


@dataclass(slots=True)
class Scored:
    """``opsmind detect``'s output and what its summary line says."""

    text: str
    rows: int
    alarms: int
    gaps: int = 0
    first_not_a_number: tuple[int, str] | None = None
    not_after_previous: int = 0

    def summary(self) -> str:
        out = f"{self.rows} rows scored, {self.alarms} at or above the alarm threshold"
        if self.gaps:
            out += f"; {self.gaps} without a finite value, left unscored"
            if self.first_not_a_number is not None:
                line, text = self.first_not_a_number
                out += f" (line {line} has {text[:40]!r}, not a number)"
        if n := self.not_after_previous:
            out += f"; {n} timestamp{'s' * (n != 1)} not after the row before (out of order or repeated)"
        return out


def read_series(path: Path) -> SeriesFile:
    """The file's rows; see :class:`SeriesFile`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectFileError(f"{path}: cannot read: {exc}") from exc
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or len(header) < 2:
        raise DetectFileError(f"{path}: needs a header row 'timestamp,value'")
    i_ts, i_value, headed = _columns(header)
    width = max(i_ts, i_value) + 1
    raw_ts: list[str] = []
    ts: list[float] = []
    values: list[float] = []
    first_not_a_number: tuple[int, str] | None = None
    for line, row in enumerate(rows if headed else itertools.chain([header], rows), start=2 if headed else 1):
        if not row:
            continue
        if len(row) < width:
            raise DetectFileError(f"{path}:{line}: expected timestamp,value")
        try:
            ts.append(parse_timestamp(row[i_ts]))
        except ValueError as exc:
            raise DetectFileError(f"{path}:{line}: timestamp: {exc}") from exc
        try:
            v = float(row[i_value])
        except ValueError:
            v = math.nan
            if row[i_value].strip() and first_not_a_number is None:
                first_not_a_number = (line, row[i_value])
        raw_ts.append(row[i_ts])
        values.append(v if math.isfinite(v) else math.nan)
    if not ts:
        raise DetectFileError(f"{path}: no rows")
    return SeriesFile(raw_ts, np.asarray(ts), np.asarray(values), first_not_a_number)


def _columns(first: list[str]) -> tuple[int, int, bool]:
    """Indices of the timestamp and value columns, and whether ``first`` (the first row) is a header: by
    name when it names them (so a ``value,timestamp`` file is not scored the wrong way round; one not
    named is whichever of the first two columns the other does not take); otherwise the first two, and a
    first row that reads as data is data (taken for a header, it was silently lost)."""
    names = [h.strip().lower() for h in first]
    i_ts = names.index("timestamp") if "timestamp" in names else None
    i_value = names.index("value") if "value" in names else None
    if i_ts is None and i_value is None:
        try:
            parse_timestamp(first[0])
            float(first[1])
        except ValueError:
            return 0, 1, True
        return 0, 1, False
    if i_ts is None:
        i_ts = 1 if i_value == 0 else 0
    if i_value is None:
        i_value = 1 if i_ts == 0 else 0
    return i_ts, i_value, True


def score_file(path: Path) -> Scored:
    """Score ``path``: the CSV text and the counts of its summary line."""
    f = read_series(path)
    raw_ts, ts, values = f.raw_ts, f.ts, f.values
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
    not_after = int(np.count_nonzero(ts[1:] <= np.maximum.accumulate(ts)[:-1])) if len(ts) > 1 else 0
    gaps = int(np.count_nonzero(np.isnan(values)))
    return Scored(buf.getvalue(), len(raw_ts), alarms, gaps, f.first_not_a_number, not_after)
