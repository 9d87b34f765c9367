"""A loaded runbook, bound to one incident, as the steps the executor runs.

The runbook model (:mod:`opsmind.heal.runbook`) describes steps declaratively: conditions over metrics
with label selectors and incident templates, actions with templated parameters. The executor
(:mod:`opsmind.heal.executor`) only needs, per step, a name, an action with concrete parameters, two
checks it can call and an optional rollback. :func:`plan` makes that bridge once per remediation:

* templates (``{service}``, ``{node}``, ...) are filled from the incident's fields up front, so a bad or
  missing field fails the plan before anything runs, never halfway through;
* each condition is evaluated against the engine's label-aware reader ``read(metric, labels)``; the
  executor's own ``(service, metric)`` reader is not used because it cannot select labels such as
  ``quantile`` or ``reason``;
* a verification's ``for_s`` (the condition must hold that long without a break) is enforced here, on
  the injected clock, because the executor polls a verification once per tick and only asks "does it
  hold now?". So plan once per remediation and hand the executor the same steps on every tick;
* a verification counts only once the step's action has taken effect (:attr:`Step.settled`: the pods it
  started are ready); before that it answers "not yet" and its ``for_s`` has not begun. A rolling restart
  is answered at once but its new pods take their start-up time, while the old (faulty) ones serve;
* comparisons with a ``baseline`` learn the series' level before the incident here, once, from
  ``before(metric, labels)`` (the engine reads the quarter hour before the incident opened); without it
  their absolute threshold decides alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from opsmind.heal.executor import MetricsReader
from opsmind.heal.runbook import BaseCondition, Reader, Runbook, TemplateError


class PlanError(ValueError):
    """The runbook cannot be bound to this incident (a template names a field the incident lacks)."""


@dataclass(frozen=True, slots=True)
class PlannedAction:
    action: str
    params: Mapping[str, Any]


@dataclass(slots=True)
class ConditionCheck:
    """An executor check over a rendered condition. With ``hold_s`` > 0 it answers True only once the
    condition has held continuously for that long (a break restarts the count). With ``settle`` it
    answers False until ``settle`` has held once (the action took effect), and only then starts
    looking at ``condition``."""

    condition: BaseCondition
    read: Reader
    now: Callable[[], float]
    hold_s: float = 0.0
    settle: BaseCondition | None = None
    _since: float | None = field(default=None)
    _settled: bool = field(default=False)

    def __call__(self, metrics: MetricsReader, service: str) -> tuple[bool, str]:
        if self.settle is not None and not self._settled:
            # Once, not on every poll: after the action took effect a pod that restarts is the service's
            # health, which the condition itself judges, not a sign that the action is still under way.
            settled, seen = self.settle.evaluate(self.read)
            if not settled:
                return False, f"the action has not taken effect yet: {seen}"
            self._settled = True
        ok, why = self.condition.evaluate(self.read)
        if not ok:
            self._since = None
            return False, why
        if self.hold_s <= 0:
            return True, why
        t = self.now()
        if self._since is None:
            self._since = t
        held = t - self._since
        if held >= self.hold_s:
            return True, f"{why} (held {held:g}s >= {self.hold_s:g}s)"
        return False, f"{why}, held {held:g}s of {self.hold_s:g}s"


@dataclass(frozen=True, slots=True)
class PlannedStep:
    name: str
    action: str
    params: Mapping[str, Any]
    precheck: ConditionCheck | None
    verify: ConditionCheck | None
    verify_timeout_s: float
    rollback: PlannedAction | None
    blast_radius: float | None = None


def plan(
    runbook: Runbook,
    fields: Mapping[str, object],
    read: Reader,
    now: Callable[[], float],
    before: Reader | None = None,
) -> list[PlannedStep]:
    """The runbook's steps bound to an incident's ``fields``; :class:`PlanError` names the step and the
    template that cannot be filled. ``before(metric, labels)``: a series' level before the incident,
    for the comparisons with a ``baseline`` (None: none known)."""
    steps: list[PlannedStep] = []
    for i, step in enumerate(runbook.steps, start=1):
        try:
            action, params = step.rendered_action(fields)
            rollback = step.rendered_rollback(fields)
            precheck: BaseCondition = step.precheck.render(fields)
            verify: BaseCondition = step.verify.render(fields)
            settled = step.settled
            settle = None if settled is None else settled.render(fields)
        except (TemplateError, KeyError) as exc:
            raise PlanError(f"runbook {runbook.name!r} step {i} {step.name!r}: {exc}") from exc
        if before is not None:
            precheck, verify = precheck.with_baseline(before), verify.with_baseline(before)
        steps.append(
            PlannedStep(
                name=step.name,
                action=action,
                params=params,
                precheck=ConditionCheck(precheck, read, now),
                verify=ConditionCheck(verify, read, now, hold_s=step.verify.for_s, settle=settle),
                verify_timeout_s=step.verify_timeout_s,
                rollback=None if rollback is None else PlannedAction(*rollback),
                blast_radius=step.blast_radius,
            )
        )
    return steps
