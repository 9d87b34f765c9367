"""How many replicas keep a latency percentile under its objective: the M/M/c queue, exactly.

A utilisation target (what the HPA uses) is the wrong knob for latency: pooled servers can run hotter
than few servers at the same waiting time, so one target is wasteful at high load and too tight at low
load. The textbook model for a pool of ``c`` identical servers fed by Poisson arrivals is M/M/c; its
response-time tail has a closed form (Gross & Harris, *Fundamentals of Queueing Theory*, 4th ed.,
section 2.3): with ``a = lambda / mu``, Erlang C ``C`` the probability of waiting and ``d = (c - 1) mu -
lambda``,

    P(T > t) = e^(-mu t) * (1 + C mu / d * (1 - e^(-d t)))       (d != 0)
    P(T > t) = e^(-mu t) * (1 + C mu t)                            (d == 0)

so a percentile is found by bisection. Erlang C comes from the Erlang B recursion, which is stable for
any ``c``. The one parameter, the mean service time, is learned from observations
(:func:`fit_service_time`): at low utilisation almost nobody waits and the p95 response time is
``-ln(0.05)`` service times. How well the model then explains the hot observations is reported, so a
service that is not M/M/c-like is caught rather than trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load ``offered = lambda / mu``."""
    if c <= 0:
        return 1.0
    if offered <= 0:
        return 0.0
    if offered >= c:
        return 1.0
    b = 1.0
    for k in range(1, c + 1):
        b = offered * b / (k + offered * b)
    rho = offered / c
    return b / (1.0 - rho * (1.0 - b))


def tail(t: float, arrival: float, service_s: float, c: int) -> float:
    """P(response time > t) in M/M/c (FCFS)."""
    mu = 1.0 / service_s
    if arrival >= c * mu:
        return 1.0
    wait = erlang_c(c, arrival * service_s)
    d = (c - 1) * mu - arrival
    if abs(d) < 1e-12:
        return math.exp(-mu * t) * (1.0 + wait * mu * t)
    # Written with both exponents negative (c mu - lambda > 0 here), so no term can overflow when d < 0.
    return math.exp(-mu * t) + wait * mu / d * (math.exp(-mu * t) - math.exp(-(c * mu - arrival) * t))


def response_quantile(q: float, arrival: float, service_s: float, c: int) -> float:
    """The ``q`` quantile of the response time; ``inf`` when the queue is unstable."""
    if arrival >= c / service_s:
        return math.inf
    lo, hi = 0.0, service_s
    while tail(hi, arrival, service_s, c) > 1.0 - q:
        hi *= 2.0
        if hi > 1e6 * service_s:
            return math.inf
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if tail(mid, arrival, service_s, c) > 1.0 - q:
            lo = mid
        else:
            hi = mid
    return hi


@lru_cache(maxsize=65536)
def _replicas_for(arrival_q: float, service_s: float, objective_s: float, q: float, max_c: int) -> int:
    c = max(1, math.ceil(arrival_q * service_s))
    while c < max_c and response_quantile(q, arrival_q, service_s, c) > objective_s:
        c += 1
    return c


def replicas_for(
    arrival: float, service_s: float, objective_s: float, q: float = 0.95, max_c: int = 10_000
) -> int:
    """The fewest replicas whose ``q`` response-time quantile stays within ``objective_s`` at
    ``arrival`` requests per second (``max_c`` when even that is not enough). The arrival rate is
    rounded up to 0.5 % steps so repeated calls hit the cache; rounding up never sizes too small."""
    if not (service_s > 0 and math.isfinite(service_s)):
        raise ValueError(f"service time must be positive and finite, got {service_s}")
    if objective_s <= -math.log(1.0 - q) * service_s:
        raise ValueError(
            f"objective {objective_s:.3g}s is below the p{q * 100:g} of the service time alone "
            f"({-math.log(1.0 - q) * service_s:.3g}s): no replica count meets it"
        )
    if not math.isfinite(arrival) or arrival <= 0:
        return 1
    step = math.log1p(0.005)
    quantised = math.exp(math.ceil(math.log(arrival) / step) * step)
    return _replicas_for(quantised, service_s, objective_s, q, max_c)


@dataclass(frozen=True, slots=True)
class ServiceTimeFit:
    ok: bool
    service_s: float
    reason: str
    samples: int


def fit_service_time(
    p95_s: np.ndarray, utilisation: np.ndarray, max_utilisation: float = 0.5, min_samples: int = 10
) -> ServiceTimeFit:
    """Mean service time from p95 latencies observed while the pool was lightly used (few requests
    wait there, so p95 ~ 3.0 service times); refuses with a reason when there are too few."""
    p95 = np.asarray(p95_s, dtype=float)
    util = np.asarray(utilisation, dtype=float)
    light = np.isfinite(p95) & np.isfinite(util) & (util > 0) & (util <= max_utilisation) & (p95 > 0)
    n = int(light.sum())
    if n < min_samples:
        return ServiceTimeFit(False, math.nan, f"{n} light-load samples, need {min_samples}", n)
    return ServiceTimeFit(
        True, float(np.median(p95[light])) / -math.log(0.05), "median light-load p95 / 3.0", n
    )
