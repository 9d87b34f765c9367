"""Muting: every reason not to notify is one predicate, ``Muter.mutes(labels, now) -> reason | None``.

After Alertmanager's ``notify/mute.go``: silences, inhibition and maintenance windows all answer the same
question for a set of labels at a time, so the notify stage asks each muter in turn and records which
one muted what (nothing disappears without a trace). An incident's labels are
:func:`incident_labels`: ``alertname="OpsMindIncident"``, ``service``, ``severity``, ``incident_id``.

Matchers follow Alertmanager's API v2 shape, ``{"name", "value", "isRegex", "isEqual"}``: equality or
a regular expression matched against the *whole* label value (anchored, as in Alertmanager), either
negated with ``isEqual: false``. A missing label has the value ``""``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opsmind.types import Incident, Silence
from opsmind.types.series import validate_label_name

ALERTNAME = "OpsMindIncident"


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
        if not isinstance(name, str) or not isinstance(value, str):
            raise MatcherError(f"{where}: needs a string 'name' and a string 'value'")
        try:
            validate_label_name(name)
        except ValueError as exc:
            raise MatcherError(f"{where}.name: {exc}") from exc
        is_regex, is_equal = raw.get("isRegex", False), raw.get("isEqual", True)
        if not isinstance(is_regex, bool) or not isinstance(is_equal, bool):
            raise MatcherError(f"{where}: isRegex and isEqual must be true or false")
        m = cls(name, value, is_regex, is_equal)
        if is_regex:
            try:
                m.pattern()
            except re.error as exc:
                raise MatcherError(f"{where}.value: not a valid regular expression: {exc}") from exc
        return m

    def pattern(self) -> re.Pattern[str]:
        return re.compile(f"(?:{self.value})\\Z")

    def matches(self, labels: Mapping[str, str]) -> bool:
        v = labels.get(self.name, "")
        hit = bool(self.pattern().match(v)) if self.is_regex else v == self.value
        return hit == self.is_equal

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


class Muter(Protocol):
    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        """Why notifications for these labels are muted at ``now``, or None when they are not."""
        ...


class SilenceMuter:
    """Mutes what an active silence matches (every matcher of the silence must match)."""

    def __init__(self, silences: Sequence[Silence]) -> None:
        self.silences = [(s, [Matcher.parse(m) for m in s.matchers]) for s in silences]

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        for silence, matchers in self.silences:
            if silence.state(now) == "active" and all(m.matches(labels) for m in matchers):
                return f"silence {silence.id} by {silence.created_by}: {silence.comment or 'no comment'}"
        return None
