"""The shared call graph: declared edges plus registered ones, read live by the correlator and prioritiser."""

from __future__ import annotations

import networkx as nx

from opsmind.incidents.correlator import Correlator
from opsmind.incidents.priority import Prioritiser
from opsmind.incidents.topology import Topology
from tests.incidents.test_correlator import anomaly, settings


def test_registered_edges_join_the_declared_ones_and_leave_with_their_registration() -> None:
    t = Topology({"gateway": ["api"]})
    assert t.graph is not None and set(t.graph.edges) == {("gateway", "api")}
    before = t.version
    assert t.set_registered({"api": ["db", "cache"], "gateway": ["api"], "lonely": []})
    assert t.version == before + 1
    assert t.edges == {"gateway": ("api",), "api": ("db", "cache")}
    assert t.source("gateway", "api") == ["incidents.topology", "registration"]
    assert t.source("api", "db") == ["registration"] and t.source("db", "api") == []
    assert not t.set_registered({"api": ["db", "cache"], "gateway": ["api"]})  # the same: no new version
    assert t.set_registered({})
    assert t.edges == {"gateway": ("api",)}


def test_without_any_edge_there_is_no_graph() -> None:
    t = Topology()
    assert t.graph is None
    t.set_registered({"api": ["db"]})
    assert t.graph is not None and list(t.graph.edges) == [("api", "db")]
    t.set_registered({})
    assert t.graph is None


def test_a_graph_swapped_in_is_a_new_object_so_a_reader_keeps_its_version() -> None:
    t = Topology({"a": ["b"]})
    held = t.graph
    t.set_registered({"b": ["c"]})
    assert held is not None and set(held.edges) == {("a", "b")}  # untouched
    assert t.graph is not held


def test_the_correlator_groups_along_an_edge_registered_after_it_started() -> None:
    t = Topology()
    c = Correlator(settings(), t)
    c.add(anomaly("api", 100), 100)
    (opened,) = c.add(anomaly("api", 110), 110)
    assert c.neighbours("api") == frozenset()  # cached while there is no graph
    t.set_registered({"api": ["db"]})  # api registers that it calls db
    (joined,) = c.add(anomaly("db", 200), 200)  # not at the same scrape: joined through the edge
    assert joined.event == "updated" and joined.incident.id == opened.incident.id
    assert joined.incident.services == ("api", "db")


def test_the_prioritiser_finds_the_entry_points_of_the_graph_now() -> None:
    t = Topology({"gateway": ["api"]})
    p = Prioritiser(t, {})
    assert p.entries == frozenset({"gateway"})
    t.set_registered({"edge-proxy": ["gateway"]})
    assert p.entries == frozenset({"edge-proxy"})
    assert p.affected(("api",)) == {"api", "gateway", "edge-proxy"}


def test_a_fixed_graph_is_taken_as_a_topology() -> None:
    g = nx.DiGraph([("a", "b")])
    assert Topology.of(g).edges == {"a": ("b",), "b": ()}
    t = Topology()
    assert Topology.of(t) is t and Topology.of(None).graph is None
