"""The notify stage on simulated time: group timers, redelivery, and every muter audited once."""

from __future__ import annotations

import asyncio
from typing import Any

from opsmind.bus.memory import MemoryBus
from opsmind.bus.protocols import Message
from opsmind.clock import SimClock
from opsmind.config import NotifySettings
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.notify.base import NotifyResult
from opsmind.notify.stage import NotifyStage, RetryPolicy
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import AuditEntry, Incident, IncidentStatus, Silence

T0 = 1_704_067_200.0  # 2024-01-01 00:00 UTC, a Monday


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []

    async def notify(self, event: str, incident: Incident) -> NotifyResult:
        self.events.append((event, incident.id, incident.anomaly_count))
        return NotifyResult(ok=True)


def incident(iid: str, service: str, at: float = T0, **changes: Any) -> Incident:
    base = Incident(
        id=iid,
        at=at,
        service=service,
        title=f"Anomalous behaviour on {service}",
        opened_at=T0,
        last_anomaly_at=at,
        anomaly_count=2,
    )
    return base.model_copy(update=changes)


def resolved(inc: Incident, at: float) -> Incident:
    return inc.model_copy(update={"at": at, "status": IncidentStatus.RESOLVED, "resolved_at": at})


class Rig:
    """A notify stage fed by hand: ``send`` hands it an event, ``at`` moves the clock and ticks."""

    def __init__(self, topology: dict[str, list[str]] | None = None, **timers: Any) -> None:
        self.clock = SimClock(start=T0)
        self.store = SqliteStore(":memory:")
        self.telemetry = Telemetry()
        self.collect = Collect()
        settings = NotifySettings(**{"group_wait_s": 30, "group_interval_s": 300, **timers})
        self.stage = NotifyStage(
            MemoryBus(telemetry=self.telemetry),
            self.clock,
            self.telemetry,
            self.store,
            [(self.collect, RetryPolicy(0, 0.01))],
            settings,
            topology,
        )
        self._ids = 0

    async def send(self, event: str, inc: Incident) -> None:
        self._ids += 1
        await self.stage.handle(Message(self._ids, INCIDENTS_TOPIC, IncidentEvent(event, inc), 1))

    async def at(self, t: float) -> None:
        self.clock.set(t)
        await self.stage.tick()

    def mutes(self) -> list[dict[str, Any]]:
        return [e.detail | {"subject": e.subject} for e in self.store.find(AuditEntry) if e.verb == "mute"]

    def sent(self) -> list[tuple[str, str]]:
        return [(e, i) for e, i, _ in self.collect.events]


async def test_updates_fold_into_the_first_notification_after_group_wait() -> None:
    rig = Rig()
    inc = incident("i1", "checkout")
    await rig.send("opened", inc)
    await rig.at(T0 + 10)
    await rig.send("updated", inc.model_copy(update={"at": T0 + 10, "anomaly_count": 7}))
    await rig.at(T0 + 29)
    assert rig.collect.events == []
    await rig.at(T0 + 30)
    assert rig.collect.events == [("opened", "i1", 7)]
    await rig.at(T0 + 31)
    assert len(rig.collect.events) == 1


async def test_resolved_within_group_wait_sends_nothing_and_the_audit_says_why() -> None:
    rig = Rig()
    inc = incident("i1", "checkout")
    await rig.send("opened", inc)
    rig.clock.set(T0 + 20)
    await rig.send("resolved", resolved(inc, T0 + 20))
    await rig.at(T0 + 60)
    assert rig.collect.events == []
    [mute] = rig.mutes()
    assert mute["event"] == "resolved" and mute["muter"] == "group_wait" and "flap filter" in mute["reason"]


async def test_changes_wait_for_group_interval_and_a_redelivery_is_not_sent_twice() -> None:
    rig = Rig(group_wait_s=0, repeat_interval_s=3600)
    inc = incident("i1", "checkout")
    await rig.send("opened", inc)
    await rig.send("opened", inc)  # redelivered
    assert rig.sent() == [("opened", "i1")]
    acked = inc.model_copy(update={"at": T0 + 5, "status": IncidentStatus.ACKNOWLEDGED})
    rig.clock.set(T0 + 5)
    await rig.send("updated", acked)
    await rig.at(T0 + 299)
    assert rig.sent() == [("opened", "i1")]
    await rig.at(T0 + 300)
    assert rig.sent() == [("opened", "i1"), ("updated", "i1")]
    await rig.at(T0 + 300 + 3599)
    assert len(rig.sent()) == 2
    await rig.at(T0 + 300 + 3600)
    assert rig.sent()[-1] == ("repeat", "i1")
    rig.clock.set(T0 + 4000)
    done = resolved(acked, T0 + 4000)
    await rig.send("resolved", done)
    await rig.at(T0 + 300 + 3600 + 300)
    await rig.send("resolved", done)  # redelivered after the group finished
    await rig.at(T0 + 10_000)
    assert [e for e, _ in rig.sent()] == ["opened", "updated", "repeat", "resolved"]


