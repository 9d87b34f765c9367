"""Load at the entry point: a real trace scaled to a chosen peak, or a synthetic day/week cycle.

Traces are CSV files (optionally gzipped) with a time column (Unix seconds or ISO 8601) and a value
column, such as the NASA-1995, WorldCup-98 and Crane series in ``../shared/datasets/traces``. The trace
is scaled so its maximum is ``peak_rps`` and replayed from its first row at the scenario's start,
linearly interpolated between rows (rows with an empty value are gaps, interpolated across) and wrapped
around when the scenario outlasts it.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from opsmind.sim.spec import LoadSpec

DAY = 86_400.0
WEEK = 7 * DAY


class TraceError(ValueError):
    """The trace file cannot be used; the message names the file, the line and the problem."""


def _parse_time(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is neither Unix seconds nor ISO 8601") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # a time without an offset is UTC
    return dt.timestamp()


def read_trace(path: str | Path, value_column: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Times (seconds from the first row) and values of a trace file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise TraceError(f"{p}: cannot read: {exc.strerror or exc}") from exc
    try:
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise TraceError(f"{p}: not a UTF-8 CSV file, plain or gzipped: {exc}") from exc
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if not header or len(header) < 2:
        raise TraceError(f"{p}: needs a header row with a time column and a value column")
    if value_column is not None:
        if value_column not in header:
            raise TraceError(f"{p}: no column {value_column!r} (columns: {', '.join(header)})")
        vcol = header.index(value_column)
    else:
        vcol = len(header) - 1
        for name in ("value", "requests", "count", "rps"):
            if name in header:
                vcol = header.index(name)
                break
    times: list[float] = []
    values: list[float] = []
    for line, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) <= vcol:
            raise TraceError(f"{p}:{line}: {len(row)} columns, no {header[vcol]!r}")
        if not row[vcol].strip():
            continue  # a gap in the data: interpolated across
        try:
            ts, value = _parse_time(row[0]), float(row[vcol])
        except ValueError as exc:
            raise TraceError(f"{p}:{line}: {exc}") from exc
        if not (math.isfinite(ts) and math.isfinite(value) and value >= 0):
            raise TraceError(f"{p}:{line}: the time must be finite and the value finite and non-negative")
        times.append(ts)
        values.append(value)
    if len(times) < 2:
        raise TraceError(f"{p}: needs at least two rows")
    t = np.asarray(times)
    order = np.argsort(t, kind="stable")
    t, v = t[order] - t[order][0], np.asarray(values)[order]
    return t, v


class Load:
    """Requests per second at the entry service at simulated time ``t`` (seconds since start)."""

    def __init__(self, spec: LoadSpec, rng: np.random.Generator, base_dir: Path | None = None) -> None:
        self.spec = spec
        self.rng = rng
        self.trace: tuple[np.ndarray, np.ndarray] | None = None
        if spec.trace:
            path = Path(spec.trace)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            t, v = read_trace(path, spec.value_column)
            peak = float(v.max()) or 1.0
            self.trace = (t, v * (spec.peak_rps / peak))
        self.multiplier = 1.0  # traffic spikes multiply the load
        self._burst_until = -1.0

    def rps(self, t: float, start: float, dt: float) -> float:
        if self.trace is not None:
            times, values = self.trace
            span = float(times[-1]) + (float(times[1] - times[0]) if len(times) > 1 else 0.0)
            base = float(np.interp(t % span if span > 0 else 0.0, times, values))
        else:
            base = self._synthetic(start + t, dt)
        return max(0.0, base * self.multiplier)

    def _synthetic(self, ts: float, dt: float) -> float:
        s = self.spec
        # Daily cycle peaking mid-afternoon (15:00 UTC), trough before dawn.
        daily = 0.5 * (1 + math.cos(2 * math.pi * (ts % DAY - 15 * 3600) / DAY))
        level = (1 - s.daily_amplitude) + s.daily_amplitude * daily
        weekday = int(ts // DAY + 3) % 7  # Monday 0: 1970-01-01 was a Thursday (3); 5, 6: Saturday, Sunday
        if weekday >= 5:
            level *= 1 - s.weekly_amplitude
        if s.bursts_per_day > 0 and self.rng.random() < s.bursts_per_day * dt / DAY:
            self._burst_until = ts + float(self.rng.uniform(60, 300))
        if ts < self._burst_until:
            level *= s.burst_factor
        noise = 1 + s.noise * float(self.rng.standard_normal())
        return s.peak_rps * level * max(0.0, noise)
