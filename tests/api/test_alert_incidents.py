"""One external alert through Alertmanager's webhook, behind the real app (ASGI in process) on a real
engine with a fake clock: it opens an incident at once, Alertmanager's repeats of it neither open
another nor count again (also after the engine restarts) but hold the incident open while they come,
and once it is resolved - or no longer notified for ``incidents.alert_firing_hold_s`` - the incident
resolves after its quiet period, as every incident does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from opsmind.api.app import create_app
from opsmind.clock import SimClock
from opsmind.config import Settings, load_settings
from opsmind.detect.stage import ANOMALIES_TOPIC
from opsmind.engine import Engine
from opsmind.incidents.grouping import HELD_OPEN
from opsmind.types import Anomaly, Incident, IncidentStatus

T0 = 1_800_000_000.0
URL = "/api/v1/alerts/alertmanager"
SERVICE = "event-ingest"
RESOLVE_AFTER_S = 600.0
CHECK_INTERVAL_S = 15.0


def settings(tmp_path: Path, hold_s: float | None = None) -> Settings:
    incidents: dict[str, float] = {"resolve_after_s": RESOLVE_AFTER_S, "check_interval_s": CHECK_INTERVAL_S}
    if hold_s is not None:
        incidents["alert_firing_hold_s"] = hold_s
    return load_settings(
        storage={"path": str(tmp_path / "opsmind.db")},
        notify={"log": False},
        predict={"enabled": False},
        # min_anomalies stays at its default of 2: the one alert must open an incident regardless.
        incidents=incidents,
    )


def stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def webhook(status: str, starts_at: float, ends_at: float | None = None) -> dict[str, Any]:
    """Alertmanager's webhook (version 4) of one alert; a repeat is the same body sent again."""
    labels = {"alertname": "QueueBacklog", "service": SERVICE, "severity": "critical"}
    return {
        "version": "4",
        "groupKey": '{}:{alertname="QueueBacklog"}',
        "status": status,
        "receiver": "opsmind",
        "groupLabels": {"alertname": "QueueBacklog"},
        "commonLabels": labels,
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "events queue up"},
                "startsAt": stamp(starts_at),
                # Alertmanager zeroes endsAt of an alert still firing.
                "endsAt": stamp(ends_at) if ends_at is not None else "0001-01-01T00:00:00Z",
                "fingerprint": "9b3ac1f6ce3a1d2e",
            }
        ],
    }


