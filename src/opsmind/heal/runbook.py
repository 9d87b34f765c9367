"""Declarative runbooks: what to do about a kind of fault, step by step, with checks before and after.

A runbook is a YAML file (the bundled library is ``opsmind/heal/runbooks/*.yaml``; docs/RUNBOOKS.md is
the full reference)::

    name: bad_deployment_rollback          # unique in the library; lowercase, digits, _ . -
    description: Roll the service back to the version before the defective one.
    fault_kinds: [bad_deployment]          # the kinds it treats (simulator names; `unknown` too)
    risk: low                              # low | medium | high: above the configured level a human approves
    cost: 1.0                              # optional relative cost (disruption), for the recommender
    steps:                                 # run in order; each must verify before the next starts
      - name: rollback
        precheck:                          # must hold before acting (evaluated once)
          all:
            - {no_remediation_running: "{service}"}
            - {event: Deployment, service: "{service}", within_s: 7200}
        action: rollback                   # from the fixed vocabulary (ACTION_SPECS)
        params: {service: "{service}"}     # strings may reference incident fields: {service}, {node}, ...
        verify:                            # must hold for for_s seconds before timeout_s runs out
          metric: error_ratio
          service: "{service}"
          op: "<"
          value: 0.05
          for_s: 60
          timeout_s: 600
        rollback:                          # undoes the action when verification fails; or `none`
          action: deploy
          params: {service: "{service}", version: "{version}"}
        blast_radius: 0.5                  # optional: at most this share of the replicas touched at once

Conditions (``precheck`` and ``verify``) are a small vocabulary, each evaluated against a metrics reader
``read(name, labels) -> float | None`` that the executor supplies (when several series match it
returns the largest value; None when none does):

* ``{metric, service?, labels?, op, value, if_missing?, baseline?}``: a comparison (``<``, ``<=``, ``>``,
  ``>=``, ``==``, ``!=``) of the metric's current value; ``if_missing: pass`` holds when there is no
  series; ``baseline: {factor, slack}`` (``<``, ``<=``, ``>``, ``>=`` only) makes it hold only when the
  value also compares true against ``factor`` x the series' level before the incident + ``slack``
  (:class:`Baseline`; "back near its usual level": an absolute threshold alone is often met by the faulty
  level too). The level is read when the runbook is bound (:func:`opsmind.heal.plan.plan`); where none is
  known the absolute ``value`` decides alone, and the reason says so;
* ``{event, service?, node?, within_s?, min_count?}``: at least ``min_count`` events with that reason
  in the last ``within_s`` seconds - read as the pseudo-metric ``EVENT_COUNT_METRIC`` with labels
  ``reason``, ``within_s`` and the given ``service``/``node``;
* ``{no_remediation_running: SERVICE}`` (``"*"``: anywhere): no *other* remediation is running - read as
  ``REMEDIATIONS_RUNNING_METRIC`` with label ``service`` (none for ``"*"``); no answer fails;
* ``{all: [...]}``, ``{any: [...]}``, ``{not: CONDITION}``.

The outermost condition of a ``verify`` carries ``timeout_s`` (required, > 0) and ``for_s`` (default 0,
below ``timeout_s``); a precheck carries neither. A step whose action starts or replaces pods of a service
(:data:`POD_ACTIONS`) is verified only once it has taken effect: every pod of that service is ready
(:attr:`Step.settled`, read as the pseudo-metric ``PODS_NOT_READY_METRIC``), so ``for_s`` does not run
while the old pods still serve. Loading validates everything and raises
:class:`RunbookError` whose every line names the file, the step and the field.
"""

from __future__ import annotations

import operator
import re
import string
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from opsmind.config import load_yaml

# The simulator's fault kinds (opsmind.sim.spec.FaultKind; a test keeps the two equal) plus `unknown`.
FAULT_KINDS = (
    "crash_loop",
    "memory_leak",
    "cpu_saturation",
    "latency_injection",
    "dependency_outage",
    "bad_deployment",
    "config_error",
    "pool_exhaustion",
    "disk_full",
    "traffic_spike",
    "cache_failure",
    "node_failure",
    "model_drift",
    "unknown",
)
# Other names for the same kinds (issue 7's wording); a runbook may use them, they load as the canonical one.
FAULT_KIND_ALIASES = {"node_loss": "node_failure", "configuration_error": "config_error"}

