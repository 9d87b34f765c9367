"""Safety guards: may this remediation change its service now?

Each guard is a small pure predicate returning ``(allowed, reason)``, in the spirit of a ``Muter``: it
sees the remediation, the service's replica count, the remediations that could conflict with it, and the
time, and holds no state. :class:`Guards` runs them in a fixed order and returns the first refusal,
whose reason becomes visible status and the audit log's "why". Every refusal asks for escalation: a
person is told that OpsMind wanted to act and did not (the notifier is wired by the engine), once per
incident and guard (the healer spares them the same refusal of its next try).

The order puts the hard limits first, so that nobody is asked to approve something a limit would
refuse anyway: the automation switch, a person's pause of the service, one remediation per service, the
blast radius, the cooldowns, the rate limits, and approval last. A remediation a person ran by hand
(``requested_by``) passes the approval guard: their request is the approval; every other guard holds.

Approval is recorded with :func:`approve` and :func:`reject`: who and why become a transition of the
remediation and an audit entry. A dry run (dry-run mode, or one a person asked for) is held by neither
approval nor another remediation on its service (:data:`DRY_RUN_PASSES`): it changes nothing, so there is
nothing to approve and nothing to collide with; the verdict still says what a live run would have met.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from opsmind.heal.state import InvalidTransition, Remediation, RemediationLog, RemediationState, audit

GuardResult = tuple[bool, str]


class AutomationMode(StrEnum):
    """The global switch: ``off`` refuses everything, ``dry_run`` records what would be done, ``on`` acts."""

    OFF = "off"
    DRY_RUN = "dry_run"
    ON = "on"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most ``max_count`` remediations started within any ``window_s`` seconds."""

    max_count: int
    window_s: float

    def __post_init__(self) -> None:
        if self.max_count < 0 or self.window_s <= 0:
            raise ValueError(f"a rate limit needs max_count >= 0 and window_s > 0, got {self}")


@dataclass(frozen=True, slots=True)
class Pause:
    """A person's hold on one service's healing: no remediation starts there until it is lifted."""

    who: str
    why: str
    at: float

    def as_json(self) -> dict[str, str | float]:
        return {"who": self.who, "why": self.why, "at": self.at}


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The limits; the defaults are cautious (dry run, approval above risk 1)."""

    mode: AutomationMode = AutomationMode.DRY_RUN
    approval_above_risk: int = 1
    cooldown_service_s: float = 300.0
    cooldown_runbook_s: float = 900.0
    rate_service: RateLimit = field(default_factory=lambda: RateLimit(3, 3600.0))
    rate_global: RateLimit = field(default_factory=lambda: RateLimit(20, 3600.0))
    blast_radius_pct: float = 50.0
    blast_radius_min_replicas: int = 1
    """Always allowed to touch this many replicas, so a one-replica service can be restarted; 0: strict."""
    paused: Mapping[str, Pause] = field(default_factory=dict)
    """Services whose healing a person paused (service -> who, why, when)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.blast_radius_pct <= 100.0:
            raise ValueError(f"blast_radius_pct must be within 0..100, got {self.blast_radius_pct}")
        if self.cooldown_service_s < 0 or self.cooldown_runbook_s < 0:
            raise ValueError("cooldowns cannot be negative")

    @property
    def longest_window_s(self) -> float:
        """How far back the guards look: the store query for ``recent`` must cover this."""
        return max(
            self.cooldown_service_s,
            self.cooldown_runbook_s,
            self.rate_service.window_s,
            self.rate_global.window_s,
        )


# -- the predicates ----------------------------------------------------------------------------------------


def automation_switch(mode: AutomationMode) -> GuardResult:
    if mode is AutomationMode.OFF:
        return False, "automation is switched off"
    return True, f"automation is {mode.value}"


def service_paused(rem: Remediation, paused: Mapping[str, Pause]) -> GuardResult:
    """Nothing starts on a service a person paused (``PUT /api/v1/automation/services/{service}``)."""
    hold = paused.get(rem.service or "")
    if hold is not None:
        return False, f"{rem.service} paused by {hold.who}: {hold.why}"
    return True, f"{rem.service} is not paused"


def one_at_a_time(rem: Remediation, active: Sequence[Remediation]) -> GuardResult:
    """At most one remediation changes a service at a time."""
    busy = [r for r in active if r.id != rem.id and r.service == rem.service and r.holds_service]
    if busy:
        other = busy[0]
        return False, (
            f"{rem.service} already has remediation {other.id} ({other.runbook}) {other.state.value}"
        )
    return True, f"no other remediation is running on {rem.service}"


