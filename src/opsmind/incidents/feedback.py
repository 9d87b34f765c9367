"""Learning from operators: which incidents they call noise, and what to do about the next one like it.

An operator marks an incident ``noise`` or ``actionable`` (``POST /api/v1/incidents/{id}/feedback``,
stored as a :class:`~opsmind.types.Feedback` with a snapshot of :func:`incident_features`).
:class:`NoiseClassifier` learns from those verdicts; for a new incident it gives the probability that
operators would call it noise and the reason. :func:`decide` turns that probability into an action
(keep, downrank, suppress), and :class:`NoiseMuter` lets the notify stage mute the suppressed ones
with the reason, like any other muter.

The features (:data:`FEATURES`), each a float, chosen for what operators' noise tends to look like -
small, short, unsurprising, on one resource metric, at the hour of a nightly job:

- ``anomalies_log``: log(1 + anomaly count).
- ``series_log``: log(1 + distinct series with anomalies).
- ``services``: number of distinct services with anomalies.
- ``share_latency``, ``share_errors``, ``share_traffic``, ``share_saturation``, ``share_other``: the
  share of those series per golden signal, by metric name (:func:`metric_family`).
- ``surprise``: -log10(1 - max_probability), capped at 15 (probabilities stop at 1 - 1e-15).
- ``duration_log``: log(1 + minutes from the first to the last anomaly).
- ``rate_log``: log(1 + anomalies per minute of that span, the span at least one minute).
- ``hour_sin``, ``hour_cos``: the UTC hour it opened, on a circle (23h is next to 0h).
- ``has_root_cause``: 1 when root-cause ranking named a service, else 0.
- ``reopened_log``: log(1 + times it relapsed after resolving).
- ``flapping``: 1 when it keeps resolving and relapsing, else 0.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from opsmind.detect.health import ERRORS, LATENCY, SATURATION, TRAFFIC, signal_of
from opsmind.types import Feedback, Incident

NOISE, ACTIONABLE = "noise", "actionable"
VERDICTS = (NOISE, ACTIONABLE)
FAMILIES = (LATENCY, ERRORS, TRAFFIC, SATURATION, "other")
FEATURES = (
    "anomalies_log",
    "series_log",
    "services",
    *(f"share_{f}" for f in FAMILIES),
    "surprise",
    "duration_log",
    "rate_log",
    "hour_sin",
    "hour_cos",
    "has_root_cause",
    "reopened_log",
    "flapping",
)
MAX_SURPRISE = 15.0

# Name words for metrics the golden-signal map does not know, checked in this order: errors first so
# that ``http_requests_errors_total`` counts as errors, not traffic; latency before traffic so that
# ``rpc_request_duration_seconds`` counts as latency.
_WORDS: tuple[tuple[str, frozenset[str]], ...] = (
    (ERRORS, frozenset({"error", "errors", "failed", "failure", "failures", "fault", "exception", "5xx"})),
    (LATENCY, frozenset({"latency", "duration", "delay", "rtt", "response"})),
    (
        SATURATION,
        frozenset({"cpu", "memory", "mem", "heap", "disk", "utilisation", "utilization", "saturation"})
        | frozenset({"queue", "pool", "inflight", "threads", "connections", "load"}),
    ),
    (TRAFFIC, frozenset({"requests", "request", "rps", "qps", "throughput", "traffic", "calls", "rate"})),
)


def metric_family(series_key: str) -> str:
    """The golden signal a series measures, from its metric name (the golden-signal map first, then
    words of the name), or ``"other"``."""
    name = series_key.split("{", 1)[0]
    known = signal_of(name)
    if known in FAMILIES:  # a golden signal (a model metric is "other" here, as its words say)
        return known
    words = set(name.lower().split("_"))
    return next((family for family, vocab in _WORDS if words & vocab), "other")


def incident_features(incident: Incident) -> dict[str, float]:
    """The incident's :data:`FEATURES` (see the module docstring), every one finite."""
    series = sorted(set(incident.series))
    families = [metric_family(s) for s in series]
    services = {s for s in (*incident.services, incident.service) if s}
    span_min = max(0.0, incident.last_anomaly_at - incident.opened_at) / 60.0
    hour = (incident.opened_at % 86_400.0) / 3_600.0
    tail = 1.0 - min(max(incident.max_probability, 0.0), 1.0)
    out = {
        "anomalies_log": math.log1p(max(incident.anomaly_count, 0)),
        "series_log": math.log1p(len(series)),
        "services": float(len(services)),
        **{f"share_{f}": families.count(f) / len(families) if families else 0.0 for f in FAMILIES},
        "surprise": min(MAX_SURPRISE, -math.log10(tail)) if tail > 0 else MAX_SURPRISE,
        "duration_log": math.log1p(span_min),
        "rate_log": math.log1p(max(incident.anomaly_count, 0) / max(span_min, 1.0)),
        "hour_sin": math.sin(2 * math.pi * hour / 24.0),
        "hour_cos": math.cos(2 * math.pi * hour / 24.0),
        "has_root_cause": 1.0 if incident.root_causes else 0.0,
        "reopened_log": math.log1p(max(incident.reopened, 0)),
        "flapping": 1.0 if incident.flapping else 0.0,
    }
    return {k: out[k] for k in FEATURES}


