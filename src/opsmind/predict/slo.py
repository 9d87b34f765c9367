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

**Windows longer than the data.** The samples cover the time from the start of the first one's interval
to two intervals after the last one (one scrape may be missed), gaps between them included; a window reaching
outside that is *partly covered*. Its burn rate is computed over the covered part only and reported with
how much that is (:class:`WindowBurn`), never as the whole window's: :attr:`BurnReport.window_burn`
holds only fully covered windows. A rule is held to its own definition, a share of the budget spent
within its long window: it fires when the covered part alone already spent that share
(``burn * covered / period > share``, which is ``burn > threshold`` once the window is covered). So 1 h
of data at burn 4 (0.6 % of a 30-day budget) fires no "10 % in 3 days" ticket - Prometheus' ``rate()``
over a short history would, claiming 40 % spent in 3 days - yet a fresh service failing every request
still pages within a minute, because 2 % of its budget really was spent in that minute.

**The budget.** The share of the period's error budget spent is ``burn * covered / period`` (the bad
events seen over the bad events the period allows at the traffic rate seen); remaining is
``1 - spent``; at a burn ``b`` the rest lasts ``remaining * period / b``. :class:`Budget` computes the
three, and everything that reports them (alerts, incidents, the API) reads it. A series that stopped
reporting stops being covered, so its budget does not keep draining at its last burn.

Everything here is pure: counts in, alerts out. Counts are per interval; a sample at time ``t`` counts
the events of the interval ending at ``t``, and a window ``w`` at ``now`` covers ``(now - w, now]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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

    def spent(self, burn: float, covered_s: float) -> float:
        """The share of the period's error budget that ``covered_s`` seconds at ``burn`` spend."""
        return burn * covered_s / self.period_s


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
class WindowBurn:
    """One window at ``now``: the burn rate over the ``covered_s`` seconds of it that the data cover."""

    length_s: float
    covered_s: float
    burn: float

    @property
    def complete(self) -> bool:
        """Whether the data cover the whole window, so that ``burn`` is the window's burn rate."""
        return self.covered_s >= self.length_s

    @property
    def coverage(self) -> float:
        return self.covered_s / self.length_s

    def label(self) -> str:
        """The window as a reader should take its burn: ``1h``, or ``the 40 min of 3d with data``."""
        if self.complete:
            return _fmt(self.length_s)
        return f"the {_span(self.covered_s)} of {_fmt(self.length_s)} with data"


@dataclass(frozen=True, slots=True)
class Budget:
    """The period's error budget at ``now``: ``burn`` over the ``covered_s`` seconds of the period the
    data cover, the share of the budget that ``spent`` and the share ``remaining`` (1 = untouched, 0 =
    spent, negative = overspent)."""

    slo: SLO
    error_ratio: float
    burn: float
    covered_s: float

    @property
    def spent(self) -> float:
        return self.slo.spent(self.burn, self.covered_s)

    @property
    def remaining(self) -> float:
        return 1.0 - self.spent

    def lasts_s(self, burn: float) -> float:
        """How long the remaining budget lasts at ``burn``: 0 when it is spent already, infinite when
        nothing burns. Linear, as the workbook's time to exhaustion: errors ageing out of the rolling
        period later are not credited."""
        if self.remaining <= 0:
            return 0.0
        if burn <= 0:
            return math.inf
        return self.remaining * self.slo.period_s / burn

    def summary(self, burn: float) -> str:
        """Spent, remaining and time to exhaustion at ``burn`` in one sentence, for alerts and incidents."""
        period = _fmt(self.slo.period_s)
        seen = (
            f"the last {period}"
            if self.covered_s >= self.slo.period_s
            else f"the {_span(self.covered_s)} of data"
        )
        if self.remaining <= 0:
            return f"the {period} error budget is spent: {self.spent:.1%} of it in {seen}"
        lasts = self.lasts_s(burn)
        when = "never" if math.isinf(lasts) else f"in {_span(lasts)}"
        return (
            f"{self.spent:.1%} of the {period} error budget spent in {seen}, {self.remaining:.1%} left: "
            f"at {_rate(burn)}x it is spent {when}"
        )


