"""The correlator: dedup, grouping by topology and time, reopen on relapse, flapping, lifecycle, priority."""

from __future__ import annotations

import networkx as nx
import pytest

from opsmind.config import IncidentSettings
from opsmind.incidents.correlator import Correlator
from opsmind.incidents.priority import Prioritiser
from opsmind.ingest.alertmanager import DETECTOR as ALERTMANAGER
from opsmind.types import Anomaly, IncidentStatus


def anomaly(service: str, ts: float, series: str = "latency_seconds", p: float = 0.99999) -> Anomaly:
    return Anomaly(
        at=ts,
        service=service,
        series=f'{series}{{service="{service}"}}',
        ts=ts,
        value=1,
        score=5,
        probability=p,
        detector="t",
    )


def chain() -> nx.DiGraph:
    g = nx.DiGraph()
    g.add_edges_from([("gateway", "api"), ("api", "db"), ("batch", "queue")])
    return g


def settings(**kw: object) -> IncidentSettings:
    base: dict[str, object] = {"group_window_s": 300, "min_anomalies": 2, "resolve_after_s": 600}
    return IncidentSettings.model_validate({**base, **kw})


def test_a_redelivered_anomaly_changes_nothing() -> None:
    c = Correlator(settings(min_anomalies=1))
    a = anomaly("db", 100)
    assert [ch.event for ch in c.add(a, 100)] == ["opened"]
    assert c.add(a, 101) == []
    assert next(iter(c.active.values())).anomaly_count == 1


def test_one_stray_anomaly_opens_nothing_two_do() -> None:
    c = Correlator(settings())
    assert c.add(anomaly("db", 100), 100) == []
    assert c.add(anomaly("db", 500), 500) == []  # the first is outside the window by now
    changes = c.add(anomaly("db", 515, "errors_total"), 515)  # the next scrape (15 s until learned)
    assert [ch.event for ch in changes] == ["opened"]
    assert changes[0].incident.anomaly_count == 2 and "2 anomalies" in changes[0].reason


def test_an_incident_opens_on_a_run_of_consecutive_scrapes_without_the_stray_points_before_it() -> None:
    c = Correlator(settings())
    for ts in (0, 5, 10):  # one series anomalous at consecutive scrapes: the fleet is scraped every 5 s
        c.add(anomaly("api", ts), ts)
    assert c.cadence.interval("db") == 5
    assert c.add(anomaly("db", 100), 100) == []
    # 60 s later is not the next scrape: two stray points within the group window are no run.
    assert c.add(anomaly("db", 160, "errors_total"), 160) == []
    (opened,) = c.add(anomaly("db", 165, "cpu_utilisation"), 165)
    assert opened.event == "opened" and opened.incident.opened_at == 160
    assert [a.ts for a in opened.anomalies] == [160, 165]  # the stray point at 100 stays out


def test_many_series_jumping_at_one_scrape_are_not_yet_a_run() -> None:
    c = Correlator(settings())
    for name in ("latency_seconds", "errors_total", "cpu_utilisation"):
        assert c.add(anomaly("db", 100, name), 100) == []
    (opened,) = c.add(anomaly("db", 115), 115)
    assert opened.event == "opened" and opened.incident.anomaly_count == 4
    assert "at 2 points in time" in opened.reason


def test_services_that_call_each_other_share_an_incident_unrelated_ones_do_not() -> None:
    c = Correlator(settings(), chain())
    c.add(anomaly("db", 100), 100)
    (opened,) = c.add(anomaly("db", 110), 110)
    (joined,) = c.add(anomaly("api", 150), 150)  # api calls db: joins at once, no waiting
    assert joined.event == "updated" and joined.incident.id == opened.incident.id
    (joined,) = c.add(anomaly("gateway", 200), 200)  # gateway calls api, which is in the incident now
    assert joined.incident.services == ("db", "api", "gateway")
    assert c.add(anomaly("batch", 210), 210) == []  # unrelated: pending, its own incident later
    (other,) = c.add(anomaly("batch", 220), 220)
    assert other.event == "opened" and other.incident.id != opened.incident.id
    assert len(c.active) == 2


