"""Incident fields read from platform events, pods and load: versions from Deployment events, the config
change from the audit-log message, the failed or busiest node, replicas and the busiest service; a field
nobody could find is left out, and other services' events are ignored."""

from __future__ import annotations

from opsmind.heal.fields import PodView, SeenEvent, incident_fields


def deploy(at: float, service: str, verb: str, version: str) -> SeenEvent:
    return SeenEvent(at, "Deployment", f"deployment {service} {verb} to {version}", service)


def config(at: float, service: str, key: str, value: str, was: str | None = None) -> SeenEvent:
    tail = "" if was is None else f" (was {was!r})"
    return SeenEvent(at, "ConfigChanged", f"{service} config {key} set to {value!r}{tail}", service)


def node_down(at: float, node: str) -> SeenEvent:
    return SeenEvent(at, "NodeNotReady", f"node {node} status is now NodeNotReady", None, node)


PODS = [PodView("api-0", "n1", 0.9), PodView("api-1", "n2", 0.3), PodView("api-2", "n3", 0.4)]


def test_nothing_known_but_the_service() -> None:
    assert incident_fields("api", []) == {"service": "api"}


def test_version_and_previous_version_newest_first_whatever_the_input_order() -> None:
    events = [deploy(30.0, "api", "updated", "v3"), deploy(10.0, "api", "updated", "v1")]
    events.insert(1, deploy(20.0, "api", "updated", "v2"))
    out = incident_fields("api", events)
    assert out["version"] == "v3" and out["previous_version"] == "v2"


def test_rollback_makes_the_rolled_back_to_version_current() -> None:
    events = [
        deploy(10.0, "api", "updated", "v2"),
        deploy(20.0, "api", "updated", "v3"),
        deploy(30.0, "api", "rolled back", "v2"),
    ]
    out = incident_fields("api", events)
    assert out["version"] == "v2" and out["previous_version"] == "v3"


def test_previous_version_skips_redeploys_of_the_same_version_and_is_absent_without_one() -> None:
    events = [
        deploy(10.0, "api", "updated", "v1"),
        deploy(20.0, "api", "updated", "v2"),
        deploy(30.0, "api", "updated", "v2"),  # a restart-like redeploy of the same version
    ]
    out = incident_fields("api", events)
    assert out["version"] == "v2" and out["previous_version"] == "v1"
    same = [deploy(10.0, "api", "updated", "v7"), deploy(20.0, "api", "updated", "v7")]
    only = incident_fields("api", same)
    assert only["version"] == "v7" and "previous_version" not in only


def test_deployment_messages_of_another_shape_are_ignored() -> None:
    events = [
        deploy(10.0, "api", "updated", "v1"),
        SeenEvent(20.0, "Deployment", "deployment api paused", "api"),
        SeenEvent(30.0, "Killing", "deployment api updated to v9", "api"),  # not a Deployment event
    ]
    out = incident_fields("api", events)
    assert out["version"] == "v1" and "previous_version" not in out


def test_config_change_key_value_and_previous_value_from_the_latest_event() -> None:
    events = [
        config(10.0, "api", "log_level", "debug", "info"),
        config(20.0, "api", "pool_size", "5", "50"),
    ]
    out = incident_fields("api", events)
    assert (out["config_key"], out["config_value"], out["previous_config_value"]) == ("pool_size", "5", "50")


def test_config_change_without_previous_value_and_with_empty_values() -> None:
    out = incident_fields("api", [config(10.0, "api", "feature_x", "on")])
    assert out["config_key"] == "feature_x" and out["config_value"] == "on"
    assert "previous_config_value" not in out
    # The simulator writes "(was '')" when the key had no value before: an empty previous value is known.
    out = incident_fields("api", [config(10.0, "api", "feature_x", "", "")])
    assert out["config_value"] == "" and out["previous_config_value"] == ""


def test_other_services_events_are_ignored() -> None:
    events = [
        deploy(10.0, "api", "updated", "v1"),
        deploy(50.0, "web", "updated", "v8"),
        deploy(60.0, "web", "updated", "v9"),
        config(70.0, "web", "pool_size", "1", "10"),
        SeenEvent(80.0, "Deployment", "deployment api updated to v5", None),  # no service: not the api's
    ]
    out = incident_fields("api", events)
    assert out == {"service": "api", "version": "v1"}
    assert incident_fields("db", events) == {"service": "db"}


def test_node_of_the_busiest_pod_without_a_failed_node() -> None:
    assert incident_fields("api", [], PODS)["node"] == "n1"
    # a tie on CPU goes to the pod with the greater name, so the answer is deterministic
    tied = [PodView("api-0", "n1", 0.5), PodView("api-1", "n2", 0.5)]
    assert incident_fields("api", [], tied)["node"] == "n2"


def test_failed_node_hosting_the_services_pods_wins_over_the_busiest_pod() -> None:
    events = [node_down(10.0, "n3"), node_down(20.0, "n2"), node_down(30.0, "n9")]  # n9 hosts no api pod
    out = incident_fields("api", events, PODS)
    assert out["node"] == "n2"  # the most recent failure among the api's nodes


def test_a_failed_node_not_hosting_the_service_is_ignored() -> None:
    assert incident_fields("api", [node_down(10.0, "n9")], PODS)["node"] == "n1"
    assert "node" not in incident_fields("api", [node_down(10.0, "n9")])  # no pods: no node at all


def test_replicas_busiest_service_and_extra_fields() -> None:
    load = {"web": (0.9, 4.0), "api": (0.5, 2.0), "auth": (0.2, 3.0)}
    out = incident_fields("api", [], replicas=3.0, load=load, extra={"namespace": "prod"})
    assert out["replicas"] == "3"
    assert (out["busiest_service"], out["busiest_replicas"]) == ("web", "4")
    assert out["namespace"] == "prod"
    tie = incident_fields("api", [], load={"a": (0.7, 1.0), "b": (0.7, 6.0)})
    assert (tie["busiest_service"], tie["busiest_replicas"]) == ("b", "6")
    assert "busiest_service" not in incident_fields("api", [], load={})
    assert "replicas" not in incident_fields("api", [], replicas=None)


def test_extra_overrides_what_was_read() -> None:
    out = incident_fields("api", [deploy(10.0, "api", "updated", "v1")], extra={"version": "v0"})
    assert out["version"] == "v0"


def test_every_field_together() -> None:
    events = [
        deploy(10.0, "api", "updated", "v1"),
        deploy(20.0, "api", "updated", "v2"),
        config(30.0, "api", "timeout_ms", "10", "1000"),
        node_down(40.0, "n3"),
    ]
    out = incident_fields("api", events, PODS, replicas=3, load={"api": (0.8, 3.0)})
    assert out == {
        "service": "api",
        "version": "v2",
        "previous_version": "v1",
        "config_key": "timeout_ms",
        "config_value": "10",
        "previous_config_value": "1000",
        "node": "n3",
        "replicas": "3",
        "busiest_service": "api",
        "busiest_replicas": "3",
    }


def test_events_may_be_a_generator() -> None:
    events = [deploy(10.0, "api", "updated", "v1"), node_down(20.0, "n2")]
    out = incident_fields("api", (e for e in events), PODS)
    assert out["version"] == "v1"
    assert out["node"] == "n2"
