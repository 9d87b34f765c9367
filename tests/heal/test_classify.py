"""The fault-kind classifier on synthetic observations: each kind has its own pattern of signals, events
and trends (drawn with noise), the way docs/SCENARIOS.md describes its symptoms."""

from __future__ import annotations

import dataclasses
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from opsmind.heal import classify
from opsmind.heal.classify import (
    FEATURES,
    KINDS,
    UNKNOWN,
    FaultClassifier,
    IncidentObservation,
    ObservedEvent,
    features,
    onset_order,
    signal_of_metric,
)

# kind -> (signals in onset order, events, service kind, trend overrides)
_PATTERNS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str, dict[str, float]]] = {
    "crash_loop": (
        ("replicas", "errors", "restarts"),
        ("Deployment", "BackOff", "BackOff"),
        "api",
        {"ready_ratio": 0.0},
    ),
    "memory_leak": (
        ("memory", "restarts", "errors"),
        ("Deployment", "OOMKilled"),
        "api",
        {"memory_slope": 0.04},
    ),
    "cpu_saturation": (("latency", "cpu"), (), "api", {"cpu_level": 0.6, "cpu_pod_max": 0.97}),
    "latency_injection": (("latency",), (), "api", {"cpu_level": 0.3}),
    "dependency_outage": (("errors",), ("Unhealthy",), "database", {"cpu_level": 0.02}),
    "bad_deployment": (("errors", "latency"), ("Deployment",), "api", {}),
    "config_error": (("errors",), ("ConfigChanged",), "api", {}),
    "pool_exhaustion": (("pool", "latency", "errors"), (), "api", {"pool_in_use": 1.0}),
    "disk_full": (
        ("disk", "errors"),
        ("ConfigChanged",),
        "database",
        {"disk_used": 0.97, "disk_slope": 0.01},
    ),
    "traffic_spike": (("traffic", "cpu", "latency"), (), "api", {"traffic_ratio": 3.0, "cpu_level": 0.9}),
    "cache_failure": (("errors", "latency", "traffic"), (), "cache", {"cpu_level": 0.05}),
    "node_failure": (("replicas", "latency"), ("NodeNotReady",), "api", {"ready_ratio": 0.6}),
    "model_drift": (("model",), (), "ml", {"model_drift": 0.8}),
}


def synth(kind: str, rng: np.random.Generator) -> IncidentObservation:
    signals, reasons, service_kind, trends = _PATTERNS[kind]
    sigs = list(signals)
    if len(sigs) > 1 and rng.random() < 0.2:  # onset order is noisy: neighbours swap now and then
        i = int(rng.integers(len(sigs) - 1))
        sigs[i], sigs[i + 1] = sigs[i + 1], sigs[i]
    events = [
        ObservedEvent(
            r, float(rng.uniform(0, 600)), "config log_level set to 'debug'" if kind == "disk_full" else ""
        )
        for r in reasons
        if rng.random() < 0.95
    ]
    if rng.random() < 0.15:  # an unrelated scaling event now and then
        events.append(ObservedEvent("ScalingReplicaSet", float(rng.uniform(0, 900))))

    def jitter(name: str, default: float, scale: float) -> float:
        return float(trends.get(name, default) * rng.lognormal(0, 0.1) + rng.normal(0, scale))

    return IncidentObservation(
        signals=tuple(sigs),
        events=tuple(events),
        memory_slope=jitter("memory_slope", 0.0, 0.002),
        cpu_level=min(1.0, max(0.0, jitter("cpu_level", 0.4, 0.05))),
        cpu_pod_max=min(1.0, max(0.0, jitter("cpu_pod_max", 0.5, 0.05))),
        disk_used=jitter("disk_used", 0.5 if service_kind == "database" else 0.0, 0.02),
        disk_slope=jitter("disk_slope", 0.0, 0.0005),
        pool_in_use=min(1.0, max(0.0, jitter("pool_in_use", 0.3, 0.05))),
        ready_ratio=min(1.0, max(0.0, jitter("ready_ratio", 1.0, 0.03))),
        traffic_ratio=max(0.1, jitter("traffic_ratio", 1.0, 0.05)),
        model_drift=min(1.0, max(0.0, jitter("model_drift", 0.0, 0.03))),
        root_cause_rank=int(rng.choice([1, 1, 1, 2])),
        root_cause_score=float(rng.uniform(2, 6)),
        services=int(rng.integers(1, 5)),
        service_kind=service_kind,
    )


def dataset(seeds: range, per_kind: int = 1) -> tuple[list[IncidentObservation], list[str]]:
    obs: list[IncidentObservation] = []
    labels: list[str] = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for kind in KINDS:
            for _ in range(per_kind):
                obs.append(synth(kind, rng))
                labels.append(kind)
    return obs, labels


@pytest.fixture(scope="module")
def trained() -> FaultClassifier:
    return FaultClassifier(trees=100).fit(*dataset(range(0, 20)))


