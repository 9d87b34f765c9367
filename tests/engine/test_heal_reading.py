"""The engine's reader for the runbooks' two newer questions, from a real sample store: a series' usual
level before the incident (the median of the quarter hour before it opened) and how many of a service's
pods are not ready (pods that went away do not count)."""

from __future__ import annotations

from pathlib import Path

from opsmind.clock import SimClock
from opsmind.engine.heal_reading import READY_FRESH_S, StoreView
from opsmind.heal.observation import BASELINE_S
from opsmind.heal.runbook import PODS_NOT_READY_METRIC
from opsmind.store import SqliteStore
from opsmind.types import Series, SeriesSamples

OPENED = 100_000.0
P99 = {"service": "personalization", "quantile": "0.99"}


def _ts(start: float, end: float, step: float = 5.0) -> tuple[float, ...]:
    return tuple(start + step * i for i in range(int((end - start) / step)))


def test_the_level_before_is_the_median_of_the_quarter_hour_before_the_incident(tmp_path: Path) -> None:
    with SqliteStore(str(tmp_path / "s.db")) as store:
        before = _ts(OPENED - BASELINE_S - 600, OPENED)
        # An hour-old outlier, a healthy quarter hour at 0.16 and the fault's first samples (0.46) just
        # before the incident opened; then the fault.
        values = tuple(5.0 if t < OPENED - BASELINE_S else 0.46 if t >= OPENED - 30 else 0.16 for t in before)
        store.append([SeriesSamples(Series.of("latency_seconds", P99), before, values)])
        after = _ts(OPENED, OPENED + 300)
        store.append([SeriesSamples(Series.of("latency_seconds", P99), after, (0.46,) * len(after))])
        # A second, slower series that matches too: the largest level, as `read` takes the largest.
        other = {**P99, "zone": "b"}
        store.append([SeriesSamples(Series.of("latency_seconds", other), before, (0.2,) * len(before))])
        view = StoreView(store, store, SimClock(OPENED + 300))
        assert view.read("latency_seconds", P99) == 0.46
        assert view.level_before("latency_seconds", P99, OPENED) == 0.2
        assert view.level_before("latency_seconds", {**P99, "zone": "a"}, OPENED) is None
        store.append(
            [SeriesSamples(Series.of("latency_seconds", {**P99, "zone": "a"}), before, (0.16,) * len(before))]
        )
        # The outlier is outside the window and the faulty tail is too short to move a median.
        assert view.level_before("latency_seconds", {**P99, "zone": "a"}, OPENED) == 0.16
        assert view.level_before("error_ratio", {"service": "personalization"}, OPENED) is None


def test_pods_not_ready_counts_the_current_pods_only(tmp_path: Path) -> None:
    now = OPENED + 200
    with SqliteStore(str(tmp_path / "s.db")) as store:
        view = StoreView(store, store, SimClock(now))
        assert view.read(PODS_NOT_READY_METRIC, {"service": "api"}) is None  # no pod series: cannot tell

        def pod(name: str, end: float, value: float) -> SeriesSamples:
            ts = _ts(OPENED, end + 5)
            return SeriesSamples(
                Series.of("pod_ready", {"service": "api", "pod": name}), ts, (value,) * len(ts)
            )

        store.append([pod("api-1", now, 1.0), pod("api-2", now, 1.0), pod("api-3", now, 0.0)])
        assert view.read(PODS_NOT_READY_METRIC, {"service": "api"}) == 1.0
        # A pod deleted while not ready (a crash-looping one replaced) stops reporting: it is gone, not
        # waited for until the store's staleness (5 minutes) forgets it.
        store.append([pod("api-4", now - READY_FRESH_S - 10, 0.0)])
        assert view.read(PODS_NOT_READY_METRIC, {"service": "api"}) == 1.0
        assert view.read(PODS_NOT_READY_METRIC, {}) is None  # which service's pods: must be said
