"""Real load traces for the forecasting and autoscaling benchmarks, on a regular one-minute grid.

:func:`load_trace` reads any CSV or gzip-compressed CSV with a timestamp column and a value column.
Known layouts are recognised by their header:

* NASA KSC HTTP 1995 (``timestamp,unix_s,requests,valid``): time from ``unix_s``, value ``requests``;
  rows with ``valid == 0`` or an empty ``requests`` are invalid (the missing days and the hurricane
  shutdown, whose zeros are not real traffic);
* WorldCup-98 (``period,count``): ``period`` is an ISO minute start in UTC;
* anything else: the first of ``timestamp, ts, time, period, unix_s, date, datetime`` present (case
  ignored) is the time, the first of ``value, count, requests, load, y`` the value (so ``ts,value`` -
  the Crane production series - and a generic ``timestamp,value`` both work).

Timestamps are Unix seconds (numbers; values above 1e11 are taken as milliseconds) or ISO 8601 dates
(UTC unless they carry an offset). Rows are put on the 60 s grid from the first to the last minute by
``floor(t / 60)``; several rows in one minute are averaged (the values are rates or gauges, e.g.
Crane's 15 s CPU samples; the per-minute count files have one row per minute). Minutes with no valid
row are NaN and counted in ``Trace.missing``; rows with an empty value or marked invalid are counted
in ``Trace.invalid``. A missing column, an unparseable timestamp or a non-numeric value raises a
``ValueError`` naming the file, the problem and the offending line; so do a file without one valid value
and timestamps spanning more than ``MAX_SPAN_DAYS``.

:func:`default_traces` picks the benchmark's traces: NASA (daily and weekly cycles, two outages),
WorldCup-98 (flash crowds over a daily cycle and a ramp) and three Crane series: ``input0`` (the CPU
series Crane's own documentation uses, 8 days), ``input9`` (a large daily cycle, 16 days) and
``input15`` (sampled every 15 s, so it exercises resampling; 15.6 days). The near-zero and near-flat
Crane series are left out: a scaled error on them measures noise.
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np

STEP_S = 60
TIME_COLUMNS = ("timestamp", "ts", "time", "period", "unix_s", "date", "datetime")
VALUE_COLUMNS = ("value", "count", "requests", "load", "y")
CRANE_DEFAULT = ("input0", "input9", "input15")
# Longest span put on the grid: the benchmarks' traces are weeks to months long, and a stray or mis-scaled
# timestamp (0, a wrong year) would otherwise ask for a grid of millions of minutes (a hang or MemoryError).
MAX_SPAN_DAYS = 3660


@dataclass(frozen=True)
class Trace:
    """``y[i]`` is the load in the minute starting at ``t[i]`` (Unix seconds, step 60); NaN where no
    valid observation fell in that minute."""

    name: str
    t: np.ndarray
    y: np.ndarray
    source: str = ""
    rows: int = 0
    missing: int = 0
    invalid: int = 0

    @property
    def step_s(self) -> int:
        return STEP_S


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return name


def _trace_name(path: Path, layout: str) -> str:
    if layout in ("nasa_http_1995", "worldcup98"):
        return layout
    stem = _stem(path)
    return f"crane_{stem}" if path.parent.name.startswith("crane") else stem


def _pick(columns: dict[str, int], options: tuple[str, ...]) -> int | None:
    for want in options:
        if want in columns:
            return columns[want]
    return None


def _fail(path: Path, line: int, what: str, text: str) -> ValueError:
    return ValueError(f"{path}: line {line}: {what}: {text!r}")


def _parse_time(text: str) -> float:
    """Unix seconds from a number (milliseconds above 1e11) or an ISO 8601 date (UTC if naive)."""
    try:
        t = float(text)
    except ValueError:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    if not math.isfinite(t):
        raise ValueError("not a finite time")
    return t / 1000.0 if abs(t) > 1e11 else t


def _open(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _read_rows(path: Path) -> tuple[str, np.ndarray, np.ndarray, np.ndarray]:
    """(layout, times, values, invalid) as read, one entry per data row."""
    times: list[float] = []
    values: list[float] = []
    invalid: list[bool] = []
    try:
        with _open(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: empty file, no header")
            columns = {c.strip().lower(): i for i, c in enumerate(header)}
            valid_col = None
            if {"unix_s", "requests", "valid"} <= columns.keys():
                layout, t_col, v_col = "nasa_http_1995", columns["unix_s"], columns["requests"]
                valid_col = columns["valid"]
            elif set(columns) == {"period", "count"}:
                layout, t_col, v_col = "worldcup98", columns["period"], columns["count"]
            else:
                found_t, found_v = _pick(columns, TIME_COLUMNS), _pick(columns, VALUE_COLUMNS)
                if found_t is None or found_v is None:
                    what = "a timestamp column" if found_t is None else "a value column"
                    wanted = TIME_COLUMNS if found_t is None else VALUE_COLUMNS
                    raise ValueError(
                        f"{path}: no {what} (one of {', '.join(wanted)}); the header is {header}"
                    )
                layout, t_col, v_col = "generic", found_t, found_v
            width = max(t_col, v_col, -1 if valid_col is None else valid_col) + 1
            for line, row in enumerate(reader, start=2):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) < width:
                    raise _fail(path, line, f"{len(row)} fields, {width} needed", ",".join(row))
                stamp = row[t_col].strip()
                try:
                    times.append(_parse_time(stamp))
                except ValueError:
                    raise _fail(path, line, "unparseable timestamp", stamp) from None
                text = row[v_col].strip()
                try:
                    value = float(text) if text else math.nan
                except ValueError:
                    raise _fail(path, line, "value is not a number", text) from None
                bad = not math.isfinite(value)
                if valid_col is not None and row[valid_col].strip() == "0":
                    bad = True
                values.append(value)
                invalid.append(bad)
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from exc
    if not times:
        raise ValueError(f"{path}: no data rows")
    return layout, np.asarray(times), np.asarray(values), np.asarray(invalid, dtype=bool)


def load_trace(path: Path | str) -> Trace:
    """Read ``path`` onto the one-minute grid; see the module docstring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such trace file")
    layout, t, y, invalid = _read_rows(path)
    ok = ~invalid
    if not ok.any():  # nothing to forecast or replay; the benchmarks would fail deep inside, or score zeros
        raise ValueError(f"{path}: no valid value (every row is empty, not finite or marked invalid)")
    span_days = (float(t.max()) - float(t.min())) / 86_400
    if span_days > MAX_SPAN_DAYS:
        raise ValueError(
            f"{path}: the timestamps span {span_days:,.0f} days (Unix seconds {t.min():.0f} to "
            f"{t.max():.0f}), more than {MAX_SPAN_DAYS}; a stray or mis-scaled timestamp?"
        )
    minute = np.floor(t / STEP_S).astype(np.int64)
    first = int(minute.min())
    size = int(minute.max()) - first + 1
    slot = minute[ok] - first
    sums = np.bincount(slot, weights=y[ok], minlength=size)
    counts = np.bincount(slot, minlength=size)
    grid = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return Trace(
        name=_trace_name(path, layout),
        t=(first + np.arange(size, dtype=np.int64)) * STEP_S,
        y=grid,
        source=str(path),
        rows=int(t.size),
        missing=int((counts == 0).sum()),
        invalid=int(invalid.sum()),
    )


def default_traces(datasets_dir: Path | str) -> list[Path]:
    """The benchmark's traces under ``datasets_dir`` (the ``traces`` folder or its parent), those that
    exist; see the module docstring for the choice."""
    root = Path(datasets_dir)
    if not (root / "nasa_http_1995").exists() and (root / "traces").is_dir():
        root = root / "traces"
    wanted = [
        root / "nasa_http_1995" / "nasa_1995_per_minute.csv.gz",
        root / "worldcup98" / "worldcup98_per_minute.csv.gz",
        *(root / "crane_dsp_production_cpu" / f"{name}.csv.gz" for name in CRANE_DEFAULT),
    ]
    return [p for p in wanted if p.is_file()]
