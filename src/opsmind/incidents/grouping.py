"""Pure incident grouping: which incident an anomaly joins, and when an incident resolves.

Decisions are pure functions returning a value and a reason (DESIGN.md); the stage holds the state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opsmind.predict.stage import ERROR_BUDGET_BURN
from opsmind.types import Anomaly, Incident, IncidentStatus

UNLABELLED_SERVICE = "unlabelled"

TIMELINE_LIMIT = 200  # keep an incident's record bounded; counts stay exact


def service_of(anomaly: Anomaly) -> str:
    return anomaly.service or UNLABELLED_SERVICE


def joins(
    incident: Incident | None,
    anomaly: Anomaly,
    group_window_s: float,
    neighbours: frozenset[str] = frozenset(),
    last_seen: Mapping[str, float] | None = None,
    callees: frozenset[str] = frozenset(),
    first_seen: Mapping[str, float] | None = None,
) -> tuple[bool, str]:
    """Whether ``anomaly`` belongs to the active ``incident``, and why.

    An incident is a cluster in services and in time. On the service it is filed under the anomaly joins
    while the incident is active: that service's trouble continues. On another service it joins:

    * while that service's own last anomaly in the incident (``last_seen``, by service; the incident's
      last anomaly for one not recorded) is within the group window: its trouble continues;
    * while a service it calls (``callees``, a subset of ``neighbours``) had an anomaly in the incident
      within the window: trouble travels up the call graph, so the slow callers of a failing database
      join it for as long as it fails;
    * within the window of the start of the trouble (``first_seen``; the incident's opening for one not
      recorded) of any service it calls or that calls it (``neighbours``): the symptom may show first on
      a caller and the cause join after it.

    What no longer joins is fresh trouble on a service only its *callers* keep in the incident: a gateway
    that calls everything and stays anomalous through one fault would otherwise pull every later fault,
    on any service it calls, into one incident; and a service that went quiet in an incident kept alive
    by others does not pull its fresh trouble into it."""
    if incident is None or not incident.status.active:
        return False, "no active incident"
    svc = service_of(anomaly)
    services = incident.services or ((incident.service,) if incident.service else ())
    if svc == incident.service:
        # Still active means its quiet period has not run out: the same service's trouble continues.
        return True, f"on {svc}, the service it is filed under, while it is still active"

    def seen(s: str) -> float:
        got = None if last_seen is None else last_seen.get(s)
        return incident.last_anomaly_at if got is None else got

    def began(s: str) -> float:
        got = None if first_seen is None else first_seen.get(s)
        return incident.opened_at if got is None else got

    linked = sorted({svc, *neighbours}.intersection(services))
    if not linked:
        return False, f"{svc} is neither one of its services nor calls or is called by one"
    ongoing = [s for s in linked if s == svc or s in callees]
    if ongoing:
        near = max(ongoing, key=seen)
        gap = anomaly.ts - seen(near)
        if gap <= group_window_s:
            how = f"on {svc}, one of its services" if near == svc else f"on {svc}, which calls {near}"
            return True, f"{how}, within {group_window_s:.0f}s of its last anomaly on {near}"
    others = [s for s in linked if s != svc]
    if others:
        start = max(others, key=began)
        since = anomaly.ts - began(start)
        if since <= group_window_s:
            return True, (
                f"on {svc}, which calls or is called by {start}, within {group_window_s:.0f}s of the start "
                f"of its trouble on {start}"
            )
    near = max(linked, key=seen)
    return False, (
        f"{anomaly.ts - seen(near):.0f}s after its last anomaly on {near} and past the start of the trouble "
        f"it could share, beyond the {group_window_s:.0f}s window"
    )


def within_window(pending: list[Anomaly], group_window_s: float) -> list[Anomaly]:
    """The pending anomalies (oldest first) that lie within the group window before the newest one."""
    return [a for a in pending if pending[-1].ts - a.ts <= group_window_s] if pending else []


def run_of(pending: list[Anomaly], run_gap_s: float) -> list[Anomaly]:
    """The newest run of the pending anomalies (oldest first): those after the last silence longer than
    ``run_gap_s``. Anomalies before such a silence were stray points, not the start of the trouble the run
    is, and an incident the run opens does not take them in."""
    if not pending:
        return pending
    start = len(pending) - 1
    while start > 0 and pending[start].ts - pending[start - 1].ts <= run_gap_s:
        start -= 1
    return pending[start:]


def pending_enough(
    recent: list[Anomaly], min_anomalies: int, group_window_s: float, held: bool = False
) -> tuple[bool, str]:
    """Whether a service's not-yet-grouped anomalies (from :func:`within_window`, or the run of
    :func:`run_of`) justify opening an incident, and why. Like the ``for:`` clause of a Prometheus alerting
    rule: one stray point does not page anyone; the anomalies must repeat - ``min_anomalies`` of them, and
    when that is more than one, at more than one point in time: many series of one service jumping at one
    scrape (a blip of traffic through the whole fleet) is one moment, not trouble that persists.

    ``held``: among them is an alert that already held for its rule's ``for:`` duration (Alertmanager's),
    so it is enough on its own. Its sender did the waiting this rule stands for, and its repeated
    notifications are one anomaly (one id per labels and start), so asking for ``min_anomalies`` of them
    would never open an incident for an alert that fires alone."""
    if held:
        return True, (
            f"{len(recent)} anomal{'y' if len(recent) == 1 else 'ies'} within {group_window_s:.0f}s, "
            "among them an alert that already held for its rule's for: duration"
        )
    instants = len({a.ts for a in recent})
    if len(recent) >= min_anomalies and (instants >= 2 or min_anomalies < 2):
        when = "" if min_anomalies < 2 else f" at {instants} points in time"
        return True, (
            f"{len(recent)} anomalies{when} within {group_window_s:.0f}s (at least {min_anomalies})"
        )
    if len(recent) >= min_anomalies:
        return False, f"{len(recent)} anomalies, all at one point in time: not repeated yet"
    return False, f"{len(recent)} of {min_anomalies} anomalies needed within {group_window_s:.0f}s"


def _burn(rate: float) -> str:
    """3 significant digits without scientific notation (a budget of 0.1 % burnt by failing every
    request is 1000x, which ``:.3g`` wrote as "1e+03x")."""
    return f"{rate:.3g}" if rate < 100 else f"{rate:.0f}"


def prediction_title(anomaly: Anomaly) -> str:
    labels, svc = anomaly.labels, service_of(anomaly)
    lead = labels.get("lead_s")
    if labels.get("warning") == ERROR_BUDGET_BURN:
        # A burn-rate alert is about now: the budget burns too fast. Its lead is when the budget runs
        # out at this rate, days away or already past, not a breach "in 0 min".
        burn = labels.get("burn_rate")
        rate = f" at {_burn(float(burn))}x" if burn else ""
        left = float(lead) if lead else 0.0
        when = "already spent" if left <= 0 else f"spent in {_duration(left)} at this rate"
        return f"Error budget of {svc} burning{rate}: {when}"
    warning = labels.get("warning", "breach").replace("_", " ")
    ahead = f" in {float(lead) / 60:.0f} min" if lead else ""
    return f"Predicted {warning} on {svc}{ahead}"


def _duration(seconds: float) -> str:
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86_400:.0f} days"


def prediction_labels(incident: Incident | None, anomaly: Anomaly) -> dict[str, str]:
    """A prediction incident's labels: the latest warning's figures, and the lead time of the first one
    (how long ahead the incident was known) kept as ``first_lead_s``."""
    labels = dict(anomaly.labels)
    first = None if incident is None else incident.labels.get("first_lead_s")
    labels["first_lead_s"] = first if first is not None else anomaly.labels.get("lead_s", "0")
    return labels


def anomaly_title(service: str) -> str:
    return f"Anomalous behaviour on {service}"


def filed_under_cause(
    incident: Incident, cause: str, callees: Callable[[str], Iterable[str]]
) -> dict[str, Any]:
    """The changes that file ``incident`` under its top-ranked root cause ``cause``, or none.

    It is filed there when the cause is one of its services, or a service they call (directly or not):
    a caller often shows a callee's fault first (its latency is the callee's plus its own), so the
    first service to fire is the symptom and the ranked cause is what the incident is about. A cause
    outside that reach is left as evidence only: the ranking may be wrong, and the incident would then
    name a service nothing ties it to. A default title follows the service; an operator's would too, but
    incidents have none yet."""
    if cause == incident.service:
        return {}
    reach = set(incident.services)
    for service in incident.services:
        reach.update(callees(service))
    if cause not in reach:
        return {}
    update: dict[str, Any] = {"service": cause, "services": tuple(dict.fromkeys((*incident.services, cause)))}
    if incident.service is not None and incident.title == anomaly_title(incident.service):
        update["title"] = anomaly_title(cause)
    return update


def open_incident(anomaly: Anomaly, now: float) -> Incident:
    svc = service_of(anomaly)
    predicted = anomaly.type == "prediction"
    return Incident(
        at=now,
        service=svc,
        title=prediction_title(anomaly) if predicted else anomaly_title(svc),
        type=anomaly.type,
        labels=prediction_labels(None, anomaly) if predicted else {},
        opened_at=anomaly.ts,
        last_anomaly_at=anomaly.ts,
        anomaly_count=1,
        series=(anomaly.series,),
        services=(svc,),
        max_probability=anomaly.probability,
        timeline=(
            {
                "at": now,
                "event": "opened",
                "anomaly": anomaly.id,
                "series": anomaly.series,
                "value": anomaly.value,
                "expected": anomaly.expected,
                **({"evidence": anomaly.evidence} if anomaly.evidence else {}),
            },
        ),
    )


def add_anomaly(incident: Incident, anomaly: Anomaly, now: float) -> Incident:
    series = incident.series if anomaly.series in incident.series else (*incident.series, anomaly.series)
    svc = service_of(anomaly)
    services = incident.services if svc in incident.services else (*incident.services, svc)
    timeline = incident.timeline
    if len(timeline) < TIMELINE_LIMIT:
        timeline = (
            *timeline,
            {
                "at": now,
                "event": "anomaly",
                "anomaly": anomaly.id,
                "series": anomaly.series,
                "value": anomaly.value,
                "expected": anomaly.expected,
                **({"evidence": anomaly.evidence} if anomaly.evidence else {}),
            },
        )
    extra: dict[str, object] = {}
    if incident.type == "prediction" and anomaly.type == "prediction":
        extra = {"labels": prediction_labels(incident, anomaly), "title": prediction_title(anomaly)}
    return incident.model_copy(
        update={
            **extra,
            "at": now,
            "last_anomaly_at": max(incident.last_anomaly_at, anomaly.ts),
            "anomaly_count": incident.anomaly_count + 1,
            "series": series,
            "services": services,
            "max_probability": max(incident.max_probability, anomaly.probability),
            "timeline": timeline,
        }
    )


def should_resolve(incident: Incident, now: float, resolve_after_s: float) -> tuple[bool, str]:
    """Auto-resolve: an active incident whose signals were healthy (no anomaly) for ``resolve_after_s``.
    A flapping incident must stay quiet twice as long, so it does not close only to relapse again."""
    quiet = now - incident.last_anomaly_at
    needed = resolve_after_s * (2 if incident.flapping else 1)
    if incident.status.active and quiet >= needed:
        return True, f"no anomaly for {quiet:.0f}s (resolve after {needed:.0f}s)"
    return False, "still within the quiet period"


def services_of(incident: Incident) -> tuple[str, ...]:
    """The services an incident involves (an incident from external alerts may only name the one)."""
    return incident.services or ((incident.service,) if incident.service else ())


HELD_OPEN = "held_open"
"""Timeline event: quiet long enough to resolve, but an objective is still breached."""


def held_since_last_anomaly(incident: Incident) -> bool:
    """A hold was noted on the timeline after the incident's last anomaly (one note per hold)."""
    return any(
        e.get("event") == HELD_OPEN and float(e.get("at", 0.0)) >= incident.last_anomaly_at
        for e in incident.timeline
    )


