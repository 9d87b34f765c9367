"""Which services to ask the healer about next, for an incident it has already acted on.

At an incident's opening the answer is the root-cause ranking's top ``ranked`` services. Later the
ranking from the opening can mislead: once a remediation has verified and its check still holds, what is
left of the incident is another fault (two faults at once), or the cause behind a mitigation that only
relieved its symptom. :func:`looks` then asks what is *still* different now (:func:`still_broken`: the
last ``now_s`` against the ``baseline_s`` before the opening, :func:`opsmind.rca.ranker.rank_now`) without
the services a verified cure fixed, the roots a mitigation only relieved first; each look is observed over
those services alone (the fixed fault's signals, its events and its remedy's would only mislead the
classifier). When nothing but the cured services differs, nothing is looked at: the anomalies that keep
such an incident going are its recovery's, and asking about the cured service again only proposed the
remedy that had just worked, for its cooldown to refuse it and a person to be told (30 of the chaos
benchmark's 102 escalations).

A cure is stale once its service was changed after it (a ``Deployment``, ``ConfigChanged`` or
``ModelDeployed`` event later than the cure's end): its check may still hold while the change broke
something else - a bad deploy failing requests after a latency fix - so that service is looked at again,
observed from that change (what differs from the quarter hour before it), not from the incident's
opening, whose first fault and cure would otherwise read as the new fault's signals.

A remediation that has been verifying for ``stuck_s`` without its check holding (:func:`held_services`)
may be held up by another fault: its service is left out like a cured one, and so is every service that
calls it (:func:`beside`), while the incident's other broken services are looked at.

Used by the engine's heal stage (columns from the sample store) and the chaos benchmark (columns from the
simulated fleet), so the benchmark measures the engine's own policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import networkx as nx

from opsmind.heal.classify import CHANGE_REASONS, IncidentObservation
from opsmind.heal.fields import SeenEvent
from opsmind.heal.healer import Healer
from opsmind.heal.observation import BASELINE_S, Inventory, entry_service, observe_columns
from opsmind.heal.state import UNFINISHED, RemediationState
from opsmind.rca.frame import F64, MetricFrame
from opsmind.rca.ranker import rank, rank_now
from opsmind.rca.scoring import ONSET_Z

RANKED_SERVICES = 3
"""How far down the root-cause ranking the healer looks for something to do."""
NOW_S = 60.0
""""Now", when asking what is still broken after a fix: the last minute."""
STUCK_S = 120.0
"""A remediation verifying this long without its check holding: the incident's others are looked at."""
PATIENCE_S = 90.0
"""An incident that lasts this long is acted on (the healer's best guess, cautiously) even when nobody is
affected yet: a fault that is still there after a minute and a half is no blip, and waiting for users to
feel it (a leak until the OOM kill, a disk until it is full) only makes it worse."""
STATE_METRICS = ("replicas_desired", "cost_per_hour")
"""What remedies themselves set; a change there is not a sign of a fault."""


def held_services(
    healer: Healer, now: float, stuck_s: float = STUCK_S, incident_id: str | None = None
) -> frozenset[str] | None:
    """The services held by remediations (of ``incident_id``, or any) that have been verifying for
    ``stuck_s`` or more without their check holding, or None when one of them is still acting or has not
    verified for that long (then nothing else should start)."""
    out: set[str] = set()
    for rem in healer.executor.log.in_states([RemediationState.APPROVED, *UNFINISHED]):
        if rem.finished or (incident_id is not None and rem.incident_id != incident_id):
            continue
        if rem.state is not RemediationState.VERIFYING or rem.service is None:
            return None
        since = max((h.at for h in rem.history if h.target is RemediationState.VERIFYING), default=rem.at)
        if now - since < stuck_s:
            return None
        out.add(rem.service)
    return frozenset(out)


def beside(services: Iterable[str], held: Iterable[str], graph: nx.DiGraph | None) -> list[str]:
    """``services`` without those whose symptoms ``held`` services may explain while their fix verifies:
    the held ones and those that call a held service, directly or not (its slowness and errors reach
    them). The ones a held service calls stay: their load may come from it, but a second fault there is
    also what keeps its verification from holding (leaving them out lost such faults on the chaos
    benchmark's two-fault seeds 9005-9024)."""
    held = set(held)
    return [
        s
        for s in services
        if s not in held and not (graph is not None and s in graph and nx.descendants(graph, s) & held)
    ]


