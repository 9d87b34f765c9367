"""How remedies take effect: rollouts really replace pods, a node failure is evicted after five minutes,
drains, failovers, retrains take their time, model rollbacks depend on why the model drifted, and the
platform logs what happened."""

from __future__ import annotations

from opsmind.sim.actions import DELAYS_S
from opsmind.sim.fleet import EVICTION_S
from tests.sim.helpers import Probe

AT = 1200.0


def _names(probe: Probe, service: str) -> set[str]:
    return {p.name for p in probe.run.fleet.services[service].pods}


def test_rolling_restart_replaces_every_pod_and_keeps_serving() -> None:
    probe = Probe.default(duration_s=1800).until(AT)
    svc = probe.run.fleet.services["gateway"]
    before, generation = _names(probe, "gateway"), svc.generation
    assert probe.run.actuator.apply("restart", service="gateway").accepted
    probe.until(AT + 300)
    assert svc.generation == generation + 1
    assert len(svc.pods) == svc.desired == 6
    assert not _names(probe, "gateway") & before
    assert all(p.ready and p.generation == svc.generation for p in svc.pods)
    # New pods came up before old ones left: never fewer than the desired count ready.
    assert min(probe.values("replicas_ready", "gateway", AT, AT + 300)) == 6
    assert [e.reason for e in probe.events(t0=AT) if e.service == "gateway"][:1] == ["ActionStarted"]
    assert any(e.reason == "Killing" for e in probe.events(t0=AT))


def test_rollback_replaces_the_defective_version_and_it_serves_until_then() -> None:
    probe = Probe.with_fault("bad_deployment", AT, 3000, service="personalization")
    # A rolling update: errors come once the new pods are ready (startup 90 s and more), not before.
    probe.until(AT + 60)
    assert probe.mean("error_ratio", "personalization", AT, AT + 60) < 0.01
    probe.until(AT + 600)
    assert probe.mean("error_ratio", "personalization", AT + 300, AT + 600) > 0.15
    assert probe.run.actuator.apply("rollback", service="personalization").accepted
    rollback_at = AT + 600 + DELAYS_S["rollback"]
    # The defective pods keep serving until the previous version's pods are ready ...
    probe.until(rollback_at + 60)
    assert probe.mean("error_ratio", "personalization", rollback_at, rollback_at + 60) > 0.15
    assert probe.run.truth.records[0].end is None
    # ... then they leave and only v1 is left.
    probe.until(rollback_at + 400)
    svc = probe.run.fleet.services["personalization"]
    assert {p.version for p in svc.pods} == {"v1"} and len(svc.pods) == 4
    assert svc.version_history == ["v1", "v2", "v1"]
    assert probe.mean("error_ratio", "personalization", rollback_at + 300, rollback_at + 400) < 0.01


def test_node_failure_pods_are_evicted_after_five_minutes_and_rescheduled() -> None:
    probe = Probe.with_fault("node_failure", AT, 2400, node="node-b-1")
    on_node = {
        name: [p.name for p in svc.pods if p.node == "node-b-1"]
        for name, svc in probe.run.fleet.services.items()
    }
    hit = {name for name, pods in on_node.items() if pods}
    assert hit
    probe.until(AT + EVICTION_S - 10)
    assert not probe.events("Evicted")
    assert probe.run.truth.records[0].end is None  # NotReady pods still count: nothing replaces them yet
    for name in hit:
        desired = probe.run.fleet.services[name].desired
        assert min(probe.values("replicas_ready", name, AT + 5, AT + 60)) == desired - len(on_node[name])
    probe.until(AT + EVICTION_S + 300)
    evicted = probe.events("Evicted")
    assert {e.pod for e in evicted} == {p for pods in on_node.values() for p in pods}
    assert all(e.ts - probe.start == AT + EVICTION_S for e in evicted)
    assert probe.rel(probe.run.truth.records[0].end) == AT + EVICTION_S
    for name in hit:
        svc = probe.run.fleet.services[name]
        assert all(p.node != "node-b-1" for p in svc.pods)
        assert len(svc.ready_pods) == svc.desired  # rescheduled on healthy nodes and ready


def test_drain_and_replace_node_end_a_node_failure_before_the_eviction() -> None:
    for action in ("drain_node", "replace_node"):
        probe = Probe.with_fault("node_failure", AT, 1800, node="node-c-0").until(AT + 30)
        assert probe.run.actuator.apply(action, node="node-c-0").accepted
        probe.until(AT + 30 + DELAYS_S[action] + 5)
        node = probe.run.fleet.nodes["node-c-0"]
        assert probe.rel(probe.run.truth.records[0].end) == AT + 30 + DELAYS_S[action]
        assert node.cordoned if action == "drain_node" else node.ready and not node.cordoned
        if action == "drain_node":  # cordoned: nothing is scheduled there again
            probe.until(AT + 600)
            assert not any(p.node == "node-c-0" for s in probe.run.fleet.services.values() for p in s.pods)


def test_zone_failure_takes_every_node_of_the_zone() -> None:
    probe = Probe.with_fault("node_failure", AT, 1800, zone="a")
    probe.until(AT + 60)
    down = [e.node for e in probe.events("NodeNotReady")]
    assert sorted(down) == ["node-a-0", "node-a-1", "node-a-2"]
    assert probe.run.truth.records[0].target == "a"


def test_failover_restores_a_dependency() -> None:
    probe = Probe.with_fault("dependency_outage", AT, 1800, service="postgres").until(AT + 60)
    assert probe.run.actuator.apply("failover", service="postgres").accepted
    probe.until(AT + 60 + DELAYS_S["failover"] - 5)
    assert probe.run.truth.records[0].end is None  # a failover takes its time
    probe.until(AT + 300)
    assert probe.rel(probe.run.truth.records[0].end) == AT + 60 + DELAYS_S["failover"]
    assert [e.reason for e in probe.events("Failover")] == ["Failover"]