def note(incident: Incident, now: float, event: str, **detail: object) -> Incident:
    """``incident`` with one more timeline entry (the record stays bounded, see TIMELINE_LIMIT)."""
    if len(incident.timeline) >= TIMELINE_LIMIT and event == "anomaly":
        return incident
    return incident.model_copy(
        update={"at": now, "timeline": (*incident.timeline, {"at": now, "event": event, **detail})}
    )


def resolve(incident: Incident, now: float, reason: str, by: str = "opsmind") -> Incident:
    done = note(incident, now, "resolved", reason=reason, by=by)
    return done.model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_at": now})


TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset(
        {IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATING, IncidentStatus.RESOLVED}
    ),
    IncidentStatus.ACKNOWLEDGED: frozenset({IncidentStatus.MITIGATING, IncidentStatus.RESOLVED}),
    IncidentStatus.MITIGATING: frozenset({IncidentStatus.ACKNOWLEDGED, IncidentStatus.RESOLVED}),
    IncidentStatus.RESOLVED: frozenset({IncidentStatus.OPEN}),
}


def transition(incident: Incident, to: IncidentStatus, now: float, by: str, reason: str) -> Incident:
    """An operator's (or a remediation's) move along the lifecycle; ValueError names a move that is not
    allowed (for example acknowledging a resolved incident)."""
    if to not in TRANSITIONS[incident.status]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[incident.status])) or "none"
        raise ValueError(
            f"an incident that is {incident.status.value} cannot become {to.value} (allowed: {allowed})"
        )
    if to is IncidentStatus.RESOLVED:
        return resolve(incident, now, reason, by)
    moved = note(incident, now, to.value, reason=reason, by=by)
    return moved.model_copy(update={"status": to, "resolved_at": None})


def reopen(incident: Incident, anomaly: Anomaly, now: float, flap_threshold: int) -> Incident:
    """A resolved incident whose signals relapsed: open again, counted; after ``flap_threshold``
    relapses it is flapping (its notifications are held, it must stay quiet longer to resolve)."""
    reopened = incident.reopened + 1
    moved = note(
        incident, now, "reopened", reason=f"relapse: anomaly on {anomaly.series}", anomaly=anomaly.id
    ).model_copy(
        update={
            "status": IncidentStatus.OPEN,
            "resolved_at": None,
            "reopened": reopened,
            "flapping": incident.flapping or reopened >= flap_threshold,
        }
    )
    if moved.flapping and not incident.flapping:
        moved = note(moved, now, "flapping", reason=f"reopened {reopened} times")
    return add_anomaly(moved, anomaly, now)