def test_features_are_named_finite_and_documented() -> None:
    x = features(IncidentObservation())
    assert x.shape == (len(FEATURES),) and np.isfinite(x).all()
    assert len(set(FEATURES)) == len(FEATURES)
    doc = classify.__doc__ or ""
    for name in ("memory_slope", "cpu_spread", "rc_rank_inv", "change_recency", "ev_config_logging"):
        assert f"``{name}``" in doc
    obs = IncidentObservation(
        signals=("memory", "errors"),
        events=(ObservedEvent("Deployment", 300.0), ObservedEvent("OOMKilled", 2000.0)),
        root_cause_rank=2,
    )
    row = dict(zip(FEATURES, features(obs), strict=True))
    assert row["onset_memory"] == 1.0 and row["onset_errors"] == 0.5 and row["onset_cpu"] == 0.0
    assert row["ev_Deployment"] == pytest.approx(np.log(2)) and row["ev_OOMKilled"] == 0.0  # outside window
    assert row["change_recency"] == pytest.approx(np.exp(-0.5))
    assert row["rc_rank_inv"] == 0.5


def test_observation_is_validated() -> None:
    with pytest.raises(ValueError, match="signals"):
        IncidentObservation(signals=("vibes",))
    with pytest.raises(ValueError, match="service_kind"):
        IncidentObservation(service_kind="mainframe")


def test_signal_names_and_onset_order_from_anomalies() -> None:
    assert signal_of_metric('pod_restarts_total{service="a"}') == "restarts"
    assert signal_of_metric("pool_in_use_ratio") == "pool"
    assert signal_of_metric("error_ratio") == "errors"
    assert signal_of_metric("latency_seconds") == "latency"
    assert signal_of_metric("model_drift_score") == "model"
    assert signal_of_metric("replicas_ready") == "replicas"
    assert signal_of_metric("cost_per_hour_dollars") is None
    order = onset_order([("error_ratio{}", 30.0), ("pod_memory_bytes{}", 10.0), ("latency_seconds{}", 30.0)])
    assert order == ("memory", "errors", "latency")


def test_accuracy_on_held_out_seeds(trained: FaultClassifier) -> None:
    obs, labels = dataset(range(100, 110))
    got = [trained.predict(o).kind for o in obs]
    accuracy = np.mean([g == t for g, t in zip(got, labels, strict=True)])
    assert accuracy >= 0.9, Counter((t, g) for g, t in zip(got, labels, strict=True) if g != t)


def test_out_of_pattern_observation_is_unknown(trained: FaultClassifier) -> None:
    weird = IncidentObservation(
        signals=tuple(reversed(classify.SIGNALS)),
        events=tuple(ObservedEvent(r, 10.0) for r in classify.EVENT_REASONS for _ in range(5)),
        memory_slope=-0.5,
        disk_slope=-0.5,
        traffic_ratio=0.01,
        services=40,
        service_kind="worker",
    )
    p = trained.predict(weird)
    assert p.kind == UNKNOWN and "unlike any training incident" in p.reason


def test_low_confidence_is_unknown() -> None:
    obs, labels = dataset(range(0, 20))
    strict = FaultClassifier(trees=50, threshold=0.999).fit(obs, labels)
    p = strict.predict(obs[0])
    assert p.kind == UNKNOWN and "below the threshold" in p.reason
    assert p.alternatives[0][0] == labels[0]


def test_calibrated_probabilities_are_bounded_and_sum_to_one(trained: FaultClassifier) -> None:
    obs, labels = dataset(range(200, 205))
    confidences = []
    for o, label in zip(obs, labels, strict=True):
        probs = trained.probabilities(o)
        assert set(probs) == set(KINDS)
        assert all(0.0 <= v <= 1.0 for v in probs.values())
        assert sum(probs.values()) == pytest.approx(1.0)
        pred = trained.predict(o)
        assert pred.confidence == pytest.approx(max(probs.values()))
        assert [k for k, _ in pred.alternatives] == sorted(probs, key=lambda k: -probs[k])[:3]
        confidences.append((pred.confidence, pred.alternatives[0][0] == label))
    # calibration: mean confidence is close to the accuracy it stands for
    mean_conf = np.mean([c for c, _ in confidences])
    accuracy = np.mean([ok for _, ok in confidences])
    assert abs(mean_conf - accuracy) < 0.15


def test_feedback_update_changes_a_prediction() -> None:
    obs, labels = dataset(range(0, 8))
    clf = FaultClassifier(trees=50).fit(obs, labels)
    # a fleet where disk_full shows with a pool-exhaustion-like pattern: the operator corrects it
    rng = np.random.default_rng(999)
    odd = [synth("pool_exhaustion", rng) for _ in range(6)]
    odd = [dataclasses.replace(o, service_kind="worker") for o in odd]
    before = clf.predict(odd[0]).kind
    assert before != "disk_full"
    for o in odd[1:]:
        clf.update(o, "disk_full")
    assert clf.examples == len(obs) + 5
    assert clf.predict(odd[0]).kind == "disk_full"


def test_save_load_round_trip_and_feature_check(tmp_path: Path, trained: FaultClassifier) -> None:
    path = tmp_path / "fault.joblib"
    trained.save(path)
    again = FaultClassifier.load(path)
    obs, _ = dataset(range(300, 302))
    for o in obs:
        assert again.predict(o) == trained.predict(o)
    state = pickle.loads(path.read_bytes())
    state["features"] = (*FEATURES[:-1], "kind_mainframe")
    path.write_bytes(pickle.dumps(state))
    with pytest.raises(ValueError, match="other features"):
        FaultClassifier.load(path)


def test_untrained_and_bad_labels() -> None:
    clf = FaultClassifier()
    with pytest.raises(RuntimeError, match="not trained"):
        clf.predict(IncidentObservation())
    with pytest.raises(ValueError, match="unknown fault kinds"):
        clf.fit([IncidentObservation(), IncidentObservation()], ["crash_loop", "gremlins"])
