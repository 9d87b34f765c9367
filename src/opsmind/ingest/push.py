"""Decode the JSON push API into :class:`SeriesSamples`.

Two body shapes are accepted, alone or together::

    {"samples": [{"metric": "cpu_usage", "labels": {"service": "gateway"},
                  "timestamp": 1700000000.5, "value": 0.42}, ...]}

    {"series": [{"metric": "cpu_usage", "labels": {"service": "gateway"},
                 "timestamps": [1700000000, 1700000015], "values": [0.42, 0.40]}, ...]}

Validation is strict and every reason names the offending place, e.g.
``samples[3].timestamp: must be a finite number >= 0``: the whole body is rejected on the first problem,
so nothing from a bad request is stored. Statuses: 413 over a size limit, 400 everything else (as
Prometheus answers an invalid remote-write series).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from opsmind.config import IngestSettings
from opsmind.ingest.errors import IngestError, over_limit
from opsmind.types import InvalidSeriesError, Series, SeriesSamples

#: Timestamps are Unix seconds; anything from this on (year 5138) is almost surely milliseconds.
MAX_TIMESTAMP = 1e11

_SAMPLE_KEYS = frozenset({"metric", "labels", "timestamp", "value"})
_SERIES_KEYS = frozenset({"metric", "labels", "timestamps", "values"})


class _NonStandard:
    """Stands in for ``NaN``/``Infinity`` literals, which Python's json accepts but JSON does not have.

    Keeping a marker instead of failing inside the parser lets the error name the field it was in.
    """

    def __init__(self, literal: str) -> None:
        self.literal = literal


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that repeated a key; the repeats are kept so the error can name them."""

    duplicates: list[str]


def _object_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    dup = _DuplicateKeys(obj)
    seen: set[str] = set()
    dup.duplicates = []
    for key, _ in pairs:
        if key in seen:
            dup.duplicates.append(key)
        seen.add(key)
    return dup