def blast_radius(rem: Remediation, replicas: int | None, max_pct: float, min_replicas: int) -> GuardResult:
    """At most ``max_pct`` % of the service's replicas touched at once (but ``min_replicas`` always)."""
    touched = rem.touched_replicas
    if touched <= min_replicas:
        return True, f"touches {touched} replica(s), within the minimum of {min_replicas}"
    if replicas is None or replicas <= 0:
        return False, f"touches {touched} replicas of {rem.service} whose replica count is unknown"
    pct = 100.0 * touched / replicas
    if pct > max_pct:
        return False, f"touches {touched}/{replicas} replicas ({pct:.0f}%) > the {max_pct:.0f}% cap"
    return True, f"touches {touched}/{replicas} replicas ({pct:.0f}%) <= the {max_pct:.0f}% cap"


def _last_activity(rem: Remediation, now: float) -> float | None:
    # One that ended without sending a step (its precheck said no) changed nothing: nothing to cool from.
    if rem.started_at is None or (rem.finished and not rem.sent_keys):
        return None
    return rem.ended_at if rem.ended_at is not None else now


def cooldown(
    rem: Remediation, recent: Sequence[Remediation], now: float, seconds: float, *, same_runbook: bool
) -> GuardResult:
    """No new remediation on a service (or with the same runbook on it) within ``seconds`` of the end of
    the last one that started and sent a step. A dry run is cooled down by dry runs too, so a dry run
    shows what the live system would do; a live remediation only by live ones, which changed something:
    a person's dry run (nothing changed) must not hold up the real remediation after it."""
    scope = f"{rem.service}/{rem.runbook}" if same_runbook else rem.service
    last: float | None = None
    for other in recent:
        if other.id == rem.id or other.service != rem.service or _dry_run_beside_live(other, rem):
            continue
        if same_runbook and other.runbook != rem.runbook:
            continue
        at = _last_activity(other, now)
        if at is not None and (last is None or at > last):
            last = at
    if last is not None and now - last < seconds:
        return False, f"{scope} is cooling down: last remediation {now - last:.0f}s ago < {seconds:.0f}s"
    return True, f"{scope} is not cooling down"


def _dry_run_beside_live(other: Remediation, rem: Remediation) -> bool:
    """Whether ``other`` is a dry run and ``rem`` is not: it changed nothing ``rem``'s limits guard."""
    return other.dry_run and not rem.dry_run


def rate_limit(
    rem: Remediation, recent: Sequence[Remediation], now: float, limit: RateLimit, *, per_service: bool
) -> GuardResult:
    """At most ``limit.max_count`` remediations started in the last ``limit.window_s`` seconds. One that
    ended without sending a step (its precheck said no) changed nothing and does not count, as it does
    not for the cooldowns: the limit is on what automation did to a service, not on what it looked at; for
    the same reason a dry run counts toward a dry run's limit only."""
    scope = rem.service if per_service else "all services"
    started = [
        r
        for r in recent
        if r.id != rem.id
        and not _dry_run_beside_live(r, rem)
        and r.started_at is not None
        and not (r.finished and not r.sent_keys)
        and now - limit.window_s < r.started_at <= now
        and (not per_service or r.service == rem.service)
    ]
    if len(started) >= limit.max_count:
        return False, (
            f"rate limit for {scope}: {len(started)} started in the last {limit.window_s:.0f}s "
            f">= {limit.max_count}"
        )
    return True, f"rate for {scope}: {len(started)} < {limit.max_count} in {limit.window_s:.0f}s"


def approval(rem: Remediation, above_risk: int) -> GuardResult:
    """A runbook riskier than ``above_risk`` runs only once a person approved it, or when a person ran
    it by hand (their request is the approval)."""
    if rem.requested_by is not None:
        return True, f"risk {rem.risk}: run by hand by {rem.requested_by}, no further approval asked"
    if rem.risk <= above_risk:
        return True, f"risk {rem.risk} <= {above_risk}: no approval needed"
    if rem.state is RemediationState.APPROVED:
        by = next((t.by for t in reversed(rem.history) if t.target is RemediationState.APPROVED), "?")
        return True, f"risk {rem.risk} > {above_risk}: approved by {by}"
    return False, f"risk {rem.risk} > {above_risk}: approval required"


# -- the chain ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GuardInput:
    """What the guards see. ``recent``: remediations changed within ``settings.longest_window_s``;
    ``active``: the remediations that may hold the service now (see :attr:`Remediation.holds_service`)."""

    remediation: Remediation
    now: float
    replicas: int | None = None
    recent: Sequence[Remediation] = ()
    active: Sequence[Remediation] = ()


