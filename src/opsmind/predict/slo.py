"""SLO error-budget burn-rate alerts: multi-window, multi-burn-rate, as in Google's SRE workbook.

An SLO with objective ``0.999`` over 30 days may spend an error budget of 0.1 % of its events. The burn
rate of a window is the window's error ratio divided by that budget: burn rate 1 spends exactly the
budget over the SLO period. A rule fires only when both its long window (is this significant?) and its
short window (is it still happening?) burn faster than the threshold; the short window is what lets an
alert clear within minutes of a recovery instead of hours later.

The workbook's recommended rules are stated for a 30-day SLO as a share of the budget spent in the
long window: 2 % in 1 h (burn 14.4) and 5 % in 6 h (burn 6) page, 10 % in 1 day (burn 3) and 10 % in
3 days (burn 1) open a ticket. Keeping the budget share fixed lets the same rules scale to other
SLO periods: ``burn = share * period / long_window``.

Everything here is pure: counts in, alerts out. Counts are per interval; a sample at time ``t`` counts
the events of the interval ending at ``t``, and a window ``w`` at ``now`` covers ``(now - w, now]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

HOUR = 3600.0
DAY = 86400.0

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class SLO:
    """An availability-style objective, e.g. 99.9 % good events over a rolling 30 days."""

    objective: float
    period_s: float = 30 * DAY

    def __post_init__(self) -> None:
        if not 0.0 < self.objective < 1.0:
            raise ValueError("objective must lie strictly between 0 and 1 (e.g. 0.999)")
        if self.period_s <= 0:
            raise ValueError("period_s must be positive")

    @property
    def error_budget(self) -> float:
        """The fraction of events allowed to be bad."""
        return 1.0 - self.objective


@dataclass(frozen=True, slots=True)
class BurnRule:
    """Fire ``severity`` when both windows burn faster than the rate that spends ``budget_share`` of
    the budget within ``long_s``."""

    severity: str
    long_s: float
    short_s: float
    budget_share: float

    def threshold(self, slo: SLO) -> float:
        return self.budget_share * slo.period_s / self.long_s


# The SRE workbook's recommended table (chapter "Alerting on SLOs"); for 30 days: 14.4, 6, 3, 1.
WORKBOOK_RULES: tuple[BurnRule, ...] = (
    BurnRule("page", 1 * HOUR, 5 * 60.0, 0.02),
    BurnRule("page", 6 * HOUR, 30 * 60.0, 0.05),
    BurnRule("ticket", 1 * DAY, 2 * HOUR, 0.10),
    BurnRule("ticket", 3 * DAY, 6 * HOUR, 0.10),
)


@dataclass(frozen=True, slots=True)
class BurnAlert:
    severity: str
    long_s: float
    short_s: float
    threshold: float
    long_burn: float
    short_burn: float
    reason: str


@dataclass(frozen=True, slots=True)
class BurnReport:
    """The alerts firing at ``now``, the burn rate of every window looked at, and the budget left.

    ``budget_remaining`` is the share of the period's error budget not yet spent (1 = untouched, 0 =
    spent, negative = overspent). ``window_burn`` maps a window length in seconds to its burn rate.
    """

    now: float
    alerts: tuple[BurnAlert, ...]
    window_burn: dict[float, float]
    budget_remaining: float
    error_ratio: float

    @property
    def severity(self) -> str | None:
        """The most severe alert firing, or ``None``."""
        severities = {a.severity for a in self.alerts}
        for s in ("page", "ticket"):
            if s in severities:
                return s
        return next(iter(sorted(severities)), None)


class _Cumulative:
    """Prefix sums so each window is two binary searches, whatever the number of rules."""

    def __init__(self, t: FloatArray, bad: FloatArray, total: FloatArray) -> None:
        self.t = t
        self.bad = np.concatenate(([0.0], np.cumsum(bad)))
        self.total = np.concatenate(([0.0], np.cumsum(total)))

    def window(self, now: float, length_s: float) -> tuple[float, float]:
        lo = int(np.searchsorted(self.t, now - length_s, side="right"))
        hi = int(np.searchsorted(self.t, now, side="right"))
        return float(self.bad[hi] - self.bad[lo]), float(self.total[hi] - self.total[lo])


def _burn(bad: float, total: float, budget: float) -> float:
    # No traffic spends no budget; an empty window must not page.
    return 0.0 if total <= 0 else (bad / total) / budget


def _fmt(seconds: float) -> str:
    if seconds % DAY == 0:
        return f"{seconds / DAY:g}d"
    if seconds % HOUR == 0:
        return f"{seconds / HOUR:g}h"
    return f"{seconds / 60:g}m"


def evaluate(
    slo: SLO,
    t: Sequence[float] | npt.ArrayLike,
    good: Sequence[float] | npt.ArrayLike,
    total: Sequence[float] | npt.ArrayLike,
    now: float | None = None,
    rules: Sequence[BurnRule] = WORKBOOK_RULES,
) -> BurnReport:
    """Burn-rate alerts at ``now`` (default: the last timestamp) from per-interval good/total counts.

    Timestamps must be ascending. A window that reaches before the first sample is computed over the
    data there is, as Prometheus does; callers that need a warm-up can check the span themselves.
    """
    ts = np.asarray(t, dtype=np.float64)
    g = np.asarray(good, dtype=np.float64)
    n = np.asarray(total, dtype=np.float64)
    if not (ts.shape == g.shape == n.shape) or ts.ndim != 1:
        raise ValueError("t, good and total must be one-dimensional and of equal length")
    if ts.size and np.any(np.diff(ts) < 0):
        raise ValueError("timestamps must be ascending")
    if np.any(g > n) or np.any(g < 0):
        raise ValueError("good counts must lie between 0 and total")
    if now is None:
        now = float(ts[-1]) if ts.size else 0.0
    cum = _Cumulative(ts, n - g, n)
    budget = slo.error_budget

    window_burn: dict[float, float] = {}
    alerts: list[BurnAlert] = []
    for rule in rules:
        for length in (rule.long_s, rule.short_s):
            if length not in window_burn:
                window_burn[length] = _burn(*cum.window(now, length), budget)
        long_burn, short_burn = window_burn[rule.long_s], window_burn[rule.short_s]
        threshold = rule.threshold(slo)
        if long_burn > threshold and short_burn > threshold:
            share = long_burn * rule.long_s / slo.period_s
            alerts.append(
                BurnAlert(
                    severity=rule.severity,
                    long_s=rule.long_s,
                    short_s=rule.short_s,
                    threshold=threshold,
                    long_burn=long_burn,
                    short_burn=short_burn,
                    reason=(
                        f"burn rate {long_burn:.1f}x over {_fmt(rule.long_s)} and {short_burn:.1f}x over "
                        f"{_fmt(rule.short_s)} exceed {threshold:.3g}x: {share:.1%} of the "
                        f"{_fmt(slo.period_s)} error budget spent in {_fmt(rule.long_s)}"
                    ),
                )
            )

    bad, tot = cum.window(now, slo.period_s)
    ratio = bad / tot if tot > 0 else 0.0
    return BurnReport(
        now=now,
        alerts=tuple(alerts),
        window_burn=window_burn,
        budget_remaining=1.0 - ratio / budget,
        error_ratio=ratio,
    )


def evaluate_bad_fraction(
    slo: SLO,
    t: Sequence[float] | npt.ArrayLike,
    bad_fraction: Sequence[float] | npt.ArrayLike,
    now: float | None = None,
    rules: Sequence[BurnRule] = WORKBOOK_RULES,
    weights: Sequence[float] | npt.ArrayLike | None = None,
) -> BurnReport:
    """The same from a bad-fraction series (e.g. an error ratio per scrape). Without ``weights``
    (request counts per interval) every interval weighs the same, which is exact for even traffic."""
    f = np.asarray(bad_fraction, dtype=np.float64)
    if np.any((f < 0) | (f > 1)):
        raise ValueError("bad fractions must lie in [0, 1]")
    w = np.ones_like(f) if weights is None else np.asarray(weights, dtype=np.float64)
    return evaluate(slo, t, w * (1.0 - f), w, now=now, rules=rules)
