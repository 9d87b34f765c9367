"""M/M/c arithmetic against closed forms worked by hand."""

import math

import numpy as np
import pytest

from opsmind.predict.queue_model import (
    erlang_c,
    fit_service_time,
    replicas_for,
    response_quantile,
    tail,
)


def test_erlang_c_matches_hand_values() -> None:
    # c = 1: the probability of waiting is the utilisation.
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    # c = 2, a = 1: C = (a^2/2! * 2/(2-1)) / (1 + a + a^2/2! * 2/(2-1)) = 1 / 3.
    assert erlang_c(2, 1.0) == pytest.approx(1.0 / 3.0)
    assert erlang_c(3, 0.0) == 0.0 and erlang_c(3, 3.0) == 1.0


def test_single_server_response_time_is_exponential() -> None:
    # M/M/1: T ~ Exp(mu - lambda), so p95 = ln(20) / (mu - lambda).
    assert response_quantile(0.95, 6.0, 0.1, 1) == pytest.approx(math.log(20) / 4.0, rel=1e-6)
    assert tail(0.0, 6.0, 0.1, 1) == pytest.approx(1.0)


def test_d_zero_branch_is_continuous() -> None:
    # (c - 1) mu == lambda takes the limit form; it must agree with a nearby arrival rate.
    assert tail(0.3, 10.0, 0.1, 2) == pytest.approx(tail(0.3, 10.0 + 1e-7, 0.1, 2), rel=1e-5)


def test_replicas_for_is_the_fewest_that_meet_the_objective() -> None:
    c = replicas_for(100.0, 0.1, 0.5)
    assert response_quantile(0.95, 100.0, 0.1, c) <= 0.5 < response_quantile(0.95, 100.0, 0.1, c - 1)
    # Pooling: ten times the load needs fewer than ten times the replicas.
    assert replicas_for(1000.0, 0.1, 0.5) < 10 * c
    assert replicas_for(0.0, 0.1, 0.5) == 1
    with pytest.raises(ValueError, match="below the p95"):
        replicas_for(10.0, 0.1, 0.2)  # the service time alone has p95 0.3 s
    with pytest.raises(ValueError):
        replicas_for(10.0, 0.0, 0.5)


def test_large_pools_do_not_overflow() -> None:
    assert math.isfinite(response_quantile(0.95, 1900.0, 0.1, 200))


def test_service_time_from_light_load() -> None:
    util = np.array([0.1, 0.2, 0.3] * 5 + [0.9] * 5)
    p95 = np.array([0.3] * 15 + [2.0] * 5)
    fit = fit_service_time(p95, util)
    assert fit.ok and fit.service_s == pytest.approx(0.3 / math.log(20))
    refused = fit_service_time(p95[:5], util[:5])
    assert not refused.ok and "need 10" in refused.reason
