"""The scaling controller: every ``scale.interval_s``, for each service in ``scale.services``, decide
the replicas and apply them through the service's actuator.

It consumes ``predictions`` (the predict stage's :class:`~opsmind.predict.stage.LoadPrediction` per
service) and keeps the latest of each; it never reaches into the predict stage. The decision is the
service's policy - ``predictive`` (:class:`~opsmind.decide.predictive.PredictiveController` on the
forecast's upper bound over the pod start-up horizon, the observed load and the learned capacity) or
``hpa`` (:class:`~opsmind.decide.hpa.HPAController` on the service's CPU utilisation) - unless an
operator has pinned the service's replicas or paused it (:meth:`ScaleStage.override`). Automation does
not scale a service down while an unresolved incident involves it (``scale.hold_down_during_incidents``):
fewer replicas for a service that is slow, erroring or being healed can only deepen it. An action is
sent only when the replicas change, bounded by min/max, dry-run unless switched off. Every decision is
stored as a ``Decision`` record with its reasons and hourly cost (the instance type's price from
:mod:`opsmind.decide.prices`); every action and override also goes to the audit log.

Capacity per pod, the load one replica serves at 100 % utilisation, is the learned model's saturation
rate, lowered so that ``target_utilisation`` of it stays within the latency-SLO capacity; without a
learned model, the configured ``capacity_per_replica``. The model published is already bounded by what
a saturated fleet served (the predict stage applies :class:`~opsmind.predict.capacity.SaturationBound`,
so warnings and the week-ahead outlook use the same figure). Without that bound, a capacity too high (a
configured figure, or a fit) sized the fleet too small for good: its saturated pods never produced data
the fit accepts, and the load-based reactive term, computed with the same capacity, never asked for more
pods (configured at twice what a pod serves, a fleet of 4 stayed at 4 for hours against a load needing
22, every minute over the latency SLO; at five times, it shrank).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opsmind.act.base import ActionResult, Actuator, ScaleAction
from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import ScaleServiceSettings, ScaleSettings
from opsmind.decide.base import ScaleDecision
from opsmind.decide.hpa import HPAController, HPASpec, PodSample
from opsmind.decide.predictive import PredictiveController, PredictiveSpec
from opsmind.decide.prices import InstancePrice
from opsmind.predict import readings
from opsmind.predict.stage import CPU_METRIC, PREDICTIONS_TOPIC, LoadPrediction, cpu_series
from opsmind.store.protocols import EventStore, SampleStore
from opsmind.telemetry import Telemetry
from opsmind.types import AuditEntry, Decision, Incident, IncidentStatus

log = logging.getLogger(__name__)
ACTOR = "opsmind:scale"

ActuatorFactory = Callable[[str, ScaleServiceSettings], Actuator]


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's hold on a service: ``replicas`` pinned; or bounds (``min_replicas`` and/or
    ``max_replicas``) that automation keeps deciding within; or, with neither, automation paused."""

    replicas: int | None
    by: str
    reason: str
    since: float
    min_replicas: int | None = None
    max_replicas: int | None = None

    @property
    def bounded(self) -> bool:
        return self.replicas is None and (self.min_replicas is not None or self.max_replicas is not None)

    @property
    def paused(self) -> bool:
        return self.replicas is None and not self.bounded

    def describe(self) -> str:
        if self.replicas is not None:
            return f"pinned to {self.replicas} replicas"
        if self.bounded:
            return f"bounded to {self.min_replicas or '-'}..{self.max_replicas or '-'} replicas"
        return "automation paused"

    def as_json(self) -> dict[str, Any]:
        return {
            "replicas": self.replicas,
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "kind": "pin" if self.replicas is not None else "bounds" if self.bounded else "pause",
            "by": self.by,
            "reason": self.reason,
            "since": self.since,
        }


def hourly_cost(
    cfg: ScaleServiceSettings, replicas: int, prices: Sequence[InstancePrice]
) -> tuple[float | None, str]:
    """USD per hour for ``replicas`` packed onto whole instances of the configured type, and how."""
    key = (cfg.provider, cfg.region, cfg.instance_type)
    price = next((p for p in prices if (p.provider, p.region, p.instance_type) == key), None)
    if price is None:
        return None, f"no price for {'/'.join(key)} in the price table"
    instances = math.ceil(replicas * cfg.vcpu_per_replica / price.vcpu - 1e-9)
    cost = instances * price.usd_per_hour
    return cost, (
        f"cost {cost:.4g} USD/h: {replicas} x {cfg.vcpu_per_replica:g} vCPU on {instances} "
        f"{price.instance_type} ({price.location}, {price.usd_per_hour:g} USD/h, "
        f"as of {price.as_of.isoformat()})"
    )


