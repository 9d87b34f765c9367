"""How often each service's series are sampled, learned from the anomalies the correlator sees.

The correlator never sees the quiet rounds, only anomalies; but a series that is anomalous at two
consecutive scrapes shows its scrape interval as the gap between them, and the shortest such gap seen is
the interval (a longer gap is a multiple of it: scrapes in between were normal). Knowing it, the correlator
can tell a *run* of anomalies on consecutive scrapes - trouble that persists, like an alerting rule's
``for:`` clause - from stray points minutes apart, and anomalies that started on the same scrape from ones
that did not, whatever the scrape interval of the deployment is (5 s in the simulator, 15-60 s in
Prometheus setups).

A shortest gap is trusted once it was seen twice (two stray points far apart are not a scrape interval):
a service's own, else the fleet's (most fleets scrape everything alike); until then the shortest gap seen
stands in, but no longer than ``UNLEARNED_INTERVAL_S``. A service scraped less often than the rest of the
fleet so needs one more anomalous scrape than the others before its interval is its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from opsmind.types import Anomaly

# Gaps below this are not scrape intervals (two detectors, or jitter between two sources of one series).
MIN_INTERVAL_S = 1.0
# Assumed until something shorter is seen: the scrape interval OpsMind itself uses unless told otherwise
# (ScrapeTarget.interval_s), and a common Prometheus setting.
UNLEARNED_INTERVAL_S = 15.0
# A run may skip one scrape: anomalies at most this many intervals apart are consecutive.
RUN_INTERVALS = 2
# Two gaps within this ratio of each other are the same interval (timestamps jitter in real setups).
SAME_GAP_RATIO = 1.25


@dataclass
class _Shortest:
    gap: float
    seen: int = 1


class Cadence:
    """The sampling interval per service, from the gaps between anomalies of each of its series."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}  # series -> time of its latest anomaly
        self._shortest: dict[str, _Shortest] = {}  # service -> shortest gap seen, and how often
        self._fleet: _Shortest | None = None  # the shortest gap seen on any service, and how often

    def observe(self, anomaly: Anomaly, service: str) -> None:
        prev = self._last.get(anomaly.series)
        if prev is None or anomaly.ts > prev:
            self._last[anomaly.series] = anomaly.ts
        if prev is None:
            return
        gap = abs(anomaly.ts - prev)
        if gap < MIN_INTERVAL_S:
            return
        self._shortest[service] = _shorter(self._shortest.get(service), gap)
        self._fleet = _shorter(self._fleet, gap)

    def interval(self, service: str) -> float:
        """The service's sampling interval as learned so far: its own shortest gap once seen twice, else
        the fleet's once seen twice, else the shortest of the gaps seen and ``UNLEARNED_INTERVAL_S``."""
        own, fleet = self._shortest.get(service), self._fleet
        for learned in (own, fleet):
            if learned is not None and learned.seen >= 2:
                return learned.gap
        return min([UNLEARNED_INTERVAL_S, *(x.gap for x in (own, fleet) if x is not None)])

    def run_gap(self, service: str) -> float:
        """The longest gap between two anomalies of a run on ``service``: ``RUN_INTERVALS`` intervals."""
        return RUN_INTERVALS * self.interval(service)


def _shorter(got: _Shortest | None, gap: float) -> _Shortest:
    """The shortest gap after seeing ``gap``: a clearly shorter one starts over, about the same one counts
    once more, a longer one (a multiple: scrapes in between were normal) changes nothing."""
    if got is None or gap * SAME_GAP_RATIO < got.gap:
        return _Shortest(gap)
    if gap <= got.gap * SAME_GAP_RATIO:
        got.gap = min(got.gap, gap)
        got.seen += 1
    return got
