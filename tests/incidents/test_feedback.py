"""Learning from operators: incident features, the noise classifier, the decision and the muter."""

from __future__ import annotations

import math
import random

import pytest

from opsmind.incidents.feedback import (
    FEATURES,
    NoiseClassifier,
    NoiseMuter,
    decide,
    incident_features,
    judge,
    metric_family,
    priority_multiplier,
)
from opsmind.types import Feedback, Incident

DAY = 86_400.0


def incident(**fields: object) -> Incident:
    base: dict[str, object] = {"at": 0.0, "title": "t", "opened_at": 0.0, "last_anomaly_at": 0.0}
    return Incident.model_validate({**base, **fields})


def synthetic(rng: random.Random, noisy: bool) -> Incident:
    """Noise: one service, a few anomalies on one or two resource series, unsurprising, short.
    Actionable: several services, latency and errors, many anomalies, very surprising, long."""
    day = rng.randrange(30) * DAY + rng.uniform(0, DAY)
    if noisy:
        svc = rng.choice(["batch", "cache", "db"])
        series = [f'cpu_utilisation{{service="{svc}"}}', f'pod_memory_bytes{{pod="p1",service="{svc}"}}']
        services, count = [svc], rng.randint(2, 6)
        tail, minutes = 10 ** -rng.uniform(3, 5), rng.uniform(0.5, 6)
    else:
        services = rng.sample(["gateway", "checkout", "payments", "db"], rng.randint(2, 4))
        series = [f'latency_seconds{{quantile="0.99",service="{s}"}}' for s in services]
        series += [f'error_ratio{{service="{s}"}}' for s in services[:2]]
        count, tail, minutes = rng.randint(15, 60), 10 ** -rng.uniform(9, 15), rng.uniform(10, 90)
    return incident(
        service=services[0],
        services=tuple(services),
        series=tuple(rng.sample(series, rng.randint(1, len(series)))),
        anomaly_count=count,
        max_probability=1.0 - tail,
        opened_at=day,
        last_anomaly_at=day + minutes * 60,
        root_causes=() if noisy else ({"service": services[0], "score": 3.0, "evidence": "x"},),
    )


def trained(rng: random.Random, n: int = 20) -> NoiseClassifier:
    examples = [(synthetic(rng, noisy), noisy) for noisy in [True, False] * n]
    feats = [incident_features(i) for i, _ in examples]
    return NoiseClassifier().fit(feats, ["noise" if noisy else "actionable" for _, noisy in examples])


def test_metric_families_from_the_golden_signal_map_then_name_words() -> None:
    assert metric_family('latency_seconds{quantile="0.99",service="gateway"}') == "latency"
    assert metric_family('error_ratio{service="a"}') == "errors"
    assert metric_family("http_requests_total") == "traffic"
    assert metric_family('cpu_utilisation{service="a"}') == "saturation"
    assert metric_family("http_requests_errors_total") == "errors"  # errors beat traffic
    assert metric_family("rpc_request_duration_seconds") == "latency"  # latency beats traffic
    assert metric_family("jvm_heap_used_bytes") == "saturation"
    assert metric_family("pod_restarts_total") == "other"


