"""The predict stage: every ``interval_s`` of the engine clock, per service, what is coming.

For each service with a service-level request-rate series (:mod:`opsmind.predict.readings`):

1. the load of each complete step (``interval_s``, the mean of its samples) goes to the service's
   forecaster (the :class:`~opsmind.predict.base.Forecaster` protocol; the engine gives
   :class:`~opsmind.predict.forecast.LoadForecaster`): fitted on the trailing ``max_history`` steps
   once ``min_history`` exist and again every ``refit_every`` steps, ``update``-d in between (the
   first time a service is seen, its stored history is replayed, so a restart loses nothing);
2. every ``capacity_refit_s`` the capacity model is refitted from load, p95 latency and replicas
   (:func:`~opsmind.predict.capacity.fit_capacity`); when the fit refuses, a configured
   ``capacity_per_replica`` stands in (as both SLO and saturation capacity), else there is none.
   Every tick, whatever the model, it is bounded by what a saturated fleet served
   (:class:`~opsmind.predict.capacity.SaturationBound`): a step whose mean CPU (``cpu_utilisation``) was
   at least ``SATURATED_CPU`` caps the capacity per replica at its load per replica, for 6 h. Only a
   step whose replica count had not changed for ``SETTLE_S`` before it counts: pods that joined during
   it served part of it, and a count of desired pods counts pods still starting - either would put the
   bound below what a pod serves. On first sight the last 6 h of the store are read, so a restart keeps
   it. Without the bound a capacity too high - configured, or fitted - was published for good while
   every pod was saturated: no warning, and a week-ahead ceiling twice or five times the real one;
3. :func:`~opsmind.predict.bottleneck.warn` looks ``min_lead_s``..``max_lead_s`` ahead, and the SLO
   burn rate of the error series is evaluated (:mod:`opsmind.predict.slo`, the workbook's rules).
   Saturation warnings go through a :class:`~opsmind.predict.bottleneck.WarningGate`; latency-SLO
   warnings through the service's :class:`~opsmind.predict.warning_learner.WarningLearner` (with
   ``learn_warnings``, the default), which learns from the service's own load, latency and past
   warnings and lets its gate decide until it has learned; every complete step's load and latency
   (on first sight, the stored history) reach it in order. Its model is saved (a ``WarningModel``
   record) on every refit and restored when the service is first seen, so a restart keeps it. From the
   first live step on, each step's breach (p95 over the latency SLO) and the latency decision made right
   after it feed the service's :class:`~opsmind.predict.track_record.WarningTrackRecord` (the definitions
   ``opsmind bench predict`` scores): in the view, in each latency warning's evidence, and as counters;
4. every ``outlook_interval_s`` the week-ahead capacity outlook is redone from hourly peaks
   (:mod:`opsmind.predict.capacity_forecast`).

Each warning (bottleneck or burn alert) is stored and published on ``anomalies`` as an ``Anomaly`` of
type ``prediction``, which the incident stage turns into an incident of its own kind with the lead time
and the expected breach time in its labels. Each service's load outlook is published on
``predictions`` (a :class:`LoadPrediction`) for the scaling controller, with the bounded capacity model,
which is the one warnings and the outlook use too. The latest forecast, capacity
model, burn report and outlook are kept in :attr:`PredictStage.views` for the API.
"""

from __future__ import annotations

import asyncio
import logging
import math
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from statistics import NormalDist

import numpy as np

from opsmind.bus.protocols import Bus, Message
from opsmind.bus.stage import Stage
from opsmind.clock import Clock
from opsmind.config import PredictSettings
from opsmind.predict import readings
from opsmind.predict.base import Forecast, Forecaster
from opsmind.predict.bottleneck import (
    CLEAR_P,
    LATENCY_SLO_RISK,
    SATURATION,
    BottleneckWarning,
    WarningGate,
    WarningRule,
    warn,
)
from opsmind.predict.capacity import SATURATED_CPU, CapacityModel, SaturationBound, fit_capacity
from opsmind.predict.capacity_forecast import (
    WEEK,
    CapacityOutlook,
    ServiceLoadHistory,
    forecast_service,
)
from opsmind.predict.outlook import ERROR_WINDOW, describe_bound, trusted_upper
from opsmind.predict.slo import SLO, WORKBOOK_RULES, BurnReport, evaluate_bad_fraction
from opsmind.predict.track_record import TrackRecord, WarningTrackRecord
from opsmind.predict.warning_learner import REFIT_EVERY, LearnedWarningRule, WarningLearner
from opsmind.store.protocols import EventStore, SampleStore
from opsmind.telemetry import Telemetry
from opsmind.types import Anomaly, Series, WarningModel, anomaly_id

