"""When to notify: Alertmanager's group timers as pure decisions over one notification group.

Each incident is a notification group (keyed by the incident id). Its state, :class:`Group`, is folded
from the incident events the notify stage consumes (:func:`fold`); :func:`decide` says what is due at a
time, with the reason, and :func:`sent` / :func:`muted` record what the stage did about it. The stage
holds the groups and the clock; nothing here reads a clock or does I/O.

The timers (``NotifySettings``), after Alertmanager's dispatcher:

- ``group_wait_s``: an incident's first notification (event ``"opened"``) waits this long after the
  stage first saw it, so the updates arriving meanwhile fold into it. If it resolves within that wait,
  nothing is sent at all - a flap filter - and the stage audits why.
- ``group_interval_s``: after a notification, a *change* (status, services, severity, or the anomaly
  count moving to another power of two - see :func:`fingerprint`) is sent as ``"updated"`` no sooner
  than this, and so is the resolution (``"resolved"``, sent once).
- ``repeat_interval_s``: an unchanged, still-active incident is re-sent as ``"repeat"`` this often, a
  reminder that it is still there (receivers that only know opened/updated/resolved can treat it as
  ``"updated"``).

A resolution is sent only to close what was notified as firing: if the opening never went out (muted,
held or filtered), neither does the resolution. One exception: a resolution of an incident the stage
never saw firing (it opened before a restart) is sent, since a receiver may still hold it open.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from opsmind.config import NotifySettings
from opsmind.incidents.muting import severity_of
from opsmind.types import Incident

Fingerprint = tuple[str, str, tuple[str, ...], str, int]
Action = Literal["wait", "send", "drop"]


def fingerprint(incident: Incident) -> Fingerprint:
    """What a receiver would call a change: status, services, severity and the anomaly count's order
    of magnitude (its power of two), so one more anomaly is not news but twice as many is."""
    return (
        incident.status.value,
        incident.service or "",
        tuple(sorted(incident.services)),
        severity_of(incident.max_probability),
        incident.anomaly_count.bit_length(),
    )


@dataclass(frozen=True, slots=True)
class Group:
    """One incident's notification state."""

    incident: Incident  # the latest version seen
    first_seen: float
    seen_firing: bool  # an opened/updated event arrived, so the stage knows it was active
    folded: int = 1  # events folded in since the last notification
    last_sent_at: float | None = None
    last_sent: Fingerprint | None = None
    opening_mute: tuple[str, str] | None = None  # (muter, reason) that last stopped the first notification
    resolution_sent: bool = False

    @property
    def resolved(self) -> bool:
        return not self.incident.status.active


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    event: str | None = None  # the event to send, for "send"
    due: float | None = None  # when the next notification falls due, for "wait"


def fold(group: Group | None, event: str, incident: Incident, now: float) -> Group:
    """The group after ``event`` about ``incident`` arrived at ``now``. An older version of the incident
    than the one held (a late redelivery) changes nothing."""
    firing = event != "resolved"
    if group is None:
        return Group(incident=incident, first_seen=now, seen_firing=firing)
    if incident.at < group.incident.at:
        return group
    return replace(
        group,
        incident=incident,
        seen_firing=group.seen_firing or firing,
        folded=group.folded + (incident != group.incident),
    )


def decide(group: Group, now: float, timers: NotifySettings) -> tuple[Decision, str]:
    """What is due for ``group`` at ``now``, and why."""
    if group.last_sent_at is None:
        return _first(group, now, timers)
    if group.resolved:
        if group.resolution_sent:
            return Decision("drop"), "its resolution was already sent"
        return _after(group.last_sent_at + timers.group_interval_s, "resolved", now, "group_interval")
    if fingerprint(group.incident) != group.last_sent:
        return _after(group.last_sent_at + timers.group_interval_s, "updated", now, "group_interval")
    due = group.last_sent_at + timers.repeat_interval_s
    if now >= due:
        return Decision("send", "repeat"), f"unchanged and still active for {timers.repeat_interval_s:g}s"
    return Decision("wait", due=due), "nothing changed since the last notification"


def _first(group: Group, now: float, timers: NotifySettings) -> tuple[Decision, str]:
    if group.resolved:
        if group.opening_mute is not None:
            return Decision("drop"), f"its opening was muted ({group.opening_mute[1]})"
        if group.seen_firing:
            return Decision("drop"), (
                f"resolved within group_wait ({timers.group_wait_s:g}s) before any notification: "
                "a flap filter"
            )
        return Decision("send", "resolved"), "resolved, and never seen firing here (opened before a restart?)"
    return _after(group.first_seen + timers.group_wait_s, "opened", now, "group_wait")


def _after(due: float, event: str, now: float, timer: str) -> tuple[Decision, str]:
    if now >= due:
        return Decision("send", event), f"{timer} elapsed"
    return Decision("wait", due=due), f"{timer}: {event} due in {due - now:.1f}s"


def sent(group: Group, event: str, now: float) -> Group:
    """The group after ``event`` was handed to the notifiers at ``now``."""
    return replace(
        group,
        folded=0,
        last_sent_at=now,
        last_sent=fingerprint(group.incident),
        resolution_sent=group.resolution_sent or event == "resolved",
    )


def muted(group: Group, event: str, muter: str, reason: str) -> Group:
    """The group after ``muter`` stopped ``event``: a muted opening also mutes the resolution."""
    return replace(group, opening_mute=(muter, reason)) if event == "opened" else group


def finished(group: Group, decision: Decision) -> bool:
    """Whether the stage can forget the group: nothing more will ever be sent for it."""
    return decision.action == "drop" or (group.resolved and group.resolution_sent)