def test_without_a_graph_each_service_is_its_own_incident() -> None:
    c = Correlator(settings(min_anomalies=1))
    c.add(anomaly("db", 100), 100)
    c.add(anomaly("api", 110), 110)
    assert len(c.active) == 2
    # Not even when their trouble starts at the same scrape: without a graph it groups by service alone.
    c = Correlator(settings())
    for ts in (100, 115):
        c.add(anomaly("db", ts), ts)
        c.add(anomaly("batch", ts), ts)
    assert len(c.active) == 2


def test_trouble_starting_at_one_scrape_is_one_incident_where_the_graph_links_nothing() -> None:
    c = Correlator(settings(), chain())
    for ts in (100, 115):
        c.add(anomaly("db", ts), ts)
        changes = c.add(anomaly("batch", ts), ts)
    (joined,) = changes
    assert joined.event == "updated" and "within 30s of its first anomaly" in joined.reason
    assert joined.incident.services == ("db", "batch") and len(c.active) == 1
    # A run that starts minutes later on an unlinked service is trouble of its own.
    for ts in (400, 415):
        changes = c.add(anomaly("cache", ts), ts)
    assert [ch.event for ch in changes] == ["opened"] and len(c.active) == 2


def test_a_service_quiet_in_an_incident_kept_alive_by_another_does_not_pull_new_trouble_into_it() -> None:
    g = nx.DiGraph([("a", "b"), ("b", "c")])
    c = Correlator(settings(), g)
    c.add(anomaly("c", 100), 100)
    (opened,) = c.add(anomaly("c", 115), 115)  # filed under c
    c.add(anomaly("b", 120), 120)  # b calls c: joins
    (joined,) = c.add(anomaly("a", 125), 125)  # a calls b: joins
    assert joined.incident.id == opened.incident.id and joined.incident.services == ("c", "b", "a")
    (again,) = c.add(anomaly("a", 300, "errors_total"), 300)  # a's last anomaly in it was 175 s ago
    assert again.incident.id == opened.incident.id
    for ts in (400, 650, 900):  # c's trouble continues: the incident stays active, filed under c
        (still,) = c.add(anomaly("c", ts), ts)
        assert still.incident.id == opened.incident.id and "filed under" in still.reason
    # a and b were quiet in it for ten minutes: a's new trouble is a new incident.
    assert c.add(anomaly("a", 910), 910) == []
    (new,) = c.add(anomaly("a", 925), 925)
    assert new.event == "opened" and new.incident.id != opened.incident.id
    assert len(c.active) == 2


def test_a_hub_kept_anomalous_by_one_fault_does_not_pull_later_faults_on_its_callees_into_it() -> None:
    # The demo's gateway calls every service: a fault on p keeps it anomalous, and a fault on q ten
    # minutes later joined p's incident through it (four faults in 20 minutes made one incident).
    g = nx.DiGraph([("gateway", "p"), ("gateway", "q")])
    c = Correlator(settings(), g)
    c.add(anomaly("p", 100), 100)
    (opened,) = c.add(anomaly("p", 115), 115)
    for ts in range(120, 800, 30):  # the gateway's symptoms go on; so does p's trouble
        (kept,) = c.add(anomaly("gateway", ts), ts)
        c.add(anomaly("p", ts + 1), ts + 1)
        assert kept.incident.id == opened.incident.id
    (early,) = c.add(anomaly("q", 200), 200)  # near the start of the trouble: one incident
    assert early.incident.id == opened.incident.id
    assert c.add(anomaly("q", 790, "errors_total"), 790) == []  # q's own last anomaly was 590 s ago
    (new,) = c.add(anomaly("q", 800, "errors_total"), 800)
    assert new.event == "opened" and new.incident.id != opened.incident.id


def test_auto_resolve_then_reopen_on_relapse_then_flapping() -> None:
    c = Correlator(settings(min_anomalies=1, flap_threshold=2, reopen_window_s=1800))
    (opened,) = c.add(anomaly("db", 0), 0)
    assert c.tick(500) == []
    (res,) = c.tick(600)
    assert res.event == "resolved" and res.incident.status is IncidentStatus.RESOLVED
    (again,) = c.add(anomaly("db", 900), 900)
    assert again.event == "reopened" and again.incident.id == opened.incident.id
    assert again.incident.reopened == 1 and not again.incident.flapping
    c.tick(1500)
    (third,) = c.add(anomaly("db", 1600), 1600)
    assert third.incident.reopened == 2 and third.incident.flapping
    assert any(e["event"] == "flapping" for e in third.incident.timeline)
    # A flapping incident must stay quiet twice as long before it resolves.
    assert c.tick(1600 + 700) == []
    assert [ch.event for ch in c.tick(1600 + 1200)] == ["resolved"]
    # Past the reopen window a relapse is a new incident.
    (new,) = c.add(anomaly("db", 2800 + 1801), 2800 + 1801)
    assert new.event == "opened" and new.incident.id != opened.incident.id


