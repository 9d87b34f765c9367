"""What the fault classifier reads about an incident, built from service-level metric columns.

One builder for every caller - the engine's heal stage (columns read from the sample store), the
classifier's training cases and the chaos benchmark (columns from the simulated fleet) - so the classifier
is trained on, benchmarked on and run on observations made the same way. Columns are named
``<service>_<metric>`` (quantiles ``latency_seconds-0.95``; per-pod series aggregated per service, see
:data:`opsmind.incidents.root_cause.POD_AGGREGATES`). At time ``t``, for an incident opened at ``opened``:

- the root-cause ranking of the metrics up to ``t`` with the fault time ``opened``; the observation is
  filed under its top service, or the one at ``rank_index`` for a second look;
- signals: the metrics of services with a significant change (``ONSET_Z``), in onset order;
- events: those of the ``EVENT_WINDOW_S`` before ``t`` (ages from the incident's opening);
- trends of the filed service over the last ``TREND_S``: memory slope as a share of its memory limit per
  minute (the limit from the :class:`Inventory`, as a container's limit is declared), CPU (mean and
  busiest pod), disk, pools, ready over desired replicas, the model drift score; the entry service's
  request rate over its median in the ``baseline_s`` before the incident;
- the rank of the service that changed first, the top score, the services that changed, and the filed
  service's kind from the :class:`Inventory`.

Anything the columns do not have stays ``None``: the classifier treats it as not measured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from opsmind.heal.classify import (
    EVENT_WINDOW_S,
    SERVICE_KINDS,
    IncidentObservation,
    ObservedEvent,
    onset_order,
)
from opsmind.heal.fields import SeenEvent
from opsmind.rca.frame import F64, MetricFrame
from opsmind.rca.ranker import rank
from opsmind.rca.scoring import ONSET_Z

TREND_S = 300.0
"""Slopes (memory, disk) are fitted over this much recent history."""
BASELINE_S = 900.0
"""The entry's usual traffic: its median request rate over this long before the incident opened."""


@dataclass(frozen=True)
class Inventory:
    """What an operator declares about the fleet and no metric says: each service's kind (one of
    :data:`~opsmind.heal.classify.SERVICE_KINDS`; ``api`` when not declared), its containers' memory limit
    in bytes, and the entry service whose traffic is the fleet's load."""

    kinds: Mapping[str, str] = field(default_factory=dict)
    memory_limit_bytes: Mapping[str, float] = field(default_factory=dict)
    entry: str | None = None

    def kind(self, service: str) -> str:
        k = self.kinds.get(service, "api")
        return k if k in SERVICE_KINDS else "api"


def _last(times: F64, values: F64 | None, t: float) -> float | None:
    if values is None:
        return None
    ok = (times <= t) & ~np.isnan(values)
    return float(values[ok][-1]) if ok.any() else None


def _slope_per_min(times: F64, values: F64 | None, t: float) -> float | None:
    if values is None:
        return None
    ok = (times <= t) & (times >= t - TREND_S) & ~np.isnan(values)
    if ok.sum() < 3:
        return None
    return float(np.polyfit(times[ok], values[ok], 1)[0]) * 60.0


def entry_service(inventory: Inventory, graph: nx.DiGraph | None, cols: Mapping[str, F64], top: str) -> str:
    """The declared entry, else the one service nobody calls that has a request rate, else ``top``."""
    if inventory.entry is not None:
        return inventory.entry
    if graph is not None:
        roots = [s for s in graph.nodes if graph.in_degree(s) == 0 and f"{s}_request_rate" in cols]
        if len(roots) == 1:
            return str(roots[0])
    return top


def observe_columns(
    times: F64,
    cols: Mapping[str, F64],
    events: Iterable[SeenEvent],
    opened: float,
    t: float,
    graph: nx.DiGraph | None,
    inventory: Inventory,
    rank_index: int = 0,
) -> tuple[IncidentObservation, str]:
    """The observation at ``t`` of an incident opened at ``opened`` and the service it is filed under (see
    the module). ValueError: the columns cannot be ranked (e.g. no data before ``opened``)."""
    keep = times <= t
    frame = MetricFrame.from_columns(times[keep], {c: v[keep] for c, v in cols.items()})
    causes = rank(frame, opened, graph)
    if not causes:
        raise ValueError("no service to rank")
    changed = [c for c in causes if any(m.score >= ONSET_Z for m in c.metrics)]
    top = causes[min(rank_index, len(causes) - 1)].service
    anomalies = [
        (m.metric, m.onset_s)
        for c in changed
        for m in c.metrics
        if m.score >= ONSET_Z and np.isfinite(m.onset_s)
    ]
    first = min(changed, key=lambda c: min(m.onset_s for m in c.metrics), default=None)
    order = [c.service for c in causes]

    def col(metric: str, service: str = top) -> F64 | None:
        return cols.get(f"{service}_{metric}")

    slope = _slope_per_min(times, col("pod_memory_bytes"), t)
    limit = inventory.memory_limit_bytes.get(top)
    memory_slope = None if slope is None or not limit else slope / limit
    disk_slope = _slope_per_min(times, col("disk_used_ratio"), t)
    ready, desired = _last(times, col("replicas_ready"), t), _last(times, col("replicas_desired"), t)
    entry_rate = col("request_rate", entry_service(inventory, graph, cols, top))
    traffic = None
    if entry_rate is not None:
        before = entry_rate[(times < opened) & (times >= opened - BASELINE_S)]
        now = entry_rate[(times <= t) & (times > t - 60.0)]
        with np.errstate(all="ignore"):
            usual, recent = (np.nanmedian(before), np.nanmean(now)) if len(before) and len(now) else (0, 0)
        if np.isfinite(usual) and usual > 0 and np.isfinite(recent):
            traffic = float(recent / usual)
    observed = tuple(
        ObservedEvent(e.reason, opened - e.at, e.message) for e in events if t - EVENT_WINDOW_S <= e.at <= t
    )
    observation = IncidentObservation(
        signals=onset_order(anomalies),
        events=observed,
        memory_slope=memory_slope,
        cpu_level=_last(times, col("cpu_utilisation"), t),
        cpu_pod_max=_last(times, col("pod_cpu_utilisation"), t),
        disk_used=_last(times, col("disk_used_ratio"), t),
        disk_slope=disk_slope,
        pool_in_use=_last(times, col("pool_in_use_ratio"), t),
        ready_ratio=None if ready is None or not desired else ready / desired,
        traffic_ratio=traffic,
        model_drift=_last(times, col("model_drift_score"), t),
        root_cause_rank=None if first is None else order.index(first.service) + 1,
        root_cause_score=causes[0].score,
        services=max(1, len(changed)),
        service_kind=inventory.kind(top),
    )
    return observation, top