log = logging.getLogger(__name__)

ANOMALIES_TOPIC = "anomalies"
PREDICTIONS_TOPIC = "predictions"
ERROR_BUDGET_BURN = "error_budget_burn"
MIN_OUTLOOK_HOURS = 48
# The service's CPU utilisation, 0-1, averaged over its ready pods: what says its fleet is saturated.
CPU_METRIC = "cpu_utilisation"
# How long a service's replica count must have held before a step for the step to bound its capacity:
# the scale settings' default pod start-up (the scaler waited a service's own start-up after its
# actions), so that a count of desired pods no longer counts pods that are not serving yet. Longer
# (300 s) left the demo's saturated fleet under-provisioned 3 minutes more after a scale-up.
SETTLE_S = 120.0


@dataclass(frozen=True, slots=True)
class LoadPrediction:
    """What the scaling controller needs of one service, as of ``at``: the load of the last step, the
    upper forecast bound of each of the next steps (``upper[0]`` is the next step: the ``scale_level``
    bound checked against the forecast's realised errors, :func:`~opsmind.predict.outlook.trusted_upper`),
    the replicas seen and the usable capacity model, if any; ``bound`` says how ``upper`` was made."""

    service: str
    at: float
    step_s: float
    observed: float
    upper: tuple[float, ...]
    model: str
    replicas: int | None
    capacity: CapacityModel | None
    bound: str = ""


@dataclass(slots=True)
class ServiceView:
    """The latest of everything predicted for one service; ``notes`` say why something is missing."""

    service: str
    updated_at: float = 0.0
    step_s: float = 60.0
    forecast: Forecast | None = None
    forecast_start: float = 0.0
    capacity: CapacityModel | None = None
    burn: BurnReport | None = None
    outlook: CapacityOutlook | None = None
    warnings: tuple[BottleneckWarning, ...] = ()
    replicas: int | None = None
    track_record: TrackRecord | None = None  # how its latency warnings fared; None without a latency series
    notes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _State:
    series: readings.ServiceSeries
    history: deque[float]
    forecaster: Forecaster | None = None
    since_fit: int = 0
    model: str = "none yet"
    next_step: int | None = None
    capacity_at: float = -math.inf
    outlook_at: float = -math.inf
    last_load: float = math.nan
    gates: dict[str, WarningRule] = field(default_factory=dict)  # kind -> its alerting rule's state
    learned: LearnedWarningRule | None = None  # the latency-SLO rule, with learn_warnings
    saved_fits: int = 0  # the learner's fits when its model was last saved
    fitted: CapacityModel | None = None  # the last fit, or the configured model, before the bound
    saturation: SaturationBound = field(default_factory=SaturationBound)
    saturation_step: int | None = None  # the next step to look at for saturation
    # The scaler's bound is checked against the forecast's own misses (predict/outlook.py): the last
    # forecast's mean for the step it was made before, and the realised one-step errors (actual - mean).
    expected: tuple[int, float] | None = None
    errors: deque[float] = field(default_factory=lambda: deque(maxlen=ERROR_WINDOW))
    # The latency warnings' record (predict/track_record.py), from the first live step on: each step's
    # breach flag waits here for the decision made after it.
    record: WarningTrackRecord = field(default_factory=WarningTrackRecord)
    breached: list[bool] = field(default_factory=list)
    warning_on: bool = False
    settled: TrackRecord = field(default_factory=lambda: TrackRecord(0, 0, 0, 0, None))


