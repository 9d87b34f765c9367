"""What kind of fault is this incident? A calibrated classifier over what an operator could observe.

The input is an :class:`IncidentObservation`: raw observations an on-call engineer would look at, never a
simulator's ground truth - which golden signals of the incident's services went anomalous and in what
order, the platform events of the last minutes (deploys, config changes, restarts, OOM kills, node
failures...), resource trends of the top service, the root-cause ranking and the size of the incident.
:func:`features` turns one into a vector of :data:`FEATURES`, each a float:

- ``sig_<signal>`` for each of :data:`SIGNALS`: 1 when a metric of that signal was anomalous, else 0.
- ``onset_<signal>``: ``1 / (1 + rank)`` where ``rank`` is the signal's place in the onset order (0 for
  the first signal to go anomalous), 0 when the signal was not anomalous - faults start somewhere and
  spread, so what went first says much about the cause.
- ``ev_<reason>`` for each of :data:`EVENT_REASONS`: log(1 + count) of such events within
  ``EVENT_WINDOW_S`` before the incident opened (or during it, up to the observation).
- ``ev_config_logging``: 1 when a config change in the window touched logging (its message names a log
  setting) - a debug log level fills disks, a feature flag breaks requests.
- ``change_recency``: ``exp(-age / 600 s)`` of the latest change event (``Deployment``,
  ``ConfigChanged``, ``ModelDeployed``) in the window, 0 without one.
- ``memory_slope``: growth of the top service's pod memory, share of the memory limit per minute
  (clipped to [-1, 1]); ``cpu_level`` its mean CPU utilisation, ``cpu_pod_max`` the busiest pod's and
  ``cpu_spread`` the difference (one hot node shows as spread); ``disk_used`` and ``disk_slope`` (share
  per minute, clipped) of its disk; ``pool_in_use`` of its connection pools; ``ready_ratio`` ready over
  desired replicas; ``traffic_log`` log of the entry's request rate over its usual level;
  ``model_drift`` the model drift score (0-1).
- ``rc_rank_inv``: 1 / rank of the incident's service in the root-cause ranking (0 when unranked);
  ``rc_score``: the top cause's score.
- ``services_log``: log(1 + services with anomalies).
- ``kind_<kind>`` for each of :data:`SERVICE_KINDS`: the top service's kind from the inventory.

:class:`FaultClassifier` is a random forest whose probabilities are calibrated by
``CalibratedClassifierCV`` (sigmoid, stratified folds). It answers :data:`UNKNOWN` when the calibrated
probability of its best kind is below ``threshold``, or when the observation is unlike everything it was
trained on: its distance to the nearest training example (features standardised) is more than
``novelty_factor`` times the 99th percentile of the training examples' own nearest-neighbour distances.
Operator feedback (:meth:`FaultClassifier.update`) appends the labelled observation and refits.
"""

from __future__ import annotations

import math
import pickle
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.preprocessing import StandardScaler

from opsmind.heal.runbook import FAULT_KINDS

# The runbooks' fault kinds (the simulator's, kept equal to it by a test) without `unknown`, which is
# the classifier's answer when unsure rather than a class it learns.
UNKNOWN = "unknown"
KINDS = tuple(k for k in FAULT_KINDS if k != UNKNOWN)
SIGNALS = ("latency", "errors", "traffic", "cpu", "memory", "pool", "disk", "replicas", "restarts", "model")
EVENT_REASONS = (
    "Deployment",
    "ConfigChanged",
    "BackOff",
    "OOMKilled",
    "Unhealthy",
    "NodeNotReady",
    "Evicted",
    "ModelDeployed",
    "ScalingReplicaSet",
    "Killing",
)
CHANGE_REASONS = frozenset({"Deployment", "ConfigChanged", "ModelDeployed"})
SERVICE_KINDS = ("api", "ml", "worker", "database", "cache")
EVENT_WINDOW_S = 900.0
CHANGE_TAU_S = 600.0
FEATURES: tuple[str, ...] = (
    *(f"sig_{s}" for s in SIGNALS),
    *(f"onset_{s}" for s in SIGNALS),
    *(f"ev_{r}" for r in EVENT_REASONS),
    "ev_config_logging",
    "change_recency",
    "memory_slope",
    "cpu_level",
    "cpu_pod_max",
    "cpu_spread",
    "disk_used",
    "disk_slope",
    "pool_in_use",
    "ready_ratio",
    "traffic_log",
    "model_drift",
    "rc_rank_inv",
    "rc_score",
    "services_log",
    *(f"kind_{k}" for k in SERVICE_KINDS),
)
_FORMAT = 1

