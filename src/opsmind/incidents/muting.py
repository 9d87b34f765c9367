"""Muting: every reason not to notify is one predicate, ``Muter.mutes(labels, now) -> reason | None``.

After Alertmanager's ``notify/mute.go``: silences, inhibition and maintenance windows all answer the same
question for a set of labels at a time, so the notify stage asks each muter in turn and records which
one muted what (nothing disappears without a trace). An incident's labels are
:func:`incident_labels`: ``alertname="OpsMindIncident"``, ``service``, ``severity``, ``incident_id``.
Muters that need more than labels (inhibition needs when an incident opened; flapping needs its flag)
are built from the active incidents and look the incident up by its ``incident_id`` label, so every
muter keeps the one signature. Each muter has a ``name`` the audit log records beside its reason.

The muters: :class:`SilenceMuter` (silences from the API; a one-off maintenance window is a silence with
a future ``startsAt``), :class:`InhibitionMuter` (symptoms downstream of a firing root),
:class:`MaintenanceMuter` (recurring weekly windows from the settings) and :class:`FlappingMuter`
(incidents that keep resolving and relapsing are held).

Matchers follow Alertmanager's API v2 shape, ``{"name", "value", "isRegex", "isEqual"}``: equality or
a regular expression matched against the *whole* label value (anchored, as in Alertmanager), either
negated with ``isEqual: false``. A missing label has the value ``""``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from opsmind.config import WEEKDAYS, MaintenanceWindow
from opsmind.label_regex import compile_label_regex
from opsmind.types import Incident, Silence
from opsmind.types.series import validate_label_name, validate_label_value

ALERTNAME = "OpsMindIncident"
MAX_MATCHER_VALUE = 4096  # characters: a label value or pattern longer than that is a mistake, not a silence


def severity_of(probability: float) -> str:
    return "critical" if probability >= 0.999999 else "warning" if probability >= 0.9999 else "info"


def incident_labels(incident: Incident) -> dict[str, str]:
    return {
        "alertname": ALERTNAME,
        "service": incident.service or "unknown",
        "severity": severity_of(incident.max_probability),
        "incident_id": incident.id,
    }


class MatcherError(ValueError):
    """A matcher cannot be used; the message names the field and the reason."""


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str = "matcher") -> Matcher:
        name, value = raw.get("name"), raw.get("value")
        unknown = sorted(str(k) for k in raw if k not in MATCHER_KEYS)
        if unknown:
            # A misspelt "isregex" was ignored, and the silence then matched its pattern literally.
            raise MatcherError(f"{where}: unknown key(s) {unknown}; a matcher has {list(MATCHER_KEYS)}")
        if not isinstance(name, str) or not isinstance(value, str):
            raise MatcherError(f"{where}: needs a string 'name' and a string 'value'")
        try:
            validate_label_name(name)
        except ValueError as exc:
            raise MatcherError(f"{where}.name: {exc}") from exc
        if len(value) > MAX_MATCHER_VALUE:
            raise MatcherError(f"{where}.value: {len(value)} characters, at most {MAX_MATCHER_VALUE}")
        try:
            validate_label_value(name, value)
        except ValueError as exc:
            raise MatcherError(f"{where}.value: {exc}") from exc
        is_regex, is_equal = raw.get("isRegex", False), raw.get("isEqual", True)
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            raise MatcherError(f"{where}: isRegex and isEqual must be true or false")
        if is_regex:
            try:
                compile_label_regex(value)
            except ValueError as exc:
                raise MatcherError(f"{where}.value: {exc}") from exc
        return cls(name, value, is_regex, is_equal)

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        hit = compile_label_regex(self.value).fullmatch(v) is not None if self.is_regex else v == self.value
        return hit == self.is_equal

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


MATCHER_KEYS = ("name", "value", "isRegex", "isEqual")
"""The keys of a matcher in Alertmanager's v2 API."""


class Muter(Protocol):
    name: str

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        """Why notifications for these labels are muted at ``now``, or None when they are not."""
        ...


