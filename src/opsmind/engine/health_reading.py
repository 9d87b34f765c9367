"""Service health read from the stores: the inputs of :func:`opsmind.detect.health.health_score`.

One function, :func:`compute_health`, serves both the route ``/api/v1/services/{name}/health`` and the
live hub's ``health`` topic, so the page's live score and the one it reloads over REST are the same.

For every series of the service whose metric maps to a golden signal it reads the last ``window_s``
seconds of raw points (counters, named ``*_total``, become per-second rates), takes the median of the
last ``recent_s`` seconds as the current value and the median of the rest as the baseline. Traffic is
the sum over its series; for the other signals every series is a reading and the worst one speaks. A
latency summary with several quantiles is read at its preferred quantile (p95 first). Recent anomalies
of the service raise the penalty of the signal they were found on; anomalies on other series count as
their own contribution.

:func:`compute_all` reads every service the same way at once, for the ``/metrics`` exposition: one scan
of the series list instead of one per service (a per-service label filter scans every series, so doing
it for each of N services costs N scans).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from opsmind.detect.health import (
    LATENCY,
    LATENCY_QUANTILES,
    OTHER,
    TRAFFIC,
    HealthScore,
    SignalReading,
    health_score,
    signal_of,
    summarise_window,
)
from opsmind.detect.hygiene import counter_rates, is_counter
from opsmind.store.protocols import EventStore, RangeResult, SampleStore
from opsmind.types import Anomaly, InvalidSeriesError, Series

__all__ = ["ANOMALY_SCAN_LIMIT", "SERIES_SCAN_LIMIT", "compute_all", "compute_health", "services"]

SERIES_SCAN_LIMIT = 100_000
ANOMALY_SCAN_LIMIT = 10_000


def _latency_choice(series: list[Series]) -> list[Series]:
    """The latency series that speak for the service: unlabelled ones plus the preferred quantile."""
    present = {s.label("quantile") for s in series}
    best = next((q for q in LATENCY_QUANTILES if q in present), None)
    return [s for s in series if s.label("quantile") in (None, best)]


def _anomaly_probabilities(
    events: EventStore, service: str, since: float, data_since: float
) -> dict[str, float]:
    """The highest recent anomaly probability per golden signal, and under ``OTHER`` for the rest.

    Recent means the anomalous *point* is recent (``ts >= data_since``), not only its detection: a backfill
    or a replay detects hour-old anomalies now, and those say nothing about the service's current state.
    Predictions (``type == "prediction"``: a bottleneck ahead, an error budget spent) are not the service's
    state either: a spent budget kept a service "critical" for its whole SLO window after it recovered."""
    out: dict[str, float] = {}
    for a in events.find(Anomaly, service=service, since=since, limit=ANOMALY_SCAN_LIMIT):
        if a.ts < data_since or a.type == "prediction":
            continue
        try:
            signal = signal_of(Series.parse(a.series).name) or OTHER
        except InvalidSeriesError:
            signal = OTHER
        out[signal] = max(out.get(signal, 0.0), a.probability)
    return out


def compute_health(
    samples: SampleStore, events: EventStore, now: float, service: str, window_s: float, recent_s: float
) -> HealthScore | None:
    """The health of ``service`` at ``now`` from the stores, or None when no stored series carries it.
    Blocking (store reads): call it through ``asyncio.to_thread`` from async code."""
    infos = samples.series({"service": service}, SERIES_SCAN_LIMIT)
    if not infos:
        return None
    return _score(samples, events, now, service, [i.series for i in infos], window_s, recent_s)


def compute_all(
    samples: SampleStore, events: EventStore, now: float, window_s: float, recent_s: float
) -> dict[str, HealthScore]:
    """:func:`compute_health` of every service among the first :data:`SERIES_SCAN_LIMIT` stored series,
    by name. Blocking, like it."""
    infos = samples.series(None, SERIES_SCAN_LIMIT)
    by_service: dict[str, list[Series]] = {}
    for info in infos:
        if (name := info.series.service) is not None:
            by_service.setdefault(name, []).append(info.series)
    truncated = len(infos) >= SERIES_SCAN_LIMIT
    # Every series a score reads, in one store pass (one query per series scanned the newest points once
    # per series: 8 s for 1,000 services of 7 series each); a series read again below is read on its own.
    wanted = [one for series in by_service.values() for one in series if signal_of(one.name) is not None]
    raw = {r.series.key: r for r in samples.query_raw_many(wanted, now - window_s, now)}
    out: dict[str, HealthScore] = {}
    for service in sorted(by_service):
        # A truncated scan may hold only part of a service's series: read those services the way the REST
        # route does, so that the two never disagree.
        series = by_service[service]
        if truncated:
            series = [i.series for i in samples.series({"service": service}, SERIES_SCAN_LIMIT)]
            if not series:  # forgotten since the scan (retention): compute_health would say None
                continue
        out[service] = _score(samples, events, now, service, series, window_s, recent_s, raw)
    return out


def _score(
    samples: SampleStore,
    events: EventStore,
    now: float,
    service: str,
    series: list[Series],
    window_s: float,
    recent_s: float,
    raw: Mapping[str, RangeResult] | None = None,
) -> HealthScore:
    """The score of ``service`` from ``series``, every stored series carrying it, ordered by key; ``raw``
    holds series already read over the window (by key), the others are read here."""
    start = now - window_s
    by_signal: dict[str, list[Series]] = {}
    for one in series:
        signal = signal_of(one.name)
        if signal is not None:
            by_signal.setdefault(signal, []).append(one)
    if LATENCY in by_signal:
        by_signal[LATENCY] = _latency_choice(by_signal[LATENCY])
    anomalies = _anomaly_probabilities(events, service, start, now - recent_s)
    readings: list[SignalReading] = []
    for signal, series_list in sorted(by_signal.items()):
        summaries: list[tuple[Series, float, float | None]] = []
        for s in series_list:
            rr = raw.get(s.key) if raw is not None else None
            if rr is None:
                rr = samples.query(s, start, now, "raw")
            ts = np.asarray(rr.timestamps, dtype=np.float64)
            values = np.asarray(rr.values, dtype=np.float64)
            if is_counter(s.name):
                ts, values = counter_rates(ts, values)
            current, baseline = summarise_window(ts, values, now, recent_s)
            if math.isfinite(current):
                summaries.append((s, current, baseline))
        if not summaries:
            continue
        prob = anomalies.get(signal, 0.0)
        if signal == TRAFFIC:
            baselines = [b for _, _, b in summaries]
            total_baseline = None if any(b is None for b in baselines) else sum(b or 0.0 for b in baselines)
            key = summaries[0][0].key if len(summaries) == 1 else f"sum of {len(summaries)} series"
            readings.append(SignalReading(signal, sum(c for _, c, _ in summaries), total_baseline, prob, key))
        else:
            readings.extend(SignalReading(signal, c, b, prob, s.key) for s, c, b in summaries)
    return health_score(service, readings, anomalies.get(OTHER, 0.0))


def services(samples: SampleStore, limit: int = SERIES_SCAN_LIMIT) -> list[str]:
    """Every value of the ``service`` label among the first ``limit`` stored series, sorted."""
    return sorted({s for info in samples.series(None, limit) if (s := info.series.service) is not None})