def test_features_of_an_incident() -> None:
    inc = incident(
        service="gateway",
        services=("gateway", "db"),
        series=(
            'latency_seconds{quantile="0.99",service="gateway"}',
            'error_ratio{service="gateway"}',
            'cpu_utilisation{service="db"}',
            "queue_jobs_weird",
            "queue_jobs_weird",  # a repeated key counts once
        ),
        anomaly_count=9,
        max_probability=1.0 - 1e-6,
        opened_at=6 * 3600.0,  # 06:00 UTC
        last_anomaly_at=6 * 3600.0 + 180.0,
        root_causes=({"service": "db", "score": 2.0, "evidence": "cpu"},),
        reopened=2,
        flapping=True,
    )
    f = incident_features(inc)
    assert tuple(f) == FEATURES
    assert f["anomalies_log"] == pytest.approx(math.log1p(9))
    assert f["series_log"] == pytest.approx(math.log1p(4))
    assert f["services"] == 2.0
    assert (f["share_latency"], f["share_errors"], f["share_saturation"]) == (0.25, 0.25, 0.5)
    assert (f["share_traffic"], f["share_other"]) == (0.0, 0.0)
    assert f["surprise"] == pytest.approx(6.0, abs=1e-3)
    assert f["duration_log"] == pytest.approx(math.log1p(3.0))
    assert f["rate_log"] == pytest.approx(math.log1p(3.0))
    assert [f["hour_sin"], f["hour_cos"]] == pytest.approx([1.0, 0.0], abs=1e-12)
    assert [f["has_root_cause"], f["reopened_log"], f["flapping"]] == pytest.approx([1.0, math.log1p(2), 1.0])


def test_features_stay_finite_at_the_edges() -> None:
    f = incident_features(incident(max_probability=1.0))
    assert f["surprise"] == 15.0 and f["services"] == 0.0 and f["share_other"] == 0.0
    assert all(math.isfinite(v) for v in f.values())
    assert incident_features(incident(max_probability=1.0 - 1e-15))["surprise"] == pytest.approx(
        15.0, abs=0.05
    )


def test_learns_a_separable_pattern_and_generalises_to_new_incidents() -> None:
    clf = trained(random.Random(1))
    assert clf.ready and clf.state()["examples"] == {"noise": 20, "actionable": 20}
    fresh = random.Random(2)
    right = 0
    for noisy in [True, False] * 50:
        p, _ = clf.noise_probability(synthetic(fresh, noisy))
        right += (p >= 0.5) == noisy
    assert right >= 95


def test_learns_a_pattern_only_the_hour_gives_away() -> None:
    """Operators call the 02:00 backup-window incidents noise; everything else is alike."""
    rng = random.Random(3)

    def at_hour(hour: float) -> Incident:
        opened = rng.randrange(30) * DAY + hour * 3600
        return incident(
            service="db",
            series=('latency_seconds{service="db"}',),
            anomaly_count=rng.randint(3, 20),
            max_probability=1.0 - 10 ** -rng.uniform(4, 10),
            opened_at=opened,
            last_anomaly_at=opened + rng.uniform(60, 1800),
        )

    night = [at_hour(rng.uniform(1.5, 3.0)) for _ in range(15)]
    day = [at_hour(rng.uniform(9.0, 20.0)) for _ in range(15)]
    clf = NoiseClassifier().fit(
        [incident_features(i) for i in night + day], ["noise"] * 15 + ["actionable"] * 15
    )
    p_night, why = clf.noise_probability(at_hour(2.2))
    p_day, _ = clf.noise_probability(at_hour(14.0))
    assert p_night > 0.8 > 0.2 > p_day
    assert "hour_" in why and why.startswith("operators marked")


def test_refuses_to_train_before_enough_examples_of_each_verdict() -> None:
    rng = random.Random(4)
    noise = [incident_features(synthetic(rng, True)) for _ in range(4)]
    real = [incident_features(synthetic(rng, False)) for _ in range(9)]
    clf = NoiseClassifier(min_per_class=5).fit(noise + real, ["noise"] * 4 + ["actionable"] * 9)
    assert not clf.ready
    assert "at least 5" in clf.status and "4 noise" in clf.status
    p, why = clf.noise_probability(synthetic(rng, True))
    assert p == 0.0 and "no noise model" in why  # an untrained model hides nothing
    noise.append(incident_features(synthetic(rng, True)))
    assert clf.fit(noise + real, ["noise"] * 5 + ["actionable"] * 9).ready
    assert clf.fit(noise[:1] + real, ["noise"] + ["actionable"] * 9).ready is False  # drops the old model


