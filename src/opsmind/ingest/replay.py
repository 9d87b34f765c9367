"""Replay recorded metrics from files, as fast as possible or paced by the data's own clock.

Two formats are read:

* CSV with a header row ``timestamp,value[,labels]`` (any column order). ``timestamp`` is Unix seconds or
  ISO 8601 (``2014-04-01 00:00:00``, as in the Numenta Anomaly Benchmark; no offset means UTC).
  ``labels`` is ``k=v;k2=v2`` or a JSON object. The metric name and base labels come from the caller.
* NDJSON: one push-API sample per line, ``{"metric", "labels", "timestamp", "value"}`` (see
  :mod:`opsmind.ingest.push`); the caller's metric is the default for lines without one.

Row labels are added to the caller's base labels and override them. Every bad row raises
:class:`IngestError` naming the file and line; :func:`replay` reads the whole file before it emits
anything, so a bad file stores nothing.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

from opsmind.clock import Clock
from opsmind.ingest.errors import IngestError
from opsmind.ingest.push import MAX_TIMESTAMP, loads_strict, parse_sample_object
from opsmind.types import InvalidSeriesError, Sample, Series, SeriesSamples

Format = Literal["csv", "ndjson"]
Sink = Callable[[list[SeriesSamples]], Awaitable[None]]
Progress = Callable[[int, int], None]

_SUFFIXES: dict[str, Format] = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
_COLUMNS = ("timestamp", "value", "labels")


def parse_timestamp(text: str) -> float:
    """Unix seconds from ``text``: a number, or an ISO 8601 date-time (UTC unless it has an offset)."""
    raw = text.strip()
    try:
        ts = float(raw)
    except ValueError:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"{raw!r} is neither Unix seconds nor an ISO 8601 date-time") from None
        ts = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if not math.isfinite(ts) or ts < 0:
        raise ValueError(f"{raw!r} must be a finite time at or after 1970-01-01")
    if ts >= MAX_TIMESTAMP:
        raise ValueError(f"{raw!r} is not Unix seconds (milliseconds?)")
    return ts


def parse_labels(text: str) -> dict[str, str]:
    """Labels from a CSV cell: empty, ``k=v;k2=v2``, or a JSON object of strings."""
    raw = text.strip()
    if not raw:
        return {}
    if raw.startswith("{"):
        try:
            obj = loads_strict(raw)
        except IngestError as exc:
            raise ValueError(exc.reason) from None
        if getattr(obj, "duplicates", None):
            raise ValueError(f"duplicate label name {obj.duplicates[0]!r}")
        if not all(isinstance(v, str) for v in obj.values()):
            raise ValueError("label values must be strings")
        return dict(obj)
    labels: dict[str, str] = {}
    for part in raw.split(";"):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq:
            raise ValueError(f"{part.strip()!r} is not name=value")
        if name in labels:
            raise ValueError(f"duplicate label name {name!r}")
        labels[name] = value.strip()
    return labels


def _format_of(path: Path, fmt: Format | None) -> Format:
    if fmt is not None:
        return fmt
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise IngestError(
            f"{path}: unknown replay format; name it .csv, .ndjson or .jsonl, or pass format=", 400
        )
    return found


def read_replay(
    path: str | Path,
    metric: str | None = None,
    labels: Mapping[str, str] | None = None,
    *,
    batch_size: int = 10_000,
    format: Format | None = None,  # shadows the builtin: the natural name here
) -> Iterator[list[Sample]]:
    """Yield the file's points as batches of :class:`Sample`, in file order.

    ``metric`` is required for CSV and the default for NDJSON lines without one; ``labels`` are the base
    labels of every point. Raises :class:`IngestError` naming ``path`` and the line of the first bad row.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    file = Path(path)
    fmt = _format_of(file, format)
    base = dict(labels or {})
    if metric is None and fmt == "csv":
        raise IngestError(f"{file}: a CSV replay needs the metric name", 400)
    try:
        Series.of(metric or "placeholder", base)  # bad caller input fails once, before any row
    except InvalidSeriesError as exc:
        raise IngestError(f"{file}: {exc}", 400) from None
    rows = _csv_rows(file, metric or "", base) if fmt == "csv" else _ndjson_rows(file, metric, base)
    batch: list[Sample] = []
    try:
        for sample in rows:
            batch.append(sample)
            if len(batch) >= batch_size:
                yield batch
                batch = []
    except OSError as exc:
        raise IngestError(f"{file}: cannot read: {exc.strerror or exc}", 400) from None
    except UnicodeDecodeError:
        raise IngestError(f"{file}: not UTF-8 text", 400) from None
    except csv.Error as exc:  # e.g. a field over the csv module's size limit
        raise IngestError(f"{file}: malformed CSV: {exc}", 400) from None
    if batch:
        yield batch