def still_broken(
    times: F64,
    cols: Mapping[str, F64],
    opened: float,
    now: float,
    graph: nx.DiGraph | None,
    skip: Iterable[str] = (),
    baseline_s: float = BASELINE_S,
    now_s: float = NOW_S,
) -> list[str]:
    """The services whose metrics of the last ``now_s`` differ significantly (``ONSET_Z``) from the
    ``baseline_s`` before the incident opened, most different first, without ``skip``; what remedies
    themselves set (``STATE_METRICS``) is left out."""
    skipped = set(skip)
    use = {
        c: v
        for c, v in cols.items()
        if c.split("_", 1)[0] not in skipped and not c.split("_", 1)[-1].startswith(STATE_METRICS)
    }
    if not use:
        return []
    try:
        frame = MetricFrame.from_columns(times, use)
        causes = rank_now(frame, (opened - baseline_s, opened), now - now_s, graph)
    except ValueError:  # too little data on one side (RcaInputError is one)
        return []
    return [c.service for c in causes if c.metrics and c.metrics[0].score >= ONSET_Z]


def _changed_after(events: Sequence[SeenEvent]) -> Callable[[str, float], bool]:
    """Whether a service was changed (a deploy, a config or model change) after a time, by ``events``."""

    def changed(service: str, t: float) -> bool:
        return any(e.service == service and e.reason in CHANGE_REASONS and e.at > t for e in events)

    return changed


def _stale_since(
    healer: Healer, incident_id: str, opened: float, events: Sequence[SeenEvent], fixed: frozenset[str]
) -> float:
    """The latest change of a service whose cure went stale (cured but for that change), or ``opened``
    when no cure did."""
    cured, mitigated = healer.fixed(incident_id, opened)
    stale = (cured | mitigated) - fixed
    changes = [e.at for e in events if e.service in stale and e.reason in CHANGE_REASONS]
    return max(opened, *changes) if changes else opened


def looks(
    healer: Healer,
    incident_id: str,
    opened: float,
    now: float,
    times: F64,
    cols: Mapping[str, F64],
    events: Sequence[SeenEvent],
    graph: nx.DiGraph | None,
    inventory: Inventory,
    held: frozenset[str] = frozenset(),
    ranked: int = RANKED_SERVICES,
) -> Iterator[tuple[IncidentObservation, str]]:
    """The observations to ask the healer about, best first, each with the service it is filed under (see
    the module). Nothing is yielded when only ``held`` services' symptoms are left."""
    cured, mitigated = healer.fixed(incident_id, opened, changed_after=_changed_after(events))
    # Observed from the change that made a cure stale: before it the service's first fault and its cure
    # would read as this fault's signals (a latency fix, then a bad deploy failing requests).
    opened = _stale_since(healer, incident_id, opened, events, cured | mitigated)
    cured, mitigated = cured | held, mitigated - held
    broken = still_broken(times, cols, opened, now, graph, skip=cured) if cured or mitigated else []
    if held:
        broken = beside(broken, held, graph)
        if not broken and not mitigated:
            return  # nothing else to look at while they verify
    if not broken and not mitigated:
        if cured:
            return  # the cure verified and nothing else differs from before the incident: nothing to do
        for rank_index in range(ranked):
            yield observe_columns(times, cols, events, opened, now, graph, inventory, rank_index)
        return
    keep = set(broken) | set(mitigated)
    # The entry's traffic stays: the classifier reads the fleet's load from it.
    entry_rate = f"{entry_service(inventory, graph, cols, '')}_request_rate"
    sub = {c: v for c, v in cols.items() if c.split("_", 1)[0] in keep or c == entry_rate}
    kept_events = [e for e in events if e.service not in cured]
    upto = times <= now
    order = [
        c.service
        for c in rank(
            MetricFrame.from_columns(times[upto], {c: v[upto] for c, v in sub.items()}), opened, graph
        )
    ]
    order = sorted(mitigated & set(order), key=order.index) + [s for s in order if s not in mitigated]
    for service in order[:ranked]:
        yield observe_columns(times, sub, kept_events, opened, now, graph, inventory, order.index(service))