@dataclass(frozen=True)
class _Model:
    pipeline: Pipeline
    weighted: np.ndarray[Any, np.dtype[np.float64]]  # training examples scaled and weighted, for "similar"
    weights: np.ndarray[Any, np.dtype[np.float64]]  # |coefficient| per feature
    noise: np.ndarray[Any, np.dtype[np.bool_]]  # which of them operators called noise


class NoiseClassifier:
    """A logistic regression over scaled :data:`FEATURES` (classes balanced) trained on verdicts.

    It refuses to train until it has ``min_per_class`` examples of each verdict (``ready`` stays False
    and ``status`` says what is missing) and then answers 0.0, so an untrained model never hides an
    incident. A reason names how many of the ``neighbours`` most similar training incidents operators
    called noise, and the features that pushed the answer most. Similar means near after scaling, each
    feature weighted by the size of its coefficient: alike in what the model weighs, not in features
    it learned to ignore."""

    def __init__(self, min_per_class: int = 5, neighbours: int = 10, c: float = 1.0) -> None:
        if min_per_class < 1 or neighbours < 1 or c <= 0:
            raise ValueError("min_per_class and neighbours must be at least 1 and c positive")
        self.min_per_class = min_per_class
        self.neighbours = neighbours
        self.c = c
        self.counts: dict[str, int] = dict.fromkeys(VERDICTS, 0)
        self.status = f"not trained: needs at least {min_per_class} examples of each verdict"
        self._model: _Model | None = None
        self._lock = threading.Lock()  # the engine may refit from two requests at once

    @property
    def ready(self) -> bool:
        return self._model is not None

    def state(self) -> dict[str, Any]:
        """What the API shows: examples per verdict, whether it is trained, and why (not)."""
        return {
            "ready": self.ready,
            "examples": dict(self.counts),
            "min_per_class": self.min_per_class,
            "status": self.status,
        }

    def fit(self, features_list: Sequence[Mapping[str, float]], labels: Sequence[str]) -> NoiseClassifier:
        """Train on feature dicts and their verdicts (``noise`` or ``actionable``), replacing any earlier
        model; with too few examples of a verdict the model is dropped and ``status`` says why."""
        if len(features_list) != len(labels):
            raise ValueError(f"{len(features_list)} feature sets but {len(labels)} labels")
        bad = sorted({v for v in labels if v not in VERDICTS})
        if bad:
            raise ValueError(f"unknown verdicts {bad}: each must be one of {list(VERDICTS)}")
        counts = {v: sum(1 for lab in labels if lab == v) for v in VERDICTS}
        with self._lock:
            self.counts = counts
            short = [v for v in VERDICTS if counts[v] < self.min_per_class]
            if short:
                self._model = None
                have = " and ".join(f"{counts[v]} {v}" for v in VERDICTS)
                self.status = (
                    f"not trained: needs at least {self.min_per_class} examples of each verdict, has {have}"
                )
                return self
            y = np.array([lab == NOISE for lab in labels])
            pipeline = Pipeline(
                [
                    ("vectorise", DictVectorizer(sparse=False)),
                    ("scale", StandardScaler()),
                    ("model", LogisticRegression(C=self.c, class_weight="balanced", max_iter=1000)),
                ]
            )
            rows = [dict(f) for f in features_list]
            pipeline.fit(rows, y.astype(int))
            weights = np.abs(np.asarray(pipeline[-1].coef_[0], dtype=np.float64))
            scaled = np.asarray(pipeline[:-1].transform(rows), dtype=np.float64)
            self._model = _Model(pipeline, weighted=scaled * weights, weights=weights, noise=y)
            self.status = f"trained on {counts[NOISE]} noise and {counts[ACTIONABLE]} actionable verdicts"
        return self

    def fit_feedback(self, feedback: Iterable[Feedback]) -> NoiseClassifier:
        """Train on stored feedback; when an incident has several verdicts the latest (by ``at``) counts,
        so an operator can change their mind."""
        latest: dict[str, Feedback] = {}
        for f in feedback:
            if f.incident_id not in latest or f.at >= latest[f.incident_id].at:
                latest[f.incident_id] = f
        chosen = list(latest.values())
        return self.fit([f.features for f in chosen], [f.verdict for f in chosen])

    def noise_probability(self, incident: Incident) -> tuple[float, str]:
        """The probability operators would call ``incident`` noise, and the reason."""
        return self.probability_of(incident_features(incident))

    def probability_of(self, features: Mapping[str, float]) -> tuple[float, str]:
        """:meth:`noise_probability` for a feature dict (a snapshot, say)."""
        model = self._model  # one read: a concurrent fit swaps the whole model
        if model is None:
            return 0.0, f"no noise model yet ({self.status})"
        row = [dict(features)]
        x = np.asarray(model.pipeline[:-1].transform(row), dtype=np.float64)[0]
        p = float(model.pipeline.predict_proba(row)[0][1])
        k = min(self.neighbours, len(model.noise))
        nearest = np.argsort(np.linalg.norm(model.weighted - x * model.weights, axis=1), kind="stable")[:k]
        similar = int(model.noise[nearest].sum())
        telling = _telling(model, x, features, p)
        return p, f"operators marked {similar} of {k} similar incidents as noise (p={p:.2f}): {telling}"


