"""What the healer sees of the world, read from the engine's stores.

The healer (:mod:`opsmind.heal`) never touches a store of samples: it asks a reader
``read(metric, labels) -> latest value`` (runbook checks) and gets an
:class:`~opsmind.heal.classify.IncidentObservation` plus template fields per incident. This module builds
those from the :class:`~opsmind.store.SampleStore` and :class:`~opsmind.store.EventStore` as an
on-call engineer would read a dashboard: the latest value of a series (stale after ``stale_s``, as
Prometheus' lookback), trends over the last minutes, platform events of the last 15 minutes, and the
incident's own anomalies in onset order. Anything the store does not have stays ``None``: the
classifier treats it as not measured rather than as a guess.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from opsmind.clock import Clock
from opsmind.heal.classify import EVENT_WINDOW_S, IncidentObservation, ObservedEvent, onset_order
from opsmind.heal.fields import PodView, SeenEvent, incident_fields
from opsmind.heal.observation import BASELINE_S
from opsmind.heal.runbook import EVENT_COUNT_METRIC, PODS_NOT_READY_METRIC
from opsmind.store.protocols import EventStore, SampleStore
from opsmind.types import Anomaly, Event, Incident

FIELD_EVENTS_S = 86_400.0
"""Platform events this old still name a version or config change for a runbook's fields."""
TREND_S = 600.0
"""Slopes (memory, disk) are fitted over this much recent history."""
USUAL_S = 3600.0
"""A service's usual traffic: the median request rate over this long before the incident opened."""
READY_FRESH_S = 30.0
"""A pod whose last readiness sample is this much older than the service's newest one is gone: a deleted
pod's series just stops, and one deleted while not ready must not hold a verification for ``stale_s``."""


