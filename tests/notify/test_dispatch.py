"""The group timers as pure decisions: group_wait folding, the flap filter, group_interval, repeat."""

from __future__ import annotations

from typing import Any

from opsmind.config import NotifySettings
from opsmind.notify import dispatch
from opsmind.types import Incident, IncidentStatus

T0 = 1_700_000_000.0
TIMERS = NotifySettings(group_wait_s=30, group_interval_s=300, repeat_interval_s=4 * 3600)


def incident(at: float = T0, **changes: Any) -> Incident:
    base = Incident(
        id="inc-1",
        at=at,
        service="checkout",
        services=("checkout",),
        title="Anomalous behaviour on checkout",
        opened_at=T0,
        last_anomaly_at=at,
        anomaly_count=2,
        max_probability=0.99999,
    )
    return base.model_copy(update=changes)


def resolved(at: float) -> Incident:
    return incident(at, status=IncidentStatus.RESOLVED, resolved_at=at)


def test_the_first_notification_waits_group_wait_and_folds_updates_into_it() -> None:
    g = dispatch.fold(None, "opened", incident(), T0)
    g = dispatch.fold(g, "updated", incident(T0 + 10, anomaly_count=9), T0 + 10)
    decision, reason = dispatch.decide(g, T0 + 29, TIMERS)
    assert decision.action == "wait" and decision.due == T0 + 30 and "group_wait" in reason
    decision, _ = dispatch.decide(g, T0 + 30, TIMERS)
    assert (decision.action, decision.event) == ("send", "opened")
    assert g.incident.anomaly_count == 9  # what goes out is the latest version
    g = dispatch.sent(g, "opened", T0 + 30)
    decision, _ = dispatch.decide(g, T0 + 31, TIMERS)
    assert decision.action == "wait"  # the folded update went out with the opening


def test_a_resolution_within_group_wait_sends_nothing_and_says_why() -> None:
    g = dispatch.fold(None, "opened", incident(), T0)
    g = dispatch.fold(g, "resolved", resolved(T0 + 20), T0 + 20)
    decision, reason = dispatch.decide(g, T0 + 20, TIMERS)
    assert decision.action == "drop" and "flap filter" in reason
    assert dispatch.finished(g, decision)


def test_changes_are_sent_at_most_once_per_group_interval_and_the_resolution_once() -> None:
    g = dispatch.sent(dispatch.fold(None, "opened", incident(), T0), "opened", T0 + 30)
    g = dispatch.fold(g, "updated", incident(T0 + 40, status=IncidentStatus.ACKNOWLEDGED), T0 + 40)
    decision, reason = dispatch.decide(g, T0 + 40, TIMERS)
    assert decision.action == "wait" and decision.due == T0 + 330 and "group_interval" in reason
    decision, _ = dispatch.decide(g, T0 + 330, TIMERS)
    assert (decision.action, decision.event) == ("send", "updated")
    g = dispatch.sent(g, "updated", T0 + 330)
    g = dispatch.fold(g, "resolved", resolved(T0 + 400), T0 + 400)
    assert dispatch.decide(g, T0 + 400, TIMERS)[0].action == "wait"
    decision, _ = dispatch.decide(g, T0 + 630, TIMERS)
    assert (decision.action, decision.event) == ("send", "resolved")
    g = dispatch.sent(g, "resolved", T0 + 630)
    decision, _ = dispatch.decide(g, T0 + 10_000, TIMERS)
    assert decision.action == "drop" and dispatch.finished(g, decision)


def test_an_unchanged_active_incident_is_repeated_every_repeat_interval() -> None:
    g = dispatch.sent(dispatch.fold(None, "opened", incident(), T0), "opened", T0 + 30)
    # One more anomaly is not a change worth a notification (same power of two: 2 -> 3).
    g = dispatch.fold(g, "updated", incident(T0 + 60, anomaly_count=3), T0 + 60)
    decision, reason = dispatch.decide(g, T0 + 1000, TIMERS)
    assert decision.action == "wait" and decision.due == T0 + 30 + 4 * 3600, reason
    decision, _ = dispatch.decide(g, T0 + 30 + 4 * 3600, TIMERS)
    assert (decision.action, decision.event) == ("send", "repeat")
    g = dispatch.sent(g, "repeat", T0 + 30 + 4 * 3600)
    assert dispatch.decide(g, T0 + 31 + 4 * 3600, TIMERS)[0].action == "wait"


def test_the_fingerprint_changes_with_what_a_receiver_would_call_news() -> None:
    fp = dispatch.fingerprint(incident())
    assert dispatch.fingerprint(incident(anomaly_count=3)) == fp
    assert dispatch.fingerprint(incident(anomaly_count=4)) != fp
    assert dispatch.fingerprint(incident(services=("checkout", "db"))) != fp
    assert dispatch.fingerprint(incident(status=IncidentStatus.MITIGATING)) != fp
    assert dispatch.fingerprint(incident(max_probability=0.9999999)) != fp  # severity critical


def test_a_late_redelivery_of_an_older_version_changes_nothing() -> None:
    g = dispatch.fold(None, "opened", incident(), T0)
    g = dispatch.fold(g, "updated", incident(T0 + 10, anomaly_count=9), T0 + 10)
    again = dispatch.fold(g, "opened", incident(), T0 + 11)
    assert again == g


def test_a_muted_opening_mutes_the_resolution_and_an_unknown_one_is_sent() -> None:
    g = dispatch.fold(None, "opened", incident(), T0)
    g = dispatch.muted(g, "opened", "silence", "silence s1 by ana: deploy")
    assert dispatch.decide(g, T0 + 30, TIMERS)[0].event == "opened"  # asked again while still active
    g = dispatch.fold(g, "resolved", resolved(T0 + 100), T0 + 100)
    decision, reason = dispatch.decide(g, T0 + 100, TIMERS)
    assert decision.action == "drop" and "its opening was muted (silence s1" in reason
    # Opened before a restart: the stage never saw it firing, but a receiver may hold it open.
    unknown = dispatch.fold(None, "resolved", resolved(T0 + 100), T0 + 100)
    assert dispatch.decide(unknown, T0 + 100, TIMERS)[0].event == "resolved"