# What a template may reference: the fields an executor fills in from the incident and the fleet.
INCIDENT_FIELDS: dict[str, str] = {
    "service": "the service the incident is filed under (its likeliest root cause)",
    "node": "the node implicated (the busiest node of the service, or the failed node)",
    "zone": "the zone implicated",
    "pod": "the pod implicated",
    "namespace": "the Kubernetes namespace of the service",
    "version": "the version the service runs now",
    "previous_version": "the version it ran before",
    "replicas": "the service's desired replicas when the remediation began",
    "busiest_service": "the request-serving service with the highest CPU utilisation (where load runs short)",
    "busiest_replicas": "the busiest service's desired replicas when the remediation began",
    "config_key": "the configuration key changed last (from the ConfigChanged event)",
    "config_value": "its current value",
    "previous_config_value": "its value before the change",
    "fault_kind": "the classified fault kind",
    "incident_id": "the incident's id",
}

STANDARD_METRICS = (
    "request_rate",
    "error_ratio",
    "latency_seconds",
    "replicas_desired",
    "replicas_ready",
    "cpu_utilisation",
    "pool_in_use_ratio",
    "cost_per_hour_dollars",
    "queue_depth",
    "disk_used_ratio",
    "model_accuracy",
    "model_drift_score",
    "pod_ready",
    "pod_cpu_utilisation",
    "pod_memory_bytes",
    "pod_restarts_total",
)
EVENT_COUNT_METRIC = "opsmind:event_count"
REMEDIATIONS_RUNNING_METRIC = "opsmind:remediations_running"
PODS_NOT_READY_METRIC = "opsmind:pods_not_ready"
"""Label ``service``: how many of the service's current pods report not ready (None: cannot tell)."""

# Actions that start or replace pods, with the parameter naming the workload whose pods they are (the
# Kubernetes actions name a Deployment, which the bundled runbooks name after the service). The actuator
# answers once the request is accepted, but the new pods take their start-up time to become ready, and
# until then the old ones serve: a verification counted from the answer measured the fault, not the fix.
POD_ACTIONS: dict[str, str] = {
    "restart": "service",
    "rollback": "service",
    "deploy": "service",
    "scale": "service",
    "rollout_restart": "deployment",
    "rollout_undo": "deployment",
}

Reader = Callable[[str, dict[str, str]], float | None]
Op = Literal["<", "<=", ">", ">=", "==", "!="]
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """An action's parameters: all of ``required``, any of ``optional``, exactly one of ``one_of``."""

    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()


ACTION_SPECS: dict[str, ActionSpec] = {
    # the simulator's actuator (docs/SCENARIOS.md, "Actions"); scale is also the Kubernetes one
    "scale": ActionSpec(("service",), ("namespace", "max_replicas"), ("replicas", "factor", "add")),
    "restart": ActionSpec(("service",), ("pod",)),
    "rollback": ActionSpec(("service",)),
    "deploy": ActionSpec(("service", "version")),
    "set_traffic_weights": ActionSpec(("weights",)),
    "drain_node": ActionSpec(("node",)),
    "replace_node": ActionSpec(("node",)),
    "failover": ActionSpec(("service",)),
    "flush_cache": ActionSpec(("service",)),
    "retrain_model": ActionSpec(("service",)),
    "rollback_model": ActionSpec(("service",)),
    "set_config": ActionSpec(("service", "key", "value")),
    # Kubernetes
    "rollout_restart": ActionSpec(("deployment",), ("namespace",)),
    "rollout_undo": ActionSpec(("deployment",), ("namespace", "revision")),
    "delete_pod": ActionSpec(("pod",), ("namespace",)),
    # generic
    "webhook": ActionSpec(("url",), ("method", "body", "headers", "timeout_s")),
    "shell": ActionSpec(("command",), ("timeout_s",)),
}
ACTIONS = tuple(ACTION_SPECS)

