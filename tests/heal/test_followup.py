"""The healer's follow-up policy: which services to look at after a fix verified or while one verifies."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import networkx as nx
import numpy as np

from opsmind.heal.fields import SeenEvent
from opsmind.heal.followup import STUCK_S, beside, held_services, looks, still_broken
from opsmind.heal.observation import Inventory
from opsmind.heal.state import RemediationState


def test_still_broken_names_what_differs_now_but_not_what_remedies_set() -> None:
    times = 1000.0 + 5.0 * np.arange(400)
    opened = times[250]
    rng = np.random.default_rng(0)

    def noise(level: float) -> np.ndarray:
        return level + rng.normal(0.0, 0.01 * level, len(times))

    after = times >= opened
    cols = {
        "auth_error_ratio": noise(0.01) + np.where(after, 0.3, 0.0),  # still failing
        "redis_latency_seconds-0.99": noise(0.002) + np.where(after & (times < opened + 300), 0.5, 0.0),
        "feature-store_replicas_desired": np.where(after, 6.0, 3.0),  # scaled out by a remedy
        "feature-store_cost_per_hour_dollars": np.where(after, 2.0, 1.0),
        "gateway_cpu_utilisation": noise(0.4),
    }
    now = float(times[-1])
    assert still_broken(times, cols, opened, now, None) == ["auth"]  # redis recovered, the rest is state
    assert still_broken(times, cols, opened, now, None, skip={"auth"}) == []


def _healer_running(*rems: Any) -> Any:
    log = SimpleNamespace(in_states=lambda states: list(rems))
    return SimpleNamespace(executor=SimpleNamespace(log=log))


def _rem(state: RemediationState, service: str, verifying_since: float) -> Any:
    history = [SimpleNamespace(target=RemediationState.EXECUTING, at=0.0)]
    if state is RemediationState.VERIFYING:
        history.append(SimpleNamespace(target=state, at=verifying_since))
    return SimpleNamespace(finished=False, state=state, service=service, history=history, at=verifying_since)


def test_a_remediation_verifying_too_long_lets_the_incident_look_elsewhere() -> None:
    assert held_services(_healer_running(), 100.0) == frozenset()  # nothing running
    verifying = _rem(RemediationState.VERIFYING, "gateway", 100.0)
    assert held_services(_healer_running(verifying), 100.0 + STUCK_S - 5) is None  # give it time
    assert held_services(_healer_running(verifying), 100.0 + STUCK_S) == {"gateway"}
    acting = _rem(RemediationState.EXECUTING, "auth", 0.0)
    assert held_services(_healer_running(verifying, acting), 1000.0) is None  # one still acting: wait


def test_beside_leaves_out_what_a_held_service_may_explain() -> None:
    g = nx.DiGraph([("gw", "api"), ("api", "db"), ("gw", "web"), ("web", "cache"), ("db", "disk")])
    # api's fix verifies: gw calls it (its errors may be api's); db, disk, web and cache may have their own.
    assert beside(["gw", "db", "disk", "web", "cache", "api"], {"api"}, g) == ["db", "disk", "web", "cache"]
    assert beside(["gw", "web", "api"], {"db"}, g) == ["web"]  # api calls db, gw calls it through api
    assert beside(["x", "web"], set(), g) == ["x", "web"]  # nothing held; a service not in the graph stays


def test_once_a_cure_verified_and_nothing_else_differs_nothing_is_looked_at() -> None:
    """The cured service's recovery still raises anomalies: asking about it again would only propose the
    remedy that just worked. Before any cure, the opening's ranking is looked at."""
    times = 1000.0 + 5.0 * np.arange(400)
    opened = float(times[250])
    rng = np.random.default_rng(1)
    after = times >= opened
    cols = {
        "auth_error_ratio": 0.01 + rng.normal(0.0, 1e-4, len(times)) + np.where(after, 0.3, 0.0),
        "gateway_cpu_utilisation": 0.4 + rng.normal(0.0, 0.004, len(times)),
        "gateway_request_rate": 100.0 + rng.normal(0.0, 1.0, len(times)),
    }
    now = float(times[-1])
    inventory = Inventory(kinds={}, memory_limit_bytes={}, entry="gateway")

    def healer(cured: frozenset[str]) -> Any:
        return SimpleNamespace(fixed=lambda incident_id, since, changed_after=None: (cured, frozenset()))

    def services(cured: frozenset[str]) -> list[str]:
        found = looks(healer(cured), "inc-1", opened, now, times, cols, [], None, inventory)
        return [service for _, service in found]

    assert services(frozenset())[0] == "auth"  # the opening's ranking
    assert services(frozenset({"auth"})) == []


def test_a_cured_service_changed_after_its_cure_is_looked_at_again() -> None:
    """A latency fix verified on auth, then a bad deploy there fails requests: its check still holds,
    but the deploy after the cure makes the cure stale, so auth is looked at again."""
    times = 1000.0 + 5.0 * np.arange(400)
    opened = float(times[250])
    rng = np.random.default_rng(2)
    after = times >= opened
    cured_at = opened + 200
    deployed = times >= cured_at + 100
    cols = {
        "auth_latency_seconds-0.99": 0.1
        + rng.normal(0.0, 1e-3, len(times))
        + np.where(after & ~deployed, 0.4, 0.0),
        "auth_error_ratio": 0.01 + rng.normal(0.0, 1e-4, len(times)) + np.where(deployed, 0.3, 0.0),
        "gateway_request_rate": 100.0 + rng.normal(0.0, 1.0, len(times)),
    }
    now = float(times[-1])
    inventory = Inventory(kinds={}, memory_limit_bytes={}, entry="gateway")

    def fixed(incident_id: str, since: float, changed_after: Any = None) -> Any:
        stale = changed_after is not None and changed_after("auth", cured_at)
        return (frozenset() if stale else frozenset({"auth"})), frozenset()

    healer = SimpleNamespace(fixed=fixed)

    def looked(events: list[SeenEvent]) -> list[tuple[Any, str]]:
        return list(looks(healer, "inc-1", opened, now, times, cols, events, None, inventory))

    def services(events: list[SeenEvent]) -> list[str]:
        return [s for _, s in looked(events)]

    assert services([]) == []  # cured, nothing else differs
    before = SeenEvent(cured_at - 50, "Deployment", "deployment auth updated to v2", "auth")
    assert services([before]) == []  # a change before the cure: the cure stands
    deploy = SeenEvent(cured_at + 100, "Deployment", "deployment auth updated to v3", "auth")
    assert services([deploy])[0] == "auth"
    # Observed from the deploy: the errors it brought, not the latency the cure had fixed before it.
    observation = looked([deploy])[0][0]
    assert observation.signals[0] == "errors" and "latency" not in observation.signals, observation
    restart = SeenEvent(cured_at + 100, "Killing", "stopping container", "auth")
    assert services([restart]) == []  # not a change of what runs
