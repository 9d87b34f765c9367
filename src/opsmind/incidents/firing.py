"""External alerts still firing, which hold their incidents open.

Alertmanager re-sends a firing alert every ``repeat_interval`` (4 h by default) with the same labels and
``startsAt``, so every repeat is the anomaly already counted and refreshes nothing in its incident: left
to the quiet rule, an incident opened by an alert would resolve ``resolve_after_s`` after the alert
started while Alertmanager still shows it firing. This keeps, per firing alert (its anomaly id), when it
was last notified as firing; a resolved notification of the same alert (same labels and ``startsAt``,
so the same id) forgets it. The incident stage asks :meth:`FiringAlerts.holding` before it lets a quiet
incident resolve (the ``hold`` of :meth:`opsmind.incidents.correlator.Correlator.tick`).

An alert counts as firing only while its last firing notification is younger than ``hold_s``
(``incidents.alert_firing_hold_s``), so an Alertmanager that died, or stopped sending to OpsMind, cannot
hold an incident open for ever; ``hold_s`` 0 turns the hold off.

The latest notification of an alert wins, whatever came before: Alertmanager's webhook carries no time
to order a late firing notification against a resolved one, and an alert Alertmanager timed out as
resolved (``resolve_timeout``) fires again under the same ``startsAt`` once its sender reaches it again.

The state is read in memory, in the engine's one process (the HTTP route writes it, the incident
stage reads it from its worker thread, hence the lock), and kept in the store as one
:class:`~opsmind.types.FiringAlert` record per alert, rewritten by each notification: a restarted engine
loads the alerts notified firing within ``hold_s`` (:meth:`FiringAlerts.restore`) before its stages
start. Without them a restored incident whose alert started more than ``resolve_after_s`` ago resolved
at the first check, and the alert's next repeat, the anomaly already seen, could not reopen it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opsmind.incidents.grouping import TIMELINE_LIMIT
from opsmind.types import Anomaly, FiringAlert, Incident


class FiringAlerts:
    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, str]] = {}  # anomaly id -> (last notified firing, series key)

    def firing(self, alerts: Iterable[Anomaly], now: float) -> None:
        """These alerts were notified as firing at ``now``."""
        if self.hold_s <= 0:
            return
        with self._lock:
            for a in alerts:
                self._last[a.id] = (now, a.series)
            self._forget_stale(now)

    def restore(self, records: Iterable[FiringAlert], now: float) -> int:
        """Take back the alerts the store says were notified firing (after a restart); returns how many
        still count (notified within ``hold_s``)."""
        if self.hold_s <= 0:
            return 0
        with self._lock:
            for r in records:
                if r.status == "firing" and r.at > self._last.get(r.id, (float("-inf"), ""))[0]:
                    self._last[r.id] = (r.at, r.series)
            self._forget_stale(now)
            return len(self._last)

    def resolved(self, ids: Iterable[str]) -> None:
        """The alerts with these anomaly ids were notified as resolved."""
        with self._lock:
            for key in ids:
                self._last.pop(key, None)

    def holding(self, incident: Incident, now: float) -> str | None:
        """Why ``incident`` must stay open: an alert in it that still fires; None when none does."""
        with self._lock:
            self._forget_stale(now)
            if not self._last:
                return None
            ids = {e["anomaly"] for e in incident.timeline if isinstance(e.get("anomaly"), str)}
            # The timeline stops listing anomalies at TIMELINE_LIMIT entries: past it an alert is known by
            # its series, which is in the incident's series for as long as the incident lasts.
            truncated = len(incident.timeline) >= TIMELINE_LIMIT
            found = sorted(
                (now - at, series)
                for key, (at, series) in self._last.items()
                if key in ids or (truncated and series in incident.series)
            )
        if not found:
            return None
        age, series = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        return f"alert {series}{more} still firing in Alertmanager, last notified {age:.0f}s ago"

    def _forget_stale(self, now: float) -> None:
        # Stale entries can never hold again (only a new firing notification refreshes one), so dropping
        # them here keeps the map to the alerts firing within the last hold_s.
        stale = [key for key, (at, _) in self._last.items() if now - at >= self.hold_s]
        for key in stale:
            del self._last[key]
