"""Incident priority: one 0-100 score from four parts, each explained, so the queue sorts itself.

* **severity** (weight 30): how improbable the worst anomaly was (``severity_of``: critical 1.0,
  warning 0.6, info 0.3);
* **blast radius** (25): the services affected through the dependency graph - the incident's own and
  every service that calls them, directly or not, since their requests wait on the failing ones - as a
  share of the fleet, and whether users are affected (an entry point, a service nobody calls, is among
  them);
* **SLO impact** (25): SLOs are written on latency and errors, so anomalies in those signals on a
  user-facing service weigh fully (1.0), elsewhere 0.6, and traffic or resource anomalies alone 0.3;
* **criticality** (20): the highest criticality (0-1, ``incidents.criticality``, default 0.5) among
  the incident's services, as declared by the team that owns them.

Without a dependency graph the blast radius is the incident's own services and every service counts as
user-facing (nothing says otherwise). The explanation lists each part's value, weight and points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import networkx as nx

from opsmind.incidents.muting import severity_of
from opsmind.incidents.topology import Topology
from opsmind.rca.ranker import ERRORS, LATENCY, metric_class
from opsmind.types import Incident

WEIGHTS = {"severity": 30.0, "blast_radius": 25.0, "slo_impact": 25.0, "criticality": 20.0}
SEVERITY_VALUE = {"critical": 1.0, "warning": 0.6, "info": 0.3}
DEFAULT_CRITICALITY = 0.5


def metric_of(series_key: str) -> str:
    """The metric name of a series key such as ``latency_seconds{service="a"}``."""
    return series_key.split("{", 1)[0]


class Prioritiser:
    def __init__(self, graph: Topology | nx.DiGraph | None, criticality: Mapping[str, float]) -> None:
        self.topology = Topology.of(graph)  # read live: registrations change it
        self.criticality = criticality
        self._entries: tuple[int, frozenset[str]] = (-1, frozenset())

    @property
    def graph(self) -> nx.DiGraph | None:
        return self.topology.graph

    @property
    def entries(self) -> frozenset[str]:
        """The services nothing calls: where users come in (recomputed when the graph changes)."""
        version, entries = self._entries
        if version != self.topology.version:
            g = self.topology.graph
            entries = frozenset(n for n in g if g.in_degree(n) == 0) if g is not None else frozenset()
            self._entries = (self.topology.version, entries)
        return entries

    def affected(self, services: tuple[str, ...]) -> set[str]:
        out = set(services)
        g = self.graph
        if g is not None:
            for s in services:
                if s in g:
                    out |= nx.ancestors(g, s)
        return out

    def score(self, incident: Incident) -> tuple[float, dict[str, Any]]:
        services = incident.services or ((incident.service,) if incident.service else ())
        affected = self.affected(services)
        g = self.graph
        fleet = len(g) if g is not None and len(g) else max(len(affected), 1)
        user_facing = g is None or bool(affected & self.entries)
        severity = severity_of(incident.max_probability)
        classes = {metric_class(metric_of(s)) for s in incident.series}
        slo_signals = bool(classes & {LATENCY, ERRORS})
        slo = (1.0 if user_facing else 0.6) if slo_signals else 0.3
        crit = max(
            (self.criticality.get(s, DEFAULT_CRITICALITY) for s in services), default=DEFAULT_CRITICALITY
        )
        share = min(len(affected) / fleet, 1.0)
        parts = {
            "severity": (SEVERITY_VALUE[severity], f"worst anomaly is {severity}"),
            "blast_radius": (
                0.5 * share + 0.5 * float(user_facing),
                f"{len(affected)} of {fleet} services affected"
                + (", users affected" if user_facing else ", no user-facing service"),
            ),
            "slo_impact": (
                slo,
                "latency or error anomalies" + (" on a user-facing path" if user_facing else "")
                if slo_signals
                else "only traffic or resource anomalies",
            ),
            "criticality": (crit, f"highest declared criticality {crit:g}"),
        }
        explanation: dict[str, Any] = {
            name: {
                "value": round(v, 3),
                "weight": WEIGHTS[name],
                "points": round(v * WEIGHTS[name], 1),
                "why": why,
            }
            for name, (v, why) in parts.items()
        }
        total = round(sum(p["points"] for p in explanation.values()), 1)
        explanation["affected_services"] = sorted(affected)
        return total, explanation
