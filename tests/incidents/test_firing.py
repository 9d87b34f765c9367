"""External alerts still firing hold their incidents open: in the correlator (its tick's hold) and in the
incident stage (its hold, which also persists the note and the resolution); a resolved notification, or
no firing notification for ``alert_firing_hold_s``, lets the incident resolve by the quiet rule."""

from __future__ import annotations

from collections.abc import Callable

from opsmind.bus.memory import MemoryBus
from opsmind.bus.protocols import Message
from opsmind.clock import SimClock
from opsmind.config import IncidentSettings
from opsmind.incidents.correlator import Correlator
from opsmind.incidents.firing import FiringAlerts
from opsmind.incidents.grouping import HELD_OPEN, TIMELINE_LIMIT
from opsmind.incidents.stage import ANOMALIES_TOPIC, IncidentStage
from opsmind.ingest.alertmanager import DETECTOR as ALERTMANAGER
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Incident, IncidentStatus, anomaly_id

RESOLVE_AFTER_S = 600.0
HOLD_S = 5 * 3600.0


def settings(**kw: float) -> IncidentSettings:
    base: dict[str, float] = {"resolve_after_s": RESOLVE_AFTER_S, "alert_firing_hold_s": HOLD_S}
    return IncidentSettings.model_validate({**base, **kw})


def alert(name: str, starts_at: float, service: str = "event-ingest") -> Anomaly:
    """An alert as the webhook intake makes it: its id follows its labels and startsAt."""
    series = f'ALERTS{{alertname="{name}",service="{service}"}}'
    return Anomaly(
        id=anomaly_id(series, starts_at, ALERTMANAGER),
        at=starts_at,
        service=service,
        series=series,
        ts=starts_at,
        value=1.0,
        score=1.0,
        probability=0.999999,
        detector=ALERTMANAGER,
    )


def own(service: str, ts: float, series: str = "latency_seconds") -> Anomaly:
    return Anomaly(
        at=ts,
        service=service,
        series=f'{series}{{service="{service}"}}',
        ts=ts,
        value=1,
        score=5,
        probability=0.99999,
        detector="t",
    )


def hold(firing: FiringAlerts, now: float) -> Callable[[Incident], str | None]:
    """The correlator tick's hold as the stage gives it: an alert of the incident still firing at ``now``."""
    return lambda inc: firing.holding(inc, now)


def held_notes(inc: Incident) -> list[str]:
    return [e["reason"] for e in inc.timeline if e["event"] == HELD_OPEN]


def test_an_alert_notified_firing_holds_its_incident_open_until_resolved() -> None:
    c, firing = Correlator(settings()), FiringAlerts(HOLD_S)
    backlog = alert("QueueBacklog", 100)
    (opened,) = c.add(backlog, 110)
    firing.firing([backlog], 110)
    inc_id = opened.incident.id
    # Past resolve_after_s, with Alertmanager's repeats (one anomaly, counted once) still coming.
    (held,) = c.tick(700, hold(firing, 700))
    assert held.event == "updated" and held.incident.status is IncidentStatus.OPEN
    assert held.reason.startswith('held open: alert ALERTS{alertname="QueueBacklog"')
    assert held.reason.endswith("still firing in Alertmanager, last notified 590s ago")
    for now in (4 * 3600.0, 8 * 3600.0, 12 * 3600.0):  # a repeat every repeat_interval
        assert c.add(backlog.model_copy(update={"at": now}), now) == []
        firing.firing([backlog], now)
        assert c.tick(now + 60, hold(firing, now + 60)) == []  # noted once
    assert len(held_notes(c.active[inc_id])) == 1 and c.active[inc_id].anomaly_count == 1
    firing.resolved([backlog.id])
    (done,) = c.tick(12 * 3600.0 + 75, hold(firing, 12 * 3600.0 + 75))
    assert done.event == "resolved" and done.incident.id == inc_id and c.active == {}
    assert "no anomaly for" in done.reason  # the quiet rule, long satisfied since the alert started


