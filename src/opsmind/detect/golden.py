"""Per-service golden-signal vectors from a round of points, for the multivariate detector.

A service's vector at a timestamp holds one value per *feature*: each service-level series whose metric
maps to a golden signal (:func:`opsmind.detect.health.signal_of`), latency quantiles as separate
features (``latency_seconds@0.95``). Per-pod series (a ``pod`` label) are resources of one replica, not
the service's signals, and are left out.

A model needs a fixed set of features. The first complete vector of a service fixes its set; a later
vector with *more* features (a new signal appeared) replaces the set, which starts the service's model
over; a vector with fewer or other features (a scrape that lost a series, a push of a subset) is
skipped rather than guessed. A service with a single golden signal gets no vector: the univariate
ensemble already watches it, and a one-feature "multivariate" model would only repeat its alarms.

**Direction.** What a metric's name says about which way is bad (:func:`direction_of`), for the ensemble
(:mod:`opsmind.detect.ensemble`), which reports a deviation of such a metric only in its bad direction:
a pod becoming ready, an error ratio falling back after a fault or a model's accuracy recovering after a
retrain are the fleet getting better, not anomalies. Most metrics have no such direction (latency can
fall because requests fail fast, traffic and saturation both ways mean something), so the rule is
narrow and errs towards "either": the mapping's error ratios and model drift are lower-is-better and
its model quality higher-is-better; beyond the mapping a gauge whose name *ends* in a state of being
up, ready, available, healthy or successful (``up``, ``pod_ready``,
``kube_deployment_status_replicas_available``, ``probe_success``, ``slo_availability_ratio``: a
trailing ``ratio``, ``rate``, ``percent``, ``status`` ... does not count) is higher-is-better, and one
ending in its negation (``unavailable``, ``not_ready``, ``unhealthy``, ...) lower-is-better. Only the
end counts because that is what a name measures (``ready_queue_length`` is a length). Counters,
histograms and summaries (``_total``, ``_count``, ``_sum``, ``_bucket``) are left alone: the rate of
``pods_up_total`` would be a rate of events, not a state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from opsmind.detect.base import F64
from opsmind.detect.health import ERRORS, GOLDEN_SIGNALS, MODEL_DRIFT, MODEL_QUALITY, signal_of
from opsmind.types import Series

MIN_FEATURES = 2

#: A metric's bad direction (see the module docstring): only a fall is bad, only a rise is bad, or both.
HIGHER_IS_BETTER = 1
LOWER_IS_BETTER = -1
EITHER = 0
_SIGNAL_DIRECTION = {ERRORS: LOWER_IS_BETTER, MODEL_DRIFT: LOWER_IS_BETTER, MODEL_QUALITY: HIGHER_IS_BETTER}
# The last word of a name (split at "_" and ":", so recording rules such as ``job:up:avg`` count) that
# is a good state, or its absence; "not" before a good state negates it (``..._status_not_ready``).
_GOOD_STATE = frozenset({"up", "ready", "available", "availability", "healthy", "success", "successful"})
_BAD_STATE = frozenset({"unavailable", "unready", "unhealthy", "unschedulable", "failed"})
# Trailing words that say how a state is expressed, not what is measured.
_FORM = frozenset({"ratio", "rate", "percent", "percentage", "fraction", "pct", "bool", "status", "state"})
_NOT_STATES = ("_total", "_count", "_sum", "_bucket", "_created")


@dataclass(frozen=True, slots=True)
class ServiceVector:
    service: str
    ts: float
    features: tuple[str, ...]
    values: F64


def feature_of(series: Series, mapping: Mapping[str, str] | None = None) -> str | None:
    """The feature name of a service-level golden-signal series, or None for any other series."""
    if series.service is None or series.label("pod") is not None:
        return None
    if signal_of(series.name, mapping) not in GOLDEN_SIGNALS:
        return None
    quantile = series.label("quantile")
    return f"{series.name}@{quantile}" if quantile else series.name


def direction_of(metric_name: str, mapping: Mapping[str, str] | None = None) -> int:
    """:data:`HIGHER_IS_BETTER`, :data:`LOWER_IS_BETTER` or :data:`EITHER` for a metric name (see the
    module docstring)."""
    signal = signal_of(metric_name, mapping)
    if signal is not None:
        return _SIGNAL_DIRECTION.get(signal, EITHER)
    if metric_name.endswith(_NOT_STATES):
        return EITHER
    words = [w for w in metric_name.lower().replace(":", "_").split("_") if w]
    while len(words) > 1 and words[-1] in _FORM:
        words.pop()
    last = words[-1] if words else ""
    if last in _BAD_STATE or (last in _GOOD_STATE and len(words) > 1 and words[-2] == "not"):
        return LOWER_IS_BETTER
    return HIGHER_IS_BETTER if last in _GOOD_STATE else EITHER


@dataclass
class GoldenVectors:
    """Groups a round's points into per-service vectors over each service's fixed feature set."""

    mapping: Mapping[str, str] | None = None
    features: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _feature: dict[str, str | None] = field(default_factory=dict)  # by series key (cache)

    def vectors(self, points: Iterable[tuple[Series, float, float]]) -> list[ServiceVector]:
        groups: dict[tuple[str, float], dict[str, float]] = {}
        for series, ts, value in points:
            f = self._feature.get(series.key, "?")
            if f == "?":
                f = self._feature[series.key] = feature_of(series, self.mapping)
            if f is None or series.service is None:
                continue
            groups.setdefault((series.service, ts), {})[f] = value
        out: list[ServiceVector] = []
        for (service, ts), values in groups.items():
            feats = tuple(sorted(values))
            known = self.features.get(service)
            if known is None or (feats != known and len(feats) > len(known)):
                known = self.features[service] = feats
            if feats != known or len(known) < MIN_FEATURES:
                continue
            out.append(ServiceVector(service, ts, known, np.array([values[f] for f in known])))
        return out