async def test_the_tick_loop_flushes_due_groups_on_the_engine_clock() -> None:
    rig = Rig(flush_interval_s=5)
    await rig.stage.start()
    try:
        await rig.send("opened", incident("i1", "checkout"))
        for _ in range(7):
            await rig.clock.advance(5)
            for _ in range(20):  # let the woken tick finish its store calls in worker threads
                await asyncio.sleep(0.005)
        assert rig.sent() == [("opened", "i1")]
    finally:
        await rig.stage.stop()


async def test_a_flapping_incident_is_held_and_the_hold_audited_once() -> None:
    rig = Rig(group_wait_s=0)
    inc = incident("i1", "checkout", reopened=3, flapping=True)
    await rig.send("opened", inc)
    for k in range(1, 5):
        await rig.at(T0 + k)
    assert rig.collect.events == []
    [mute] = rig.mutes()
    assert mute["muter"] == "flapping" and mute["reason"].startswith("flapping") and mute["event"] == "opened"
    settled = inc.model_copy(update={"at": T0 + 10, "flapping": False})
    rig.clock.set(T0 + 10)
    await rig.send("updated", settled)
    assert rig.sent() == [("opened", "i1")]  # held, not dropped: it goes out once it settles


async def test_a_symptom_is_inhibited_while_its_root_fires_and_sent_once_the_root_resolves() -> None:
    rig = Rig({"checkout": ["payments"], "payments": ["db"]})
    root, symptom = incident("db-1", "db"), incident("co-1", "checkout")
    await rig.send("opened", symptom)
    await rig.send("opened", root)
    await rig.at(T0 + 30)
    assert rig.sent() == [("opened", "db-1")]
    await rig.at(T0 + 60)
    [mute] = rig.mutes()
    assert mute["subject"] == "co-1" and mute["muter"] == "inhibition" and "db-1" in mute["reason"]
    rig.clock.set(T0 + 100)
    await rig.send("resolved", resolved(root, T0 + 100))
    await rig.at(T0 + 101)
    assert ("opened", "co-1") in rig.sent()


async def test_each_muter_is_audited_by_name_and_a_muted_opening_mutes_its_resolution() -> None:
    windows = [
        {
            "name": "nightly",
            "start": "00:00",
            "duration_s": 3600,
            "matchers": [{"name": "service", "value": "batch"}],
        }
    ]
    rig = Rig(group_wait_s=0, maintenance_windows=windows)
    rig.store.put(
        Silence(
            at=T0,
            matchers=({"name": "service", "value": "search", "isRegex": False, "isEqual": True},),
            starts_at=T0 - 1,
            ends_at=T0 + 7200,
            created_by="ana",
            comment="reindex",
        )
    )
    search, batch, loud = incident("s-1", "search"), incident("b-1", "batch"), incident("l-1", "api")
    for inc in (search, batch, loud):
        await rig.send("opened", inc)
    await rig.at(T0 + 10)
    assert rig.sent() == [("opened", "l-1")]
    by_subject = {m["subject"]: m for m in rig.mutes()}
    assert by_subject["s-1"]["muter"] == "silence" and "reindex" in by_subject["s-1"]["reason"]
    assert by_subject["b-1"]["muter"] == "maintenance" and "nightly" in by_subject["b-1"]["reason"]
    rig.clock.set(T0 + 20)
    await rig.send("resolved", resolved(search, T0 + 20))
    resolution = [m for m in rig.mutes() if m["event"] == "resolved"]
    assert len(resolution) == 1 and resolution[0]["muter"] == "silence"
    assert "its opening was muted" in resolution[0]["reason"]
    assert rig.telemetry.value("opsmind_notifications_muted_total", {"event": "opened"}) == 2
    # The window closes at 01:00 while the batch incident is still active: it is notified then.
    await rig.at(T0 + 3600)
    assert rig.sent()[-1] == ("opened", "b-1")
