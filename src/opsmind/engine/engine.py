"""The engine: builds every stage from settings and runs them on one clock.

Ingestion writes to the SampleStore first (an acknowledged sample is durable) and only then publishes the
batch on ``samples`` for the pipeline; the ``samples`` topic sheds when full, so a slow or failed stage
degrades detection but never stalls or fails ingestion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from itertools import chain
from typing import Any

import numpy as np

from opsmind.act.base import Actuator, ReplicaBounds
from opsmind.act.kubernetes import KubernetesScaler, api_client_from_environment
from opsmind.act.log import LogScaler
from opsmind.bus.backends import open_bus
from opsmind.bus.stage import Stage
from opsmind.clock import Clock, RealClock
from opsmind.config import ScaleServiceSettings, Settings, read_users_file
from opsmind.decide.prices import InstancePrice, load_prices
from opsmind.decide.recommend import InstanceOption, Placement, Recommendation, recommend
from opsmind.detect.stage import ANOMALIES_TOPIC, SAMPLES_TOPIC, DetectStage
from opsmind.engine.heal_actuators import build_actuate
from opsmind.engine.healing import HealStage
from opsmind.engine.live import LiveHub, ObservedStore
from opsmind.engine.registry import DISCOVERED_BY_KUBERNETES, ServiceRegistry
from opsmind.engine.scaling import ScaleStage
from opsmind.heal.executor import Actuate
from opsmind.incidents.feedback import NoiseClassifier
from opsmind.incidents.firing import FiringAlerts
from opsmind.incidents.stage import IncidentStage
from opsmind.incidents.topology import Topology
from opsmind.ingest.errors import IngestError, ahead_of_clock
from opsmind.ingest.kubernetes_discovery import KubernetesDiscovery
from opsmind.ingest.scrape import Scraper
from opsmind.notify.alertmanager import AlertmanagerNotifier
from opsmind.notify.base import Notifier
from opsmind.notify.log import LogNotifier
from opsmind.notify.slack import SlackNotifier
from opsmind.notify.stage import NotifyStage, RetryPolicy
from opsmind.notify.webhook import WebhookNotifier
from opsmind.predict.base import Forecaster
from opsmind.predict.stage import PredictStage, ServiceView
from opsmind.store.backends import open_credentials, open_store
from opsmind.store.protocols import TooManySeriesError
from opsmind.telemetry import Telemetry
from opsmind.types import (
    Anomaly,
    Event,
    Feedback,
    FiringAlert,
    Incident,
    IncidentStatus,
    SeriesSamples,
    ServiceRegistration,
)

log = logging.getLogger(__name__)
EVENTS_TOPIC = "events"  # platform events, for the stages that correlate them (classification, RCA)
MAX_FIRING_ALERTS = 100_000  # alerts notified firing within alert_firing_hold_s, read back at start


def build_notifiers(settings: Settings) -> list[tuple[Notifier, RetryPolicy]]:
    out: list[tuple[Notifier, RetryPolicy]] = []
    if settings.notify.log:
        out.append((LogNotifier(), RetryPolicy(0, 1.0)))
    for wh in settings.notify.webhooks:
        out.append((WebhookNotifier(wh), RetryPolicy(wh.max_retries, wh.backoff_s)))
    for sl in settings.notify.slack:
        out.append((SlackNotifier(sl), RetryPolicy(sl.max_retries, sl.backoff_s)))
    for am in settings.notify.alertmanagers:
        out.append((AlertmanagerNotifier(am), RetryPolicy(am.max_retries, am.backoff_s)))
    return out


def default_forecaster() -> Forecaster:
    """The statsforecast-based LoadForecaster, imported when first needed (statsforecast is slow to
    import, and nothing should happen at import time)."""
    from opsmind.predict.forecast import LoadForecaster

    return LoadForecaster()


class Engine:
    """Owns the store, the bus, the stages and the background loops of one OpsMind instance."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
        notifiers: list[tuple[Notifier, RetryPolicy]] | None = None,
        forecaster_factory: Callable[[], Forecaster] | None = None,
        actuators: Mapping[str, Actuator] | None = None,
        remediators: Mapping[str, Actuate] | None = None,
        kubernetes_discovery: KubernetesDiscovery | None = None,
    ) -> None:
        """``forecaster_factory`` makes one load forecaster per service (default: LoadForecaster);
        ``actuators`` supplies actuators by kind (``"simulator"`` must come from whoever owns the
        simulator, the CLI's demo); missing kinds are built from settings. ``remediators`` does the
        same for the heal stage's runbook actions (``heal.actuator``). ``kubernetes_discovery`` lists the
        cluster for ``discovery.kubernetes`` (default: built from ``scale.kubeconfig`` on first use).
        Raises ConfigError when the heal stage's runbooks or classifier cannot be loaded."""
        self.settings = settings
        self.clock = clock or RealClock()
        self.telemetry = telemetry or Telemetry()
        # Observed: the live hub hears of the records the stages and the API write (audit, remediations...).
        self.store = ObservedStore(open_store(settings.storage, max_series=settings.ingest.max_series))
        self.credentials = open_credentials(settings.storage)
        self.auth_enabled = self._load_credentials()
        self.bus = open_bus(settings.bus, self.telemetry, self.clock)
        self.stages: list[Stage] = []
        self.noise = NoiseClassifier()  # learns from operators' verdicts; see retrain_noise
        self.incidents: IncidentStage | None = None
        # The call graph every stage reads: incidents.topology plus what registered services declare
        # (depends_on), kept in line by the registry.
        self.topology = Topology(settings.incidents.topology)
        # External alerts still firing: written by the webhook route (ingest_alerts), read by the incident
        # stage's hold. Shared in memory: the API and the stages run in this one process.
        self.firing_alerts = FiringAlerts(settings.incidents.alert_firing_hold_s)
        self.notifiers = notifiers if notifiers is not None else build_notifiers(settings)
        if settings.detect.enabled:
            self.stages.append(DetectStage(self.bus, self.clock, self.telemetry, self.store, settings.detect))
            self.incidents = IncidentStage(
                self.bus,
                self.clock,
                self.telemetry,
                self.store,
                settings.incidents,
                samples=self.store,
                noise=self.noise,
                objectives=settings.predict,
                topology=self.topology,
                alerts=self.firing_alerts,
            )
            self.stages.append(self.incidents)
            self.stages.append(
                NotifyStage(
                    self.bus,
                    self.clock,
                    self.telemetry,
                    self.store,
                    self.notifiers,
                    settings.notify,
                    self.topology,
                    noise=self.noise,
                )
            )
        self.actuators = dict(actuators or {})
        self._prices: tuple[InstancePrice, ...] | None = None
        self.predict: PredictStage | None = None
        if settings.predict.enabled:
            scaled = settings.scale.services
            self.predict = PredictStage(
                self.bus,
                self.clock,
                self.telemetry,
                self.store,
                self.store,
                settings.predict,
                forecaster_factory or default_forecaster,
                limits={k: (v.min_replicas, v.max_replicas) for k, v in scaled.items()},
                known_capacity={
                    k: v.capacity_per_replica for k, v in scaled.items() if v.capacity_per_replica is not None
                },
            )
            self.stages.append(self.predict)
        self.scaling: ScaleStage | None = None
        if settings.scale.services:
            self.scaling = ScaleStage(
                self.bus,
                self.clock,
                self.telemetry,
                self.store,
                self.store,
                settings.scale,
                self._actuator_for,
                self.prices,
            )
            self.stages.append(self.scaling)
        self.healing: HealStage | None = None
        if settings.heal.enabled:
            self.healing = HealStage(
                self.bus,
                self.clock,
                self.telemetry,
                self.store,
                self.store,
                settings.heal,
                build_actuate(settings, remediators or {}),
                [n for n, _ in self.notifiers],
                settings.incidents.group_window_s,
                self.topology,
                settings.predict if settings.incidents.hold_while_breaching else None,
                lambda: {n: r.service_type for n, r in self.registry.registered().items() if r.service_type},
            )
            self.stages.append(self.healing)
        self.live: LiveHub | None = None  # the dashboard's live events (GET /api/v1/ws)
        if settings.live.enabled:
            self.live = LiveHub(self.bus, self.store, self.clock, self.telemetry, settings.live)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.started = False
        self.scraper = Scraper(settings.scrape, self._scrape_sink, self.clock)
        self.kubernetes_discovery = kubernetes_discovery  # built on first use from scale.kubeconfig
        self._discovery_skipped: list[str] = []
        self.registry = ServiceRegistry(
            self.store,
            self.scraper,
            self.clock,
            frozenset(str(t.url) for t in settings.scrape),
            on_change=lambda regs: self.topology.set_registered({n: r.depends_on for n, r in regs.items()}),
        )
        t = self.telemetry
        self._samples = t.counter("opsmind_ingest_samples_total", "Samples stored", ("source",))
        self._rejected = t.counter(
            "opsmind_ingest_rejected_requests_total", "Rejected ingest requests", ("source", "status")
        )
        self._series = t.gauge("opsmind_store_series", "Series in the sample store")
        self._events = t.counter("opsmind_ingest_events_total", "Platform events stored", ("source",))
        self._anomalies_in = t.counter(
            "opsmind_ingest_alerts_total", "External alerts stored as anomalies", ("source",)
        )

    def _load_credentials(self) -> bool:
        """Hash ``api.auth.users_file``'s users into the credential store; whether auth is on: as set, or,
        when ``api.auth.enabled`` is not set at all, as soon as any user exists. ConfigError: bad file."""
        auth = self.settings.api.auth
        if auth.users_file is not None:
            users = read_users_file(auth.users_file)
            now = self.clock.now()
            for name, user in users.items():
                self.credentials.set_user(name, user.password.get_secret_value(), user.role, now)
        if "enabled" in auth.model_fields_set:
            return auth.enabled
        return self.credentials.has_users()

    async def start(self) -> None:
        self._stop.clear()
        await asyncio.to_thread(self.retrain_noise)  # verdicts given before a restart still count
        await asyncio.to_thread(self._restore_firing_alerts)  # before the incident stage's first check
        if self.live is not None:
            await self.live.start()  # joins its consumer groups before any producer starts
        for stage in self.stages:
            await stage.start()
        # Always running, even with no configured target: registered services are scraped by it too.
        await self.registry.load()
        self._tasks.append(asyncio.create_task(self.scraper.run(self._stop), name="scraper"))
        self._tasks.append(asyncio.create_task(self._maintenance_loop(), name="maintenance"))
        if self.settings.discovery.kubernetes.enabled:
            self._tasks.append(asyncio.create_task(self._discovery_loop(), name="discovery"))
        self.started = True
        log.info("engine started with %d stages", len(self.stages))
        if not self.auth_enabled:
            log.warning(
                "API access control is off (api.auth.enabled): every request acts as admin 'anonymous'"
            )

    async def stop(self) -> None:
        self._stop.set()
        if self.live is not None:
            await self.live.stop()
        for stage in self.stages:
            await stage.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.bus.close()
        self.store.close()
        self.credentials.close()
        self.started = False

    async def ingest(self, batch: list[SeriesSamples], source: str) -> int:
        """Store ``batch`` durably, then hand it to the pipeline. Raises IngestError for client mistakes."""
        if not batch:
            return 0
        self._refuse_future(batch)
        try:
            stored = await asyncio.to_thread(self.store.append, batch)
        except TooManySeriesError as exc:
            self.reject(source, 422)
            raise IngestError(str(exc), status=422) from exc
        self._samples.labels(source).inc(stored)
        if self.stages or self.live is not None:
            await self.bus.publish(SAMPLES_TOPIC, batch)
        return stored

    def _refuse_future(self, batch: list[SeriesSamples]) -> None:
        """IngestError (400) naming the first series with a sample too far ahead of the clock."""
        now, grace = self.clock.now(), self.settings.ingest.future_grace_s
        # One pass in C over every timestamp first: a remote-write request holds thousands of series, and
        # the loop below cost a few milliseconds a request on the event loop. (NaN fails the test too, and
        # takes the loop, which judges it as before.)
        stamps = np.fromiter(chain.from_iterable(s.timestamps for s in batch), dtype=np.float64)
        if bool(np.all(stamps <= now + grace)):
            return
        for s in batch:
            newest = max(s.timestamps, default=None)
            if newest is not None and (error := ahead_of_clock(f"series {s.series.key}", newest, now, grace)):
                raise error

    async def ingest_events(self, events: list[Event], source: str) -> int:
        """Store platform events (deploys, restarts, OOM kills...) durably, then publish them."""
        if not events:
            return 0
        await asyncio.to_thread(self.store.put_many, events)
        self._events.labels(source).inc(len(events))
        for e in events:
            await self.bus.publish(EVENTS_TOPIC, e)
        return len(events)

    async def ingest_anomalies(self, anomalies: list[Anomaly], source: str) -> int:
        """Store anomalies found elsewhere (external alerts) and hand them to the incident stage."""
        if not anomalies:
            return 0
        await asyncio.to_thread(self.store.put_many, anomalies)
        self._anomalies_in.labels(source).inc(len(anomalies))
        if self.stages or self.live is not None:
            for a in anomalies:
                await self.bus.publish(ANOMALIES_TOPIC, a)
        return len(anomalies)

    def _restore_firing_alerts(self) -> None:
        hold_s = self.firing_alerts.hold_s
        if hold_s <= 0:
            return
        now = self.clock.now()
        kept = self.store.find(FiringAlert, status="firing", since=now - hold_s, limit=MAX_FIRING_ALERTS)
        if self.firing_alerts.restore(kept, now):
            log.info("incidents: %d Alertmanager alerts still firing as of before the restart", len(kept))

    async def ingest_alerts(self, firing: list[Anomaly], resolved: list[str], source: str) -> int:
        """External alerts (Alertmanager's webhook): the firing ones stored and handed to the incident
        stage like any external anomaly, and each marked firing now, a repeat included (a repeat is the
        anomaly already counted, so only this mark says the alert still fires); the ``resolved`` anomaly
        ids no longer hold their incidents open (:mod:`opsmind.incidents.firing`)."""
        count = await self.ingest_anomalies(firing, source)
        # After storing: a notification refused by the store must not hold anything open either.
        now = self.clock.now()
        self.firing_alerts.firing(firing, now)
        self.firing_alerts.resolved(resolved)
        # Kept so that a restarted engine still holds their incidents (FiringAlerts.restore at start).
        states = [
            FiringAlert(id=a.id, at=now, service=a.service, status="firing", series=a.series) for a in firing
        ]
        states += [FiringAlert(id=key, at=now, status="resolved") for key in resolved]
        if states:
            await asyncio.to_thread(self.store.put_many, states)
        return count

    async def move_incident(self, incident_id: str, to: IncidentStatus, by: str, reason: str) -> Incident:
        """An operator's lifecycle move (see IncidentStage.transition). LookupError: the incident is not
        one the engine can move; ValueError: the move is not allowed from its state."""
        if self.incidents is None:
            raise LookupError("incident handling is off (detect.enabled is false)")
        try:
            return await self.incidents.transition(incident_id, to, by, reason)
        except KeyError as exc:
            raise LookupError(
                f"incident {incident_id} is not active, nor resolved within the reopen window"
            ) from exc

    @property
    def prices(self) -> tuple[InstancePrice, ...]:
        """The price table (``scale.prices`` or the bundled one), read once."""
        if self._prices is None:
            self._prices = load_prices(self.settings.scale.prices)
        return self._prices

    def _actuator_for(self, service: str, cfg: ScaleServiceSettings) -> Actuator:
        """The actuator of one scaled service, bounded by its replica range."""
        given = self.actuators.get(cfg.actuator)
        if given is not None:
            return given
        bounds = ReplicaBounds(cfg.min_replicas, cfg.max_replicas)
        if cfg.actuator == "log":
            return LogScaler(bounds)
        if cfg.actuator == "kubernetes":
            s = self.settings.scale
            return KubernetesScaler.from_environment(bounds, kubeconfig=s.kubeconfig, context=s.kube_context)
        raise LookupError(f"no {cfg.actuator} actuator in this process (it must be passed to the Engine)")

    def forecast_view(self, service: str) -> ServiceView:
        """What is predicted for ``service``; LookupError when prediction is off or it is not followed."""
        if self.predict is None:
            raise LookupError("prediction is off (predict.enabled is false)")
        view = self.predict.views.get(service)
        if view is None:
            raise LookupError(f"no service {service!r} with a request-rate series is followed by prediction")
        return view

    def prediction_views(self) -> list[ServiceView]:
        return [] if self.predict is None else [self.predict.views[k] for k in sorted(self.predict.views)]

    def recommendations(self) -> list[Recommendation]:
        """Capacity (from the week-ahead outlooks) and cost (from the price table) recommendations,
        highest priority first."""
        outlooks = [v.outlook for v in self.prediction_views() if v.outlook is not None]
        placements = []
        for service, cfg in self.settings.scale.services.items():
            last = self.scaling.decisions.get(service) if self.scaling is not None else None
            replicas = float(last["replicas"]) if last is not None else float(cfg.min_replicas)
            placements.append(
                Placement(
                    service,
                    cfg.provider,
                    cfg.region,
                    cfg.instance_type,
                    cfg.vcpu_per_replica,
                    replicas,
                    allow_move=cfg.allow_move,
                )
            )
        options = (
            [
                InstanceOption(p.provider, p.region, p.instance_type, p.vcpu, p.usd_per_hour)
                for p in self.prices
            ]
            if placements
            else []
        )
        return recommend(outlooks, self.clock.now(), placements, options)

    def retrain_noise(self) -> dict[str, Any]:
        """Refit the noise classifier on all stored operator feedback and return its state. Blocking:
        call it through ``asyncio.to_thread``."""
        feedback = self.store.find(Feedback, limit=1_000_000, newest_first=False)
        return self.noise.fit_feedback(feedback).state()

    def reject(self, source: str, status: int) -> None:
        self._rejected.labels(source, str(status)).inc()

    async def _scrape_sink(self, batch: list[SeriesSamples]) -> None:
        try:
            await self.ingest(batch, "scrape")
        except IngestError as exc:
            log.warning("scraped samples rejected: %s", exc.reason)

    async def _maintenance_loop(self) -> None:
        interval = self.settings.storage.maintenance_interval_s
        while not self._stop.is_set():
            try:
                report = await asyncio.to_thread(self.store.maintain, self.clock.now())
                self._series.set(self.store.series_count())
                log.debug("maintenance: %s", report)
            except Exception:
                log.exception("storage maintenance failed; will retry")
            await self.clock.sleep(interval)

    async def discover_once(self) -> tuple[list[str], list[str]]:
        """List the watched Kubernetes namespaces once and bring the registry in line (see
        :mod:`opsmind.ingest.kubernetes_discovery`): the names registered or changed, and removed.
        Errors (no cluster configuration, the API refusing) propagate."""
        cfg = self.settings.discovery.kubernetes
        if self.kubernetes_discovery is None:
            s = self.settings.scale
            api = await asyncio.to_thread(api_client_from_environment, s.kubeconfig, s.kube_context)
            self.kubernetes_discovery = KubernetesDiscovery(api, cfg.namespaces, cfg.label_selector)
        found = await asyncio.to_thread(self.kubernetes_discovery.discover)
        now = self.clock.now()
        regs = [
            ServiceRegistration(
                id=d.name,
                at=now,
                service=d.name,
                service_type=d.service_type,  # checked against SERVICE_TYPES when discovered
                owner=d.owner,
                metrics_url=d.metrics_url,
                scrape_interval_s=cfg.scrape_interval_s,
                labels={"namespace": d.namespace},
                depends_on=d.depends_on,
                by=DISCOVERED_BY_KUBERNETES,
            )
            for d in found.services
        ]
        skipped = sorted(found.skipped)
        if skipped != self._discovery_skipped:  # said when it changes, not every listing
            self._discovery_skipped = skipped
            for why in skipped:
                log.warning("kubernetes discovery skipped %s", why)
        changed, removed = await self.registry.sync(DISCOVERED_BY_KUBERNETES, regs)
        if changed or removed:
            log.info("kubernetes discovery: registered %s, removed %s", changed or "none", removed or "none")
        return changed, removed

    async def _discovery_loop(self) -> None:
        interval = self.settings.discovery.kubernetes.interval_s
        failing = False
        while not self._stop.is_set():
            try:
                await self.discover_once()
                if failing:
                    log.info("kubernetes discovery works again")
                failing = False
            except Exception as exc:  # no cluster yet, RBAC, the API down: keep the rest running
                if not failing:
                    log.warning("kubernetes discovery failed (retried every %g s): %s", interval, exc)
                failing = True
            await self.clock.sleep(interval)

    def health(self) -> dict[str, Any]:
        """Blocking (it counts the store's series): call it from a worker thread."""
        stages = {s.name: ("up" if s.is_running else "down") for s in self.stages}
        status = "ok" if self.started else "starting"
        out: dict[str, Any] = {"status": status, "stages": stages}
        try:
            out["series"] = self.store.series_count()
        except Exception as exc:  # a database server that went away: say so rather than answer 500
            log.warning("health: the store did not answer: %s", exc)
            out.update(status="degraded", series=None, storage_error=str(exc).strip() or type(exc).__name__)
        out["storage"] = self.settings.storage.backend
        out["bus"] = self.settings.bus.backend
        out["time"] = self.clock.now()
        return out