def _telling(
    model: _Model, x: np.ndarray[Any, np.dtype[np.float64]], raw: Mapping[str, float], p: float
) -> str:
    """The (at most three) features that pushed the answer furthest towards the verdict it gave."""
    names = list(model.pipeline[0].get_feature_names_out())
    push = np.asarray(model.pipeline[-1].coef_[0], dtype=np.float64) * x  # > 0 pushes towards noise
    toward_noise = p >= 0.5
    order = np.argsort(-push if toward_noise else push, kind="stable")
    picked = [i for i in order[:3] if (push[i] > 0) == toward_noise and push[i] != 0]
    side = "noise" if toward_noise else "actionable"
    if not picked:
        return f"no single feature stands out towards {side}"
    return f"{side}-like in " + ", ".join(f"{names[i]}={raw.get(names[i], 0.0):.3g}" for i in picked)


def decide(p: float, suppress_at: float = 0.9, downrank_at: float = 0.6) -> tuple[str, str]:
    """What to do with an incident whose noise probability is ``p``: ``suppress`` (mute its
    notifications) at or above ``suppress_at``, ``downrank`` (priority times ``1 - p``, see
    :func:`priority_multiplier`) at or above ``downrank_at``, else ``keep``; with the reason."""
    if not 0.0 <= downrank_at <= suppress_at <= 1.0:
        raise ValueError(f"need 0 <= downrank_at ({downrank_at}) <= suppress_at ({suppress_at}) <= 1")
    if not 0.0 <= p <= 1.0:  # also refuses NaN
        raise ValueError(f"a probability must be within [0, 1], got {p}")
    if p >= suppress_at:
        return "suppress", f"noise probability {p:.2f} >= {suppress_at:.2f}: suppressed"
    if p >= downrank_at:
        return "downrank", f"noise probability {p:.2f} >= {downrank_at:.2f}: priority x{1.0 - p:.2f}"
    return "keep", f"noise probability {p:.2f} < {downrank_at:.2f}: kept"


def priority_multiplier(action: str, p: float) -> float:
    """The factor to apply to an incident's priority after :func:`decide`: ``1 - p`` unless kept."""
    return 1.0 if action == "keep" else 1.0 - p


def judge(
    classifier: NoiseClassifier, incident: Incident, suppress_at: float = 0.9, downrank_at: float = 0.6
) -> tuple[str, str]:
    """:func:`decide` on the classifier's answer, the reason saying both why and what."""
    p, why = classifier.noise_probability(incident)
    action, what = decide(p, suppress_at, downrank_at)
    return action, f"{why}; {what}"


class NoiseMuter:
    """A muter (``incidents/muting.py``) for incidents the noise model said to suppress.

    Built from ``incident_id -> (action, reason)``; mutes an incident whose action is ``suppress``, with
    its reason. Others (``keep``, ``downrank``, or an incident it was not told about) pass."""

    name = "noise"

    def __init__(self, decisions: Mapping[str, tuple[str, str]]) -> None:
        self.decisions = dict(decisions)

    @classmethod
    def judging(
        cls,
        classifier: NoiseClassifier,
        incidents: Iterable[Incident],
        suppress_at: float = 0.9,
        downrank_at: float = 0.6,
    ) -> NoiseMuter:
        """A muter holding :func:`judge`'s decision for each incident."""
        return cls({i.id: judge(classifier, i, suppress_at, downrank_at) for i in incidents})

    def mutes(self, labels: Mapping[str, str], now: float) -> str | None:
        action, reason = self.decisions.get(labels.get("incident_id", ""), ("keep", ""))
        return reason if action == "suppress" else None