def test_hung_cache_cannot_be_flushed_but_a_fresh_process_is_not_hung() -> None:
    probe = Probe.with_fault("cache_failure", AT, 1800, service="redis")
    probe.until(AT + 60)
    flush = probe.run.actuator.apply("flush_cache", service="redis")
    assert flush.accepted  # refused only when asked of a non-cache; it fails when carried out
    probe.until(AT + 120)
    assert probe.run.actuator.outcomes[flush.id].startswith("failed: FLUSHALL timed out")
    assert [e.reason for e in probe.events("ActionFailed")] == ["ActionFailed"]
    assert probe.run.fleet.services["redis"].hung
    # Scaling the cache adds fresh pods but leaves the hung ones: still hung.
    assert probe.run.actuator.apply("scale", service="redis", replicas=4).accepted
    probe.until(AT + 300)
    assert probe.run.fleet.services["redis"].hung and probe.run.truth.records[0].end is None
    # A rolling restart replaces the hung processes.
    assert probe.run.actuator.apply("restart", service="redis").accepted
    probe.until(AT + 420)
    redis = probe.run.fleet.services["redis"]
    assert not redis.hung and not any(p.hung for p in redis.pods)
    assert probe.run.truth.records[0].end is not None
    assert probe.mean("error_ratio", "redis", AT + 360, AT + 420) < 0.01


def test_restarting_one_hung_pod_replaces_it() -> None:
    probe = Probe.with_fault("cache_failure", AT, 1800, service="redis")
    probe.until(AT + 30)
    for pod in sorted(_names(probe, "redis")):
        assert probe.run.actuator.apply("restart", service="redis", pod=pod).accepted
    probe.until(AT + 120)
    assert not probe.run.fleet.services["redis"].hung
    assert probe.run.truth.records[0].end is not None


def test_retrain_takes_retrain_s_and_works_for_both_causes() -> None:
    for cause in ("model", "data"):
        params = {"cause": cause}
        probe = Probe.with_fault("model_drift", AT, 4200, service="personalization", params=params)
        probe.until(AT + 600)
        assert probe.run.actuator.apply("retrain_model", service="personalization").accepted
        model = probe.run.scenario.services["personalization"].model
        assert model is not None
        retrain_s = model.retrain_s
        # An action takes effect at the first step after its delay (the next step for a delay of 0).
        done = AT + 600 + max(DELAYS_S["retrain_model"], probe.run.fleet.dt) + retrain_s
        probe.until(done - 5)
        assert probe.run.truth.records[0].end is None
        assert probe.values("model_accuracy", "personalization", done - 10, done)[-1] < 0.89
        probe.until(done + 300)
        assert probe.rel(probe.run.truth.records[0].end) == done
        assert probe.mean("model_accuracy", "personalization", done, done + 300) == 0.91
        assert any("retrained" in e.message for e in probe.events("ModelDeployed"))
        assert probe.run.truth.records[0].recovered_at is not None


def test_model_rollback_helps_only_when_the_model_is_the_cause() -> None:
    # Drifting data: there is no previous model to go back to ...
    data = {"service": "personalization", "params": {"cause": "data"}}
    probe = Probe.with_fault("model_drift", AT, 4800, **data).until(AT + 300)
    refused = probe.run.actuator.apply("rollback_model", service="personalization")
    assert not refused.accepted and "no previous model" in refused.reason
    # ... and after a retrain there is one, but it is as out of date as the current model.
    probe = Probe.with_fault("model_drift", 1500, 4800, **data).until(5)
    assert probe.run.actuator.apply("retrain_model", service="personalization").accepted
    probe.until(1500 + 600)
    assert probe.run.actuator.apply("rollback_model", service="personalization").accepted
    probe.until(1500 + 1800)
    m = probe.run.fleet.services["personalization"].model
    assert m is not None and m.version == "m1"
    assert probe.run.truth.records[0].end is None
    assert probe.values("model_accuracy", "personalization", 3200, 3300)[-1] < 0.85


def test_raising_pool_size_relieves_pool_exhaustion_without_ending_it() -> None:
    probe = Probe.with_fault("pool_exhaustion", AT, 3000, service="auth")
    probe.until(AT + 900)  # the leak (600 s by default) has stopped
    assert probe.mean("error_ratio", "auth", AT + 600, AT + 900) > 0.5
    assert probe.run.actuator.apply("set_config", service="auth", key="pool_size", value="400").accepted
    probe.until(AT + 1200)
    assert probe.mean("error_ratio", "auth", AT + 960, AT + 1200) < 0.01
    assert probe.run.truth.records[0].end is None  # the leaked connections are still held


def test_scale_changes_the_replica_count_and_cost() -> None:
    probe = Probe.default(duration_s=1800).until(AT)
    cost = probe.values("cost_per_hour_dollars", "auth", AT - 10, AT)[-1]
    assert probe.run.actuator.apply("scale", service="auth", replicas=6).accepted
    probe.until(AT + 120)
    assert probe.values("replicas_desired", "auth", AT + 100, AT + 120)[-1] == 6
    assert probe.values("replicas_ready", "auth", AT + 100, AT + 120)[-1] == 6
    assert probe.values("cost_per_hour_dollars", "auth", AT + 100, AT + 120)[-1] == 2 * cost
    assert [e.reason for e in probe.events("ScalingReplicaSet")] == ["ScalingReplicaSet"]