# Guards whose refusal says "not now" rather than "not this": they clear with time or a person's word
# (a cooldown or rate window passing, the other remediation ending, the switch or the pause lifted). The
# refused runbook sent nothing and is no worse for it, so the healer may choose it again once they clear.
# The blast radius is not among them: it refuses the runbook's own reach on this service.
TEMPORARY_GUARDS = frozenset(
    {
        "automation_switch",
        "service_paused",
        "one_at_a_time",
        "cooldown_service",
        "cooldown_runbook",
        "rate_limit_service",
        "rate_limit_global",
    }
)


# Guards a dry run passes, with what its verdict says instead: both protect a service from a change (an
# unapproved one, or two at once), and a dry run sends none. The others still hold: the switch and a
# pause are a person's "nothing now", and cooldowns and rates make a dry run show what live would do.
DRY_RUN_PASSES: Mapping[str, str] = {
    "approval": "not asked because nothing changes",
    "one_at_a_time": "a live run would wait; a dry run changes nothing, so it runs beside it",
}


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """The chain's answer. A refusal names its guard and asks for escalation; ``awaiting_approval`` means
    the only thing missing is a person's approval."""

    allowed: bool
    reason: str
    guard: str | None = None
    dry_run: bool = False
    reasons: tuple[str, ...] = ()

    @property
    def escalate(self) -> bool:
        return not self.allowed

    @property
    def awaiting_approval(self) -> bool:
        return self.guard == "approval"


class Guards:
    """Runs every guard in order (see the module docstring). ``settings.mode`` is the kill switch; set
    :attr:`settings` to a new :class:`GuardSettings` to change any limit at run time."""

    def __init__(self, settings: GuardSettings | None = None) -> None:
        self.settings = settings or GuardSettings()

    def results(self, inp: GuardInput) -> list[tuple[str, GuardResult]]:
        """Every guard's answer, in order (for explanations; :meth:`check` stops at the first refusal)."""
        s, rem, now = self.settings, inp.remediation, inp.now
        return [
            ("automation_switch", automation_switch(s.mode)),
            ("service_paused", service_paused(rem, s.paused)),
            ("one_at_a_time", one_at_a_time(rem, inp.active)),
            (
                "blast_radius",
                blast_radius(rem, inp.replicas, s.blast_radius_pct, s.blast_radius_min_replicas),
            ),
            ("cooldown_service", cooldown(rem, inp.recent, now, s.cooldown_service_s, same_runbook=False)),
            ("cooldown_runbook", cooldown(rem, inp.recent, now, s.cooldown_runbook_s, same_runbook=True)),
            ("rate_limit_service", rate_limit(rem, inp.recent, now, s.rate_service, per_service=True)),
            ("rate_limit_global", rate_limit(rem, inp.recent, now, s.rate_global, per_service=False)),
            ("approval", approval(rem, s.approval_above_risk)),
        ]

    def check(self, inp: GuardInput) -> GuardVerdict:
        """The first refusal with its reason, or allowed with every guard's reason."""
        dry_run = self.settings.mode is AutomationMode.DRY_RUN
        sends_nothing = dry_run or inp.remediation.dry_run
        reasons: list[str] = []
        for name, (ok, reason) in self.results(inp):
            if not ok and sends_nothing and name in DRY_RUN_PASSES:
                reasons.append(f"dry run: {reason}, {DRY_RUN_PASSES[name]}")
                continue
            if not ok:
                return GuardVerdict(False, reason, name, dry_run, (*reasons, reason))
            reasons.append(reason)
        return GuardVerdict(True, "every guard allows it", None, dry_run, tuple(reasons))


# -- approval ----------------------------------------------------------------------------------------------


def _decide(
    log: RemediationLog, remediation_id: str, target: RemediationState, who: str, why: str, now: float
) -> Remediation:
    if not who.strip() or not why.strip():
        raise ValueError("an approval or rejection needs who and why")
    rem = log.get(remediation_id)
    if rem is None:
        raise KeyError(f"no remediation {remediation_id}")
    if rem.state is not RemediationState.PROPOSED:
        raise InvalidTransition(f"remediation {remediation_id} is {rem.state.value}, not awaiting approval")
    actor = f"user:{who}"
    new = rem.advance(target, at=now, by=actor, why=why)
    verb = "approve" if target is RemediationState.APPROVED else "reject"
    return log.commit(new, [audit(new, actor, verb, now, reason=why)])


def approve(log: RemediationLog, remediation_id: str, *, who: str, why: str, now: float) -> Remediation:
    """A person approves a proposed remediation; who and why are persisted and audited."""
    return _decide(log, remediation_id, RemediationState.APPROVED, who, why, now)


def reject(log: RemediationLog, remediation_id: str, *, who: str, why: str, now: float) -> Remediation:
    """A person rejects a proposed remediation (final); who and why are persisted and audited."""
    return _decide(log, remediation_id, RemediationState.REJECTED, who, why, now)