def test_without_firing_notifications_the_hold_lapses_after_alert_firing_hold_s() -> None:
    c, firing = Correlator(settings()), FiringAlerts(HOLD_S)
    backlog = alert("QueueBacklog", 100)
    c.add(backlog, 100)
    firing.firing([backlog], 1000)  # the last notification: Alertmanager dies after it
    (held,) = c.tick(1000 + HOLD_S - 1, hold(firing, 1000 + HOLD_S - 1))
    assert held.event == "updated"
    (done,) = c.tick(1000 + HOLD_S, hold(firing, 1000 + HOLD_S))
    assert done.event == "resolved"


def test_a_hold_of_zero_holds_nothing() -> None:
    c, firing = Correlator(settings(alert_firing_hold_s=0)), FiringAlerts(0)
    backlog = alert("QueueBacklog", 100)
    c.add(backlog, 100)
    firing.firing([backlog], 700)  # notified this very moment, and still nothing holds
    (done,) = c.tick(700, hold(firing, 700))
    assert done.event == "resolved"


def test_only_the_incident_with_the_firing_alert_is_held() -> None:
    c, firing = Correlator(settings(min_anomalies=2)), FiringAlerts(HOLD_S)
    backlog = alert("QueueBacklog", 100)
    (by_alert,) = c.add(backlog, 100)
    # An incident of the engine's own detectors on another service, as quiet: not held.
    c.add(own("checkout", 100), 100)
    (by_own,) = c.add(own("checkout", 115), 115)
    firing.firing([backlog], 650)
    changes = c.tick(800, hold(firing, 800))
    assert {(ch.incident.id, ch.event) for ch in changes} == {
        (by_alert.incident.id, "updated"),
        (by_own.incident.id, "resolved"),
    }


def test_an_alert_past_the_timeline_limit_is_found_by_its_series() -> None:
    # A long incident's timeline stops listing anomalies; the alert's series still names it.
    c, firing = Correlator(settings(min_anomalies=1)), FiringAlerts(HOLD_S)
    for i in range(TIMELINE_LIMIT + 5):
        c.add(own("event-ingest", 100 + i), 100 + i)
    late = alert("QueueBacklog", 100 + TIMELINE_LIMIT + 5)
    (joined,) = c.add(late, late.ts)
    assert late.id not in {e.get("anomaly") for e in joined.incident.timeline}
    firing.firing([late], late.ts + 60)
    now = late.ts + RESOLVE_AFTER_S + 1
    (held,) = c.tick(now, hold(firing, now))
    assert held.event == "updated" and held.incident.status is IncidentStatus.OPEN


async def test_the_stage_holds_an_alerts_incident_and_records_why_once() -> None:
    store, tel, clock = SqliteStore(":memory:"), Telemetry(), SimClock(start=1000.0)
    stage = IncidentStage(MemoryBus(telemetry=tel), clock, tel, store, settings())
    backlog, other = alert("QueueBacklog", 990), own("checkout", 990)
    await stage.handle(Message(1, ANOMALIES_TOPIC, backlog, 1))
    stage.alerts.firing([backlog], clock.now())
    for i, a in enumerate([other, own("checkout", 1005)], start=2):  # an incident of the engine's own
        await stage.handle(Message(i, ANOMALIES_TOPIC, a, 1))
    assert len(stage.correlator.active) == 2
    await clock.advance(RESOLVE_AFTER_S + 30)
    await stage.tick()
    await clock.advance(60)
    await stage.tick()
    by_service = {i.service: i for i in store.find(Incident)}
    assert by_service["checkout"].status is IncidentStatus.RESOLVED
    held = by_service["event-ingest"]
    assert held.status is IncidentStatus.OPEN
    assert held_notes(held) == [
        'alert ALERTS{alertname="QueueBacklog",service="event-ingest"} still firing in Alertmanager, '
        f"last notified {RESOLVE_AFTER_S + 30:.0f}s ago"
    ]
    stage.alerts.resolved([backlog.id])
    await clock.advance(15)
    await stage.tick()
    (done,) = [i for i in store.find(Incident) if i.service == "event-ingest"]
    assert done.status is IncidentStatus.RESOLVED and done.resolved_at == clock.now()