def loads_strict(body: bytes | str) -> Any:
    """Parse JSON, keeping duplicate keys and NaN/Infinity literals visible for later validation."""
    try:
        return json.loads(body, object_pairs_hook=_object_pairs, parse_constant=_NonStandard)
    except json.JSONDecodeError as exc:
        raise IngestError(f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", 400) from None
    except UnicodeDecodeError:
        raise IngestError("invalid JSON: the body is not UTF-8 text", 400) from None
    except ValueError as exc:  # e.g. an integer literal longer than Python converts (4,300 digits)
        raise IngestError(f"invalid JSON: {exc}", 400) from None
    except RecursionError:
        raise IngestError("invalid JSON: nested too deeply", 400) from None


def _describe(value: Any) -> str:
    if isinstance(value, _NonStandard):
        return f"{value.literal} (not a JSON number)"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = json.dumps(value) if isinstance(value, str | int | float) else type(value).__name__
    return text if len(text) <= 60 else text[:57] + "..."


def _object(value: Any, where: str, allowed: frozenset[str] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise IngestError(f"{where}: must be an object, got {_describe(value)}", 400)
    if isinstance(value, _DuplicateKeys):
        what = "label name" if where.endswith(".labels") else "key"
        raise IngestError(f"{where}: duplicate {what} {value.duplicates[0]!r}", 400)
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            expected = ", ".join(sorted(allowed))
            raise IngestError(f"{where}: unknown key {unknown[0]!r}; expected {expected}", 400)
    return value


def _list(obj: Mapping[str, Any], key: str, where: str | None, default: list[Any] | None = None) -> list[Any]:
    path = key if where is None else f"{where}.{key}"
    if key not in obj:
        if default is not None:
            return default
        raise IngestError(f"{path}: missing", 400)
    value = obj[key]
    if not isinstance(value, list):
        raise IngestError(f"{path}: must be a list, got {_describe(value)}", 400)
    return value


def _number(value: Any, where: str, *, timestamp: bool) -> float:
    """A finite JSON number as float; ``timestamp`` also requires ``0 <= value < MAX_TIMESTAMP``."""
    rule = "a finite number >= 0 (Unix seconds)" if timestamp else "a finite number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise IngestError(f"{where}: must be {rule}, got {_describe(value)}", 400)
    try:
        number = float(value)
    except OverflowError:
        raise IngestError(f"{where}: must be {rule}, got a number out of range", 400) from None
    if not math.isfinite(number) or (timestamp and number < 0):
        raise IngestError(f"{where}: must be {rule}, got {_describe(value)}", 400)
    if timestamp and number >= MAX_TIMESTAMP:
        raise IngestError(f"{where}: {number:.0f} is not Unix seconds (milliseconds?)", 400)
    return number


def _series(
    obj: Mapping[str, Any],
    where: str,
    cache: dict[tuple[Any, ...], Series],
    base: Mapping[str, str] | None = None,
) -> Series:
    if "metric" not in obj:
        raise IngestError(f"{where}.metric: missing", 400)
    metric = obj["metric"]
    if not isinstance(metric, str):
        raise IngestError(f"{where}.metric: must be a string, got {_describe(metric)}", 400)
    raw_labels = obj.get("labels")
    labels: Mapping[str, Any] = {} if raw_labels is None else _object(raw_labels, f"{where}.labels")
    for name, value in labels.items():
        if not isinstance(value, str):
            raise IngestError(f"{where}.labels.{name}: must be a string, got {_describe(value)}", 400)
    merged = {**base, **labels} if base else labels
    key = (metric, *merged.items())
    series = cache.get(key)
    if series is None:
        try:
            series = Series.of(metric, merged)
        except InvalidSeriesError as exc:
            raise IngestError(f"{where}: {exc}", 400) from None
        cache[key] = series
    return series


def parse_sample_object(
    obj: Any,
    where: str,
    cache: dict[tuple[Any, ...], Series] | None = None,
    *,
    default_metric: str | None = None,
    base_labels: Mapping[str, str] | None = None,
) -> tuple[Series, float, float]:
    """Validate one ``{"metric", "labels", "timestamp", "value"}`` object; return series, ts, value.

    ``where`` prefixes every error reason (``samples[3]``, ``file.ndjson:12``). ``default_metric`` is used
    when the object has no ``metric``; ``base_labels`` are added under the object's own labels.
    """
    sample = _object(obj, where, _SAMPLE_KEYS)
    if default_metric is not None and "metric" not in sample:
        sample = {**sample, "metric": default_metric}
    series = _series(sample, where, {} if cache is None else cache, base_labels)
    if "timestamp" not in sample:
        raise IngestError(f"{where}.timestamp: missing", 400)
    if "value" not in sample:
        raise IngestError(f"{where}.value: missing", 400)
    ts = _number(sample["timestamp"], f"{where}.timestamp", timestamp=True)
    value = _number(sample["value"], f"{where}.value", timestamp=False)
    return series, ts, value


def decode_push(body: bytes, limits: IngestSettings) -> list[SeriesSamples]:
    """Decode a JSON push body into one :class:`SeriesSamples` per distinct series, points in order.

    Timestamps must be finite Unix seconds ``>= 0`` (and below :data:`MAX_TIMESTAMP`, which catches
    milliseconds). Values must be finite JSON numbers: ``null``, strings, booleans, ``NaN`` and
    ``Infinity`` are rejected (JSON has no NaN; use remote write to send non-finite values). Labels are
    strings; an empty value drops the label, as in Prometheus. Raises :class:`IngestError` with a reason
    that points at the first bad item.
    """
    if len(body) > limits.max_body_bytes:
        raise over_limit("bytes", len(body), limits.max_body_bytes, "max_body_bytes")
    doc = _object(loads_strict(body), "body", frozenset({"samples", "series"}))
    if not doc:
        raise IngestError("body: expected a 'samples' or a 'series' list", 400)
    samples = _list(doc, "samples", None, default=[])
    compact = _list(doc, "series", None, default=[])
    _check_sizes(samples, compact, limits)

    cache: dict[tuple[Any, ...], Series] = {}
    points: dict[Series, tuple[list[float], list[float]]] = {}
    for i, obj in enumerate(samples):
        series, ts, value = parse_sample_object(obj, f"samples[{i}]", cache)
        column = points.setdefault(series, ([], []))
        column[0].append(ts)
        column[1].append(value)
    for i, obj in enumerate(compact):
        where = f"series[{i}]"
        item = _object(obj, where, _SERIES_KEYS)
        series = _series(item, where, cache)
        stamps = _list(item, "timestamps", where)
        values = _list(item, "values", where)
        if len(stamps) != len(values):
            raise IngestError(
                f"{where}: timestamps has {len(stamps)} items but values has {len(values)}; they must match",
                400,
            )
        column = points.setdefault(series, ([], []))
        column[0].extend(_number(t, f"{where}.timestamps[{k}]", timestamp=True) for k, t in enumerate(stamps))
        column[1].extend(_number(v, f"{where}.values[{k}]", timestamp=False) for k, v in enumerate(values))
    if len(points) > limits.max_series_per_request:
        raise over_limit("series", len(points), limits.max_series_per_request, "max_series_per_request")
    return [SeriesSamples(s, tuple(ts), tuple(vs)) for s, (ts, vs) in points.items() if ts]


def _check_sizes(samples: list[Any], compact: list[Any], limits: IngestSettings) -> None:
    """Refuse oversized requests before validating them item by item."""
    total = len(samples)
    for obj in compact:
        if isinstance(obj, dict) and isinstance(obj.get("timestamps"), list):
            total += len(obj["timestamps"])
    if total > limits.max_samples_per_request:
        raise over_limit("samples", total, limits.max_samples_per_request, "max_samples_per_request")
    if len(compact) > limits.max_series_per_request:
        raise over_limit("series", len(compact), limits.max_series_per_request, "max_series_per_request")