# Metric-name words per signal, checked in this order (``pod_restarts_total`` is restarts, not traffic;
# ``pool_in_use_ratio`` is pool; ``error_ratio`` is errors).
_SIGNAL_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("restarts", ("restart",)),
    ("model", ("model", "drift", "accuracy")),
    ("pool", ("pool", "connection")),
    ("disk", ("disk", "filesystem", "volume")),
    ("memory", ("memory", "mem_", "heap", "rss")),
    ("cpu", ("cpu",)),
    ("replicas", ("replica", "pod_ready", "ready", "available")),
    ("errors", ("error", "fail", "5xx", "exception")),
    ("latency", ("latency", "duration", "delay", "response_time")),
    ("traffic", ("request", "rps", "qps", "throughput", "queue")),
)


def signal_of_metric(series_key: str) -> str | None:
    """The signal of :data:`SIGNALS` a metric (or series key) measures, from words of its name, or None."""
    name = series_key.split("{", 1)[0].lower()
    return next((sig for sig, words in _SIGNAL_WORDS if any(w in name for w in words)), None)


def onset_order(anomalies: Iterable[tuple[str, float]]) -> tuple[str, ...]:
    """Signals in the order they first went anomalous, from ``(series key, timestamp)`` pairs; metrics
    of no known signal are skipped, ties broken by signal name."""
    first: dict[str, float] = {}
    for key, ts in anomalies:
        sig = signal_of_metric(key)
        if sig is not None and (sig not in first or ts < first[sig]):
            first[sig] = ts
    return tuple(sorted(first, key=lambda s: (first[s], s)))


@dataclass(frozen=True, slots=True)
class ObservedEvent:
    """A platform event as an operator sees it: its reason, seconds before the incident opened
    (negative: after), and its message."""

    reason: str
    age_s: float
    message: str = ""


@dataclass(frozen=True, slots=True)
class IncidentObservation:
    """What could be observed about an incident (see the module docstring for how each becomes
    features). Trends and levels are of the incident's top service; ``None`` means not measured (a
    service without a disk or a model), which counts as 0 - or 1 for ``ready_ratio`` and
    ``traffic_ratio``."""

    signals: tuple[str, ...] = ()
    events: tuple[ObservedEvent, ...] = ()
    memory_slope: float | None = None
    cpu_level: float | None = None
    cpu_pod_max: float | None = None
    disk_used: float | None = None
    disk_slope: float | None = None
    pool_in_use: float | None = None
    ready_ratio: float | None = None
    traffic_ratio: float | None = None
    model_drift: float | None = None
    root_cause_rank: int | None = None
    root_cause_score: float = 0.0
    services: int = 1
    service_kind: str = "api"

    def __post_init__(self) -> None:
        bad = [s for s in self.signals if s not in SIGNALS]
        if bad or len(set(self.signals)) != len(self.signals):
            raise ValueError(f"signals must be distinct names from {list(SIGNALS)}, got {list(self.signals)}")
        if self.service_kind not in SERVICE_KINDS:
            raise ValueError(f"service_kind {self.service_kind!r} is not one of {list(SERVICE_KINDS)}")
        if self.root_cause_rank is not None and self.root_cause_rank < 1:
            raise ValueError(f"root_cause_rank counts from 1, got {self.root_cause_rank}")


def _num(value: float | None, default: float, low: float, high: float) -> float:
    if value is None or not math.isfinite(value):
        return default
    return min(max(float(value), low), high)


