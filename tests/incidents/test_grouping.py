from __future__ import annotations

from opsmind.incidents import grouping
from opsmind.types import Anomaly, IncidentStatus


def anomaly(service: str | None, ts: float, series: str = "m") -> Anomaly:
    return Anomaly(
        at=ts, service=service, series=series, ts=ts, value=1, score=9, probability=0.7, detector="t"
    )


def test_anomalies_of_its_services_join_an_active_incident() -> None:
    inc = grouping.open_incident(anomaly("a", 100), now=100)
    ok, reason = grouping.joins(inc, anomaly("a", 350), 300)
    assert ok and "still active" in reason
    inc = grouping.add_anomaly(inc, anomaly("a", 350, "m2"), now=350)
    assert inc.anomaly_count == 2 and inc.series == ("m", "m2") and inc.last_anomaly_at == 350
    # Another service joins only through the dependency graph, and only within the group window.
    ok, reason = grouping.joins(inc, anomaly("b", 400), 300)
    assert not ok and "neither" in reason
    ok, reason = grouping.joins(inc, anomaly("b", 400), 300, frozenset({"a"}))
    assert ok and "calls or is called by a" in reason
    ok, reason = grouping.joins(inc, anomaly("b", 700), 300, frozenset({"a"}))
    assert not ok and "beyond" in reason
    inc = grouping.add_anomaly(inc, anomaly("b", 400), now=400)
    assert inc.services == ("a", "b")


def test_resolve_after_quiet_period() -> None:
    inc = grouping.open_incident(anomaly("a", 100), now=100)
    assert not grouping.should_resolve(inc, 500, 600)[0]
    done, reason = grouping.should_resolve(inc, 700, 600)
    assert done
    res = grouping.resolve(inc, 700, reason)
    assert res.status is IncidentStatus.RESOLVED and res.resolved_at == 700
    assert res.timeline[-1]["event"] == "resolved"
    assert not grouping.joins(res, anomaly("a", 710), 300)[0]


def test_unlabelled_anomalies_get_a_service_name() -> None:
    assert grouping.open_incident(anomaly(None, 1), 1).service == grouping.UNLABELLED_SERVICE


def test_timeline_is_bounded_but_counts_are_exact() -> None:
    inc = grouping.open_incident(anomaly("a", 0), 0)
    for i in range(1, 500):
        inc = grouping.add_anomaly(inc, anomaly("a", i), i)
    assert inc.anomaly_count == 500 and len(inc.timeline) == grouping.TIMELINE_LIMIT


def test_an_incident_needs_repeated_anomalies_within_the_window() -> None:
    one = grouping.within_window([anomaly("a", 100)], 300)
    assert not grouping.pending_enough(one, 2, 300)[0]
    assert grouping.pending_enough(one, 1, 300)[0]
    far = grouping.within_window([anomaly("a", 100), anomaly("a", 500)], 300)
    ok, reason = grouping.pending_enough(far, 2, 300)
    assert not ok and "1 of 2" in reason
    near = grouping.within_window([anomaly("a", 100), anomaly("a", 350)], 300)
    assert grouping.pending_enough(near, 2, 300)[0]