# Parameter -> kind of value; "text" and the numbers may be templates ("{replicas}").
_PARAM_KINDS: dict[str, str] = {
    "service": "text",
    "pod": "text",
    "node": "text",
    "version": "text",
    "key": "text",
    "value": "scalar",
    "namespace": "text",
    "deployment": "text",
    "url": "text",
    "replicas": "count",
    "add": "integer",
    "max_replicas": "count",
    "revision": "count",
    "factor": "positive",
    "timeout_s": "positive",
    "weights": "weights",
    "body": "mapping",
    "headers": "headers",
    "command": "argv",
    "method": "method",
}
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_FORMATTER = string.Formatter()
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class RunbookError(ValueError):
    """A runbook (or library) is invalid; ``problems`` has one entry per fault, ``str()`` one per line."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    step: str | None  # "step 2 'restart'", or None for a runbook-level field
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: " + (f"{self.step}: " if self.step else "")
        return f"{where}{self.field}: {self.message}"


class TemplateError(ValueError):
    """A template cannot be rendered: the incident lacks a field it references."""


# -- templates ------------------------------------------------------------------------------------------
def template_fields(text: str) -> list[str]:
    """The field names ``text`` references; ValueError on bad syntax (use ``{{``/``}}`` for braces)."""
    names: list[str] = []
    for _literal, name, spec, conversion in _FORMATTER.parse(text):
        if name is None:
            continue
        if not _IDENT.match(name) or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise ValueError(f"bad template {{{shown}}}: write {{field}}, no format or conversion")
        names.append(name)
    return names


def render(value: Any, fields: Mapping[str, object]) -> Any:
    """``value`` with every template filled from ``fields``, through lists and mappings; a string that is
    exactly one template (``"{replicas}"``) takes the field's value and type."""
    if isinstance(value, str):
        names = template_fields(value)
        missing = [n for n in names if n not in fields or fields[n] is None]
        if missing:
            raise TemplateError(f"the incident has no {', '.join(missing)} (needed by {value!r})")
        if len(names) == 1 and value == "{" + names[0] + "}":
            return fields[names[0]]
        return value.format_map({n: fields[n] for n in names})
    if isinstance(value, Mapping):
        return {k: render(v, fields) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, fields) for v in value]
    return value


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


# -- conditions -----------------------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BaseCondition(_Model):
    """What every condition has: ``evaluate`` and, on the outermost one of a verify, its timing."""

    for_s: float = Field(0.0, ge=0, description="verify: must hold this long without a break")
    timeout_s: float | None = Field(None, gt=0, description="verify: give up after this long")

    def evaluate(self, read: Reader, fields: Mapping[str, object] | None = None) -> tuple[bool, str]:
        """Whether the condition holds now, and why; ``fields`` first fills its templates."""
        cond = self if fields is None else self.render(fields)
        return cond._evaluate(read)

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        # Abstract: every concrete condition below defines it (pydantic models cannot use ABCMeta here).
        raise NotImplementedError(f"{type(self).__name__} does not define _evaluate")

    def render(self, fields: Mapping[str, object]) -> BaseCondition:
        """A copy with every template filled from ``fields`` (TemplateError when one is missing)."""
        raise NotImplementedError(f"{type(self).__name__} does not define render")

    def with_baseline(self, before: Reader) -> BaseCondition:
        """A copy whose metric comparisons with a ``baseline`` know the series' level before the
        incident, read once with ``before(metric, labels)`` (render first: the labels are the series')."""
        return self

    def children(self) -> tuple[tuple[str, BaseCondition], ...]:
        return ()


def _labels(**items: str | None) -> dict[str, str]:
    return {k: v for k, v in items.items() if v is not None}


def _selector(name: str, labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}" if inner else name


class Baseline(_Model):
    """A threshold relative to the series' own level before the incident: ``factor`` x that level +
    ``slack`` (in the metric's unit). ``{factor: 1.5, slack: 0.05}`` on a p99 latency ``<`` reads "back
    below 1.5 x its usual p99 plus 50 ms"; the slack keeps a level near zero (an error ratio) from asking
    for an exact zero."""

    factor: float = Field(1.0, gt=0, description="times the level before the incident")
    slack: float = Field(0.0, description="added to it, in the metric's unit")

    def bound(self, before: float) -> float:
        return self.factor * before + self.slack


class MetricCondition(BaseCondition):
    metric: str = Field(pattern=r"^[A-Za-z_:][A-Za-z0-9_:]*$")
    service: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    op: Op
    value: float
    if_missing: Literal["fail", "pass"] = "fail"
    baseline: Baseline | None = Field(
        None, description="also compare against the level before the incident (see Baseline)"
    )

    # The level before the incident, read when the runbook is bound (with_baseline); private, so a runbook
    # cannot state it.
    _before: float | None = PrivateAttr(None)

    @field_validator("baseline")
    @classmethod
    def _ordered(cls, baseline: Baseline | None, info: ValidationInfo) -> Baseline | None:
        if baseline is not None and info.data.get("op") in ("==", "!="):
            raise ValueError("a baseline bound needs an ordering op (<, <=, >, >=), not == or !=")
        return baseline

    def selector_labels(self) -> dict[str, str]:
        return {**self.labels, **_labels(service=self.service)}

    @property
    def before(self) -> float | None:
        """The series' level before the incident, once bound (None: unknown, or no baseline asked)."""
        return self._before

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        labels = self.selector_labels()
        shown = _selector(self.metric, labels)
        got = read(self.metric, labels)
        if got is None:
            return self.if_missing == "pass", f"no data for {shown}"
        compare = _OPS[self.op]
        ok = compare(got, self.value)
        seen = f"{shown} = {got:g} {'' if ok else 'not '}{self.op} {self.value:g}"
        if self.baseline is None:
            return ok, seen
        if self._before is None:
            return ok, f"{seen} (no level before the incident known: the absolute threshold decides)"
        bound = self.baseline.bound(self._before)
        near = compare(got, bound)
        how = f"{self.baseline.factor:g} x {self._before:g} before the incident"
        how += f" + {self.baseline.slack:g}" if self.baseline.slack else ""
        return ok and near, f"{seen}, {'' if near else 'not '}{self.op} {bound:g} ({how})"

    def render(self, fields: Mapping[str, object]) -> MetricCondition:
        labels = {k: str(render(v, fields)) for k, v in self.labels.items()}
        service = None if self.service is None else str(render(self.service, fields))
        return self.model_copy(update={"labels": labels, "service": service})

    def with_baseline(self, before: Reader) -> MetricCondition:
        if self.baseline is None:
            return self
        bound = self.model_copy()
        bound._before = before(self.metric, self.selector_labels())
        return bound


