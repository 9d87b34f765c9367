"""Metrics for root-cause ranking: a time axis and one column per (service, metric).

The layout is that of public RCA datasets (RCAEval's RE1-RE3, and the CSVs its tools read): a ``time``
column in Unix seconds and one numeric column per metric named ``<service>_<metric>``. The service is
the part before the *first* underscore: Kubernetes service names cannot contain one (they may contain
dashes, ``ts-order-service``), while metric names often do (``container_cpu_usage``). Columns that do
not follow the pattern (no underscore, an empty service or metric) are listed in ``skipped`` rather
than guessed at; a cell that is empty or not a finite number is a gap (NaN).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class RcaInputError(ValueError):
    """The metrics cannot be used; the message names the file, the row or column, and the problem."""


@dataclass(frozen=True)
class MetricFrame:
    times: F64  # [T], ascending
    services: tuple[str, ...]  # per column
    metrics: tuple[str, ...]  # per column
    values: F64  # [T, M]
    skipped: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.times), len(self.services)) or len(self.metrics) != len(
            self.services
        ):
            raise RcaInputError("times, columns and values disagree in shape")

    @property
    def columns(self) -> list[str]:
        return [f"{s}_{m}" for s, m in zip(self.services, self.metrics, strict=True)]

    @property
    def service_names(self) -> list[str]:
        return sorted(set(self.services))

    @classmethod
    def from_columns(cls, times: F64, columns: dict[str, F64]) -> MetricFrame:
        """Build from ``{"<service>_<metric>": values}`` (the same split rule as the CSV)."""
        services, metrics, cols, skipped = [], [], [], []
        for name, vals in columns.items():
            parts = split_column(name)
            if parts is None:
                skipped.append(name)
                continue
            services.append(parts[0])
            metrics.append(parts[1])
            cols.append(np.asarray(vals, dtype=np.float64))
        if not cols:
            raise RcaInputError("no column named <service>_<metric>")
        t = np.asarray(times, dtype=np.float64)
        order = np.argsort(t, kind="stable")
        return cls(t[order], tuple(services), tuple(metrics), np.column_stack(cols)[order], tuple(skipped))


def split_column(name: str) -> tuple[str, str] | None:
    service, sep, metric = name.strip().partition("_")
    if not sep or not service or not metric:
        return None
    return service, metric


def _number(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        return math.nan
    # "inf" parses, but one infinite cell would make its column's mean and spread infinite and the
    # column score 0: it is a gap like any other cell that is not a finite number.
    return x if math.isfinite(x) else math.nan


def read_csv(path: Path) -> MetricFrame:
    """Read a ``time,<service>_<metric>,...`` CSV (see module)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise RcaInputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise RcaInputError(f"{path}: not a UTF-8 text file") from exc
    if not rows:
        raise RcaInputError(f"{path}: empty file")
    header = [h.strip() for h in rows[0]]
    if "time" not in header:
        raise RcaInputError(f"{path}: needs a 'time' column (Unix seconds); the header is {header[:6]}...")
    ti = header.index("time")
    repeated = sorted({h for h in header if h and header.count(h) > 1})
    if repeated:  # otherwise the last such column would silently replace the others
        raise RcaInputError(f"{path}: column {repeated[0]!r} appears more than once in the header")
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    if len(body) < 2:
        raise RcaInputError(f"{path}: needs at least two rows of data")
    times = np.empty(len(body))
    for k, r in enumerate(body):
        if len(r) != len(header):
            raise RcaInputError(f"{path}:{k + 2}: {len(r)} cells for {len(header)} columns")
        t = _number(r[ti])
        if not math.isfinite(t):
            raise RcaInputError(f"{path}:{k + 2}: time {r[ti]!r} is not a number of Unix seconds")
        times[k] = t
    columns = {
        name: np.array([_number(r[j]) for r in body]) for j, name in enumerate(header) if j != ti and name
    }
    try:
        return MetricFrame.from_columns(times, columns)
    except RcaInputError as exc:
        raise RcaInputError(f"{path}: {exc}") from exc