def test_another_service_of_the_incident_joins_only_while_it_or_a_service_it_calls_was_recently_in_it() -> (
    None
):
    inc = grouping.open_incident(anomaly("a", 100), now=100)  # filed under a
    inc = grouping.add_anomaly(inc, anomaly("b", 110), now=110)
    inc = grouping.add_anomaly(inc, anomaly("a", 600), now=600)
    seen, began = {"a": 600.0, "b": 110.0}, {"a": 100.0, "b": 110.0}
    ok, reason = grouping.joins(inc, anomaly("a", 1100), 300, last_seen=seen)
    assert ok and "filed under" in reason  # its own service: while active
    ok, reason = grouping.joins(inc, anomaly("b", 650), 300, last_seen=seen, first_seen=began)
    assert not ok and "540s after its last anomaly on b" in reason
    a = frozenset({"a"})
    ok, reason = grouping.joins(inc, anomaly("b", 650), 300, a, seen, callees=a, first_seen=began)
    assert ok and "which calls a" in reason  # a, which b calls, was in it 50 s ago: its trouble travels up
    # b is called by a: a's trouble, ongoing since 100, does not make b's fresh trouble at 650 part of it.
    ok, reason = grouping.joins(inc, anomaly("b", 650), 300, a, seen, first_seen=began)
    assert not ok and "beyond" in reason
    late = {"a": 300.0, "b": 110.0}  # had a's trouble started at 300, b's at 420 would be near its start
    ok, reason = grouping.joins(inc, anomaly("b", 420), 300, a, seen, first_seen=late)
    assert ok and "start of its trouble on a" in reason  # the cause may show after a symptom on a caller
    ok, _ = grouping.joins(inc, anomaly("b", 400), 300, last_seen=seen)
    assert ok


def test_a_run_starts_after_the_last_silence_longer_than_its_gap() -> None:
    pending = [anomaly("a", t) for t in (100, 160, 165, 170)]
    assert [a.ts for a in grouping.run_of(pending, 10)] == [160, 165, 170]
    assert [a.ts for a in grouping.run_of(pending, 60)] == [100, 160, 165, 170]
    assert grouping.run_of([], 10) == []


def test_anomalies_at_one_point_in_time_are_not_repeated() -> None:
    same = [anomaly("a", 100, "m1"), anomaly("a", 100, "m2"), anomaly("a", 100, "m3")]
    ok, reason = grouping.pending_enough(same, 2, 300)
    assert not ok and "one point in time" in reason
    assert grouping.pending_enough(same, 1, 300)[0]
    assert grouping.pending_enough([*same, anomaly("a", 105)], 2, 300)[0]


def test_an_alert_that_already_held_for_its_rule_is_enough_on_its_own() -> None:
    # Its repeated notifications are one anomaly: asking for min_anomalies of them opened nothing, ever.
    one = [anomaly("a", 100, 'ALERTS{alertname="QueueBacklog"}')]
    ok, reason = grouping.pending_enough(one, 2, 300, held=True)
    assert ok and "1 anomaly within 300s" in reason and "held for its rule's for:" in reason
    assert grouping.pending_enough(one, 5, 300, held=True)[0]
    assert not grouping.pending_enough(one, 2, 300)[0]  # not held: one point is a stray point


def test_an_incident_is_filed_under_its_ranked_cause_within_its_reach() -> None:
    calls = {"gateway": {"api", "db"}, "api": {"db"}}
    callees = lambda s: calls.get(s, set())  # noqa: E731 - the graph's descendants
    inc = grouping.open_incident(anomaly("gateway", 100), now=100)
    # The caller fired first; the cause it calls (not anomalous yet) becomes the incident's service.
    moved = inc.model_copy(update=grouping.filed_under_cause(inc, "db", callees))
    assert moved.service == "db" and moved.services == ("gateway", "db")
    assert moved.title == "Anomalous behaviour on db"
    # Its own service, or one nothing ties it to, changes nothing.
    assert grouping.filed_under_cause(inc, "gateway", callees) == {}
    assert grouping.filed_under_cause(inc, "billing", callees) == {}
    # A caller of the incident's services is not within reach: the incident stays where it is.
    on_api = grouping.open_incident(anomaly("api", 100), now=100)
    assert grouping.filed_under_cause(on_api, "gateway", callees) == {}
    # Without a graph, only its own services: a joined service may still become its service.
    joined = grouping.add_anomaly(inc, anomaly("api", 110), now=110)
    assert grouping.filed_under_cause(joined, "api", lambda s: ())["service"] == "api"
    # A title a person gave is kept.
    named = inc.model_copy(update={"title": "Checkout is slow"})
    assert "title" not in grouping.filed_under_cause(named, "db", callees)