class PodsReadyCondition(BaseCondition):
    """Every pod of ``service`` is ready: what :attr:`Step.settled` waits for after an action on pods.
    Not written in runbooks (derived from the action). A reader that cannot tell (no pod series) lets
    it hold, with that said: without pod metrics a step is verified from the start, as before."""

    service: str = Field(min_length=1)

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        waiting = read(PODS_NOT_READY_METRIC, {"service": self.service})
        if waiting is None:
            return True, f"cannot tell whether the pods of {self.service} are ready"
        if waiting > 0:
            return False, f"{waiting:g} pod(s) of {self.service} not ready yet"
        return True, f"every pod of {self.service} is ready"

    def render(self, fields: Mapping[str, object]) -> PodsReadyCondition:
        return self.model_copy(update={"service": str(render(self.service, fields))})


class EventCondition(BaseCondition):
    event: str = Field(min_length=1, description="the event's reason, e.g. Deployment, OOMKilled")
    service: str | None = None
    node: str | None = None
    within_s: float = Field(3600.0, gt=0)
    min_count: int = Field(1, ge=1)

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        labels = {"reason": self.event, "within_s": f"{self.within_s:g}"}
        labels |= _labels(service=self.service, node=self.node)
        count = read(EVENT_COUNT_METRIC, labels) or 0.0
        where = "".join(f" {k} {v}" for k, v in _labels(service=self.service, node=self.node).items())
        ok = count >= self.min_count
        return ok, f"{count:g} {self.event} event(s){where} in the last {self.within_s:g} s" + (
            "" if ok else f" (need {self.min_count})"
        )

    def render(self, fields: Mapping[str, object]) -> EventCondition:
        update = {k: str(render(getattr(self, k), fields)) for k in ("service", "node") if getattr(self, k)}
        return self.model_copy(update=update)


class NoRemediationCondition(BaseCondition):
    no_remediation_running: str = Field(min_length=1, description='a service, or "*" for any')

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        target = self.no_remediation_running
        labels = {} if target == "*" else {"service": target}
        where = "anywhere" if target == "*" else f"on {target}"
        running = read(REMEDIATIONS_RUNNING_METRIC, labels)
        if running is None:
            return False, f"cannot tell whether another remediation is running {where}"
        if running > 0:
            return False, f"{running:g} other remediation(s) running {where}"
        return True, f"no other remediation running {where}"

    def render(self, fields: Mapping[str, object]) -> NoRemediationCondition:
        target = str(render(self.no_remediation_running, fields))
        return self.model_copy(update={"no_remediation_running": target})


class AllCondition(BaseCondition):
    all: list[Condition] = Field(min_length=1)

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        reasons = []
        for cond in self.all:
            ok, why = cond._evaluate(read)
            if not ok:
                return False, why
            reasons.append(why)
        return True, "; ".join(reasons)

    def render(self, fields: Mapping[str, object]) -> AllCondition:
        return self.model_copy(update={"all": [c.render(fields) for c in self.all]})

    def with_baseline(self, before: Reader) -> AllCondition:
        return self.model_copy(update={"all": [c.with_baseline(before) for c in self.all]})

    def children(self) -> tuple[tuple[str, BaseCondition], ...]:
        return tuple((f"all[{i}]", c) for i, c in enumerate(self.all))