def test_only_the_service_an_incident_is_filed_under_relapses_into_it() -> None:
    c = Correlator(settings(), chain())
    c.add(anomaly("db", 0), 0)
    (opened,) = c.add(anomaly("db", 15), 15)
    c.add(anomaly("api", 20), 20)  # api calls db: caught up in db's incident
    (res,) = c.tick(620)
    assert res.event == "resolved"
    # api breaks again on the same series: a new incident, not db's incident reopened.
    c.add(anomaly("api", 900), 900)
    (new,) = c.add(anomaly("api", 915), 915)
    assert new.event == "opened" and new.incident.id != opened.incident.id
    assert [ch.event for ch in c.tick(1515)] == ["resolved"]
    # db relapsing within the reopen window reopens db's.
    c.add(anomaly("db", 1600), 1600)
    (again,) = c.add(anomaly("db", 1615), 1615)
    assert again.event == "reopened" and again.incident.id == opened.incident.id


def test_lifecycle_moves_and_refusals() -> None:
    c = Correlator(settings(min_anomalies=1))
    (opened,) = c.add(anomaly("db", 0), 0)
    iid = opened.incident.id
    ack = c.transition(iid, IncidentStatus.ACKNOWLEDGED, 10, "alice", "looking")
    assert ack.incident.status is IncidentStatus.ACKNOWLEDGED
    assert ack.incident.timeline[-1] == {
        "at": 10,
        "event": "acknowledged",
        "reason": "looking",
        "by": "alice",
    }
    with pytest.raises(ValueError, match="cannot become open"):
        c.transition(iid, IncidentStatus.OPEN, 11, "alice", "")
    mit = c.transition(iid, IncidentStatus.MITIGATING, 20, "opsmind:heal", "restarting db")
    assert mit.incident.status is IncidentStatus.MITIGATING
    # An acknowledged or mitigating incident still groups anomalies and still auto-resolves.
    (upd,) = c.add(anomaly("db", 30), 30)
    assert upd.event == "updated" and upd.incident.status is IncidentStatus.MITIGATING
    assert [ch.event for ch in c.tick(630)] == ["resolved"]
    with pytest.raises(ValueError, match="resolved cannot become acknowledged"):
        c.transition(iid, IncidentStatus.ACKNOWLEDGED, 640, "alice", "")
    reopened = c.transition(iid, IncidentStatus.OPEN, 650, "alice", "not fixed")
    assert reopened.incident.status is IncidentStatus.OPEN and iid in c.active
    with pytest.raises(KeyError):
        c.transition("nope", IncidentStatus.RESOLVED, 1, "alice", "")


def test_priority_explains_its_parts_and_orders_incidents() -> None:
    g = chain()
    p = Prioritiser(g, {"db": 1.0, "queue": 0.2})
    c = Correlator(settings(min_anomalies=1, criticality={"db": 1.0, "queue": 0.2}), g)
    (db,) = c.add(anomaly("db", 0, "latency_seconds", p=0.9999999), 0)
    (queue,) = c.add(anomaly("queue", 900, "cpu_utilisation", p=0.99995), 900)
    hi, lo = db.incident, queue.incident
    assert hi.priority > lo.priority
    ex = hi.priority_explanation
    assert set(ex) >= {"severity", "blast_radius", "slo_impact", "criticality"}
    assert ex["affected_services"] == ["api", "db", "gateway"]  # callers of db are affected too
    assert "users affected" in ex["blast_radius"]["why"] and ex["slo_impact"]["value"] == 1.0
    assert hi.priority == pytest.approx(
        sum(ex[k]["points"] for k in ("severity", "blast_radius", "slo_impact", "criticality"))
    )
    assert lo.priority_explanation["slo_impact"]["why"] == "only traffic or resource anomalies"
    assert p.score(hi)[0] == hi.priority