@dataclass
class StoreView:
    """Latest values, trends and events out of the stores, on the engine's clock."""

    samples: SampleStore
    events: EventStore
    clock: Clock
    stale_s: float = 300.0

    def read(self, metric: str, labels: dict[str, str]) -> float | None:
        """The runbooks' reader: the largest latest value among the series of ``metric`` carrying
        ``labels`` (None when none has a recent value); ``EVENT_COUNT_METRIC`` counts platform events,
        ``PODS_NOT_READY_METRIC`` the service's pods not ready (:meth:`pods_not_ready`)."""
        if metric == EVENT_COUNT_METRIC:
            return float(self._event_count(labels))
        if metric == PODS_NOT_READY_METRIC:
            service = labels.get("service")
            return None if service is None else self.pods_not_ready(service)
        latest = [p[-1][1] for p in self._points(metric, labels, self.stale_s) if p]
        return max(latest) if latest else None

    def level_before(self, metric: str, labels: dict[str, str], t: float) -> float | None:
        """A series' usual level before ``t``: the median of its values in the ``BASELINE_S`` before (the
        quarter hour the observation compares the incident with; a median, so the first faulty samples
        before an incident opened do not move it), the largest among the matching series as :meth:`read`
        takes the largest. None when no series has a value there."""
        levels = [
            statistics.median(v for _, v in pts)
            for pts in self._points(metric, labels, BASELINE_S, until=t)
            if pts
        ]
        return max(levels) if levels else None

    def pods_not_ready(self, service: str) -> float | None:
        """How many of ``service``'s current pods report ``pod_ready`` below 1 (None: it has no recent pod
        readiness series). Current: reported within ``READY_FRESH_S`` of its newest pod sample."""
        last: list[tuple[float, float]] = [
            pts[-1] for pts in self._points("pod_ready", {"service": service}, self.stale_s) if pts
        ]
        if not last:
            return None
        newest = max(t for t, _ in last)
        return float(sum(1 for t, v in last if t >= newest - READY_FRESH_S and v < 1.0))

    def _event_count(self, labels: Mapping[str, str]) -> int:
        since = self.clock.now() - float(labels.get("within_s", "3600"))
        found = self.events.find(Event, service=labels.get("service"), since=since, limit=10_000)
        node = labels.get("node")
        return sum(1 for e in found if e.reason == labels.get("reason") and (node is None or e.node == node))

    def _points(
        self, metric: str, labels: Mapping[str, str], span_s: float, until: float | None = None
    ) -> list[list[tuple[float, float]]]:
        """Finite points per matching series within ``span_s`` before ``until`` (default now)."""
        end = self.clock.now() if until is None else until
        out = []
        for info in self.samples.series({"__name__": metric, **labels}, limit=1000):
            if info.last_ts is None or info.last_ts < end - span_s:
                continue
            got = self.samples.query(info.series, end - span_s, end)
            pts = [(t, v) for t, v in zip(got.timestamps, got.values, strict=True) if math.isfinite(v)]
            out.append(pts)
        return out

    def service_level(self, metric: str, service: str) -> float | None:
        """The latest value of the service's own series (an empty matcher excludes pods' series)."""
        return self.read(metric, _own(service))

    def slope_per_min(self, metric: str, service: str) -> float | None:
        """Least-squares growth per minute of the service's series over ``TREND_S`` (None: too few)."""
        pts = [p for p in self._points(metric, _own(service), TREND_S) if len(p) >= 3]
        if not pts:
            return None
        longest = max(pts, key=len)
        ts, vs = [t for t, _ in longest], [v for _, v in longest]
        mt, mv = sum(ts) / len(ts), sum(vs) / len(vs)
        var = sum((t - mt) ** 2 for t in ts)
        if var == 0:
            return None
        return 60.0 * sum((t - mt) * (v - mv) for t, v in zip(ts, vs, strict=True)) / var

    def traffic_ratio(self, service: str, opened_at: float) -> float | None:
        """Request rate now over its usual level (the median of the hour before the incident)."""
        now_rate = self.service_level("request_rate", service)
        before = self._points("request_rate", _own(service), USUAL_S, until=opened_at)
        values = sorted(v for p in before for _, v in p)
        if now_rate is None or not values:
            return None
        usual = values[len(values) // 2]
        return now_rate / usual if usual > 0 else None

    def pods(self, service: str) -> list[PodView]:
        """The service's pods with their node and CPU now (from ``pod_cpu_utilisation``)."""
        out = []
        for info in self.samples.series({"__name__": "pod_cpu_utilisation", "service": service}, 1000):
            pod = info.series.label("pod")
            pts = self._points("pod_cpu_utilisation", dict(info.series.labels), self.stale_s)
            if pod is not None and pts and pts[0]:
                out.append(PodView(pod, info.series.label("node") or "", pts[0][-1][1]))
        return out

    def load(self) -> dict[str, tuple[float, float]]:
        """Request-serving services (those with a request rate) -> (CPU utilisation, desired replicas)."""
        out: dict[str, tuple[float, float]] = {}
        for info in self.samples.series({"__name__": "request_rate"}, limit=1000):
            svc = info.series.service
            if svc is None or svc in out:
                continue
            cpu = self.service_level("cpu_utilisation", svc)
            if cpu is not None:
                out[svc] = (cpu, self.service_level("replicas_desired", svc) or 0.0)
        return out

    def platform_events(self, since: float) -> list[Event]:
        return self.events.find(Event, since=since, limit=10_000, newest_first=False)


def _own(service: str) -> dict[str, str]:
    return {"service": service, "pod": ""}


def observe(view: StoreView, incident: Incident, anomalies: list[Anomaly], now: float) -> IncidentObservation:
    """The incident as the fault classifier reads it (see :mod:`opsmind.heal.classify`)."""
    svc = incident.service or ""
    mine = [(a.series, a.ts) for a in anomalies if a.series in incident.series]
    events = tuple(
        ObservedEvent(e.reason, incident.opened_at - e.at, e.message)
        for e in view.platform_events(now - EVENT_WINDOW_S)
    )
    pods = view.pods(svc)
    ready, desired = view.service_level("replicas_ready", svc), view.service_level("replicas_desired", svc)
    ranked = [str(c.get("service")) for c in incident.root_causes]
    top_score = incident.root_causes[0].get("score") if incident.root_causes else None
    return IncidentObservation(
        signals=onset_order(mine),
        events=events,
        # Share of the memory limit per minute: only a utilisation series says what the limit is.
        memory_slope=view.slope_per_min("memory_utilisation", svc),
        cpu_level=view.service_level("cpu_utilisation", svc),
        cpu_pod_max=max((p.cpu for p in pods), default=None),
        disk_used=view.service_level("disk_used_ratio", svc),
        disk_slope=view.slope_per_min("disk_used_ratio", svc),
        pool_in_use=view.service_level("pool_in_use_ratio", svc),
        ready_ratio=None if ready is None or not desired else ready / desired,
        traffic_ratio=view.traffic_ratio(svc, incident.opened_at),
        model_drift=view.service_level("model_drift_score", svc),
        root_cause_rank=ranked.index(svc) + 1 if svc in ranked else None,
        root_cause_score=float(top_score) if isinstance(top_score, int | float) else 0.0,
        services=max(1, len(incident.services)),
    )


def fields(view: StoreView, service: str, now: float, seen: list[SeenEvent] | None = None) -> dict[str, str]:
    """The template fields of ``service`` (versions, config, node, replicas, busiest); ``seen``: the
    platform events of the last ``FIELD_EVENTS_S`` when the caller has read them already."""
    if seen is None:
        recent = view.platform_events(now - FIELD_EVENTS_S)
        seen = [SeenEvent(e.at, e.reason, e.message, e.service, e.node) for e in recent]
    replicas = view.service_level("replicas_desired", service)
    return incident_fields(service, seen, view.pods(service), replicas, view.load())


def users_affected(incident: Incident, min_priority: float) -> bool:
    """Users feel it: latency or error anomalies on a user-facing path (the priority's SLO part at its
    full value), or a priority at or above ``min_priority``."""
    slo = incident.priority_explanation.get("slo_impact")
    full = isinstance(slo, dict) and float(slo.get("value", 0.0)) >= 1.0
    return full or incident.priority >= min_priority
