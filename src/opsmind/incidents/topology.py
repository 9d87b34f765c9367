"""The service call graph the engine works with: declared in the configuration and by registrations.

``incidents.topology`` (caller -> services it calls) is what an operator writes down once; a service
registered through the API (``PUT /api/v1/services/{name}`` with ``depends_on``) or found by Kubernetes
discovery (the ``opsmind.io/depends-on`` annotation) brings its own edges while it is registered. The
union is the graph every consumer reads: the correlator (grouping across a call), the prioritiser (blast
radius, user-facing entry points), root-cause ranking, the healer (where a cause may sit) and alert
inhibition.

A :class:`Topology` is shared, and changed by the registry while stages read it from other threads, so
it never changes a graph in place: each change builds a new ``networkx.DiGraph`` and swaps it in (one
attribute assignment), and bumps :attr:`Topology.version`, which readers that cache what they derived
from the graph (neighbours, entry points) compare to know when to recompute. A reader holds the graph it
took for the length of one computation and sees one version or the next, never a half-built one.

Without any edge (none declared, none registered) :attr:`Topology.graph` is None: the consumers then
behave as without a graph (group by service, every service user-facing, a graph learned from the
metrics for root causes).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Literal

import networkx as nx

from opsmind.incidents.root_cause import topology_graph

EdgeSource = Literal["incidents.topology", "registration"]
DECLARED: EdgeSource = "incidents.topology"
REGISTERED: EdgeSource = "registration"


class Topology:
    """``declared`` (``incidents.topology``) plus the registered services' dependencies (see the module)."""

    def __init__(self, declared: Mapping[str, Sequence[str]] | None = None) -> None:
        self.declared: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in (declared or {}).items()}
        self._registered: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()  # one writer at a time; readers never wait
        self.version = 0
        self.graph: nx.DiGraph | None = None
        self._edges: dict[str, tuple[str, ...]] = {}
        self._rebuild()

    @classmethod
    def of(cls, graph: Topology | nx.DiGraph | None) -> Topology:
        """``graph`` as a topology: itself, or a fixed one with a given graph's edges (tests, benchmarks)."""
        if isinstance(graph, Topology):
            return graph
        if graph is None:
            return cls()
        return cls({n: tuple(graph.successors(n)) for n in graph})

    @property
    def edges(self) -> dict[str, tuple[str, ...]]:
        """caller -> the services it calls, declared and registered (a copy)."""
        return dict(self._edges)

    def source(self, caller: str, callee: str) -> list[EdgeSource]:
        """Who declares the edge ``caller -> callee``: the configuration, a registration or both."""
        out: list[EdgeSource] = []
        if callee in self.declared.get(caller, ()):
            out.append(DECLARED)
        if callee in self._registered.get(caller, ()):
            out.append(REGISTERED)
        return out

    def set_registered(self, depends_on: Mapping[str, Sequence[str]]) -> bool:
        """Replace what registrations declare (service -> what it calls); whether the graph changed."""
        new = {k: tuple(v) for k, v in depends_on.items() if v}
        with self._lock:
            if new == self._registered:
                return False
            self._registered = new
            self._rebuild()
            return True

    def _rebuild(self) -> None:
        merged: dict[str, list[str]] = {k: list(v) for k, v in self.declared.items()}
        for caller, callees in self._registered.items():
            have = merged.setdefault(caller, [])
            have.extend(c for c in callees if c not in have)
        self._edges = {k: tuple(v) for k, v in merged.items()}
        self.graph = topology_graph(self._edges)
        self.version += 1