@dataclass(frozen=True, slots=True)
class BurnAlert:
    """A rule firing: the burn of each window over its covered part (``long_covered_s`` of the long one),
    and the share of the period's budget the long window's events spent."""

    severity: str
    long_s: float
    short_s: float
    threshold: float
    long_burn: float
    short_burn: float
    reason: str
    long_covered_s: float
    budget_spent: float

    @property
    def strength(self) -> float:
        """How many times its rule's budget share the long window spent (above 1 when firing): what
        ranks alerts of different rules."""
        return self.long_burn * (self.long_covered_s / self.long_s) / self.threshold


@dataclass(frozen=True, slots=True)
class BurnReport:
    """The alerts firing at ``now``, every window looked at, and the period's error budget.

    ``windows`` maps a window length in seconds to its :class:`WindowBurn`; ``budget`` is the period's
    budget, from which the spent, remaining and time-to-exhaustion figures are all read.
    """

    now: float
    alerts: tuple[BurnAlert, ...]
    windows: Mapping[float, WindowBurn]
    budget: Budget

    @property
    def window_burn(self) -> dict[float, float]:
        """The burn rate of every window the data fully cover; a partly covered one is in ``windows``."""
        return {length: w.burn for length, w in self.windows.items() if w.complete}

    @property
    def budget_remaining(self) -> float:
        return self.budget.remaining

    @property
    def error_ratio(self) -> float:
        return self.budget.error_ratio

    @property
    def severity(self) -> str | None:
        """The most severe alert firing, or ``None``."""
        severities = {a.severity for a in self.alerts}
        for s in ("page", "ticket"):
            if s in severities:
                return s
        return next(iter(sorted(severities)), None)

    @property
    def top_alert(self) -> BurnAlert | None:
        """The firing alert that spent the most of its rule's share: the one an incident reports."""
        return max(self.alerts, key=lambda a: a.strength, default=None)

    @property
    def exhausted_in_s(self) -> float | None:
        """When the budget runs out at the top alert's long-window burn (0: spent already), the figure
        the incident's title and timeline state; ``None`` without an alert: no rule says which burn."""
        top = self.top_alert
        return None if top is None else self.budget.lasts_s(top.long_burn)


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
    """A configured length (a rule's window, the period): ``3d``, ``6h``, ``5m``."""
    if seconds % DAY == 0:
        return f"{seconds / DAY:g}d"
    if seconds % HOUR == 0:
        return f"{seconds / HOUR:g}h"
    return f"{seconds / 60:g}m"


def _span(seconds: float) -> str:
    """A measured duration (data covered, time to exhaustion), rounded to what a reader needs."""
    if seconds < 2 * HOUR:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / DAY:.1f} days"


def _rate(burn: float) -> str:
    # Three significant digits, without the exponent ".3g" gives a burn of 1,000 ("1e+03").
    return f"{burn:.0f}" if burn >= 100 else f"{burn:.3g}"


def _intervals(ts: FloatArray) -> FloatArray:
    """The length of the interval each sample stands for, to weigh it: the shorter of its gaps to the
    samples either side (one side for the first and last; 0 for a lone sample). The shorter, so that the
    first sample after a scrape outage does not weigh as the whole outage, while an hourly rollup next to
    hourly rollups still weighs an hour."""
    if ts.size < 2:
        return np.zeros(ts.size)
    gaps = np.diff(ts)
    return np.minimum(np.concatenate(([gaps[0]], gaps)), np.concatenate((gaps, [gaps[-1]])))


def _covered_span(ts: FloatArray) -> tuple[float, float]:
    """The time the samples cover: from the start of the first one's interval (the gap after it taken as
    its interval: nothing says more) to two intervals after the last one, so that a tick between two
    scrapes, or one scrape missed, does not make every window partly covered; a lone sample covers none."""
    if ts.size < 2:
        return (float(ts[0]), float(ts[0])) if ts.size else (0.0, 0.0)
    return float(2 * ts[0] - ts[1]), float(ts[-1] + 2 * (ts[-1] - ts[-2]))


