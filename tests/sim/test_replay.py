"""The one-service replay world: start-up delay, queueing latency, scale-down order, CPU view."""

import math

from opsmind.sim.replay import ReplaySpec, ServiceReplay


def test_new_pods_serve_only_after_startup_and_cost_from_creation() -> None:
    world = ServiceReplay(ReplaySpec(startup_s=60, initial_replicas=2, min_replicas=1))
    world.scale_to(5)
    assert world.replicas == 5 and world.ready_count() == 2
    for _ in range(3):  # 45 s: still starting
        world.step(10.0, 15)
    assert world.ready_count() == 2
    world.step(10.0, 15)  # 60 s after creation
    assert world.ready_count() == 5


def test_latency_breaches_the_slo_when_ready_pods_are_too_few() -> None:
    spec = ReplaySpec(capacity_rps=10, slo_p95_s=0.5, initial_replicas=4)
    world = ServiceReplay(spec)
    calm = world.step(20.0, 15)  # 50 % utilisation
    assert calm.p95_s < spec.slo_p95_s and math.isclose(calm.utilisation, 0.5)
    hot = world.step(39.0, 15)  # 97.5 %
    assert hot.p95_s > spec.slo_p95_s
    over = world.step(80.0, 15)  # twice the capacity: the excess is refused
    assert over.overflow_rps > 0 and over.p95_s > spec.slo_p95_s


def test_scale_down_removes_the_youngest_pods_first_and_respects_bounds() -> None:
    world = ServiceReplay(ReplaySpec(startup_s=30, initial_replicas=3, min_replicas=2, max_replicas=6))
    world.scale_to(10)
    assert world.replicas == 6  # max bound
    world.scale_to(3)
    assert world.ready_count() == 3  # the three unready newcomers went, the ready ones stayed
    world.scale_to(0)
    assert world.replicas == 2  # min bound


def test_pod_view_reports_cpu_only_for_pods_that_served() -> None:
    world = ServiceReplay(ReplaySpec(startup_s=60, initial_replicas=2, imbalance=0.0))
    world.scale_to(3)
    world.step(10.0, 15)
    pods = world.pods()
    served = [p for p in pods if p.ready]
    assert len(served) == 2 and all(math.isclose(p.cpu, 0.5) for p in served)
    starting = [p for p in pods if not p.ready]
    assert len(starting) == 1 and math.isnan(starting[0].cpu) and starting[0].ready_since_s is None


def test_cpu_is_capped_at_the_limit_when_overloaded() -> None:
    world = ServiceReplay(ReplaySpec(initial_replicas=2, imbalance=0.2, seed=3))
    world.step(100.0, 15)
    assert all(0.0 <= p.cpu <= 1.0 for p in world.pods())
