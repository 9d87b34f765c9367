"""Every fault kind against its catalogue entry, on the default fleet, through what the simulator
exposes: its documented symptoms show in the metrics and events, the right remedy ends it (ground truth
gets an ``end``, the symptom returns to its baseline, the SLOs are met again), and a wrong remedy does
not (or only gives the temporary relief the catalogue describes).

Each fault starts 20 minutes in (``AT``), after a quiet baseline; runs last at most two simulated hours.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from opsmind.sim.faults import FAULT_CATALOGUE
from opsmind.sim.spec import FaultSpec
from tests.sim.helpers import Agg, Probe

AT = 1200.0  # the fault starts 20 minutes in
BASELINE = (AT - 600.0, AT)
TARGET = "<target>"  # in remedy parameters: the fault's target (a node, for drain_node)


@dataclass(frozen=True)
class Signal:
    """A symptom read from the exposed metrics. ``worse``: the ratio to the baseline that counts as the
    symptom (above 1: the metric rises at least that much; below 1: it falls at least that much)."""

    metric: str
    service: str
    quantile: str | None = None
    agg: Agg = "one"
    worse: float = 2.0

    def ratio(self, probe: Probe, t0: float, t1: float) -> float:
        base = probe.mean(self.metric, self.service, *BASELINE, self.quantile, self.agg)
        return probe.mean(self.metric, self.service, t0, t1, self.quantile, self.agg) / base

    def is_worse(self, ratio: float) -> bool:
        return ratio >= self.worse if self.worse > 1 else ratio <= self.worse

    def __str__(self) -> str:
        return f"{self.metric}{{{self.service}{',' + self.quantile if self.quantile else ''}}}"


Action = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Case:
    kind: str
    fault: dict[str, Any]
    signal: Signal
    remedy: tuple[Action, ...]
    wrong: Action
    also: tuple[Signal, ...] = ()  # further symptoms (callers, the backing store, ...)
    onset_s: float = 300.0  # the symptom is measured from AT + onset_s ...
    fix_at_s: float = 600.0  # ... to AT + fix_at_s, when a remedy is applied
    settle_s: float = 300.0  # the outcome is judged from fix + settle_s ...
    window_s: float = 300.0  # ... for this long
    near: float = 1.25  # back "near baseline": within this factor either way
    events_by_s: float | None = None  # run this long after AT to see the catalogue's events
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def symptom_window(self) -> tuple[float, float]:
        return AT + self.onset_s, AT + self.fix_at_s

    @property
    def judge_window(self) -> tuple[float, float]:
        t0 = AT + self.fix_at_s + self.settle_s
        return t0, t0 + self.window_s


ALL = [
    Case(
        "crash_loop",
        fault={"service": "notification-sender"},
        signal=Signal("replicas_ready", "notification-sender", worse=0.5),
        also=(Signal("error_ratio", "notification-sender", worse=20), Signal("error_ratio", "gateway")),
        remedy=(("rollback", {"service": "notification-sender"}),),
        wrong=("restart", {"service": "notification-sender"}),
    ),
    Case(
        "memory_leak",
        fault={"service": "gateway"},
        signal=Signal("pod_memory_bytes", "gateway", agg="max", worse=1.5),
        remedy=(("rollback", {"service": "gateway"}),),
        wrong=("restart", {"service": "gateway"}),
        onset_s=600,
        fix_at_s=1500,
        near=1.1,
    ),
    Case(
        "cpu_saturation",
        fault={"service": "personalization"},
        signal=Signal("latency_seconds", "personalization", "0.99"),
        also=(Signal("latency_seconds", "gateway", "0.99", worse=1.5),),
        remedy=(("drain_node", {"node": TARGET}),),
        wrong=("scale", {"service": "personalization", "replicas": 8}),
        onset_s=60,
    ),
    Case(
        "latency_injection",
        fault={"service": "feature-store", "params": {"delay_ms": 400}},
        signal=Signal("latency_seconds", "feature-store", "0.99", worse=3),
        also=(Signal("latency_seconds", "personalization", "0.5", worse=3),),
        remedy=(("restart", {"service": "feature-store"}),),
        wrong=("scale", {"service": "feature-store", "replicas": 6}),
        onset_s=60,
    ),
    Case(
        "dependency_outage",
        fault={"service": "postgres"},
        signal=Signal("error_ratio", "postgres", worse=50),
        also=(Signal("error_ratio", "event-ingest", worse=20), Signal("error_ratio", "gateway", worse=5)),
        remedy=(("failover", {"service": "postgres"}),),
        wrong=("restart", {"service": "event-ingest"}),
        onset_s=60,
    ),
    Case(
        "bad_deployment",
        fault={"service": "personalization", "params": {"error_rate": 0.2}},
        signal=Signal("error_ratio", "personalization", worse=10),
        also=(Signal("error_ratio", "gateway", worse=5),),
        remedy=(("rollback", {"service": "personalization"}),),
        wrong=("restart", {"service": "personalization"}),
    ),
    Case(
        "config_error",
        fault={"service": "churn-prevention"},
        signal=Signal("error_ratio", "churn-prevention", worse=10),
        remedy=(("set_config", {"service": "churn-prevention", "key": "feature_flags", "value": "stable"}),),
        wrong=("restart", {"service": "churn-prevention"}),
        onset_s=60,
    ),
    Case(
        "pool_exhaustion",
        fault={"service": "auth"},
        signal=Signal("pool_in_use_ratio", "auth", worse=20),
        also=(Signal("error_ratio", "auth", worse=20), Signal("latency_seconds", "auth", "0.99", worse=5)),
        remedy=(("restart", {"service": "auth"}),),
        wrong=("scale", {"service": "auth", "replicas": 6}),
    ),
    Case(
        "disk_full",
        fault={"service": "postgres"},
        signal=Signal("disk_used_ratio", "postgres", worse=1.3),
        also=(Signal("error_ratio", "postgres", worse=50),),
        remedy=(("set_config", {"service": "postgres", "key": "log_level", "value": "info"}),),
        wrong=("restart", {"service": "postgres"}),
        onset_s=1500,
        fix_at_s=1800,
    ),
    Case(
        "traffic_spike",
        fault={"params": {"factor": 5}},
        signal=Signal("error_ratio", "gateway", worse=10),
        also=(
            Signal("request_rate", "gateway", worse=4),
            Signal("latency_seconds", "personalization", "0.99", worse=3),
        ),
        remedy=(
            ("scale", {"service": "gateway", "replicas": 12}),
            ("scale", {"service": "personalization", "replicas": 12}),
            ("scale", {"service": "comms-optimizer", "replicas": 6}),
            ("scale", {"service": "churn-prevention", "replicas": 4}),
        ),
        wrong=("restart", {"service": "personalization"}),
        onset_s=60,
        near=1.5,  # latency and errors back under the SLO; the load itself stays five times higher
    ),
    Case(
        "cache_failure",
        fault={"service": "redis"},
        signal=Signal("request_rate", "postgres", worse=2.5),
        also=(Signal("error_ratio", "redis", worse=50), Signal("latency_seconds", "auth", "0.5", worse=5)),
        remedy=(("restart", {"service": "redis"}),),
        wrong=("flush_cache", {"service": "redis"}),
        onset_s=60,
    ),
    Case(
        "node_failure",
        fault={"service": "gateway"},
        signal=Signal("replicas_ready", "gateway", worse=0.9),
        remedy=(("drain_node", {"node": TARGET}),),
        wrong=("restart", {"service": "auth"}),
        onset_s=10,
        fix_at_s=60,
        settle_s=120,
        window_s=100,  # judged before the automatic eviction at AT + 300 s
        near=1.1,
        events_by_s=400,
    ),
    Case(
        "model_drift",
        fault={"service": "personalization", "params": {"accuracy_loss_per_hour": 0.3}},
        signal=Signal("model_accuracy", "personalization", worse=0.95),
        remedy=(("rollback_model", {"service": "personalization"}),),
        wrong=("restart", {"service": "personalization"}),
        onset_s=1200,
        fix_at_s=1800,
        near=1.02,
    ),
]


CASES = [pytest.param(c, id=c.kind) for c in ALL]


def test_every_kind_has_a_case() -> None:
    assert sorted(c.kind for c in ALL) == sorted(FAULT_CATALOGUE)


def _start(case: Case, duration_s: float) -> Probe:
    fault = {"kind": case.kind, "at_s": AT, **case.fault}
    return Probe.default(duration_s=duration_s, faults=[fault])


def _apply(probe: Probe, action: Action) -> None:
    name, params = action
    target = probe.run.active[0].target
    params = {k: (target if v == TARGET else v) for k, v in params.items()}
    result = probe.run.actuator.apply(name, **params)
    assert result.accepted, result.reason


@pytest.mark.parametrize("case", CASES)
def test_symptoms_and_events_as_catalogued(case: Case) -> None:
    until = AT + max(case.fix_at_s, case.events_by_s or 0.0)
    probe = _start(case, until + 60).until(until)
    for signal in (case.signal, *case.also):
        ratio = signal.ratio(probe, *case.symptom_window)
        assert signal.is_worse(ratio), f"{signal}: {ratio:.3g} x baseline, expected {signal.worse} x"
    reasons = {e.reason for e in probe.events(t0=AT)}
    missing = set(FAULT_CATALOGUE[case.kind].events) - reasons
    assert not missing, f"catalogued events missing: {missing}; seen {sorted(reasons)}"
    rec = probe.run.truth.records[0]
    assert rec.kind == case.kind and rec.start == probe.start + AT
    if case.kind != "node_failure":  # a node failure ends by itself once its pods are evicted
        assert rec.end is None


@pytest.mark.parametrize("case", CASES)
def test_right_remedy_ends_the_fault(case: Case) -> None:
    fix = AT + case.fix_at_s
    t0, t1 = case.judge_window
    probe = _start(case, t1 + 60).until(fix)
    for action in case.remedy:
        _apply(probe, action)
    probe.until(t1)
    rec = probe.run.truth.records[0]
    end = probe.rel(rec.end)
    assert end is not None and end >= fix, f"truth end {end}, remedy at {fix}"
    recovered = probe.rel(rec.recovered_at)
    assert recovered is not None and recovered >= end
    ratio = case.signal.ratio(probe, t0, t1)
    assert 1 / case.near <= ratio <= case.near, f"{case.signal}: {ratio:.3g} x baseline after the remedy"
    assert case.remedy[0][0] in FAULT_CATALOGUE[case.kind].remedies  # the catalogue's remedy, applied
    assert case.wrong[0] not in FAULT_CATALOGUE[case.kind].remedies


WRONG = [pytest.param(c, id=c.kind) for c in ALL if c.kind != "memory_leak"]  # its own test, below


@pytest.mark.parametrize("case", WRONG)
def test_wrong_remedy_leaves_the_fault(case: Case) -> None:
    t0, t1 = case.judge_window
    probe = _start(case, t1 + 60).until(AT + case.fix_at_s)
    _apply(probe, case.wrong)
    probe.until(t1)
    assert probe.run.truth.records[0].end is None
    ratio = case.signal.ratio(probe, t0, t1)
    assert case.signal.is_worse(ratio), f"{case.signal}: {ratio:.3g} x baseline after {case.wrong}"


def test_memory_leak_restart_gives_only_temporary_relief() -> None:
    probe = Probe.with_fault("memory_leak", AT, 4800, service="gateway")
    restart_at = AT + 780  # leaking pods near 800 MB of their 1024 MB limit, before any OOM kill
    probe.until(restart_at)
    before = probe.mean("pod_memory_bytes", "gateway", restart_at - 30, restart_at, agg="max")
    base = probe.mean("pod_memory_bytes", "gateway", *BASELINE, agg="max")
    assert before > 1.8 * base
    assert probe.run.actuator.apply("restart", service="gateway").accepted
    probe.until(restart_at + 1500)
    # Fresh pods: memory back at the baseline once the old pods have gone (startup 60-72 s) ...
    fresh = probe.mean("pod_memory_bytes", "gateway", restart_at + 120, restart_at + 180, agg="max")
    assert fresh < 1.25 * base
    # ... then the same leak in the same code: climbing again, OOM kills again.
    later = probe.mean("pod_memory_bytes", "gateway", restart_at + 780, restart_at + 840, agg="max")
    assert later > 1.8 * base
    assert probe.events("OOMKilled", t0=restart_at + 840)
    assert probe.run.truth.records[0].end is None


def test_scheduled_and_hand_injected_faults_are_alike() -> None:
    probe = Probe.default(duration_s=1800)
    probe.until(AT)
    fault = probe.run.inject(FaultSpec(kind="config_error", at_s=0, service="churn-prevention"))
    probe.until(AT + 300)
    assert fault.target == "churn-prevention"
    assert probe.mean("error_ratio", "churn-prevention", AT + 60, AT + 300) > 0.2


@pytest.mark.parametrize("case", CASES)
def test_a_fault_with_a_duration_ends_by_itself(case: Case) -> None:
    """``duration_s``: someone else fixed it (a rollback, a retrain, connections timed out, ...)."""
    fault = {"kind": case.kind, "at_s": AT, **case.fault, "duration_s": 600}
    probe = Probe.default(duration_s=AT + 1500, faults=[fault]).until(AT + 1500)
    rec = probe.run.truth.records[0]
    end = probe.rel(rec.end)
    assert end is not None, "still going after its duration"
    if case.kind != "node_failure":  # evicted after 300 s, before the duration
        assert AT + 600 <= end <= AT + 900
    assert rec.recovered_at is not None


@pytest.mark.parametrize(
    ("kind", "signal"),
    [
        ("config_error", Signal("error_ratio", "model-training", worse=5.0)),
        ("latency_injection", Signal("latency_seconds", "model-training", quantile="0.5", worse=1.05)),
        ("pool_exhaustion", Signal("pool_in_use_ratio", "model-training", worse=10.0)),
        ("pool_exhaustion", Signal("error_ratio", "model-training", worse=5.0)),
    ],
)
def test_faults_on_a_batch_worker_show_in_its_metrics(kind: str, signal: Signal) -> None:
    """A worker's jobs fail or slow down like requests do: a bad config, an injected delay or a leaked
    pool on the training worker are visible in its own series (they once changed nothing there)."""
    probe = Probe.with_fault(kind, AT, duration_s=AT + 900.0, service="model-training").until(AT + 900.0)
    ratio = signal.ratio(probe, AT + 300.0, AT + 600.0)
    assert signal.is_worse(ratio), f"{signal}: {ratio:.3g} x baseline"
