"""Load a corpus in the Numenta Anomaly Benchmark layout.

A NAB folder holds ``data/<category>/<name>.csv`` (columns ``timestamp,value``, rows in time order),
``labels/combined_windows.json`` (``{"<category>/<name>.csv": [[start, end], ...]}``, timestamps) and
optionally ``config/profiles.json`` (``{"<profile>": {"CostMatrix": {"tpWeight", "fpWeight",
"fnWeight"}}}``). Windows are mapped to row indices here: a window covers the rows from the first one at
or after ``start`` to the last one at or before ``end`` (in file order; NAB's files are time-ordered but
for a few repeated timestamps). Any departure from the layout raises :class:`NabLayoutError` naming the
offending path.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
LABELS = Path("labels") / "combined_windows.json"
PROFILES = Path("config") / "profiles.json"
EPOCH = datetime(1970, 1, 1)


class NabLayoutError(ValueError):
    """The folder is not in NAB's layout; the message names the path at fault."""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    tp_weight: float
    fp_weight: float
    fn_weight: float


# NAB's three application profiles (its config/profiles.json), used when a folder has no profiles file.
DEFAULT_PROFILES = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


@dataclass(frozen=True)
class NabFile:
    name: str  # "<category>/<file>.csv", the key in combined_windows.json
    timestamps: F64  # seconds since the epoch (timestamps are naive; read as UTC)
    values: F64
    windows: tuple[tuple[int, int], ...]  # [left, right] row indices, both inclusive, in time order

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class NabCorpus:
    root: Path
    files: tuple[NabFile, ...]
    profiles: tuple[Profile, ...]
    profiles_source: str

    @property
    def rows(self) -> int:
        return sum(len(f) for f in self.files)

    @property
    def windows(self) -> int:
        return sum(len(f.windows) for f in self.files)


def _naive_utc(text: str) -> float:
    """Seconds since the epoch of an ISO timestamp, read as UTC (NAB's timestamps carry no zone)."""
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is not None:  # an explicit offset is honoured, not dropped (that would shift the time)
        dt = dt.astimezone(UTC)
    return (dt.replace(tzinfo=None) - EPOCH).total_seconds()


def read_series(path: Path) -> tuple[F64, F64]:
    """``(timestamps, values)`` of one ``timestamp,value`` CSV, in file order.

    Time order is not enforced: NAB's own files repeat a few timestamps (a DST hour) and one steps back."""
    try:
        with path.open(newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise NabLayoutError(f"{path}: cannot read ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise NabLayoutError(f"{path}: not a text CSV ({exc.reason})") from exc
    if not rows or [c.strip() for c in rows[0][:2]] != ["timestamp", "value"]:
        raise NabLayoutError(f"{path}: expected the header 'timestamp,value'")
    body = [r for r in rows[1:] if r]
    if not body:
        raise NabLayoutError(f"{path}: no rows")
    try:
        ts = np.array([_naive_utc(r[0]) for r in body], dtype=np.float64)
        values = np.array([float(r[1]) for r in body], dtype=np.float64)
    except (IndexError, ValueError) as exc:
        raise NabLayoutError(f"{path}: every row needs a timestamp and a numeric value ({exc})") from exc
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:  # "nan" and "inf" parse, but one of them silently wrecks a detector's whole file
        row = body[int(bad[0])]
        raise NabLayoutError(
            f"{path}: the value at {row[0]} is {row[1]!r}; every value must be a finite number"
        )
    return ts, values


def window_rows(ts: F64, limits: list[Any], where: str) -> tuple[tuple[int, int], ...]:
    """Map ``[[start, end], ...]`` timestamps to ``(left, right)`` row indices, both inclusive."""
    out: list[tuple[int, int]] = []
    for pair in limits:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise NabLayoutError(f"{where}: a window must be [start, end], got {pair!r}")
        try:
            start, end = _naive_utc(str(pair[0])), _naive_utc(str(pair[1]))
        except ValueError as exc:
            raise NabLayoutError(f"{where}: bad window timestamp in {pair!r}") from exc
        # As NAB walks a file: the window opens at the first row reaching `start` and closes at the first
        # row after it reaching `end` (that row included when it is exactly `end`).
        opened = np.flatnonzero(ts >= start)
        left = int(opened[0]) if len(opened) else len(ts)
        closed = np.flatnonzero(ts[left:] >= end)
        right = left + int(closed[0]) if len(closed) else len(ts)
        if right < len(ts) and ts[right] > end:
            right -= 1
        if left >= len(ts) or right >= len(ts) or left > right:
            raise NabLayoutError(f"{where}: window {pair!r} covers no row of the file")
        if out and left <= out[-1][1]:
            raise NabLayoutError(f"{where}: windows overlap or are out of order at {pair!r}")
        out.append((left, right))
    return tuple(out)


def load_profiles(root: Path) -> tuple[tuple[Profile, ...], str]:
    path = root / PROFILES
    if not path.exists():
        return DEFAULT_PROFILES, "NAB defaults (no config/profiles.json)"
    try:
        raw = json.loads(path.read_text())
        profiles = tuple(
            Profile(
                name,
                float(spec["CostMatrix"]["tpWeight"]),
                float(spec["CostMatrix"]["fpWeight"]),
                float(spec["CostMatrix"]["fnWeight"]),
            )
            for name, spec in raw.items()
        )
        if not all(np.isfinite([p.tp_weight, p.fp_weight, p.fn_weight]).all() for p in profiles):
            raise ValueError("a weight is not a finite number")  # NaN would make every score null
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise NabLayoutError(
            f"{path}: expected {{profile: {{CostMatrix: {{tpWeight, fpWeight, fnWeight}}}}}} ({exc!r})"
        ) from exc
    if not profiles:
        raise NabLayoutError(f"{path}: no profiles")
    return profiles, str(path)


def load_corpus(root: Path) -> NabCorpus:
    """Read every ``data/<category>/*.csv`` with its windows; errors name the path that breaks the layout."""
    data = root / "data"
    labels_path = root / LABELS
    if not root.is_dir():
        raise NabLayoutError(f"{root}: not a directory")
    if not data.is_dir():
        raise NabLayoutError(f"{data}: missing; a NAB folder holds data/<category>/<name>.csv")
    if not labels_path.is_file():
        raise NabLayoutError(f"{labels_path}: missing; a NAB folder holds labels/combined_windows.json")
    try:
        labels = json.loads(labels_path.read_text())
    except (OSError, ValueError) as exc:
        raise NabLayoutError(f"{labels_path}: not readable JSON ({exc})") from exc
    if not isinstance(labels, dict):
        raise NabLayoutError(f"{labels_path}: expected an object keyed by '<category>/<name>.csv'")
    csvs = sorted(p.relative_to(data).as_posix() for p in data.glob("*/*.csv"))
    if not csvs:
        raise NabLayoutError(f"{data}: no <category>/*.csv files")
    missing = sorted(set(labels) - set(csvs))
    if missing:
        raise NabLayoutError(f"{labels_path}: labels name {missing[0]} but {data / missing[0]} is missing")
    unlabelled = sorted(set(csvs) - set(labels))
    if unlabelled:
        raise NabLayoutError(f"{data / unlabelled[0]}: not in {labels_path}")
    files = []
    for name in csvs:
        ts, values = read_series(data / name)
        limits = labels[name]
        if not isinstance(limits, list):
            raise NabLayoutError(f"{labels_path}: windows of {name} must be a list")
        files.append(NabFile(name, ts, values, window_rows(ts, limits, f"{labels_path} [{name}]")))
    profiles, source = load_profiles(root)
    return NabCorpus(root, tuple(files), profiles, source)