def _csv_rows(file: Path, metric: str, base: dict[str, str]) -> Iterator[Sample]:
    with file.open(newline="", encoding="utf-8-sig") as handle:  # -sig: tolerate a spreadsheet's BOM
        reader = csv.reader(handle)
        header = next((row for row in reader if any(cell.strip() for cell in row)), None)
        if header is None:
            return
        columns = [cell.strip().lower() for cell in header]
        where = f"{file}:{reader.line_num}"
        for name in columns:
            if name not in _COLUMNS:
                raise IngestError(
                    f"{where}: unknown column {name!r}; the header must be timestamp,value[,labels]"
                )
        if "timestamp" not in columns or "value" not in columns or len(set(columns)) != len(columns):
            raise IngestError(
                f"{where}: the header row must name timestamp,value[,labels] once each; got {header}"
            )
        i_ts, i_value = columns.index("timestamp"), columns.index("value")
        i_labels = columns.index("labels") if "labels" in columns else None
        series_by_cell: dict[str, Series] = {}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where = f"{file}:{reader.line_num}"
            if len(row) != len(columns):
                raise IngestError(f"{where}: expected {len(columns)} columns, got {len(row)}")
            cell = "" if i_labels is None else row[i_labels]
            series = series_by_cell.get(cell)
            if series is None:
                series = series_by_cell[cell] = _series(where, metric, base, cell)
            try:
                ts = parse_timestamp(row[i_ts])
            except ValueError as exc:
                raise IngestError(f"{where}: timestamp: {exc}") from None
            try:
                value = float(row[i_value])
            except ValueError:
                raise IngestError(f"{where}: value: {row[i_value]!r} is not a number") from None
            if not math.isfinite(value):
                raise IngestError(f"{where}: value: must be a finite number, got {row[i_value]!r}")
            yield Sample(series, ts, value)


def _series(where: str, metric: str, base: dict[str, str], cell: str) -> Series:
    try:
        return Series.of(metric, {**base, **parse_labels(cell)})
    except InvalidSeriesError as exc:
        raise IngestError(f"{where}: labels: {exc}", 400) from None
    except ValueError as exc:
        raise IngestError(f"{where}: labels: {exc}") from None


def _ndjson_rows(file: Path, metric: str | None, base: dict[str, str]) -> Iterator[Sample]:
    cache: dict[tuple[Any, ...], Series] = {}
    with file.open(encoding="utf-8-sig") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{file}:{line_no}"
            try:
                obj = loads_strict(line)
                series, ts, value = parse_sample_object(
                    obj, f"{where}: sample", cache, default_metric=metric, base_labels=base
                )
            except IngestError as exc:
                reason = exc.reason if exc.reason.startswith(where) else f"{where}: {exc.reason}"
                raise IngestError(reason, exc.status) from None
            yield Sample(series, ts, value)


def group_samples(points: list[Sample], shift: float = 0.0) -> list[SeriesSamples]:
    """Group points by series (first appearance order), adding ``shift`` seconds to each timestamp."""
    columns: dict[Series, tuple[list[float], list[float]]] = {}
    for point in points:
        ts, values = columns.setdefault(point.series, ([], []))
        ts.append(point.ts + shift)
        values.append(point.value)
    return [SeriesSamples(s, tuple(ts), tuple(vs)) for s, (ts, vs) in columns.items()]


async def replay(
    path: str | Path,
    sink: Sink,
    clock: Clock,
    *,
    metric: str | None = None,
    labels: Mapping[str, str] | None = None,
    speed: float | None = None,
    batch_size: int = 1000,
    align_to_now: bool = False,
    progress: Progress | None = None,
    format: Format | None = None,  # shadows the builtin: the natural name here
) -> int:
    """Send the file's points to ``sink`` in timestamp order; return how many were sent.

    With ``speed`` None or 0 the points go out in batches of ``batch_size`` as fast as the sink takes
    them. Otherwise a point is sent when ``(its ts - first ts) / speed`` seconds of ``clock`` time have
    passed since the start (``speed=60`` plays an hour per minute); points that fall due together share
    a batch. Timestamps keep the data's own spacing; ``align_to_now`` shifts them all so the first point
    is stamped ``clock.now()`` at the start. ``progress(done, total)`` is called once before the first
    batch (``done`` 0) and after every batch.
    """
    if speed is not None and (speed < 0 or not math.isfinite(speed)):
        raise ValueError("speed must be a finite number >= 0 (0 or None: as fast as possible)")
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    # Read (and validate) everything first: the file must be sorted for pacing, and a bad row half-way
    # through must not leave half a replay stored.
    points = [p for batch in read_replay(path, metric, labels, format=format) for p in batch]
    points.sort(key=attrgetter("ts"))  # stable: equal timestamps keep file order
    total = len(points)
    if progress is not None:
        progress(0, total)
    if not points:
        return 0
    t0, start = points[0].ts, clock.now()
    shift = start - t0 if align_to_now else 0.0
    done = 0
    if not speed:
        for i in range(0, total, batch_size):
            await sink(group_samples(points[i : i + batch_size], shift))
            done = min(total, i + batch_size)
            if progress is not None:
                progress(done, total)
        return total
    while done < total:
        delay = start + (points[done].ts - t0) / speed - clock.now()
        if delay > 0:
            await clock.sleep(delay)
        horizon = t0 + (clock.now() - start) * speed
        first_ts, end = points[done].ts, done + 1
        limit = min(total, done + batch_size)
        # The first point is always due (rounding may put it a hair past the horizon); so are its twins.
        while end < limit and (points[end].ts <= horizon or points[end].ts == first_ts):
            end += 1
        await sink(group_samples(points[done:end], shift))
        done = end
        if progress is not None:
            progress(done, total)
    return total