class ScaleStage(Stage):
    name = "scale"
    topic = PREDICTIONS_TOPIC

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        telemetry: Telemetry,
        samples: SampleStore,
        events: EventStore,
        settings: ScaleSettings,
        actuator_for: ActuatorFactory,
        prices: Sequence[InstancePrice] = (),
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.samples = samples
        self.events = events
        self.settings = settings
        self.actuator_for = actuator_for
        self.prices = tuple(prices)
        self.tick_interval = settings.interval_s
        self.latest: dict[str, LoadPrediction] = {}
        self.decisions: dict[str, dict[str, Any]] = {}
        self.overrides: dict[str, Override] = {}
        self._predictive: dict[str, PredictiveController] = {}
        self._hpa: dict[str, HPAController] = {}
        self._actuators: dict[str, Actuator] = {}
        self._acted: dict[str, tuple[float, int]] = {}  # service -> when and to what it was last scaled
        self._lock = asyncio.Lock()
        self._actions = telemetry.counter(
            "opsmind_scale_actions_total", "Scale actions sent to actuators", ("service", "ok")
        )

    def config(self, service: str) -> ScaleServiceSettings:
        """The service's scaling settings; KeyError when it is not in ``scale.services``."""
        return self.settings.services[service]

    async def handle(self, message: Message) -> None:
        p: LoadPrediction = message.payload
        if p.service in self.settings.services:
            self.latest[p.service] = p

    async def tick(self) -> None:
        async with self._lock:
            now = self.clock.now()
            for service in self.settings.services:
                if self._awaiting_prediction(service):
                    continue
                try:
                    await self._decide(service, now)
                except Exception:
                    log.exception("scale: deciding for %s failed", service)

    def _awaiting_prediction(self, service: str) -> bool:
        """A predictive service with no load prediction yet and no operator hold: nothing to decide on.

        Before the predict stage's first tick the fleet's size is not known either, and a decision then
        was recorded at ``min_replicas`` with that count's cost (the demo's scaling page said "2 replicas
        (was 2)" beside a chart of 4 ready pods for its first minute). The predictive policy keeps the
        current count without a forecast anyway, so the first decision waits for the first prediction.
        The HPA policy reads the CPU itself and still decides (it must work without the predict stage)."""
        return (
            self.config(service).policy == "predictive"
            and service not in self.latest
            and service not in self.overrides
        )

    async def override(
        self,
        service: str,
        replicas: int | None,
        by: str,
        reason: str,
        min_replicas: int | None = None,
        max_replicas: int | None = None,
    ) -> dict[str, Any]:
        """Until released: pin ``service`` to ``replicas``; or keep automation within ``min_replicas``..
        ``max_replicas`` (either may be None: the configured one); or, with none of them, pause its
        automation. Applied at once. KeyError: not a scaled service; ValueError: outside the configured
        bounds, a pin together with bounds, or min above max."""
        cfg = self.config(service)
        bounds = f"{service}'s bounds {cfg.min_replicas}..{cfg.max_replicas}"
        if replicas is not None and (min_replicas is not None or max_replicas is not None):
            raise ValueError("give either replicas (a pin) or min_replicas/max_replicas (bounds), not both")
        for name, value in (
            ("replicas", replicas),
            ("min_replicas", min_replicas),
            ("max_replicas", max_replicas),
        ):
            if value is not None and not cfg.min_replicas <= value <= cfg.max_replicas:
                raise ValueError(f"{name} {value} is outside {bounds}")
        if min_replicas is not None and max_replicas is not None and min_replicas > max_replicas:
            raise ValueError(f"min_replicas {min_replicas} is above max_replicas {max_replicas}")
        async with self._lock:
            now = self.clock.now()
            hold = Override(replicas, by, reason, now, min_replicas, max_replicas)
            self.overrides[service] = hold
            await self._audit(
                now, service, f"user:{by}", "scale_override", {**hold.as_json(), "what": hold.describe()}
            )
            return await self._decide(service, now)

    async def release(self, service: str, by: str, reason: str = "") -> dict[str, Any]:
        """End an override; automation decides again at once. KeyError: no override on ``service``."""
        self.config(service)
        async with self._lock:
            hold = self.overrides.pop(service)
            now = self.clock.now()
            await self._audit(
                now, service, f"user:{by}", "scale_release", {"released": hold.as_json(), "reason": reason}
            )
            return await self._decide(service, now)

    # -- one decision --
    async def _decide(self, service: str, now: float) -> dict[str, Any]:
        cfg = self.config(service)
        pred = self.latest.get(service)
        current, whence = self._current(service, cfg, pred)
        hold = self.overrides.get(service)
        lo, hi = cfg.min_replicas, cfg.max_replicas
        if hold is not None and hold.paused:
            decision = ScaleDecision(
                current, (f"automation paused by {hold.by}: {hold.reason}", f"keep {current}")
            )
        elif hold is not None and hold.replicas is not None:
            decision = ScaleDecision(
                hold.replicas, (f"pinned to {hold.replicas} by {hold.by}: {hold.reason}",)
            )
        elif cfg.policy == "hpa":
            decision = await asyncio.to_thread(self._hpa_decision, service, cfg, current, now)
        else:
            decision = self._predictive_decision(service, cfg, current, pred, now)
        reasons = [f"current {current} replicas ({whence})", *decision.reasons]
        if hold is not None and hold.bounded:
            lo = hold.min_replicas if hold.min_replicas is not None else lo
            hi = hold.max_replicas if hold.max_replicas is not None else hi
            reasons.append(f"{hold.describe()} by {hold.by}: {hold.reason}")
        desired = min(max(decision.replicas, lo), hi)
        if desired < current and not (hold is not None and hold.replicas is not None):
            held = await asyncio.to_thread(self._incident_holding, service)
            if held is not None:
                desired = min(current, hi)  # >= lo, as the decision it replaces was
                reasons.append(
                    f"scale-down held: incident {held.id[:8]} ({held.title}) involves {service} and is "
                    f"{held.status}; keep {desired}"
                )
        dry_run = self.settings.dry_run if cfg.dry_run is None else cfg.dry_run
        result: ActionResult | None = None
        if desired != current and not (hold is not None and hold.paused):
            result = await self._apply(service, cfg, desired, decision, dry_run)
            reasons.append(result.detail)
            if result.ok and not result.dry_run:
                self._acted[service] = (now, desired)
        cost, cost_reason = hourly_cost(cfg, desired, self.prices)
        reasons.append(cost_reason)
        value: dict[str, Any] = {
            "replicas": desired,
            "current": current,
            "policy": "override" if hold is not None and not hold.bounded else cfg.policy,
            "actuator": cfg.actuator,
            "dry_run": dry_run,
            "cost_per_hour": cost,
            "applied": None if result is None else result.ok and not result.dry_run,
            "action": None if result is None else {"ok": result.ok, "detail": result.detail},
            "override": None if hold is None else hold.as_json(),
        }
        record = Decision(at=now, service=service, name="scale", value=value, reasons=tuple(reasons))
        await asyncio.to_thread(self.events.put, record)
        if result is not None:
            await self._audit(now, service, ACTOR, "scale", {**value, "reasons": list(reasons)})
        out = {"service": service, "at": now, **value, "reasons": list(reasons), "decision_id": record.id}
        self.decisions[service] = out
        return out

    def _incident_holding(self, service: str) -> Incident | None:
        """The newest unresolved incident that involves ``service``, if scale-downs are held for them.

        Only automation is held: an operator's pin is obeyed, and an operator's lowered maximum still
        caps the replicas."""
        if not self.settings.hold_down_during_incidents:
            return None
        for status in IncidentStatus:
            if not status.active:
                continue
            for incident in self.events.find(Incident, status=status.value, limit=10_000):
                if service == incident.service or service in incident.services:
                    return incident
        return None

    def _current(
        self, service: str, cfg: ScaleServiceSettings, pred: LoadPrediction | None
    ) -> tuple[int, str]:
        if pred is not None and pred.replicas is not None:
            # An observation made before our last action took effect (give it one interval) does not
            # show it yet: trust the action, or the same action would be sent again on every tick.
            acted = self._acted.get(service)
            if acted is None or pred.at >= acted[0] + self.settings.interval_s:
                return pred.replicas, "observed"
            return acted[1], "set by the last action, not observed yet"
        last = self.decisions.get(service)
        if last is not None:
            return int(last["replicas"]), "last decision"
        return cfg.min_replicas, "nothing observed yet: min_replicas"

    def _capacity_per_pod(self, cfg: ScaleServiceSettings, pred: LoadPrediction | None) -> tuple[float, str]:
        model = pred.capacity if pred is not None else None
        if model is not None and model.ok:
            per_pod = min(model.saturation_per_replica, model.capacity_per_replica / cfg.target_utilisation)
            return per_pod, (
                f"capacity per pod {per_pod:.4g} (saturation {model.saturation_per_replica:.4g}, "
                f"SLO capacity {model.capacity_per_replica:.4g}: {model.reason})"
            )
        if cfg.capacity_per_replica is not None:
            return cfg.capacity_per_replica, f"capacity per pod {cfg.capacity_per_replica:g} (configured)"
        return math.nan, "no capacity model learned and none configured"

    def _predictive_decision(
        self, service: str, cfg: ScaleServiceSettings, current: int, pred: LoadPrediction | None, now: float
    ) -> ScaleDecision:
        ctl = self._predictive.get(service)
        if ctl is None:
            spec = PredictiveSpec(
                target_utilisation=cfg.target_utilisation,
                headroom=cfg.headroom,
                min_replicas=cfg.min_replicas,
                max_replicas=cfg.max_replicas,
                scale_down_window_s=cfg.scale_down_window_s,
            )
            ctl = self._predictive[service] = PredictiveController(spec)
        capacity, why = self._capacity_per_pod(cfg, pred)
        if pred is None:
            return ctl.step(now, current, math.nan, math.nan, capacity)
        ahead = max(1, math.ceil((cfg.startup_s + self.settings.interval_s) / pred.step_s))
        window = pred.upper[:ahead]
        forecast = max(window) if window else math.nan
        decision = ctl.step(now, current, forecast, pred.observed, capacity)
        head = (
            f"forecast upper bound {forecast:.4g} over the next {ahead} step(s) of {pred.step_s:g}s "
            f"[{pred.model}; {pred.bound}], observed {pred.observed:.4g}",
            why,
        )
        return ScaleDecision(decision.replicas, (*head, *decision.reasons))

    def _hpa_decision(
        self, service: str, cfg: ScaleServiceSettings, current: int, now: float
    ) -> ScaleDecision:
        ctl = self._hpa.get(service)
        if ctl is None:
            spec = HPASpec(
                target_utilisation=cfg.target_utilisation,
                min_replicas=cfg.min_replicas,
                max_replicas=cfg.max_replicas,
                sync_period_s=self.settings.interval_s,
            )
            ctl = self._hpa[service] = HPAController(spec)
        series = cpu_series(self.samples, service)
        cpu = readings.latest(self.samples, series, now, 4 * self.settings.interval_s)
        # Service-level CPU only: every ready pod is taken at the service's average utilisation.
        pods = [
            PodSample(name=f"{service}-{i}", utilisation=cpu, ready=True, started_s=0.0)
            for i in range(current)
        ]
        decision = ctl.step(now, current, pods)
        note = f"{CPU_METRIC} {cpu:.3g}" if cpu is not None else f"no {CPU_METRIC} series"
        return ScaleDecision(decision.replicas, (note, *decision.reasons))

    async def _apply(
        self, service: str, cfg: ScaleServiceSettings, replicas: int, decision: ScaleDecision, dry_run: bool
    ) -> ActionResult:
        action = ScaleAction(cfg.namespace, cfg.deployment or service, replicas, decision.reasons[-1][:200])
        try:
            actuator = self._actuators.get(service)
            if actuator is None:
                actuator = self._actuators[service] = self.actuator_for(service, cfg)
            result = await asyncio.to_thread(actuator.apply, action, dry_run)
        except Exception as exc:
            log.warning("scale: %s actuator for %s failed: %s", cfg.actuator, service, exc)
            result = ActionResult(False, True, f"{cfg.actuator} actuator failed: {exc}", None, dry_run)
        self._actions.labels(service, str(result.ok).lower()).inc()
        return result

    async def _audit(self, now: float, service: str, actor: str, verb: str, detail: dict[str, Any]) -> None:
        entry = AuditEntry(at=now, service=service, actor=actor, verb=verb, subject=service, detail=detail)
        await asyncio.to_thread(self.events.put, entry)