def test_criticality_outside_0_1_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        IncidentSettings.model_validate({"criticality": {"db": 3}})


def alert(name: str, ts: float, service: str = "checkout") -> Anomaly:
    """An Alertmanager alert as the webhook intake makes it: its id follows its labels and ``startsAt``."""
    return anomaly(service, ts, f'ALERTS{{alertname="{name}"}}').model_copy(update={"detector": ALERTMANAGER})


def test_alerts_from_alertmanager_already_held_and_need_no_run_of_scrapes() -> None:
    c = Correlator(settings())
    (opened,) = c.add(alert("HighLatency", 100), 100)
    (joined,) = c.add(alert("HighErrors", 100), 100)  # same service, same moment: the same trouble
    assert opened.event == "opened" and joined.event == "updated" and joined.incident.anomaly_count == 2
    c = Correlator(settings())
    c.add(alert("HighLatency", 100), 100)
    (joined,) = c.add(alert("HighErrors", 220), 220)  # two minutes apart: no run, still one incident
    assert joined.event == "updated" and len(c.active) == 1
    # The same two points from the engine's own detector are stray points, not a run.
    c = Correlator(settings())
    c.add(anomaly("checkout", 100), 100)
    assert c.add(anomaly("checkout", 220, "errors_total"), 220) == []


@pytest.mark.parametrize("min_anomalies", [2, 3])
def test_one_firing_alert_opens_an_incident_at_once_and_its_repeats_change_nothing(
    min_anomalies: int,
) -> None:
    # Alertmanager re-sends a firing alert (group_interval, repeat_interval) with the same labels and
    # startsAt, so however often it is sent it is one anomaly: waiting for min_anomalies of them opened
    # nothing, ever. Alertmanager already evaluated the rule's for:, so the one alert is enough.
    c = Correlator(settings(min_anomalies=min_anomalies, resolve_after_s=600))
    backlog = alert("QueueBacklog", 100, "event-ingest")
    (opened,) = c.add(backlog, 110)
    inc = opened.incident
    assert opened.event == "opened" and inc.service == "event-ingest" and inc.anomaly_count == 1
    assert "held for its rule's for:" in opened.reason
    for now in (140, 400, 690):  # repeats while it is open: no new incident, no count inflated
        assert c.add(backlog.model_copy(update={"at": now}), now) == []
    assert c.active[inc.id].anomaly_count == 1
    # The alert resolves (a resolved alert is no anomaly): the incident resolves once quiet for
    # resolve_after_s, as every incident does, and a late redelivery of its firing does not reopen it.
    assert c.tick(690) == []
    (resolved,) = c.tick(700)
    assert resolved.event == "resolved" and resolved.incident.id == inc.id
    assert c.add(backlog.model_copy(update={"at": 710}), 710) == [] and c.active == {}
    # A new firing of it (a new startsAt) within the reopen window is a relapse of that incident.
    (again,) = c.add(alert("QueueBacklog", 900, "event-ingest"), 900)
    assert again.event == "reopened" and again.incident.id == inc.id


def test_one_anomaly_of_the_engines_own_detectors_still_opens_nothing() -> None:
    # Only an alert that held for its rule's for: stands alone; one scrape's point still pages nobody.
    c = Correlator(settings())
    assert c.add(anomaly("event-ingest", 100), 100) == []
    assert c.active == {}


def test_a_repeat_after_a_restart_does_not_count_again() -> None:
    # The engine restores its active incidents when it starts; a repeat of an alert already in one was
    # taken as new (the ids seen were lost with the process) and counted a second time.
    c = Correlator(settings())
    backlog = alert("QueueBacklog", 100, "event-ingest")
    (opened,) = c.add(backlog, 110)
    restarted = Correlator(settings())
    restarted.restore([opened.incident])
    assert restarted.add(backlog.model_copy(update={"at": 400}), 400) == []
    assert restarted.active[opened.incident.id].anomaly_count == 1
    (joined,) = restarted.add(alert("DiskFull", 420, "event-ingest"), 420)  # a different alert still joins
    assert joined.event == "updated" and joined.incident.anomaly_count == 2
