"""A placement's traffic weights reach the real simulator's entry traffic, zone by zone."""

from __future__ import annotations

from datetime import date

from opsmind.act.simulator import SimulatorTraffic
from opsmind.decide.placement import Demand, Limits, place
from opsmind.decide.prices import InstancePrice
from opsmind.sim.actions import DELAYS_S
from opsmind.sim.runner import SimRun, scenario_from_data

FLEET = {
    "name": "two-zones",
    "duration_s": 600,
    "nodes": {"zones": ["east", "west"], "nodes_per_zone": 2},
    "load": {"entry": "web", "peak_rps": 50},
    "services": {"web": {"replicas": 2}},
}


def _price(provider: str, region: str, usd: float) -> InstancePrice:

    return InstancePrice(
        provider, region, "std.large", 2, 8.0, usd, "https://example.com/p", date(2024, 6, 1)
    )


def test_placement_weights_are_applied_to_the_simulated_zones() -> None:
    options = [_price("aws", "us-east-1", 0.10), _price("gcp", "us-west1", 0.09)]
    plan = place(
        Demand(vcpu=8, latency_ms={"aws/us-east-1": 20, "gcp/us-west1": 30}, headroom=0.0),
        options,
        Limits(max_latency_ms=50, max_provider_share=0.5),
    )
    assert plan.feasible and set(plan.weights) == {"aws/us-east-1", "gcp/us-west1"}
    run = SimRun(scenario_from_data(FLEET, "test fleet"))
    traffic = SimulatorTraffic(run.actuator, {"aws/us-east-1": "east", "gcp/us-west1": "west"})
    before = run.fleet.zone_weights  # None: traffic split evenly
    assert traffic.apply(dict(plan.weights)).dry_run  # dry run by default: nothing sent
    for _ in range(DELAYS_S["set_traffic_weights"] + 1):
        run.step()
    assert run.fleet.zone_weights == before
    result = traffic.apply(dict(plan.weights), dry_run=False)
    assert result.ok, result.detail
    for _ in range(DELAYS_S["set_traffic_weights"] + 1):
        run.step()
    assert run.fleet.zone_weights["east"] == plan.weights["aws/us-east-1"]
    assert run.fleet.zone_weights["west"] == plan.weights["gcp/us-west1"]


def test_a_location_without_a_zone_is_refused() -> None:
    run = SimRun(scenario_from_data(FLEET, "test fleet"))
    traffic = SimulatorTraffic(run.actuator, {"aws/us-east-1": "east"})
    result = traffic.apply({"aws/us-east-1": 0.5, "azure/eastus": 0.5}, dry_run=False)
    assert not result.ok and "azure/eastus" in result.detail