def test_fit_refuses_bad_input() -> None:
    clf = NoiseClassifier()
    with pytest.raises(ValueError, match="labels"):
        clf.fit([{"a": 1.0}], [])
    with pytest.raises(ValueError, match="unknown verdicts"):
        clf.fit([{"a": 1.0}], ["spam"])
    with pytest.raises(ValueError):
        NoiseClassifier(min_per_class=0)


def test_the_reason_counts_similar_noise_and_names_telling_features() -> None:
    clf = trained(random.Random(5), n=10)
    p, why = clf.noise_probability(synthetic(random.Random(6), True))
    assert p > 0.9
    assert why.startswith("operators marked 10 of 10 similar incidents as noise (p=")
    assert "noise-like in " in why
    p, why = clf.noise_probability(synthetic(random.Random(6), False))
    assert p < 0.1 and "marked 0 of 10" in why and "actionable-like in " in why


def test_fit_feedback_takes_the_latest_verdict_per_incident() -> None:
    rng = random.Random(7)
    fb = [
        Feedback(at=float(i), incident_id=f"i{i}", verdict=v, by="ana", features=incident_features(inc))
        for i, (inc, v) in enumerate(
            [(synthetic(rng, True), "noise") for _ in range(5)]
            + [(synthetic(rng, False), "actionable") for _ in range(5)]
        )
    ]
    changed = fb[0].model_copy(update={"verdict": "actionable", "at": 100.0, "id": "later"})
    clf = NoiseClassifier().fit_feedback([changed, *fb])  # order in the list does not matter
    assert clf.state()["examples"] == {"noise": 4, "actionable": 6} and not clf.ready


@pytest.mark.parametrize(
    ("p", "action", "words"),
    [
        (0.95, "suppress", "suppressed"),
        (0.9, "suppress", ">= 0.90"),
        (0.75, "downrank", "priority x0.25"),
        (0.6, "downrank", ">= 0.60"),
        (0.59, "keep", "< 0.60"),
        (0.0, "keep", "kept"),
    ],
)
def test_decide_thresholds(p: float, action: str, words: str) -> None:
    got, reason = decide(p)
    assert got == action and words in reason


def test_decide_refuses_nonsense_and_multiplier_follows_action() -> None:
    for bad in [(float("nan"), 0.9, 0.6), (1.5, 0.9, 0.6), (0.5, 0.5, 0.6), (0.5, 1.2, 0.6)]:
        with pytest.raises(ValueError):
            decide(*bad)
    assert decide(0.7, suppress_at=0.8, downrank_at=0.8)[0] == "keep"
    assert priority_multiplier("keep", 0.5) == 1.0
    assert priority_multiplier("downrank", 0.75) == pytest.approx(0.25)


def test_noise_muter_mutes_only_what_was_suppressed() -> None:
    muter = NoiseMuter({"a": ("suppress", "operators marked 3 similar"), "b": ("downrank", "meh")})
    assert muter.mutes({"incident_id": "a"}, 0.0) == "operators marked 3 similar"
    assert muter.mutes({"incident_id": "b"}, 0.0) is None
    assert muter.mutes({"incident_id": "c"}, 0.0) is None
    assert muter.mutes({"service": "x"}, 0.0) is None


def test_noise_muter_judging_incidents_with_a_trained_classifier() -> None:
    clf = trained(random.Random(8))
    rng = random.Random(9)
    noisy, real = synthetic(rng, True), synthetic(rng, False)
    muter = NoiseMuter.judging(clf, [noisy, real])
    reason = muter.mutes({"incident_id": noisy.id}, 0.0)
    assert reason is not None and reason.startswith("operators marked") and reason.endswith("suppressed")
    assert muter.mutes({"incident_id": real.id}, 0.0) is None
    assert judge(NoiseClassifier(), noisy)[0] == "keep"  # untrained: nothing is hidden
