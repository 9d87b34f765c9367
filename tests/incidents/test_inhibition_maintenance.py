"""Inhibition by an upstream incident, recurring maintenance windows and flapping, as Muters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from opsmind.config import MaintenanceWindow, NotifySettings
from opsmind.incidents.muting import (
    FlappingMuter,
    InhibitionMuter,
    MaintenanceMuter,
    dependency_paths,
    incident_labels,
)
from opsmind.types import Incident, IncidentStatus

T0 = 1_700_000_000.0
TOPOLOGY = {"gateway": ["checkout"], "checkout": ["payments"], "payments": ["db"]}


def incident(iid: str, service: str, opened_at: float = T0, **changes: Any) -> Incident:
    return Incident(
        id=iid,
        at=opened_at,
        service=service,
        title=f"Anomalous behaviour on {service}",
        opened_at=opened_at,
        last_anomaly_at=opened_at,
        **changes,
    )


def test_dependencies_are_transitive_with_the_shortest_call_path() -> None:
    paths = dependency_paths(TOPOLOGY, "gateway")
    assert set(paths) == {"checkout", "payments", "db"}
    assert paths["db"] == ["gateway", "checkout", "payments", "db"]
    assert dependency_paths(TOPOLOGY, "db") == {}


def test_a_symptom_is_muted_while_its_upstream_root_fires_and_not_after() -> None:
    root, symptom = incident("db-1", "db"), incident("gw-1", "gateway", T0 + 30)
    muter = InhibitionMuter([root, symptom], TOPOLOGY, slack_s=60)
    reason = muter.mutes(incident_labels(symptom), T0 + 40)
    assert reason is not None and "db-1" in reason and "gateway -> checkout -> payments -> db" in reason
    assert muter.mutes(incident_labels(root), T0 + 40) is None  # the root itself speaks
    done = root.model_copy(update={"status": IncidentStatus.RESOLVED, "resolved_at": T0 + 50})
    assert InhibitionMuter([done, symptom], TOPOLOGY).mutes(incident_labels(symptom), T0 + 60) is None


def test_the_dependency_direction_matters() -> None:
    # gateway calls db (through others); an incident on the caller does not mute one on the callee.
    caller, callee = incident("gw-1", "gateway"), incident("db-1", "db", T0 + 10)
    muter = InhibitionMuter([caller, callee], TOPOLOGY)
    assert muter.mutes(incident_labels(callee), T0 + 20) is None
    assert muter.mutes(incident_labels(caller), T0 + 20) is not None


def test_a_root_opened_long_after_the_symptom_does_not_inhibit_it() -> None:
    symptom, late_root = incident("gw-1", "gateway"), incident("db-1", "db", T0 + 61)
    assert (
        InhibitionMuter([symptom, late_root], TOPOLOGY, slack_s=60).mutes(incident_labels(symptom), T0 + 100)
        is None
    )
    within = incident("db-2", "db", T0 + 60)
    assert (
        InhibitionMuter([symptom, within], TOPOLOGY, slack_s=60).mutes(incident_labels(symptom), T0 + 100)
        is not None
    )


def test_in_a_call_cycle_only_the_earlier_incident_inhibits() -> None:
    cycle = {"a": ["b"], "b": ["a"]}
    first, second = incident("a-1", "a", T0), incident("b-1", "b", T0 + 5)
    muter = InhibitionMuter([first, second], cycle, slack_s=60)
    assert muter.mutes(incident_labels(first), T0 + 10) is None
    assert muter.mutes(incident_labels(second), T0 + 10) is not None


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def window(**changes: Any) -> MaintenanceWindow:
    raw: dict[str, Any] = {
        "name": "db-patching",
        "days": ["sat"],
        "start": "23:00",
        "duration_s": 3 * 3600,
        "matchers": [{"name": "service", "value": "db|payments", "isRegex": True}],
    }
    return MaintenanceWindow(**{**raw, **changes})


def test_a_weekly_window_mutes_inside_and_across_midnight_only_on_its_days() -> None:
    muter = MaintenanceMuter([window()])
    labels = incident_labels(incident("db-1", "db"))
    # 2024-01-06 is a Saturday.
    assert muter.mutes(labels, utc(2024, 1, 6, 22, 59)) is None
    reason = muter.mutes(labels, utc(2024, 1, 6, 23, 0))
    assert reason is not None and "db-patching" in reason and "2024-01-07T02:00:00Z" in reason
    assert muter.mutes(labels, utc(2024, 1, 7, 1, 59)) is not None  # Sunday, past midnight
    assert muter.mutes(labels, utc(2024, 1, 7, 2, 0)) is None
    assert muter.mutes(labels, utc(2024, 1, 5, 23, 30)) is None  # Friday: not one of its days
    assert muter.mutes(labels, utc(2024, 1, 13, 23, 30)) is not None  # the next Saturday
    other = incident_labels(incident("gw-1", "gateway"))
    assert muter.mutes(other, utc(2024, 1, 6, 23, 30)) is None  # matchers decide what it covers


def test_a_daily_window_and_a_negated_matcher() -> None:
    daily = window(
        days=["Mon", "TUE", "wed", "thu", "fri", "sat", "sun"],
        start="4:30",
        duration_s=1800,
        matchers=[{"name": "service", "value": "db", "isEqual": False}],
    )
    muter = MaintenanceMuter([daily])
    gw, db = incident_labels(incident("gw-1", "gateway")), incident_labels(incident("db-1", "db"))
    assert muter.mutes(gw, utc(2024, 1, 3, 4, 45)) is not None
    assert muter.mutes(db, utc(2024, 1, 3, 4, 45)) is None
    assert muter.mutes(gw, utc(2024, 1, 3, 5, 0)) is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"start": "24:00"}, 'start must be "HH:MM"'),
        ({"start": "noon"}, 'start must be "HH:MM"'),
        ({"days": ["funday"]}, "Input should be 'mon'"),
        ({"days": []}, "at least 1 item"),
        ({"duration_s": 0}, "greater than 0"),
        ({"duration_s": 8 * 86400}, "less than or equal to 604800"),
        ({"matchers": []}, "at least 1 item"),
        (
            {"matchers": [{"name": "service", "value": "(", "isRegex": True}]},
            "not a valid regular expression",
        ),
        ({"matchers": [{"name": "bad-name", "value": "x"}]}, "should match pattern"),
    ],
)
def test_a_bad_window_is_refused_with_a_clear_error(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        window(**changes)


def test_window_names_must_be_unique() -> None:
    w = window().model_dump()
    with pytest.raises(ValidationError, match="names must be unique"):
        NotifySettings(maintenance_windows=[w, w])


def test_flapping_incidents_are_held() -> None:
    calm, flapping = incident("a-1", "a"), incident("b-1", "b", reopened=3, flapping=True)
    muter = FlappingMuter([calm, flapping])
    assert muter.mutes(incident_labels(calm), T0) is None
    reason = muter.mutes(incident_labels(flapping), T0)
    assert reason is not None and reason.startswith("flapping") and "3 times" in reason
