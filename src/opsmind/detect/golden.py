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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from opsmind.detect.base import F64
from opsmind.detect.health import GOLDEN_SIGNALS, signal_of
from opsmind.types import Series

MIN_FEATURES = 2


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
