"""Objectives an incident's services still breach: what keeps an incident open once the detectors have
got used to a lasting fault.

The detectors learn a lasting shift as the new normal after a bounded time
(:class:`opsmind.detect.ensemble.Ensemble`'s ``relearn_after``), which is right for a metric that moved
for good and wrong while users still feel it: a dependency that stays 250 ms slower stops raising
anomalies within a minute, and its incident would auto-resolve while the entry's p99 is over its SLO.
So an incident is not auto-resolved, and the heal stage keeps working on it, while one of its services
breaches an objective *it met before the incident opened*, as an SLO alert would say:

* its latency at the declared quantile (``predict.latency_quantile``) above its latency SLO
  (``predict.latency_slo_s`` and overrides);
* its error ratio above its error budget (``1 - predict.error_objective`` and overrides);
* no ready replica while some are desired.

Each is the mean over the last ``now_s`` (one scrape's blip holds nothing open) against the mean over
``baseline_s`` before the opening. A service that breached before the incident (a batch worker whose jobs
take longer than the fleet's latency SLO) never holds one open: that breach is not this incident's, and an
incident it held would never end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from opsmind.config import PredictSettings
from opsmind.store.protocols import SampleStore

NOW_S = 60.0
""""Now": the mean over the last minute."""
BASELINE_S = 900.0
"""Before the incident: the mean over the quarter of an hour before it opened."""


@dataclass(frozen=True, slots=True)
class Breach:
    service: str
    what: str  # "latency", "errors" or "down"
    value: float
    limit: float

    def __str__(self) -> str:
        if self.what == "down":
            return f"{self.service} has no ready replica of {self.limit:g} desired"
        unit = " s" if self.what == "latency" else ""
        return f"{self.service} {self.what} {self.value:.3g}{unit} above its objective {self.limit:.3g}{unit}"


def _mean(
    samples: SampleStore, metric: str, labels: dict[str, str], start: float, end: float
) -> float | None:
    """The mean of the finite points of the service's own series (not its pods') in ``[start, end]``; None
    when there are none. Several matching series (one per instance of a scrape) are pooled."""
    total, n = 0.0, 0
    for info in samples.series({"__name__": metric, **labels, "pod": ""}, limit=100):
        got = samples.query(info.series, start, end)
        for v in got.values:
            if math.isfinite(v):
                total, n = total + v, n + 1
    return total / n if n else None


def breaches(
    samples: SampleStore,
    objectives: PredictSettings,
    services: Iterable[str],
    opened_at: float,
    now: float,
    now_s: float = NOW_S,
    baseline_s: float = BASELINE_S,
) -> list[Breach]:
    """The objectives ``services`` breach now and met before ``opened_at`` (see the module)."""
    out: list[Breach] = []
    recent, before = (now - now_s, now), (opened_at - baseline_s, opened_at)
    for svc in dict.fromkeys(services):
        own = {"service": svc}
        checks = (
            (
                "latency",
                objectives.latency_metric,
                {**own, "quantile": objectives.latency_quantile},
                objectives.latency_slo(svc),
            ),
            ("errors", objectives.error_metric, own, 1.0 - objectives.error_objective_for(svc)),
        )
        for what, metric, labels, limit in checks:
            value = _mean(samples, metric, labels, *recent)
            if value is None or value <= limit:
                continue
            usual = _mean(samples, metric, labels, *before)
            if usual is not None and usual <= limit:
                out.append(Breach(svc, what, value, limit))
        ready = _mean(samples, "replicas_ready", own, *recent)
        desired = _mean(samples, "replicas_desired", own, *recent)
        ready_before = _mean(samples, "replicas_ready", own, *before)
        if ready == 0.0 and desired and ready_before:
            out.append(Breach(svc, "down", 0.0, desired))
    return out