def features(obs: IncidentObservation) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The :data:`FEATURES` of ``obs`` as a float vector in that order, every entry finite."""
    out: dict[str, float] = {}
    for s in SIGNALS:
        rank = obs.signals.index(s) if s in obs.signals else None
        out[f"sig_{s}"] = 0.0 if rank is None else 1.0
        out[f"onset_{s}"] = 0.0 if rank is None else 1.0 / (1.0 + rank)
    window = [e for e in obs.events if e.age_s <= EVENT_WINDOW_S]
    for r in EVENT_REASONS:
        out[f"ev_{r}"] = math.log1p(sum(1 for e in window if e.reason == r))
    out["ev_config_logging"] = float(
        any(e.reason == "ConfigChanged" and "log" in e.message.lower() for e in window)
    )
    changes = [max(e.age_s, 0.0) for e in window if e.reason in CHANGE_REASONS]
    out["change_recency"] = math.exp(-min(changes) / CHANGE_TAU_S) if changes else 0.0
    cpu = _num(obs.cpu_level, 0.0, 0.0, 1.0)
    cpu_max = max(_num(obs.cpu_pod_max, cpu, 0.0, 1.0), cpu)
    out.update(
        memory_slope=_num(obs.memory_slope, 0.0, -1.0, 1.0),
        cpu_level=cpu,
        cpu_pod_max=cpu_max,
        cpu_spread=cpu_max - cpu,
        disk_used=_num(obs.disk_used, 0.0, 0.0, 1.0),
        disk_slope=_num(obs.disk_slope, 0.0, -1.0, 1.0),
        pool_in_use=_num(obs.pool_in_use, 0.0, 0.0, 1.0),
        ready_ratio=_num(obs.ready_ratio, 1.0, 0.0, 10.0),
        traffic_log=math.log(_num(obs.traffic_ratio, 1.0, 1e-3, 1e3)),
        model_drift=_num(obs.model_drift, 0.0, 0.0, 1.0),
        rc_rank_inv=0.0 if obs.root_cause_rank is None else 1.0 / obs.root_cause_rank,
        rc_score=_num(obs.root_cause_score, 0.0, 0.0, 1e6),
        services_log=math.log1p(max(obs.services, 0)),
    )
    for k in SERVICE_KINDS:
        out[f"kind_{k}"] = 1.0 if obs.service_kind == k else 0.0
    return np.array([out[name] for name in FEATURES], dtype=np.float64)


class Prediction(NamedTuple):
    """The classifier's answer: the kind (or :data:`UNKNOWN`), the calibrated probability of its best
    kind, the best kinds with their probabilities (best first), and why."""

    kind: str
    confidence: float
    alternatives: tuple[tuple[str, float], ...]
    reason: str


@dataclass(frozen=True)
class _Model:
    estimator: Any  # CalibratedClassifierCV, or the bare forest when too few examples for folds
    classes: tuple[str, ...]
    scaler: StandardScaler
    train_scaled: np.ndarray[Any, np.dtype[np.float64]]
    novelty_radius: float


class FaultClassifier:
    """A calibrated random forest over :data:`FEATURES` (see the module docstring).

    ``threshold`` is the least calibrated probability for a named kind; ``alternatives`` how many kinds
    a prediction lists; ``trees`` and ``seed`` configure the forest (seeded: the same data gives the
    same model)."""

    def __init__(
        self,
        threshold: float = 0.5,
        novelty_factor: float = 2.0,
        alternatives: int = 3,
        trees: int = 200,
        seed: int = 0,
    ) -> None:
        if not 0.0 <= threshold <= 1.0 or novelty_factor <= 0 or alternatives < 1 or trees < 1:
            raise ValueError("threshold in [0, 1], novelty_factor > 0, alternatives and trees >= 1")
        self.threshold = threshold
        self.novelty_factor = novelty_factor
        self.alternatives = alternatives
        self.trees = trees
        self.seed = seed
        self._x: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        self._y: list[str] = []
        self._model: _Model | None = None
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self._model is not None

    @property
    def examples(self) -> int:
        return len(self._y)

    def fit(self, observations: Sequence[IncidentObservation], labels: Sequence[str]) -> FaultClassifier:
        """Train on observations and their fault kinds, replacing earlier training data."""
        if len(observations) != len(labels):
            raise ValueError(f"{len(observations)} observations but {len(labels)} labels")
        with self._lock:
            self._x = [features(o) for o in observations]
            self._y = list(labels)
            self._refit()
        return self

    def update(self, observation: IncidentObservation, label: str) -> FaultClassifier:
        """Learn from an operator's verdict on one incident: append it to the training data and refit."""
        with self._lock:
            self._x.append(features(observation))
            self._y.append(label)
            self._refit()
        return self

    def _refit(self) -> None:
        bad = sorted({lab for lab in self._y if lab not in KINDS})
        if bad:
            raise ValueError(f"unknown fault kinds {bad}: each label must be one of {list(KINDS)}")
        classes = sorted(set(self._y))
        if len(classes) < 2:
            raise ValueError(f"needs examples of at least two fault kinds, has {classes}")
        x = np.vstack(self._x)
        y = np.array(self._y)
        forest = RandomForestClassifier(n_estimators=self.trees, random_state=self.seed, n_jobs=1)
        folds = min(3, min(int((y == c).sum()) for c in classes))
        estimator: Any
        if folds >= 2:
            estimator = CalibratedClassifierCV(forest, method="sigmoid", cv=folds)
        else:  # a kind with one example cannot be split into folds; the forest's own votes serve
            estimator = forest
        estimator.fit(x, y)
        scaler = StandardScaler().fit(x)
        scaled = np.asarray(scaler.transform(x), dtype=np.float64)
        self._model = _Model(
            estimator=estimator,
            classes=tuple(str(c) for c in estimator.classes_),
            scaler=scaler,
            train_scaled=scaled,
            novelty_radius=_novelty_radius(scaled),
        )

    def probabilities(self, obs: IncidentObservation) -> dict[str, float]:
        """The calibrated probability of every trained kind for ``obs``."""
        model = self._require()
        p = model.estimator.predict_proba(features(obs).reshape(1, -1))[0]
        return {c: float(v) for c, v in zip(model.classes, p, strict=True)}

    def predict(self, obs: IncidentObservation) -> Prediction:
        """The fault kind of ``obs``, or :data:`UNKNOWN` when unsure or out of pattern."""
        model = self._require()
        probs = self.probabilities(obs)
        ranked = sorted(probs.items(), key=lambda kv: (-kv[1], kv[0]))
        best, conf = ranked[0]
        alts = tuple(ranked[: self.alternatives])
        scaled = np.asarray(model.scaler.transform(features(obs).reshape(1, -1)), dtype=np.float64)[0]
        distance = float(np.min(np.linalg.norm(model.train_scaled - scaled, axis=1)))
        limit = self.novelty_factor * model.novelty_radius
        if distance > limit:
            why = f"unlike any training incident (distance {distance:.2f} > {limit:.2f}); best guess {best}"
            return Prediction(UNKNOWN, conf, alts, f"{why} at {conf:.2f}")
        if conf < self.threshold:
            why = f"best guess {best} at {conf:.2f} is below the threshold {self.threshold:.2f}"
            return Prediction(UNKNOWN, conf, alts, why)
        others = ", ".join(f"{k} {p:.2f}" for k, p in alts[1:])
        return Prediction(best, conf, alts, f"{best} at {conf:.2f}" + (f" (then {others})" if others else ""))

    def _require(self) -> _Model:
        model = self._model
        if model is None:
            raise RuntimeError("the fault classifier is not trained: call fit first")
        return model

    def save(self, path: str | Path) -> None:
        """Write the model, its training data and :data:`FEATURES` to ``path`` (a pickle)."""
        with self._lock:
            state = {
                "format": _FORMAT,
                "features": FEATURES,
                "params": {
                    "threshold": self.threshold,
                    "novelty_factor": self.novelty_factor,
                    "alternatives": self.alternatives,
                    "trees": self.trees,
                    "seed": self.seed,
                },
                "x": list(self._x),
                "y": list(self._y),
                "model": self._model,
            }
        Path(path).write_bytes(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def load(cls, path: str | Path) -> FaultClassifier:
        """Read a classifier written by :meth:`save`; refuses one built on other features. Only load
        files you trust: unpickling runs code."""
        state = pickle.loads(Path(path).read_bytes())
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path}: not a fault classifier of format {_FORMAT}")
        saved = tuple(state.get("features", ()))
        if saved != FEATURES:
            missing = sorted(set(FEATURES) - set(saved))
            extra = sorted(set(saved) - set(FEATURES))
            raise ValueError(
                f"{path}: trained on other features (missing {missing}, unexpected {extra}); retrain it"
            )
        clf = cls(**state["params"])
        clf._x = list(state["x"])
        clf._y = list(state["y"])
        clf._model = state["model"]
        return clf


def _novelty_radius(scaled: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    """The 99th percentile of the training examples' distances to their nearest other example (a
    floor of 1 standard unit, so a few identical examples do not make everything novel)."""
    n = len(scaled)
    if n < 2:
        return 1.0
    nearest = np.empty(n)
    for i in range(n):  # row by row: memory stays O(n) for a few thousand incidents
        d = np.linalg.norm(scaled - scaled[i], axis=1)
        d[i] = np.inf
        nearest[i] = d.min()
    return max(float(np.quantile(nearest, 0.99)), 1.0)