def evaluate(
    slo: SLO,
    t: Sequence[float] | npt.ArrayLike,
    good: Sequence[float] | npt.ArrayLike,
    total: Sequence[float] | npt.ArrayLike,
    now: float | None = None,
    rules: Sequence[BurnRule] = WORKBOOK_RULES,
) -> BurnReport:
    """Burn-rate alerts at ``now`` (default: the last timestamp) from per-interval good/total counts.

    Timestamps must be ascending. A window reaching outside the time the samples cover is partly
    covered and judged as the module says.
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
    since, until = _covered_span(ts)
    cum = _Cumulative(ts, n - g, n)
    budget = slo.error_budget

    def window(length: float) -> WindowBurn:
        covered = max(0.0, min(now, until) - max(now - length, since))
        return WindowBurn(length, covered, _burn(*cum.window(now, length), budget))

    windows: dict[float, WindowBurn] = {}
    alerts: list[BurnAlert] = []
    for rule in rules:
        for length in (rule.long_s, rule.short_s):
            if length not in windows:
                windows[length] = window(length)
        long, short = windows[rule.long_s], windows[rule.short_s]
        threshold = rule.threshold(slo)
        # The rule's budget share, spent by the covered part alone: exactly ``burn > threshold`` once
        # the window is covered (the factor is then 1.0), and no claim about time there is no data for.
        if long.burn * long.coverage > threshold and short.burn > threshold:
            spent = slo.spent(long.burn, long.covered_s)
            alerts.append(
                BurnAlert(
                    severity=rule.severity,
                    long_s=rule.long_s,
                    short_s=rule.short_s,
                    threshold=threshold,
                    long_burn=long.burn,
                    short_burn=short.burn,
                    reason=(
                        f"burn rate {long.burn:.1f}x over {long.label()} and {short.burn:.1f}x over "
                        f"{short.label()} exceed {threshold:.3g}x: {spent:.1%} of the "
                        f"{_fmt(slo.period_s)} error budget spent in {_covered(long)}"
                    ),
                    long_covered_s=long.covered_s,
                    budget_spent=spent,
                )
            )

    period = window(slo.period_s)
    bad, tot = cum.window(now, slo.period_s)
    return BurnReport(
        now=now,
        alerts=tuple(alerts),
        windows=windows,
        budget=Budget(slo, bad / tot if tot > 0 else 0.0, period.burn, period.covered_s),
    )


def _covered(w: WindowBurn) -> str:
    return _fmt(w.length_s) if w.complete else _span(w.covered_s)


def evaluate_bad_fraction(
    slo: SLO,
    t: Sequence[float] | npt.ArrayLike,
    bad_fraction: Sequence[float] | npt.ArrayLike,
    now: float | None = None,
    rules: Sequence[BurnRule] = WORKBOOK_RULES,
    weights: Sequence[float] | npt.ArrayLike | None = None,
) -> BurnReport:
    """The same from a bad-fraction series (e.g. an error ratio per scrape). Without ``weights``
    (request counts per interval) each sample weighs the time it stands for, which is exact for even
    traffic - and keeps an hourly rollup from weighing as little as one raw scrape when a long range
    mixes resolutions."""
    ts = np.asarray(t, dtype=np.float64)
    f = np.asarray(bad_fraction, dtype=np.float64)
    if np.any((f < 0) | (f > 1)):
        raise ValueError("bad fractions must lie in [0, 1]")
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
    elif ts.shape == f.shape and ts.size > 1:
        w = _intervals(ts)
    else:  # a lone sample's interval is unknown, but its ratio is still a ratio (evaluate checks shapes)
        w = np.ones_like(f)
    return evaluate(slo, ts, w * (1.0 - f), w, now=now, rules=rules)