class SilenceMuter:
    """Mutes what an active silence matches (every matcher of the silence must match).

    A one-off maintenance window needs nothing else: create a silence whose ``startsAt`` lies in the
    future; it stays pending until then. Recurring windows are :class:`MaintenanceMuter`'s job.
    """

    name = "silence"

    def __init__(self, silences: Sequence[Silence]) -> None:
        self.silences = [(s, [Matcher.parse(m) for m in s.matchers]) for s in silences]

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        for silence, matchers in self.silences:
            if silence.state(now) == "active" and all(m.matches(labels) for m in matchers):
                return f"silence {silence.id} by {silence.created_by}: {silence.comment or 'no comment'}"
        return None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def dependency_paths(topology: Mapping[str, Sequence[str]], service: str) -> dict[str, list[str]]:
    """Every service that ``service`` calls, directly or through others, with one shortest call path
    to it (``[service, ..., dependency]``). ``service`` itself is included only if a cycle leads back."""
    paths: dict[str, list[str]] = {}
    frontier = [[service]]
    while frontier:
        nxt = []
        for path in frontier:
            for callee in topology.get(path[-1], ()):
                if callee not in paths:
                    paths[callee] = [*path, callee]
                    nxt.append(paths[callee])
        frontier = nxt
    return paths


class InhibitionMuter:
    """Mutes an incident while an active incident on a service it depends on is firing.

    Built from the active incidents (the notify stage keeps them from the events it consumes) and the
    topology (caller -> callees). The incident filed under service A (looked up by ``incident_id``) is
    muted by an active incident on a service B that A calls, directly or transitively, opened no later
    than A's incident plus ``slack_s``: the symptom downstream should not page beside its root. The
    slack exists because a root is often *detected* a little after its first symptoms. Where services
    call each other in a cycle, only the earlier incident (by opening time, then id) inhibits, so two
    incidents can never silence each other.
    """

    name = "inhibition"

    def __init__(
        self, active: Iterable[Incident], topology: Mapping[str, Sequence[str]], slack_s: float = 60.0
    ) -> None:
        self.active = {i.id: i for i in active if i.status.active}
        self.topology = topology
        self.slack_s = slack_s

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        iid, service = labels.get("incident_id", ""), labels.get("service", "")
        target = self.active.get(iid)
        # An incident not (or no longer) known here counts as opened now: any root already firing inhibits.
        opened = target.opened_at if target is not None else now
        paths = dependency_paths(self.topology, service)
        roots = []
        for src in self.active.values():
            svc = src.service or ""
            if src.id == iid or svc == service or svc not in paths:
                continue
            if src.opened_at > opened + self.slack_s:
                continue
            if service in dependency_paths(self.topology, svc) and (opened, iid) < (src.opened_at, src.id):
                continue  # a cycle: the earlier incident of the two is the one that speaks
            roots.append(src)
        if not roots:
            return None
        root = min(roots, key=lambda i: (i.opened_at, i.id))
        path = " -> ".join(paths[root.service or ""])
        return (
            f"inhibited by incident {root.id} on {root.service} (firing since {_iso(root.opened_at)}), "
            f"which {service} depends on: {path}"
        )


def window_end(window: MaintenanceWindow, now: float) -> float | None:
    """When the occurrence of ``window`` that covers ``now`` ends, or None if none does."""
    midnight = math.floor(now / 86400) * 86400
    # An occurrence that started up to ceil(duration) days ago may still be running (midnight wraps).
    for days_back in range(math.ceil(window.duration_s / 86400) + 1):
        start = midnight - days_back * 86400 + window.start_s
        weekday = WEEKDAYS[datetime.fromtimestamp(start, UTC).weekday()]
        if weekday in window.days and start <= now < start + window.duration_s:
            return start + window.duration_s
    return None


class MaintenanceMuter:
    """Mutes what a recurring weekly maintenance window (``notify.maintenance_windows``) matches while
    it is open. A one-off window is a silence with a future ``startsAt`` (:class:`SilenceMuter`)."""

    name = "maintenance"

    def __init__(self, windows: Sequence[MaintenanceWindow]) -> None:
        self.windows = [
            (w, [Matcher.parse(m.model_dump(), f"maintenance_windows.{w.name}") for m in w.matchers])
            for w in windows
        ]

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        for window, matchers in self.windows:
            end = window_end(window, now)
            if end is not None and all(m.matches(labels) for m in matchers):
                return f"maintenance window {window.name} until {_iso(end)}"
        return None


class FlappingMuter:
    """Holds the notifications of incidents flagged ``flapping`` (they keep resolving and relapsing),
    built from the active incidents; they go out again once the flag clears."""

    name = "flapping"

    def __init__(self, active: Iterable[Incident]) -> None:
        self.flapping = {i.id: i.reopened for i in active if i.flapping}

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        reopened = self.flapping.get(labels.get("incident_id", ""))
        if reopened is None:
            return None
        return f"flapping: reopened {reopened} times; notifications are held until it settles"