class AnyCondition(BaseCondition):
    any: list[Condition] = Field(min_length=1)

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        reasons = []
        for cond in self.any:
            ok, why = cond._evaluate(read)
            if ok:
                return True, why
            reasons.append(why)
        return False, " and ".join(reasons)

    def render(self, fields: Mapping[str, object]) -> AnyCondition:
        return self.model_copy(update={"any": [c.render(fields) for c in self.any]})

    def with_baseline(self, before: Reader) -> AnyCondition:
        return self.model_copy(update={"any": [c.with_baseline(before) for c in self.any]})

    def children(self) -> tuple[tuple[str, BaseCondition], ...]:
        return tuple((f"any[{i}]", c) for i, c in enumerate(self.any))


class NotCondition(BaseCondition):
    not_: Condition = Field(alias="not")

    def _evaluate(self, read: Reader) -> tuple[bool, str]:
        ok, why = self.not_._evaluate(read)
        return not ok, f"not ({why})"

    def render(self, fields: Mapping[str, object]) -> NotCondition:
        return self.model_copy(update={"not_": self.not_.render(fields)})

    def with_baseline(self, before: Reader) -> NotCondition:
        return self.model_copy(update={"not_": self.not_.with_baseline(before)})

    def children(self) -> tuple[tuple[str, BaseCondition], ...]:
        return (("not", self.not_),)


_CONDITION_KEYS = (
    ("metric", "<metric>"),
    ("event", "<event>"),
    ("no_remediation_running", "<no_remediation_running>"),
    ("all", "<all>"),
    ("any", "<any>"),
    ("not", "<not>"),
)
_CONDITION_CLASSES: dict[type[BaseCondition], str] = {
    MetricCondition: "<metric>",
    EventCondition: "<event>",
    NoRemediationCondition: "<no_remediation_running>",
    AllCondition: "<all>",
    AnyCondition: "<any>",
    NotCondition: "<not>",
}


def _condition_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((tag for key, tag in _CONDITION_KEYS if key in value), None)
    return _CONDITION_CLASSES.get(type(value))


Condition = Annotated[
    Annotated[MetricCondition, Tag("<metric>")]
    | Annotated[EventCondition, Tag("<event>")]
    | Annotated[NoRemediationCondition, Tag("<no_remediation_running>")]
    | Annotated[AllCondition, Tag("<all>")]
    | Annotated[AnyCondition, Tag("<any>")]
    | Annotated[NotCondition, Tag("<not>")],
    Discriminator(
        _condition_tag,
        custom_error_type="condition",
        custom_error_message="a condition is a mapping with one of: metric, event, no_remediation_running, "
        "all, any, not",
    ),
]
for _cls in (AllCondition, AnyCondition, NotCondition):
    _cls.model_rebuild()


# -- actions, steps, runbooks ---------------------------------------------------------------------------
def _known_action(name: str) -> str:
    if name not in ACTION_SPECS:
        raise ValueError(f"unknown action {name!r}; known: {', '.join(ACTIONS)}")
    return name


class ActionCall(_Model):
    action: str
    params: dict[str, Any] = Field(default_factory=dict)

    _action = field_validator("action")(_known_action)

    def rendered(self, fields: Mapping[str, object]) -> tuple[str, dict[str, Any]]:
        return self.action, render(self.params, fields)


def _rollback_tag(value: Any) -> str | None:
    if isinstance(value, dict | ActionCall):
        return "<action>"
    return "<none>" if isinstance(value, str) else None


Rollback = Annotated[
    Annotated[ActionCall, Tag("<action>")] | Annotated[Literal["none"], Tag("<none>")],
    Discriminator(
        _rollback_tag,
        custom_error_type="rollback",
        custom_error_message="declare the rollback: an action with its params, or none if irreversible",
    ),
]