@asynccontextmanager
async def running(
    tmp_path: Path, clock: SimClock, hold_s: float | None = None
) -> AsyncIterator[tuple[Engine, httpx.AsyncClient]]:
    engine = Engine(settings(tmp_path, hold_s), clock=clock, notifiers=[])
    await engine.start()
    app = create_app(engine, manage_engine=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://opsmind.test")
    try:
        yield engine, client
    finally:
        await client.aclose()
        await engine.stop()


async def wait_for(cond: Callable[[], Any], timeout: float = 10) -> Any:
    for _ in range(int(timeout / 0.02)):
        if got := cond():
            return got
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def advance(clock: SimClock, seconds: float, step: float = CHECK_INTERVAL_S) -> None:
    """Move the clock one tick interval of the incident stage at a time, letting each tick (it works in a
    thread) finish and sleep again before time moves on: one big jump would outrun the ticks after it."""
    for _ in range(int(seconds // step)):
        await clock.advance(step)
        await asyncio.sleep(0.02)
    await clock.advance(seconds % step)


async def handled(engine: Engine) -> None:
    """Every anomaly published so far has been handled by the incident stage."""
    await wait_for(lambda: engine.bus.backlog(ANOMALIES_TOPIC) == 0)


def incidents(engine: Engine) -> list[Incident]:
    return [i for i in engine.store.find(Incident, limit=100) if i.service == SERVICE]


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    r = await client.post(URL, json=body)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_one_firing_alert_opens_an_incident_and_resolves_after_it_does(tmp_path: Path) -> None:
    clock = SimClock(T0)
    async with running(tmp_path, clock) as (engine, client):
        firing = webhook("firing", starts_at=T0 - 10)
        assert await post(client, firing) == {"firing": 1, "resolved": 0}
        (inc,) = await wait_for(lambda: incidents(engine))
        assert inc.status is IncidentStatus.OPEN and inc.anomaly_count == 1
        assert inc.series == ('ALERTS{alertname="QueueBacklog",service="event-ingest",severity="critical"}',)
        # Alertmanager re-sends the firing alert (group_interval, repeat_interval): the same alert.
        for _ in range(3):
            await clock.advance(60)
            assert await post(client, firing) == {"firing": 1, "resolved": 0}
        await handled(engine)
        (inc,) = incidents(engine)
        assert inc.anomaly_count == 1 and inc.status is IncidentStatus.OPEN
        assert len(engine.store.find(Anomaly, service=SERVICE)) == 1
        # It resolves: the incident resolves once quiet for resolve_after_s, and stays resolved when a
        # firing notification sent before is delivered again late.
        resolved = webhook("resolved", starts_at=T0 - 10, ends_at=clock.now())
        assert await post(client, resolved) == {"firing": 0, "resolved": 1}
        await advance(clock, T0 - 10 + RESOLVE_AFTER_S - CHECK_INTERVAL_S - clock.now())
        assert [i.status for i in incidents(engine)] == [IncidentStatus.OPEN]  # not quiet long enough yet
        await advance(clock, 3 * CHECK_INTERVAL_S)
        (inc,) = await wait_for(lambda: [i for i in incidents(engine) if i.status is IncidentStatus.RESOLVED])
        assert inc.reopened == 0 and inc.resolved_at is not None
        assert inc.resolved_at >= T0 - 10 + RESOLVE_AFTER_S  # quiet for resolve_after_s since it started
        await post(client, firing)
        await handled(engine)
        assert [(i.id, i.status, i.anomaly_count) for i in incidents(engine)] == [
            (inc.id, IncidentStatus.RESOLVED, 1)
        ]


async def test_a_repeat_after_a_restart_does_not_count_again(tmp_path: Path) -> None:
    clock = SimClock(T0)
    firing = webhook("firing", starts_at=T0 - 10)
    async with running(tmp_path, clock) as (engine, client):
        await post(client, firing)
        (opened,) = await wait_for(lambda: incidents(engine))
    await clock.advance(60)
    async with running(tmp_path, clock) as (engine, client):
        await post(client, firing)
        await handled(engine)
        (inc,) = incidents(engine)
        assert (inc.id, inc.anomaly_count, inc.status) == (opened.id, 1, IncidentStatus.OPEN)


REPEAT_S = 900.0  # Alertmanager's repeat_interval, shrunk from 4 h to keep the fake clock's walk short


def held_notes(inc: Incident) -> list[str]:
    return [e["reason"] for e in inc.timeline if e["event"] == HELD_OPEN]


async def test_an_incident_stays_open_while_its_alert_fires_and_resolves_once_it_is_resolved(
    tmp_path: Path,
) -> None:
    clock = SimClock(T0)
    async with running(tmp_path, clock) as (engine, client):
        firing = webhook("firing", starts_at=T0 - 10)
        await post(client, firing)
        await wait_for(lambda: incidents(engine))
        # Alertmanager re-sends the alert every repeat_interval, well past resolve_after_s: each repeat is
        # the anomaly already counted, yet the incident stays open while they come.
        for _ in range(3):
            await advance(clock, REPEAT_S)
            assert await post(client, firing) == {"firing": 1, "resolved": 0}
        await handled(engine)
        await advance(clock, 2 * CHECK_INTERVAL_S)
        (inc,) = incidents(engine)
        assert inc.status is IncidentStatus.OPEN and inc.anomaly_count == 1
        (why,) = held_notes(inc)  # noted once, when the quiet period ran out
        assert why.startswith('alert ALERTS{alertname="QueueBacklog",service="event-ingest"')
        assert "still firing in Alertmanager" in why
        # Alertmanager resolves it: the hold lifts, and the incident, quiet since the alert started, resolves
        # on the stage's next check.
        resolved_at = clock.now()
        assert await post(client, webhook("resolved", T0 - 10, resolved_at)) == {"firing": 0, "resolved": 1}
        await advance(clock, 2 * CHECK_INTERVAL_S)
        (inc,) = await wait_for(lambda: [i for i in incidents(engine) if i.status is IncidentStatus.RESOLVED])
        assert resolved_at <= (inc.resolved_at or 0.0) <= resolved_at + 2 * CHECK_INTERVAL_S
        assert len(held_notes(inc)) == 1 and inc.anomaly_count == 1


async def test_an_alert_no_longer_notified_holds_its_incident_only_for_alert_firing_hold_s(
    tmp_path: Path,
) -> None:
    hold_s = 1200.0
    clock = SimClock(T0)
    async with running(tmp_path, clock, hold_s=hold_s) as (engine, client):
        await post(client, webhook("firing", starts_at=T0 - 10))
        await wait_for(lambda: incidents(engine))
        # Alertmanager goes silent (dead, or its route to OpsMind removed) while the alert was firing.
        await advance(clock, hold_s - 2 * CHECK_INTERVAL_S)
        (inc,) = incidents(engine)
        assert inc.status is IncidentStatus.OPEN and len(held_notes(inc)) == 1
        await advance(clock, 4 * CHECK_INTERVAL_S)
        (inc,) = await wait_for(lambda: [i for i in incidents(engine) if i.status is IncidentStatus.RESOLVED])
        assert T0 + hold_s <= (inc.resolved_at or 0.0) <= T0 + hold_s + 2 * CHECK_INTERVAL_S


async def test_a_restart_keeps_holding_the_incident_of_an_alert_that_fires(tmp_path: Path) -> None:
    # The firing state was in memory only: after a restart the restored incident, its alert started more
    # than resolve_after_s before, resolved at the first check, and the alert's next repeat (the anomaly
    # already seen) could not reopen it while Alertmanager still showed it firing.
    clock = SimClock(T0)
    firing = webhook("firing", starts_at=T0 - 10)
    async with running(tmp_path, clock) as (engine, client):
        await post(client, firing)
        (opened,) = await wait_for(lambda: incidents(engine))
        await advance(clock, RESOLVE_AFTER_S + 4 * CHECK_INTERVAL_S)
        assert [i.status for i in incidents(engine)] == [IncidentStatus.OPEN]  # held
    async with running(tmp_path, clock) as (engine, client):
        await advance(clock, 4 * CHECK_INTERVAL_S)
        (inc,) = incidents(engine)
        assert (inc.id, inc.status) == (opened.id, IncidentStatus.OPEN), "held across the restart"
        assert await post(client, webhook("resolved", T0 - 10, clock.now())) == {"firing": 0, "resolved": 1}
        await advance(clock, 2 * CHECK_INTERVAL_S)
        await wait_for(lambda: [i for i in incidents(engine) if i.status is IncidentStatus.RESOLVED])
    # Resolved before a restart: nothing is held after it.
    async with running(tmp_path, clock) as (engine, _):
        assert engine.firing_alerts.holding(inc, clock.now()) is None
