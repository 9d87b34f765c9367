"""Matchers and silences as one Muter predicate, and the notify stage honouring them with a trace."""

from __future__ import annotations

import asyncio

import pytest

from opsmind.bus.memory import MemoryBus
from opsmind.clock import SimClock
from opsmind.config import NotifySettings
from opsmind.incidents import grouping
from opsmind.incidents.muting import Matcher, MatcherError, SilenceMuter, incident_labels
from opsmind.incidents.stage import INCIDENTS_TOPIC, IncidentEvent
from opsmind.notify.base import NotifyResult
from opsmind.notify.stage import NotifyStage, RetryPolicy
from opsmind.store.sqlite import SqliteStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, AuditEntry, Incident, Silence


def m(name: str, value: str, regex: bool = False, equal: bool = True) -> dict[str, object]:
    return {"name": name, "value": value, "isRegex": regex, "isEqual": equal}


def test_matchers_equal_regex_negated_and_missing_labels() -> None:
    labels = {"service": "checkout-api", "severity": "warning"}
    assert Matcher.parse(m("service", "checkout-api")).matches(labels)
    assert Matcher.parse(m("service", "checkout-.*", regex=True)).matches(labels)
    assert not Matcher.parse(m("service", "checkout", regex=True)).matches(labels)  # anchored
    assert Matcher.parse(m("severity", "critical", equal=False)).matches(labels)
    assert Matcher.parse(m("team", "")).matches(labels)  # a missing label is ""


def test_a_regex_matcher_takes_linear_time() -> None:
    # With Python's backtracking re, this silence took seconds per label (doubling with each character) on
    # the event loop that notifies; RE2 answers at once, as Alertmanager's Go regexp does.
    matcher = Matcher.parse(m("service", "(a+)+", regex=True))
    assert not matcher.matches({"service": "a" * 10_000 + "!"})
    assert matcher.matches({"service": "a" * 10_000})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name": "service"}, "needs a string 'name' and a string 'value'"),
        (m("bad-name", "x"), "invalid label name"),
        (m("service", "(", regex=True), "not a valid regular expression"),
        (m("service", r"(a)\1", regex=True), "RE2 syntax"),  # a backreference: Alertmanager has none
        (m("service", "x" * 5000), "5000 characters, at most 4096"),
        ({"name": "a", "value": "b", "isRegex": "yes"}, "must be true or false"),
    ],
)
def test_bad_matchers_are_named(raw: dict[str, object], message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        Matcher.parse(raw, "matchers.0")


def incident(service: str = "checkout") -> Incident:
    a = Anomaly(at=10, service=service, series="m", ts=10, value=1, score=9, probability=0.99, detector="t")
    return grouping.open_incident(a, now=10)


def silence(start: float, end: float, *matchers: dict[str, object]) -> Silence:
    return Silence(at=0, matchers=matchers, starts_at=start, ends_at=end, created_by="ana", comment="deploy")


def test_a_silence_mutes_only_while_active_and_only_what_all_its_matchers_match() -> None:
    inc = incident()
    labels = incident_labels(inc)
    s = silence(100, 200, m("service", "checkout"), m("alertname", "OpsMindIncident"))
    muter = SilenceMuter([s])
    assert muter.mutes(labels, 50) is None  # pending
    reason = muter.mutes(labels, 150)
    assert reason is not None and s.id in reason and "ana" in reason
    assert muter.mutes(labels, 250) is None  # expired
    other = SilenceMuter([silence(100, 200, m("service", "checkout"), m("severity", "critical"))])
    assert other.mutes(labels, 150) is None  # one matcher fails


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    async def notify(self, event: str, inc: Incident) -> NotifyResult:
        self.events.append((event, inc.service or ""))
        return NotifyResult(ok=True)


async def test_the_notify_stage_mutes_silenced_incidents_and_records_why() -> None:
    store = SqliteStore(":memory:")
    tel = Telemetry()
    clock = SimClock(start=150.0)
    bus = MemoryBus(telemetry=tel)
    collect = Collect()
    store.put(silence(100, 200, m("service", "checkout")))
    timers = NotifySettings(group_wait_s=0, group_interval_s=1)  # send at once: muting is under test
    stage = NotifyStage(bus, clock, tel, store, [(collect, RetryPolicy(0, 0.01))], timers)
    await stage.start()
    muted, loud = incident("checkout"), incident("payments")
    await bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", muted))
    await bus.publish(INCIDENTS_TOPIC, IncidentEvent("opened", loud))
    await bus.publish(INCIDENTS_TOPIC, IncidentEvent("resolved", grouping.resolve(muted, 160, "quiet")))
    for _ in range(200):
        if len(store.find(AuditEntry)) >= 3:
            break
        await asyncio.sleep(0.01)
    await stage.stop()
    assert collect.events == [("opened", "payments")]
    mutes = [e for e in store.find(AuditEntry) if e.verb == "mute"]
    assert {e.detail["event"] for e in mutes} == {"opened", "resolved"}
    assert all(e.subject == muted.id for e in mutes)
    assert tel.value("opsmind_notifications_muted_total", {"event": "opened"}) == 1
