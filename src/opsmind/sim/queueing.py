"""Queueing arithmetic for one service: latency rises steeply as utilisation approaches 1.

Each service is an M/M/c queue with ``c = ready replicas x concurrency`` slots and mean service time
``S``. The probability that a request waits uses Sakasegawa's approximation of the Erlang C formula,
``P(wait) ~ rho ** (sqrt(2 (c + 1)) - 1)`` (Sakasegawa 1977; Hopp & Spearman, *Factory Physics*), which
is within a few percent of the exact value and costs one power instead of an O(c) recursion - the
simulator evaluates it for every service at every step. A waiting request waits an exponential time
with rate ``c/S - lambda``, so quantiles have closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class QueueState:
    utilisation: float
    served_rps: float
    overflow_rps: float
    p50_s: float
    p95_s: float
    p99_s: float


def wait_probability(rho: float, c: int) -> float:
    if rho <= 0:
        return 0.0
    return min(1.0, float(rho ** (math.sqrt(2.0 * (c + 1)) - 1.0)))


def quantile(q: float, service_s: float, p_wait: float, drain_rate: float, fixed_s: float = 0.0) -> float:
    """Approximate q-quantile of the response time: an exponential own service time, the time spent on
    dependencies (``fixed_s``, their median), plus the queueing delay quantile
    ``ln(P(wait) / (1 - q)) / drain_rate`` (zero when few requests wait)."""
    service = service_s * -math.log(1.0 - q) + fixed_s
    if p_wait <= 1.0 - q or drain_rate <= 0:
        return service
    return service + math.log(p_wait / (1.0 - q)) / drain_rate


def mmc(
    arrival_rps: float, slots: int, service_s: float, timeout_s: float, fixed_s: float = 0.0
) -> QueueState:
    """The queue of one service for one step; a request holds its slot for ``service_s`` of its own
    work plus ``fixed_s`` waiting on dependencies. Beyond saturation the excess is refused (overflow)
    and the latency of what is served sits at the callers' timeout."""
    hold_s = service_s + fixed_s
    if slots <= 0:
        return QueueState(
            0.0 if arrival_rps <= 0 else math.inf, 0.0, arrival_rps, timeout_s, timeout_s, timeout_s
        )
    capacity = slots / hold_s
    rho = arrival_rps / capacity
    if rho >= 0.98:
        # Saturated: the queue grows until requests time out; what is served waits about the timeout.
        served = min(arrival_rps, capacity * 0.98)
        return QueueState(
            rho, served, arrival_rps - served, min(timeout_s, hold_s + 0.5 * timeout_s), timeout_s, timeout_s
        )
    pw = wait_probability(rho, slots)
    drain = capacity - arrival_rps
    return QueueState(
        rho,
        arrival_rps,
        0.0,
        min(timeout_s, quantile(0.5, service_s, pw, drain, fixed_s)),
        min(timeout_s, quantile(0.95, service_s, pw, drain, fixed_s)),
        min(timeout_s, quantile(0.99, service_s, pw, drain, fixed_s)),
    )


def timeout_fraction(p50: float, p99: float, timeout_s: float) -> float:
    """Share of requests slower than the timeout, from an exponential tail fitted through p50 and p99."""
    if p99 < timeout_s:
        if p99 <= p50:
            return 0.0
        scale = (p99 - p50) / math.log(50.0)  # P(T > p50) = 0.5 and P(T > p99) = 0.01
        return 0.5 * math.exp(-(timeout_s - p50) / scale)
    if p50 >= timeout_s:
        return 1.0
    # The timeout lies between p50 and p99: interpolate in log-survival between 0.5 and 0.01.
    frac = (timeout_s - p50) / (p99 - p50)
    return 0.5 * math.exp(frac * math.log(0.02))