class Step(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    precheck: Condition
    action: str
    params: dict[str, Any] = Field(default_factory=dict)
    verify: Condition
    declared_rollback: Rollback = Field(alias="rollback", description="an action, or none, said explicitly")
    blast_radius: float | None = Field(None, gt=0, le=1, description="max share of replicas touched at once")

    _action = field_validator("action")(_known_action)

    def rendered_action(self, fields: Mapping[str, object]) -> tuple[str, dict[str, Any]]:
        """The action and its parameters with the incident's fields filled in."""
        return self.action, render(self.params, fields)

    def rendered_rollback(self, fields: Mapping[str, object]) -> tuple[str, dict[str, Any]] | None:
        """The rollback with the fields filled in; None when the step declared ``rollback: none``."""
        return None if self.rollback is None else self.rollback.rendered(fields)

    @property
    def rollback(self) -> ActionCall | None:
        """The action that undoes this step; None when the runbook declared ``rollback: none``."""
        return None if self.declared_rollback == "none" else self.declared_rollback

    @property
    def verify_timeout_s(self) -> float:
        """How long verification may take (validated: present and > 0 on every loaded step)."""
        return self.verify.timeout_s or 0.0

    @property
    def settled(self) -> PodsReadyCondition | None:
        """What shows the action has taken effect, for an action that starts or replaces pods
        (:data:`POD_ACTIONS`): every pod of its workload is ready (templates not yet filled). Until then
        the verification does not count; None for other actions, verified from the start."""
        param = POD_ACTIONS.get(self.action)
        target = None if param is None else self.params.get(param)
        return PodsReadyCondition(service=target) if isinstance(target, str) and target else None


class _Problems(ValueError):
    """Raised by Runbook's own checks; carries (step index or None, field, message) entries."""

    def __init__(self, problems: list[tuple[int | None, str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for _, f, m in problems))


class Runbook(_Model):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str = Field(min_length=1)
    fault_kinds: list[str] = Field(min_length=1)
    risk: Literal["low", "medium", "high"]
    cost: float = Field(1.0, ge=0, description="relative cost (disruption, spend) for the recommender")
    mitigation: bool = Field(
        False,
        description="it relieves the symptom but leaves the cause (more replicas around a leak): a service "
        "it verified on is still a root cause to treat",
    )
    steps: list[Step] = Field(min_length=1)

    _source: str | None = PrivateAttr(None)

    @property
    def source(self) -> str | None:
        """The file it was loaded from, if any."""
        return self._source

    @field_validator("fault_kinds")
    @classmethod
    def _kinds(cls, kinds: list[str]) -> list[str]:
        out: list[str] = []
        for kind in kinds:
            kind = FAULT_KIND_ALIASES.get(kind, kind)
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
            if kind not in out:
                out.append(kind)
        return out

    @model_validator(mode="after")
    def _semantics(self, info: ValidationInfo) -> Runbook:
        context = info.context if isinstance(info.context, dict) else {}
        known_metrics = context.get("known_metrics", STANDARD_METRICS)
        problems = list(_step_problems(self.steps, known_metrics))
        if problems:
            raise _Problems(problems)
        return self

    @property
    def actions(self) -> frozenset[str]:
        """Every action it may run, rollbacks included (an executor skips runbooks its actuator lacks)."""
        names = {s.action for s in self.steps}
        return frozenset(names | {s.rollback.action for s in self.steps if s.rollback is not None})

    @property
    def fields(self) -> frozenset[str]:
        """The incident fields its templates reference: it applies only when the incident has them all."""
        out: set[str] = set()
        for step in self.steps:
            for _path, text in _step_strings(step):
                out.update(template_fields(text))
        return frozenset(out)


def _condition_strings(cond: BaseCondition, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(cond, MetricCondition):
        if cond.service is not None:
            yield f"{path}.service", cond.service
        yield from _strings(cond.labels, f"{path}.labels")
    elif isinstance(cond, EventCondition):
        for key in ("service", "node"):
            if getattr(cond, key) is not None:
                yield f"{path}.{key}", getattr(cond, key)
    elif isinstance(cond, NoRemediationCondition):
        yield f"{path}.no_remediation_running", cond.no_remediation_running
    for sub, child in cond.children():
        yield from _condition_strings(child, f"{path}.{sub}")


def _step_strings(step: Step) -> Iterator[tuple[str, str]]:
    yield from _condition_strings(step.precheck, "precheck")
    yield from _strings(step.params, "params")
    yield from _condition_strings(step.verify, "verify")
    if step.rollback is not None:
        yield from _strings(step.rollback.params, "rollback.params")


def _param_problem(kind: str, value: Any) -> str | None:
    """Why ``value`` is not a valid parameter of ``kind``, or None."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    single_template = (
        isinstance(value, str) and re.fullmatch(r"\{[A-Za-z_][A-Za-z0-9_]*\}", value) is not None
    )
    if kind in ("count", "integer", "positive") and single_template:
        return None
    if kind == "text":
        return None if isinstance(value, str) and value else "must be a non-empty string"
    if kind == "scalar":
        return None if isinstance(value, str) or is_number else "must be a string or a number"
    if kind == "count":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "must be an integer >= 0 or a template such as '{replicas}'"
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer or a template"
    if kind == "positive":
        return None if is_number and value > 0 else "must be a number > 0 or a template"
    if kind == "weights":
        if not isinstance(value, dict) or not value:
            return "must map zones to numbers >= 0"
        nums = list(value.values())
        if any(isinstance(w, bool) or not isinstance(w, int | float) or w < 0 for w in nums) or not sum(nums):
            return "weights must be numbers >= 0, not all 0"
        return None
    if kind == "mapping":
        return None if isinstance(value, dict) else "must be a mapping"
    if kind == "headers":
        ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
        return None if ok else "must map header names to strings"
    if kind == "argv":
        ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
        return None if ok else "must be a non-empty list of strings (the argv; no shell is involved)"
    if kind == "method":
        return None if value in _METHODS else f"must be one of {', '.join(_METHODS)}"
    return f"unchecked kind {kind}"  # pragma: no cover - every parameter has a kind


def action_problems(action: str, params: Mapping[str, Any], path: str = "params") -> list[tuple[str, str]]:
    """(field, message) for every way ``params`` does not fit ``action``'s specification."""
    spec = ACTION_SPECS.get(action)
    if spec is None:
        return [("action", f"unknown action {action!r}")]
    out: list[tuple[str, str]] = []
    allowed = (*spec.required, *spec.optional, *spec.one_of)
    for key in spec.required:
        if key not in params:
            out.append((f"{path}.{key}", f"required by {action}"))
    for key, value in params.items():
        if key not in allowed:
            out.append((f"{path}.{key}", f"{action} takes no {key!r}; it takes {', '.join(allowed)}"))
        elif (why := _param_problem(_PARAM_KINDS[key], value)) is not None:
            out.append((f"{path}.{key}", why))
    if spec.one_of and sum(k in params for k in spec.one_of) != 1:
        out.append((path, f"{action} needs exactly one of {', '.join(spec.one_of)}"))
    return out


def _condition_problems(
    cond: BaseCondition, path: str, outer: bool, known_metrics: Collection[str] | None
) -> Iterator[tuple[str, str]]:
    if not outer:
        if cond.timeout_s is not None:
            yield f"{path}.timeout_s", "only the outermost condition of a verify has a timeout"
        if cond.for_s:
            yield f"{path}.for_s", "only the outermost condition of a verify has for_s"
    if isinstance(cond, MetricCondition) and known_metrics is not None and cond.metric not in known_metrics:
        yield f"{path}.metric", f"unknown metric {cond.metric!r}; known: {', '.join(sorted(known_metrics))}"
    for sub, child in cond.children():
        yield from _condition_problems(child, f"{path}.{sub}", False, known_metrics)


def _step_problems(
    steps: list[Step], known_metrics: Collection[str] | None
) -> Iterator[tuple[int | None, str, str]]:
    seen: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.name in seen:
            yield i, "name", f"duplicate step name (step {seen[step.name] + 1} has it too)"
        seen.setdefault(step.name, i)
        for field, msg in action_problems(step.action, step.params):
            yield i, field, msg
        if step.rollback is not None:
            for field, msg in action_problems(step.rollback.action, step.rollback.params, "rollback.params"):
                yield i, field, msg
        for field, msg in _condition_problems(step.precheck, "precheck", False, known_metrics):
            yield i, field, msg.replace("the outermost condition of a verify", "a verify (not a precheck)")
        yield from ((i, f, m) for f, m in _condition_problems(step.verify, "verify", True, known_metrics))
        timeout = step.verify.timeout_s
        if timeout is None:
            yield i, "verify.timeout_s", "required: how long verification may take (seconds, > 0)"
        elif step.verify.for_s >= timeout:
            yield i, "verify.for_s", f"must be below timeout_s ({timeout:g}) or it can never verify"
        for field, text in _step_strings(step):
            try:
                names = template_fields(text)
            except ValueError as exc:
                yield i, field, str(exc)
                continue
            for name in names:
                if name not in INCIDENT_FIELDS:
                    yield (
                        i,
                        field,
                        f"{{{name}}} is not an incident field; known: {', '.join(INCIDENT_FIELDS)}",
                    )


# -- loading --------------------------------------------------------------------------------------------
def _step_label(data: Any, index: int) -> str:
    name = None
    steps = data.get("steps") if isinstance(data, dict) else None
    if isinstance(steps, list) and index < len(steps) and isinstance(steps[index], dict):
        name = steps[index].get("name")
    return f"step {index + 1}" + (f" {name!r}" if isinstance(name, str) else "")


def _field_path(parts: Iterable[int | str]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif not p.startswith("<"):  # a union tag, not a key the author wrote
            out += f".{p}" if out else p
    return out or "(runbook)"


_MISSING_HINTS = {
    "rollback": ": an action with its params that undoes the step, or none if it cannot be undone",
    "precheck": ": a condition that must hold before acting",
    "verify": ": a condition on live metrics with timeout_s",
}


def _problems(file: str, data: Any, exc: ValidationError) -> list[Problem]:
    out: list[Problem] = []
    for err in exc.errors():
        inner = (err.get("ctx") or {}).get("error")
        loc = list(err["loc"])
        step_prefix = None
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            step_prefix = _step_label(data, loc[1])
            loc = loc[2:]
        if isinstance(inner, _Problems):
            for index, field, message in inner.problems:
                step = None if index is None else _step_label(data, index)
                out.append(Problem(file, step, field, message))
            continue
        message = str(inner) if inner is not None else err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        elif err["type"] == "missing":
            message = "required" + _MISSING_HINTS.get(str(loc[-1]) if loc else "", "")
        out.append(Problem(file, step_prefix, _field_path(loc), message))
    return out


def parse_runbook(
    data: Any, source: str = "<runbook>", known_metrics: Collection[str] | None = None
) -> Runbook:
    """A runbook from parsed YAML; ``known_metrics`` defaults to STANDARD_METRICS (an empty collection
    accepts any metric name)."""
    metrics = STANDARD_METRICS if known_metrics is None else (known_metrics or None)
    if not isinstance(data, dict):
        raise RunbookError([Problem(source, None, "(runbook)", "must be a mapping of name, steps, ...")])
    try:
        runbook = Runbook.model_validate(data, context={"known_metrics": metrics})
    except ValidationError as exc:
        raise RunbookError(_problems(source, data, exc)) from None
    runbook._source = source
    return runbook


def load_runbook(path: str | Path, known_metrics: Collection[str] | None = None) -> Runbook:
    """Read and validate one runbook file; RunbookError names the file, the step and the field."""
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunbookError([Problem(str(path), None, "(file)", exc.strerror or str(exc))]) from None
    except UnicodeDecodeError as exc:
        problem = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise RunbookError([Problem(str(path), None, "(file)", problem)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(yaml)"
        problem = getattr(exc, "problem", None) or str(exc)
        raise RunbookError([Problem(str(path), None, where, f"not valid YAML: {problem}")]) from None
    return parse_runbook(data, str(path), known_metrics)


def bundled_dir() -> Path:
    """The folder of the runbooks that ship with OpsMind."""
    return Path(str(resources.files("opsmind.heal") / "runbooks"))


def load_library(
    dirs: Iterable[str | Path] | None = None, known_metrics: Collection[str] | None = None
) -> dict[str, Runbook]:
    """Every ``*.yaml``/``*.yml`` runbook in ``dirs`` (default: the bundled library), by name.

    All files are checked before anything is returned; RunbookError lists every problem in every file,
    including a name used twice (both files named)."""
    folders = [bundled_dir()] if dirs is None else [Path(d) for d in dirs]
    problems: list[Problem] = []
    library: dict[str, Runbook] = {}
    for folder in folders:
        if not folder.is_dir():
            problems.append(Problem(str(folder), None, "(folder)", "not a directory"))
            continue
        files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        for path in files:
            try:
                runbook = load_runbook(path, known_metrics)
            except RunbookError as exc:
                problems.extend(exc.problems)
                continue
            if (other := library.get(runbook.name)) is not None:
                problems.append(
                    Problem(str(path), None, "name", f"{runbook.name!r} is also in {other.source}")
                )
                continue
            library[runbook.name] = runbook
    if problems:
        raise RunbookError(problems)
    return library


def by_fault_kind(library: Mapping[str, Runbook]) -> dict[str, list[Runbook]]:
    """The runbooks treating each fault kind (every kind present, possibly with an empty list)."""
    out: dict[str, list[Runbook]] = {kind: [] for kind in FAULT_KINDS}
    for runbook in library.values():
        for kind in runbook.fault_kinds:
            out[kind].append(runbook)
    return out


__all__ = [
    "ACTIONS",
    "ACTION_SPECS",
    "EVENT_COUNT_METRIC",
    "FAULT_KINDS",
    "FAULT_KIND_ALIASES",
    "INCIDENT_FIELDS",
    "PODS_NOT_READY_METRIC",
    "POD_ACTIONS",
    "REMEDIATIONS_RUNNING_METRIC",
    "STANDARD_METRICS",
    "ActionCall",
    "ActionSpec",
    "AllCondition",
    "AnyCondition",
    "BaseCondition",
    "Baseline",
    "Condition",
    "EventCondition",
    "MetricCondition",
    "NoRemediationCondition",
    "NotCondition",
    "PodsReadyCondition",
    "Problem",
    "Reader",
    "Runbook",
    "RunbookError",
    "Step",
    "TemplateError",
    "action_problems",
    "by_fault_kind",
    "bundled_dir",
    "load_library",
    "load_runbook",
    "parse_runbook",
    "render",
    "template_fields",
]
