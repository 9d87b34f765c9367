"""The incident correlator: the state machine behind the incident stage, free of I/O.

It turns anomalies into incidents in time order and says what changed, with a reason:

* **fingerprint and deduplicate**: an anomaly is known by its id (series, time, detector); a redelivered
  one changes nothing;
* **group** by service, by topology and by time: an anomaly on the service an incident is filed under
  joins it while it is active; on another of its services, or a service that calls or is called by one
  (the dependency graph), it joins within the group window of that service's last anomaly in it
  (:func:`opsmind.incidents.grouping.joins`), so an incident kept alive by one service does not swallow
  a later, unrelated fault on another;
* **open** only when a service's anomalies repeat, like the ``for:`` clause of an alerting rule: a *run*
  of ``min_anomalies`` on consecutive scrapes (the scrape interval is learned from the anomalies,
  :mod:`opsmind.incidents.cadence`), at more than one point in time; stray points before the run are
  not taken in, and one scrape where many series jump at once pages no one. An Alertmanager alert already
  held for its rule's ``for:``, so it opens an incident on its own; its repeated notifications are the
  same anomaly and change nothing;
* with a dependency graph, a run that **starts together** with an active incident (its first anomaly
  within a scrape or two of the incident's first) joins it instead of opening another: trouble that
  starts on several services at one scrape has one cause, whether or not the graph links them;
* **reopen** a recently resolved incident when the service it is filed under relapses on its series
  within ``reopen_window_s``, instead of opening a new one; an incident reopened ``flap_threshold``
  times is **flapping**;
* **auto-resolve** an incident once its signals were healthy for ``resolve_after_s``, unless the tick's
  ``hold`` gives a reason to keep it open (the stage's: an objective still breached, or an Alertmanager
  alert in it still firing, since its repeats refresh nothing here);
* operators (or remediations) move incidents along the lifecycle with :meth:`Correlator.transition`;
* **predictions** (anomalies of type ``prediction``: a breach expected minutes ahead) are incidents of
  their own kind: a warning already passed its probability threshold, so it opens an incident at once;
  later warnings of the same kind on the service join it (refreshing its lead time), and predictions and
  observed anomalies never join each other's incidents, so a forecast cannot hide a real fault.

The stage persists and publishes what this returns; the noise benchmark drives the same object over
simulated faults, so what it measures is the code that runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import networkx as nx

from opsmind.bus.dedup import RecentKeys
from opsmind.config import IncidentSettings
from opsmind.incidents import grouping
from opsmind.incidents.cadence import Cadence
from opsmind.incidents.feedback import NoiseClassifier, decide, priority_multiplier
from opsmind.incidents.priority import Prioritiser
from opsmind.incidents.topology import Topology
from opsmind.ingest.alertmanager import DETECTOR as ALERTMANAGER
from opsmind.types import Anomaly, Incident, IncidentStatus

# Detectors whose anomalies are alerts that already held for their rule's ``for:`` duration (Alertmanager's
# webhook): each is trouble that persisted, not one scrape's point.
HELD_DETECTORS = frozenset({ALERTMANAGER})

ChangeKind = Literal["opened", "updated", "resolved", "reopened", "transitioned"]


@dataclass(frozen=True, slots=True)
class Change:
    event: ChangeKind
    incident: Incident
    reason: str
    anomalies: tuple[Anomaly, ...] = ()  # the anomalies this change added to the incident


class Correlator:
    def __init__(
        self,
        settings: IncidentSettings,
        graph: Topology | nx.DiGraph | None = None,
        noise: NoiseClassifier | None = None,
    ) -> None:
        self.settings = settings
        self.noise = noise
        self.topology = Topology.of(graph)  # read live: registrations change it
        self.prioritiser = Prioritiser(self.topology, settings.criticality)
        self.active: dict[str, Incident] = {}  # by id
        self.resolved: dict[str, Incident] = {}  # recently resolved, by id, for reopening
        self._pending: dict[str, list[Anomaly]] = {}  # by service: anomalies not yet in an incident
        self._seen = RecentKeys()
        self._neighbours: dict[str, frozenset[str]] = {}
        self.cadence = Cadence()
        # incident id -> service -> time of that service's last (first) anomaly in it, for the active
        # incidents (one restored after a restart has none and falls back to its last anomaly (opening))
        self._last_seen: dict[str, dict[str, float]] = {}
        self._first_seen: dict[str, dict[str, float]] = {}
        self._callees: dict[str, frozenset[str]] = {}
        self._graph_version = self.topology.version  # of the graph _neighbours and _callees came from

    @property
    def graph(self) -> nx.DiGraph | None:
        """The call graph now; the caches derived from an older one are dropped."""
        if self._graph_version != self.topology.version:
            self._neighbours.clear()
            self._callees.clear()
            self._graph_version = self.topology.version
        return self.topology.graph

    def restore(self, incidents: Iterable[Incident]) -> None:
        """Take back the incidents that were active when the engine stopped, and the ids of the anomalies
        their timelines name as seen: Alertmanager keeps re-sending a firing alert as the same anomaly,
        and a repeat that arrives after a restart must not count in its incident a second time."""
        for inc in incidents:
            if inc.status.active:
                self.active[inc.id] = inc
                for entry in inc.timeline:
                    if isinstance(seen := entry.get("anomaly"), str):
                        self._seen.add(seen)

    def neighbours(self, service: str) -> frozenset[str]:
        """Services that call ``service`` or that it calls (empty without a graph)."""
        g = self.graph  # first: a changed graph drops the cache
        got = self._neighbours.get(service)
        if got is None:
            got = (
                frozenset(g.predecessors(service)) | frozenset(g.successors(service))
                if g is not None and service in g
                else frozenset()
            )
            self._neighbours[service] = got
        return got

    def callees(self, service: str) -> frozenset[str]:
        """Services that ``service`` calls (empty without a graph)."""
        g = self.graph  # first: a changed graph drops the cache
        got = self._callees.get(service)
        if got is None:
            got = frozenset(g.successors(service)) if g is not None and service in g else frozenset()
            self._callees[service] = got
        return got

    def add(self, anomaly: Anomaly, now: float) -> list[Change]:
        if anomaly.id in self._seen:
            return []
        self._seen.add(anomaly.id)
        if anomaly.type == "prediction":
            return [self._predicted(anomaly, now)]
        window = self.settings.group_window_s
        svc = grouping.service_of(anomaly)
        self.cadence.observe(anomaly, svc)
        near = self.neighbours(svc)
        candidates = [
            (inc, reason)
            for inc in self.active.values()
            if inc.type == "anomaly"
            for ok, reason in [
                grouping.joins(
                    inc,
                    anomaly,
                    window,
                    near,
                    self._last_seen.get(inc.id),
                    self.callees(svc),
                    self._first_seen.get(inc.id),
                )
            ]
            if ok
        ]
        if candidates:
            # The incident most recently active wins: it is the one this anomaly most likely continues.
            inc, reason = max(candidates, key=lambda c: c[0].last_anomaly_at)
            inc = self._prioritise(grouping.add_anomaly(inc, anomaly, now))
            return [self._store("updated", inc, reason, (anomaly,))]
        pending = sorted([*self._pending.get(svc, []), anomaly], key=lambda a: a.ts)
        kept = grouping.within_window(pending, window)
        run_gap = self.cadence.run_gap(svc)
        # An external alert already held for its rule's ``for:`` duration: it needs no run of scrapes, nor
        # company (Alertmanager's repeats of it are one anomaly, so it would wait for a second forever).
        held = any(a.detector in HELD_DETECTORS for a in kept)
        recent = kept if held else grouping.run_of(kept, run_gap)
        enough, why = grouping.pending_enough(recent, self.settings.min_anomalies, window, held)
        if not enough:
            self._pending[svc] = kept
            return []
        self._pending.pop(svc, None)
        relapsed = self._relapsed(recent)
        if relapsed is not None:
            inc = grouping.reopen(relapsed, recent[0], now, self.settings.flap_threshold)
            for a in recent[1:]:
                inc = grouping.add_anomaly(inc, a, now)
            self.resolved.pop(inc.id, None)
            return [self._store("reopened", self._prioritise(inc), f"relapse: {why}", tuple(recent))]
        together = self._started_together(recent[0], run_gap)
        if together is not None:
            inc = together
            for a in recent:
                inc = grouping.add_anomaly(inc, a, now)
            why = f"{why}, starting within {run_gap:.0f}s of its first anomaly: one cause, likely"
            return [self._store("updated", self._prioritise(inc), why, tuple(recent))]
        inc = grouping.open_incident(recent[0], now)
        for a in recent[1:]:
            inc = grouping.add_anomaly(inc, a, now)
        return [self._store("opened", self._prioritise(inc), why, tuple(recent))]

    def _started_together(self, first: Anomaly, run_gap: float) -> Incident | None:
        """The active incident whose first anomaly came within ``run_gap`` (a scrape or two) of ``first``,
        the start of a run that would open an incident of its own. Trouble that starts on several services
        at one scrape has one cause far more often than two causes that happened to start together -
        traffic through the whole fleet, or a shared dependency the graph does not show - so it is one
        incident, even where the dependency graph links nothing. Without a graph the correlator groups by
        service alone (as Alertmanager's ``group_by: [service]``), so this needs one."""
        if self.graph is None:
            return None
        found = [
            inc
            for inc in self.active.values()
            if inc.type == "anomaly" and abs(inc.opened_at - first.ts) <= run_gap
        ]
        return max(found, key=lambda i: i.last_anomaly_at) if found else None

    def _predicted(self, anomaly: Anomaly, now: float) -> Change:
        """A prediction joins the active prediction incident of its service and warning kind, or opens one."""
        svc, warning = grouping.service_of(anomaly), anomaly.labels.get("warning", "")
        for inc in self.active.values():
            if inc.type == "prediction" and inc.service == svc and inc.labels.get("warning", "") == warning:
                updated = self._prioritise(grouping.add_anomaly(inc, anomaly, now))
                why = f"{warning or 'breach'} still predicted on {svc}"
                return self._store("updated", updated, why, (anomaly,))
        inc = self._prioritise(grouping.open_incident(anomaly, now))
        lead = anomaly.labels.get("lead_s", "?")
        return self._store("opened", inc, f"{warning or 'breach'} predicted {lead}s ahead", (anomaly,))

    def _relapsed(self, anomalies: list[Anomaly]) -> Incident | None:
        """The most recent incident, resolved within the reopen window, filed under these anomalies'
        service and that had one of their series: a relapse is the same signal of the same service going
        wrong again, not just any trouble nearby - nor a service that was only caught up in the incident
        (a caller slowed by the database that failed) breaking later for a reason of its own."""
        series = {a.series for a in anomalies}
        svc = grouping.service_of(anomalies[0])
        ts = anomalies[0].ts
        found = [
            inc
            for inc in self.resolved.values()
            if inc.resolved_at is not None
            and ts - inc.resolved_at <= self.settings.reopen_window_s
            and inc.service == svc
            and not series.isdisjoint(inc.series)
        ]
        return max(found, key=lambda i: i.resolved_at or 0.0) if found else None

    def tick(self, now: float, hold: Callable[[Incident], str | None] | None = None) -> list[Change]:
        """Auto-resolve what has been quiet long enough, unless ``hold`` gives a reason to keep it open
        (an objective still breached, :mod:`opsmind.incidents.breach`): a hold is noted on the
        incident's timeline when it starts (an ``updated`` change) and asked again on every tick."""
        out = []
        for inc in list(self.active.values()):
            done, reason = grouping.should_resolve(inc, now, self.settings.resolve_after_s)
            if not done:
                continue
            why = hold(inc) if hold is not None else None
            if why is None:
                out.append(self._store("resolved", grouping.resolve(inc, now, reason), reason))
            elif not grouping.held_since_last_anomaly(inc):
                held = grouping.note(inc, now, grouping.HELD_OPEN, reason=why)
                out.append(self._store("updated", held, f"held open: {why}"))
        horizon = now - self.settings.reopen_window_s
        for key, inc in list(self.resolved.items()):
            if (inc.resolved_at or 0.0) < horizon:
                del self.resolved[key]
        return out

    def transition(self, incident_id: str, to: IncidentStatus, now: float, by: str, reason: str) -> Change:
        """Move an active incident (or reopen a recently resolved one) by hand. KeyError when the incident
        is not known here; ValueError when the move is not allowed."""
        inc = self.active.get(incident_id) or self.resolved.get(incident_id)
        if inc is None:
            raise KeyError(incident_id)
        moved = grouping.transition(inc, to, now, by, reason)
        if to is IncidentStatus.OPEN:
            self.resolved.pop(incident_id, None)
        return self._store("transitioned", moved, reason)

    def replace(self, incident: Incident) -> None:
        """Keep a changed copy (root causes added by the stage, say) as the current state."""
        if incident.status.active:
            self.active[incident.id] = incident

    def _prioritise(self, incident: Incident) -> Incident:
        """Score the incident's priority; when operators' feedback says incidents like it are noise
        (:mod:`opsmind.incidents.feedback`), multiply it by 1 - p and say why. Suppressing one is the
        notify stage's business (a muter), so it stays visible here."""
        score, explanation = self.prioritiser.score(incident)
        if self.noise is not None and self.noise.ready:
            p, why = self.noise.noise_probability(incident)
            action, _ = decide(p)
            if action != "keep":
                factor = priority_multiplier(action, p)
                score = round(score * factor, 1)
                explanation["noise"] = {
                    "probability": round(p, 3),
                    "action": action,
                    "multiplier": round(factor, 3),
                    "why": why,
                }
        return incident.model_copy(update={"priority": score, "priority_explanation": explanation})

    def _store(
        self, event: ChangeKind, incident: Incident, reason: str, added: tuple[Anomaly, ...] = ()
    ) -> Change:
        if incident.status.active:
            self.active[incident.id] = incident
            self.resolved.pop(incident.id, None)
            seen = self._last_seen.setdefault(incident.id, {})
            began = self._first_seen.setdefault(incident.id, {})
            for a in added:
                svc = grouping.service_of(a)
                seen[svc] = max(seen.get(svc, a.ts), a.ts)
                began[svc] = min(began.get(svc, a.ts), a.ts)
        else:
            self.active.pop(incident.id, None)
            self.resolved[incident.id] = incident
            self._last_seen.pop(incident.id, None)
            self._first_seen.pop(incident.id, None)
        return Change(event, incident, reason, added)
