"""The bottleneck warnings' alerting rule: raise level held ``for_s``, hysteresis, ``keep_s``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from opsmind.predict.base import Forecast
from opsmind.predict.bottleneck import LATENCY_SLO_RISK, SATURATION, WarningGate, warn
from opsmind.predict.capacity import CapacityModel

CAP = CapacityModel.known(capacity_per_replica=70.0, saturation_per_replica=100.0)


def run(gate: WarningGate, probs: list[float], step: float = 60.0) -> list[bool]:
    return [gate.update(p, step * i) for i, p in enumerate(probs)]


def test_fires_only_after_the_raise_level_held_for_the_duration() -> None:
    gate = WarningGate(raise_p=0.2, clear_p=0.02, for_s=60.0, keep_s=600.0)
    # A one-minute blip does not fire; two consecutive minutes do, on the second.
    assert run(gate, [0.3, 0.1, 0.25, 0.4]) == [False, False, False, True]


def test_a_flickering_risk_is_one_warning_until_it_stays_low() -> None:
    gate = WarningGate(raise_p=0.2, clear_p=0.02, for_s=0.0, keep_s=180.0)
    probs = [0.3, 0.1, 0.25, 0.05, 0.21, 0.01, 0.01, 0.01, 0.01, 0.3]
    # Above clear_p keeps it firing; below it from minute 5 it clears at minute 8 (keep_s = 3 minutes
    # later); 0.3 then raises anew.
    assert run(gate, probs) == [True] * 8 + [False, True]


def test_without_hysteresis_or_durations_it_is_the_plain_threshold() -> None:
    gate = WarningGate(raise_p=0.2, clear_p=0.2, for_s=0.0, keep_s=0.0)
    probs = [0.1, 0.3, 0.19, 0.2, 0.0]
    assert run(gate, probs) == [p >= 0.2 for p in probs]


def test_rejects_a_clear_level_above_the_raise_level() -> None:
    with pytest.raises(ValueError, match="clear_p"):
        WarningGate(raise_p=0.2, clear_p=0.3)


def normal_forecast(mean: np.ndarray, sigma: float = 10.0) -> Forecast:
    z = {level: float(norm.ppf(0.5 + level / 200)) for level in (80, 95)}
    return Forecast(
        mean=mean,
        lo={lv: mean - zz * sigma for lv, zz in z.items()},
        hi={lv: mean + zz * sigma for lv, zz in z.items()},
        model="test",
    )


def test_warn_with_a_gate_holds_the_warning_while_the_risk_dips() -> None:
    gate = WarningGate(raise_p=0.2, clear_p=0.02, for_s=60.0, keep_s=600.0)
    rising = normal_forecast(204 + 8.0 * np.arange(15))  # P 0.34 ten minutes ahead: the first >= 0.2
    dipped = normal_forecast(np.full(15, 262.0))  # P(> 280) ~ 0.04: under raise_p, above clear_p
    gates = {LATENCY_SLO_RISK: gate}
    assert warn("api", rising, 60.0, 0.0, 4, CAP, gates=gates) == []  # pending, not yet firing
    [w] = warn("api", rising, 60.0, 60.0, 4, CAP, gates=gates)
    assert w.kind == LATENCY_SLO_RISK and w.lead_s == 600.0
    [held] = warn("api", dipped, 60.0, 120.0, 4, CAP, gates=gates)
    assert held.probability == pytest.approx(norm.sf(1.8), abs=0.01)
    # Without a gate the same dipped forecast warns of nothing; saturation here is ungated.
    assert warn("api", dipped, 60.0, 120.0, 4, CAP, threshold=0.2) == []
    assert all(w.kind != SATURATION for w in warn("api", dipped, 60.0, 180.0, 4, CAP, gates=gates))