class PredictStage(Stage):
    name = "predict"
    topic = ""  # timer-driven: it reads the store, it does not consume a topic

    def __init__(
        self,
        bus: Bus,
        clock: Clock,
        telemetry: Telemetry,
        samples: SampleStore,
        events: EventStore,
        settings: PredictSettings,
        make_forecaster: Callable[[], Forecaster],
        limits: Mapping[str, tuple[int, int]] | None = None,
        known_capacity: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(bus, clock, telemetry)
        self.samples = samples
        self.events = events
        self.settings = settings
        self.make_forecaster = make_forecaster
        self.limits = dict(limits or {})
        self.known_capacity = dict(known_capacity or {})
        self._scale_z = NormalDist().inv_cdf(settings.scale_level / 100.0)
        self.tick_interval = settings.interval_s
        self.views: dict[str, ServiceView] = {}
        self._states: dict[str, _State] = {}
        self._lock = asyncio.Lock()
        self._warnings = telemetry.counter(
            "opsmind_predict_warnings_total", "Predicted breaches published", ("kind",)
        )
        # The latency warnings' record as it settles (predict/track_record.py): precision over any window
        # is came_true / (came_true + false_alarm) of these counters' increases.
        self._warning_outcomes = telemetry.counter(
            "opsmind_predict_latency_warnings_settled_total",
            "Latency-SLO warnings settled: a breach started within look-ahead + 5 steps (came_true), or not",
            ("service", "outcome"),
        )
        self._breach_outcomes = telemetry.counter(
            "opsmind_predict_latency_breaches_settled_total",
            "Latency-SLO breach episodes settled: a warning started 1-30 steps before (warned_of), or not",
            ("service", "outcome"),
        )

    async def handle(self, message: Message) -> None:  # pragma: no cover - no topic
        # Timer-driven: the stage reads the sample store on each tick and subscribes to no topic.
        raise RuntimeError(f"PredictStage consumes no topic; got a message on {message.topic!r}")

    async def tick(self) -> None:
        async with self._lock:
            now = self.clock.now()
            predictions, found = await asyncio.to_thread(self.step, now)
            if found:
                await asyncio.to_thread(self.events.put_many, found)
            for a in found:
                self._warnings.labels(a.labels.get("warning", "")).inc()
                await self.bus.publish(ANOMALIES_TOPIC, a)
            for p in predictions:
                await self.bus.publish(PREDICTIONS_TOPIC, p)

    # -- the work of one tick, blocking (run in a worker thread) --
    def step(self, now: float) -> tuple[list[LoadPrediction], list[Anomaly]]:
        s = self.settings
        found = readings.discover(
            self.samples,
            s.load_metrics,
            s.latency_metric,
            s.latency_quantile,
            s.error_metric,
            s.replicas_metrics,
            s.max_services,
        )
        predictions: list[LoadPrediction] = []
        anomalies: list[Anomaly] = []
        for service, series in sorted(found.items()):
            state = self._states.get(service)
            if state is None:
                record = WarningTrackRecord(window=math.ceil(s.max_lead_s / s.interval_s))
                state = self._states[service] = _State(series, deque(maxlen=s.max_history), record=record)
            state.series = series
            try:
                prediction, warned = self._service(state, now)
            except Exception as exc:  # one service's bad data must not stop the others
                log.exception("predict: service %s failed", service)
                self.views.setdefault(service, ServiceView(service)).notes["error"] = str(exc)
                continue
            predictions.append(prediction)
            anomalies.extend(warned)
        return predictions, anomalies

    def _service(self, state: _State, now: float) -> tuple[LoadPrediction, list[Anomaly]]:
        s, series = self.settings, state.series
        service, step = series.service, s.interval_s
        view = self.views.setdefault(service, ServiceView(service, step_s=step))
        view.updated_at = now
        self._observe(state, now)
        view.replicas = _count(readings.latest(self.samples, series.replicas, now, 10 * step))
        if now - state.capacity_at >= s.capacity_refit_s:
            state.capacity_at = now
            state.fitted = self._capacity(series, now, view.notes)
        self._saturation(state, now)
        view.capacity = state.saturation.apply(state.fitted, now, s.latency_slo(service))
        horizon = max(1, math.ceil(s.max_lead_s / step))
        view.forecast = self._forecast(state, horizon, view.notes)
        view.forecast_start = now
        usable = view.capacity if view.capacity is not None and view.capacity.ok else None
        bottlenecks: list[BottleneckWarning] = []
        if view.forecast is not None and usable is not None and view.replicas:
            bottlenecks = warn(
                service,
                view.forecast,
                step,
                now,
                view.replicas,
                usable,
                threshold=s.warn_threshold,
                min_lead_s=s.min_lead_s,
                max_lead_s=s.max_lead_s,
                gates=self._gates(state),
            )
        self._save_learned(state, view.notes)
        view.warnings = tuple(bottlenecks)
        view.track_record = self._keep_record(state, bottlenecks)
        anomalies = [self._bottleneck_anomaly(w, now, view.track_record) for w in bottlenecks]
        view.burn = self._burn(series, now, view.notes)
        if view.burn is not None and view.burn.alerts:
            anomalies.append(self._burn_anomaly(service, view.burn, now))
        if now - state.outlook_at >= s.outlook_interval_s:
            state.outlook_at = now
            view.outlook = self._week_ahead(service, series, usable, now, view.notes)
        if view.forecast is not None:
            fc = view.forecast
            hi = trusted_upper(fc.mean, fc.hi.get(s.scale_level, fc.mean), state.errors, self._scale_z)
            upper = tuple(float(max(x, 0.0)) for x in np.nan_to_num(hi))
            bound = describe_bound(s.scale_level, len(state.errors))
        else:  # no forecast yet: the recent peak is the best guess of what may come
            recent = list(state.history)[-15:]
            upper = (max(recent),) * horizon if recent else ()
            bound = "no forecast yet: the recent peak"
        prediction = LoadPrediction(
            service, now, step, state.last_load, upper, state.model, view.replicas, usable, bound
        )
        return prediction, anomalies

    def _keep_record(self, state: _State, bottlenecks: list[BottleneckWarning]) -> TrackRecord | None:
        """Feed the steps observed since the last tick to the latency warnings' record: the last with this
        tick's decision, any before it (a late tick) with the decision they were under."""
        if state.series.latency is None:
            return None
        fired = any(w.kind == LATENCY_SLO_RISK for w in bottlenecks)
        for i, breached in enumerate(state.breached):
            state.record.minute(fired if i == len(state.breached) - 1 else state.warning_on, breached)
        if state.breached:
            state.warning_on = fired
        state.breached.clear()
        record, before = state.record.record, state.settled
        service = state.series.service
        self._warning_outcomes.labels(service, "came_true").inc(record.came_true - before.came_true)
        false_alarms = (record.warnings - record.came_true) - (before.warnings - before.came_true)
        self._warning_outcomes.labels(service, "false_alarm").inc(false_alarms)
        self._breach_outcomes.labels(service, "warned_of").inc(record.warned_of - before.warned_of)
        missed = (record.breaches - record.warned_of) - (before.breaches - before.warned_of)
        self._breach_outcomes.labels(service, "missed").inc(missed)
        state.settled = record
        return record

    def _gates(self, state: _State) -> dict[str, WarningRule]:
        """The service's warning rules (the ones the predict benchmark scores): a kind warns once its
        breach probability has held ``warn_threshold`` for a minute, and stays warned until it has stayed
        low (``CLEAR_P``) for ten, so a risk hovering at the threshold is one warning, not a flicker; with
        ``learn_warnings`` the latency SLO's gate is inside the learner, which decides once it has
        learned."""
        if not state.gates:
            s = self.settings
            raise_p = s.warn_threshold
            state.gates = {
                k: WarningGate(raise_p=raise_p, clear_p=min(CLEAR_P, raise_p))
                for k in (SATURATION, LATENCY_SLO_RISK)
            }
            if s.learn_warnings:  # the latency gate moves inside the learner
                gate = state.gates[LATENCY_SLO_RISK]
                assert isinstance(gate, WarningGate)
                service = state.series.service
                # Each service refits in its own minute of the hour (a stable hash), not all in one tick.
                phase = zlib.crc32(service.encode()) % REFIT_EVERY
                learner = WarningLearner(slo_s=s.latency_slo(service), gate=gate, refit_phase=phase)
                state.learned = state.gates[LATENCY_SLO_RISK] = LearnedWarningRule(learner)
                self._restore_learned(state)
        return state.gates

    def _restore_learned(self, state: _State) -> None:
        """The service's saved warning model, if any; one that no longer fits is ignored (and logged)."""
        assert state.learned is not None
        key = f"{state.series.service}/{LATENCY_SLO_RISK}"
        saved = self.events.get(WarningModel, key)
        if saved is None:
            return
        try:
            state.learned.learner.restore_model(saved.params)
        except ValueError as exc:
            log.warning("predict: %s: saved warning model not used: %s", key, exc)
            return
        state.saved_fits = state.learned.learner.fits

    def _save_learned(self, state: _State, notes: dict[str, str]) -> None:
        """Save the learner's model after a refit, and say in the view what decides the warnings."""
        if state.learned is None:
            return
        learner = state.learned.learner
        if learner.ready:
            q = (
                ""
                if learner.probability is None
                else f", P(breach starts within {learner.label_minutes} steps) {learner.probability:.2f}"
            )
            notes["latency_warning"] = f"learned rule ({learner.fits} fits{q})"
        else:
            notes["latency_warning"] = (
                f"the gate alone while the rule learns: {learner.labelled} of {learner.min_examples} "
                "labelled steps"
            )
        if learner.fits == state.saved_fits:
            return
        params = learner.export_model()
        if params is None:
            return
        service = state.series.service
        record = WarningModel(
            id=f"{service}/{LATENCY_SLO_RISK}",
            at=self.clock.now(),
            service=service,
            warning=LATENCY_SLO_RISK,
            params=params,
        )
        self.events.put(record)
        state.saved_fits = learner.fits

    def _observe(self, state: _State, now: float) -> None:
        """Feed every complete step since the last one observed (on first sight, the stored history)."""
        step = self.settings.interval_s
        last = math.floor(now / step)  # the step under way is not complete
        first_sight = state.next_step is None
        first = state.next_step if state.next_step is not None else last - self.settings.max_history
        if last <= first:
            return
        t, v = readings.read_fresh(self.samples, state.series.load, first * step, now)
        means = [
            max(x, 0.0) if math.isfinite(x) else math.nan
            for x in readings.step_means(t, v, step, first, last)
        ]
        state.next_step = last
        self._realised_error(state, first, last, means)
        self._gates(state)
        latency = state.series.latency
        if latency is not None:
            t, v = readings.read_fresh(self.samples, latency, first * step, now)
            p95s = readings.step_means(t, v, step, first, last)
            if not first_sight:  # the record starts with the first live step: no warning was made before
                slo = self.settings.latency_slo(state.series.service)
                state.breached.extend(math.isfinite(p) and p > slo for p in p95s)
        else:
            p95s = [math.nan] * len(means)
        if state.learned is not None:  # every step, in order, missing ones as NaN: the learner's clock
            steps = list(zip(means, p95s, strict=True))
            if first_sight:  # the stored history: from its first step with load, not max_history before
                seen = [i for i, (load, _) in enumerate(steps) if math.isfinite(load)]
                steps = steps[seen[0] :] if seen else []
            for load, p95 in steps:
                state.learned.minute(load, p95)
        fresh = [x for x in means if math.isfinite(x)]
        if not fresh:
            return
        state.history.extend(fresh)
        state.last_load = fresh[-1]
        s = self.settings
        if state.forecaster is None or state.since_fit + len(fresh) >= s.refit_every:
            if len(state.history) >= s.min_history:
                forecaster = self.make_forecaster()
                forecaster.fit(np.asarray(state.history, dtype=float))
                state.forecaster, state.since_fit = forecaster, 0
            return
        state.forecaster.update(np.asarray(fresh, dtype=float))
        state.since_fit += len(fresh)

    @staticmethod
    def _realised_error(state: _State, first: int, last: int, means: list[float]) -> None:
        """The last forecast's one-step error, once the step it was for is complete (steps first..last-1
        have just been read)."""
        if state.expected is None:
            return
        step, mean = state.expected
        if step >= last:
            return
        state.expected = None
        if first <= step and math.isfinite(means[step - first]):
            state.errors.append(means[step - first] - mean)

    def _forecast(self, state: _State, horizon: int, notes: dict[str, str]) -> Forecast | None:
        if state.forecaster is None:
            notes["forecast"] = f"{len(state.history)} of {self.settings.min_history} steps of load seen"
            return None
        s = self.settings
        fc = state.forecaster.predict(horizon, levels=tuple(sorted({s.level, s.scale_level, 95})))
        if state.next_step is not None and len(fc.mean) and math.isfinite(float(fc.mean[0])):
            state.expected = (state.next_step, float(fc.mean[0]))
        state.model = fc.model
        notes.pop("forecast", None)
        return fc

    def _capacity(
        self, series: readings.ServiceSeries, now: float, notes: dict[str, str]
    ) -> CapacityModel | None:
        s = self.settings
        slo = s.latency_slo(series.service)
        model: CapacityModel | None = None
        if series.latency is not None and series.replicas is not None:
            cols = readings.align(
                self.samples,
                [series.load, series.latency, series.replicas],
                now - s.capacity_lookback_s,
                now,
                s.interval_s,
            )
            if cols is not None:
                model = fit_capacity(cols[0], cols[1], cols[2], latency_slo=slo)
        else:
            notes["capacity"] = "no latency or replica series to learn capacity from"
        if model is not None and model.ok:
            notes.pop("capacity", None)
            return model
        if model is not None:
            notes["capacity"] = model.reason
        known = self.known_capacity.get(series.service)
        if known is not None:
            notes["capacity"] = (
                f"{notes.get('capacity', 'not learned')}; using the configured {known:g}/replica"
            )
            return CapacityModel.known(known, known, slo)
        return model

    def _saturation(self, state: _State, now: float) -> None:
        """Feed the service's saturation bound every complete step since the last one looked at (on first
        sight, those within its memory), in order."""
        step, bound = self.settings.interval_s, state.saturation
        last = math.floor(now / step)  # the step under way is not complete
        first = state.saturation_step
        if first is None:
            first = last - math.ceil(bound.memory_s / step)
        state.saturation_step = max(first, last)
        series = state.series
        if last <= first or series.replicas is None:
            return
        start, end = first * step, last * step
        t, v = readings.read_fresh(self.samples, cpu_series(self.samples, series.service), start, end)
        cpus = readings.step_means(t, v, step, first, last)
        hot = [k for k, cpu in enumerate(cpus) if cpu >= SATURATED_CPU]
        if not hot:  # the common case: one read per tick
            return
        t, v = readings.read_fresh(self.samples, series.load, start, end)
        loads = readings.step_means(t, v, step, first, last)
        rt, rv = readings.read_fresh(self.samples, series.replicas, start - SETTLE_S, end)
        for k in hot:
            lo, hi = (first + k) * step, (first + k + 1) * step
            held = rv[(rt >= lo - SETTLE_S) & (rt < hi)]
            if held.size and float(held.min()) == float(held.max()):
                bound.observe(hi, loads[k], float(held[0]), cpus[k])

    def _burn(self, series: readings.ServiceSeries, now: float, notes: dict[str, str]) -> BurnReport | None:
        if series.errors is None:
            notes["slo"] = f"no {self.settings.error_metric} series"
            return None
        notes.pop("slo", None)
        s = self.settings
        slo = SLO(s.error_objective_for(series.service), s.slo_period_s)
        longest = max(r.long_s for r in WORKBOOK_RULES)
        t, f = readings.read_fresh(self.samples, series.errors, now - longest, now)
        report = evaluate_bad_fraction(slo, t, np.clip(f, 0.0, 1.0), now=now)
        if s.slo_period_s > longest:  # the budget is the whole period's, at whatever resolution covers it
            # read_fresh: the newest hours are not rolled up yet, and a plain read at this range's
            # resolution left them out (a fresh service's budget read as untouched).
            tp, fp = readings.read_fresh(self.samples, series.errors, now - s.slo_period_s, now)
            whole = evaluate_bad_fraction(slo, tp, np.clip(fp, 0.0, 1.0), now=now, rules=())
            report = replace(report, budget=whole.budget)
        return report

    def _week_ahead(
        self,
        service: str,
        series: readings.ServiceSeries,
        capacity: CapacityModel | None,
        now: float,
        notes: dict[str, str],
    ) -> CapacityOutlook | None:
        if capacity is None:
            notes["outlook"] = "no capacity model"
            return None
        t, peaks = readings.hourly_peaks(
            self.samples, series.load, now - self.settings.outlook_history_s, now
        )
        if t.size < MIN_OUTLOOK_HOURS:
            notes["outlook"] = f"{t.size} hours of load history, need {MIN_OUTLOOK_HOURS}"
            return None
        lo, hi = self.limits.get(service, (1, 10))
        history = ServiceLoadHistory(service, t, peaks, capacity.capacity_per_replica, hi, lo)
        outlook = forecast_service(history, lambda _seasons: self.make_forecaster(), horizon_s=WEEK)
        notes.pop("outlook", None)
        return outlook

    def _bottleneck_anomaly(self, w: BottleneckWarning, now: float, record: TrackRecord | None) -> Anomaly:
        evidence = w.evidence
        if w.kind == LATENCY_SLO_RISK and record is not None:  # how far the on-call can trust it
            evidence = f"{evidence}; this service's record: {record.summary(self.settings.interval_s)}"
        labels = {
            "warning": w.kind,
            "lead_s": f"{w.lead_s:g}",
            "expected_at": f"{w.at:.0f}",
            "probability": f"{w.probability:.3f}",
            "imminent": str(w.imminent).lower(),
        }
        return _prediction(w.service, w.kind, now, w.probability, labels, evidence)

    def _burn_anomaly(self, service: str, report: BurnReport, now: float) -> Anomaly:
        # Every figure is the report's (the top alert, its budget and time to exhaustion), so the
        # incident's title (from lead_s and burn_rate), its timeline (the evidence) and the API agree.
        alert, left = report.top_alert, report.exhausted_in_s
        if alert is None or left is None:
            raise ValueError("a burn report without alerts makes no anomaly")
        labels = {
            "warning": ERROR_BUDGET_BURN,
            "severity": report.severity or alert.severity,
            "lead_s": f"{left:.0f}",
            "expected_at": f"{now + left:.0f}",
            "burn_rate": f"{alert.long_burn:.2f}",
            "budget_spent": f"{report.budget.spent:.4f}",
            "budget_remaining": f"{report.budget_remaining:.4f}",
        }
        evidence = f"{alert.reason}; {report.budget.summary(alert.long_burn)}"
        return _prediction(service, ERROR_BUDGET_BURN, now, 1.0, labels, evidence)


def _prediction(
    service: str, warning: str, now: float, probability: float, labels: dict[str, str], evidence: str
) -> Anomaly:
    key = Series.of(f"predicted_{warning}", {"service": service}).key
    detector = f"prediction:{warning}"
    return Anomaly(
        id=anomaly_id(key, now, detector),
        at=now,
        service=service,
        series=key,
        ts=now,
        value=float(labels["lead_s"]),
        expected=None,
        score=probability,
        probability=min(max(probability, 0.0), 1.0),
        detector=detector,
        type="prediction",
        labels=labels,
        evidence=evidence,
    )


def cpu_series(samples: SampleStore, service: str) -> Series:
    """The service's own CPU series: a ``service`` label and no ``pod`` label, whatever other labels its
    source adds (a scrape's ``job``, as the simulator's exporter has) - looked up by name and service, where
    the bare ``{service=...}`` series alone missed them."""
    for info in samples.series({"__name__": CPU_METRIC, "service": service}, 1000):
        if readings.service_level(info.series):
            return info.series
    return Series.of(CPU_METRIC, {"service": service})


def _count(value: float | None) -> int | None:
    return None if value is None or not math.isfinite(value) or value < 0 else round(value)
