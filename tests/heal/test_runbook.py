"""Runbooks: the bundled library, validation errors that name file, step and field, conditions, templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from opsmind.heal.runbook import (
    ACTIONS,
    EVENT_COUNT_METRIC,
    FAULT_KINDS,
    REMEDIATIONS_RUNNING_METRIC,
    AllCondition,
    MetricCondition,
    Runbook,
    RunbookError,
    TemplateError,
    by_fault_kind,
    load_library,
    load_runbook,
    parse_runbook,
    render,
)
from opsmind.sim.actions import ACTIONS as SIM_ACTIONS
from opsmind.sim.spec import FaultKind

GOOD: dict[str, Any] = {
    "name": "demo",
    "description": "Roll back.",
    "fault_kinds": ["bad_deployment"],
    "risk": "low",
    "steps": [
        {
            "name": "roll back",
            "precheck": {"no_remediation_running": "{service}"},
            "action": "rollback",
            "params": {"service": "{service}"},
            "verify": {
                "metric": "error_ratio",
                "service": "{service}",
                "op": "<",
                "value": 0.05,
                "for_s": 60,
                "timeout_s": 300,
            },
            "rollback": {"action": "deploy", "params": {"service": "{service}", "version": "{version}"}},
        }
    ],
}


def _write(tmp_path: Path, data: Any, name: str = "demo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _step(**changes: Any) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["steps"][0].update(changes)
    for key, value in list(changes.items()):
        if value is ...:
            del data["steps"][0][key]
    return data


def _error(tmp_path: Path, data: Any) -> str:
    path = _write(tmp_path, data)
    with pytest.raises(RunbookError) as info:
        load_runbook(path)
    return str(info.value)


# -- the bundled library ---------------------------------------------------------------------------
def test_bundled_library_loads_and_treats_every_fault_kind() -> None:
    library = load_library()
    assert len(library) >= len(FAULT_KINDS)
    for kind, runbooks in by_fault_kind(library).items():
        assert runbooks, f"no runbook for {kind}"
    assert all(rb.source and rb.source.endswith(".yaml") for rb in library.values())


def test_fault_kinds_match_the_simulator_plus_unknown() -> None:
    assert set(FAULT_KINDS) == set(get_args(FaultKind)) | {"unknown"}


def test_the_vocabulary_covers_the_simulators_actions_and_kubernetes() -> None:
    assert set(SIM_ACTIONS) <= set(ACTIONS)
    assert {"rollout_restart", "rollout_undo", "delete_pod", "scale", "webhook", "shell"} <= set(ACTIONS)


def test_bundled_remedies_follow_the_scenarios_doc() -> None:
    library = load_library()
    kinds = by_fault_kind(library)
    first_actions = {kind: {rb.steps[0].action for rb in rbs} for kind, rbs in kinds.items()}
    assert "rollback" in first_actions["bad_deployment"]
    assert {"rollback", "restart"} <= first_actions["crash_loop"]
    assert "failover" in first_actions["dependency_outage"]
    assert "set_config" in first_actions["disk_full"]
    assert "retrain_model" in first_actions["model_drift"]
    assert "drain_node" in first_actions["node_failure"]
    # every step declares its rollback, and the simulator-only library needs only simulator fields
    assert all(step.declared_rollback for rb in library.values() for step in rb.steps)
    assert library["bad_deployment_rollback"].fields == {"service", "version"}


def test_library_from_folders_rejects_a_name_used_twice(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _write(tmp_path / "a", GOOD, "one.yaml")
    _write(tmp_path / "b", GOOD, "two.yaml")
    with pytest.raises(RunbookError, match=r"two\.yaml: name: 'demo' is also in .*one\.yaml"):
        load_library([tmp_path / "a", tmp_path / "b"])
    assert set(load_library([tmp_path / "a"])) == {"demo"}


def test_aliases_of_fault_kinds_load_as_the_simulators_names() -> None:
    data = dict(GOOD, fault_kinds=["node_loss", "configuration_error", "node_failure"])
    assert parse_runbook(data).fault_kinds == ["node_failure", "config_error"]


# -- validation errors name the file, the step and the field ---------------------------------------
@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"action": "reboot"}, "action", "unknown action 'reboot'"),
        ({"rollback": ...}, "rollback", "required: an action"),
        ({"rollback": None}, "rollback", "or none if irreversible"),
        ({"rollback": "never"}, "rollback", "'none'"),
        ({"rollback": {"action": "nope"}}, "rollback.action", "unknown action 'nope'"),
        ({"params": {"service": "{servce}"}}, "params.service", "{servce} is not an incident field"),
        ({"params": {"service": "{service"}}, "params.service", "expected '}'"),
        ({"params": {"service": "x", "replicas": 3}}, "params.replicas", "rollback takes no 'replicas'"),
        ({"params": {}}, "params.service", "required by rollback"),
        (
            {"verify": {"metric": "error_ratio", "op": "=<", "value": 1, "timeout_s": 5}},
            "verify.op",
            "Input should be '<'",
        ),
        (
            {"verify": {"metric": "error_ratio", "op": "<", "value": 1, "timeout_s": 0}},
            "verify.timeout_s",
            "greater than 0",
        ),
        (
            {"verify": {"metric": "error_ratio", "op": "<", "value": 1, "timeout_s": -3}},
            "verify.timeout_s",
            "greater than 0",
        ),
        ({"verify": {"metric": "error_ratio", "op": "<", "value": 1}}, "verify.timeout_s", "required"),
        (
            {"verify": {"metric": "error_ratio", "op": "<", "value": 1, "for_s": 60, "timeout_s": 30}},
            "verify.for_s",
            "must be below timeout_s",
        ),
        (
            {"verify": {"metric": "eror_ratio", "op": "<", "value": 1, "timeout_s": 30}},
            "verify.metric",
            "unknown metric 'eror_ratio'",
        ),
        (
            {"verify": {"all": [{"metric": "error_ratio", "op": "<", "value": 1, "timeout_s": 3}]}},
            "verify.all[0].timeout_s",
            "only the outermost",
        ),
        (
            {"precheck": {"metric": "error_ratio", "op": "<", "value": 1, "timeout_s": 3}},
            "precheck.timeout_s",
            "only a verify",
        ),
        ({"precheck": {"metrik": "error_ratio"}}, "precheck", "a condition is a mapping with one of"),
        (
            {"precheck": {"event": "Deployment", "servce": "x"}},
            "precheck.servce",
            "unknown key",
        ),
        ({"blast_radius": 1.5}, "blast_radius", "less than or equal to 1"),
    ],
)
def test_step_errors_name_file_step_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str, message: str
) -> None:
    text = _error(tmp_path, _step(**changes))
    assert f"demo.yaml: step 1 'roll back': {field}: " in text, text
    assert message in text, text


def test_scale_needs_exactly_one_way_to_size(tmp_path: Path) -> None:
    step = {"action": "scale", "params": {"service": "{service}", "factor": 2, "replicas": 3}}
    text = _error(tmp_path, _step(**step))
    assert "step 1 'roll back': params: scale needs exactly one of replicas, factor, add" in text
    step = {"action": "scale", "params": {"service": "{service}", "replicas": -1}}
    assert "params.replicas: must be an integer >= 0" in _error(tmp_path, _step(**step))
    step = {"action": "scale", "params": {"service": "{service}", "replicas": "{replicas}"}}
    parse_runbook(_step(**step))  # a template stands for the number


def test_duplicate_step_names_are_rejected(tmp_path: Path) -> None:
    data = _step()
    data["steps"].append(dict(data["steps"][0]))
    assert "demo.yaml: step 2 'roll back': name: duplicate step name (step 1 has it too)" in _error(
        tmp_path, data
    )


def test_runbook_level_errors_name_the_file_and_field(tmp_path: Path) -> None:
    data = dict(GOOD, fault_kinds=["bad_deploy"], risk="extreme", extra=1)
    text = _error(tmp_path, data)
    assert "demo.yaml: fault_kinds: unknown fault kind 'bad_deploy'" in text
    assert "demo.yaml: risk: " in text
    assert "demo.yaml: extra: unknown key" in text
    assert "demo.yaml: steps: " in _error(tmp_path, dict(GOOD, steps=[]))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = _step(action="reboot", rollback=...)
    problems = _error(tmp_path, data).splitlines()
    assert len(problems) == 2


def test_bad_yaml_and_non_mappings_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    with pytest.raises(RunbookError, match=r"broken\.yaml: line \d+: not valid YAML"):
        load_runbook(path)
    path.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(RunbookError, match=r"broken\.yaml: \(runbook\): must be a mapping"):
        load_runbook(path)


def test_custom_metrics_are_allowed_when_declared() -> None:
    data = _step(verify={"metric": "queue_lag", "op": "<", "value": 5, "timeout_s": 60})
    with pytest.raises(RunbookError, match="unknown metric 'queue_lag'"):
        parse_runbook(data)
    assert parse_runbook(data, known_metrics={"queue_lag"}).steps[0].verify.timeout_s == 60
    parse_runbook(data, known_metrics=())  # empty: any metric name


def test_webhook_and_shell_parameters_are_checked() -> None:
    webhook = {"action": "webhook", "params": {"url": "https://hooks/{service}", "method": "POST"}}
    assert parse_runbook(_step(**webhook)).actions == {"webhook", "deploy"}
    with pytest.raises(RunbookError, match="params.method: must be one of GET"):
        parse_runbook(_step(action="webhook", params={"url": "x", "method": "YELL"}))
    with pytest.raises(RunbookError, match="params.command: must be a non-empty list of strings"):
        parse_runbook(_step(action="shell", params={"command": "rm -rf /"}))
    parse_runbook(_step(action="shell", params={"command": ["systemctl", "restart", "{service}"]}))


# -- conditions ------------------------------------------------------------------------------------
class FakeReader:
    def __init__(self, values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
        self.values = values
        self.calls: list[tuple[str, dict[str, str]]] = []

    def __call__(self, name: str, labels: dict[str, str]) -> float | None:
        self.calls.append((name, labels))
        return self.values.get((name, tuple(sorted(labels.items()))))


def test_metric_condition_compares_and_explains() -> None:
    read = FakeReader({("error_ratio", (("service", "web"),)): 0.02})
    cond = MetricCondition(metric="error_ratio", service="{service}", op="<", value=0.05)
    assert cond.evaluate(read, {"service": "web"}) == (True, 'error_ratio{service="web"} = 0.02 < 0.05')
    ok, why = MetricCondition(metric="error_ratio", service="web", op=">=", value=0.05).evaluate(read)
    assert not ok and why == 'error_ratio{service="web"} = 0.02 not >= 0.05'
    ok, why = MetricCondition(metric="error_ratio", service="db", op="<", value=1).evaluate(read)
    assert not ok and "no data" in why
    lenient = MetricCondition(metric="error_ratio", service="db", op="<", value=1, if_missing="pass")
    assert lenient.evaluate(read)[0]


def test_composite_event_and_remediation_conditions() -> None:
    read = FakeReader(
        {
            (EVENT_COUNT_METRIC, (("reason", "Deployment"), ("service", "web"), ("within_s", "600"))): 1,
            (REMEDIATIONS_RUNNING_METRIC, (("service", "web"),)): 0,
            (REMEDIATIONS_RUNNING_METRIC, ()): 2,
        }
    )
    data = {
        "all": [
            {"no_remediation_running": "{service}"},
            {"event": "Deployment", "service": "{service}", "within_s": 600},
            {"not": {"event": "OOMKilled", "service": "{service}"}},
        ]
    }
    cond = AllCondition.model_validate(data)
    ok, why = cond.evaluate(read, {"service": "web"})
    assert ok, why
    assert "no other remediation running on web" in why and "1 Deployment event(s)" in why
    fleet_wide = AllCondition.model_validate({"all": [{"no_remediation_running": "*"}]})
    assert fleet_wide.evaluate(read) == (False, "2 other remediation(s) running anywhere")
    either = {"any": [{"event": "OOMKilled", "service": "web"}, {"no_remediation_running": "web"}]}
    assert parse_runbook(_step(precheck=either)).steps[0].precheck.evaluate(read)[0]
    unanswered = FakeReader({})
    ok, why = AllCondition.model_validate({"all": [{"no_remediation_running": "web"}]}).evaluate(unanswered)
    assert not ok and "cannot tell" in why


def test_bundled_verify_conditions_evaluate_with_a_reader() -> None:
    step = load_library()["bad_deployment_rollback"].steps[0]
    healthy = FakeReader(
        {
            ("error_ratio", (("service", "web"),)): 0.001,
            ("latency_seconds", (("quantile", "0.99"), ("service", "web"))): 0.2,
        }
    )
    ok, why = step.verify.evaluate(healthy, {"service": "web"})
    assert ok, why
    assert step.verify.for_s == 60 and step.verify.timeout_s == 900


# -- templates -------------------------------------------------------------------------------------
def test_templates_render_an_incidents_fields() -> None:
    incident = {"service": "web", "version": "v3", "replicas": 4, "node": "node-a-1"}
    runbook: Runbook = parse_runbook(_step())
    assert runbook.steps[0].rendered_action(incident) == ("rollback", {"service": "web"})
    assert runbook.steps[0].rendered_rollback(incident) == ("deploy", {"service": "web", "version": "v3"})
    assert render({"replicas": "{replicas}", "msg": "scale {service} from {replicas}"}, incident) == {
        "replicas": 4,  # a lone template keeps the field's type
        "msg": "scale web from 4",
    }
    assert render(["{node}", "{{literal}}"], incident) == ["node-a-1", "{literal}"]
    with pytest.raises(TemplateError, match="the incident has no zone"):
        render("{zone}", incident)


def test_a_step_without_rollback_says_so() -> None:
    runbook = parse_runbook(_step(action="restart", rollback="none"))
    assert runbook.steps[0].rendered_rollback({"service": "web"}) is None
    assert runbook.actions == {"restart"}


def test_step_offers_what_the_executor_reads() -> None:
    step = parse_runbook(_step()).steps[0]
    assert step.verify_timeout_s == 300
    assert step.rollback is not None and step.rollback.action == "deploy"
    assert parse_runbook(_step(rollback="none")).steps[0].rollback is None
