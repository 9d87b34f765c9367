"""A bottleneck-warning rule that learns online from its own past warnings and breaches.

:class:`~opsmind.predict.bottleneck.WarningGate` decides from the forecast's peak P(exceed) alone, and
near the capacity that probability says little: after a latency-SLO breach ends, the load sits at 0.85-0.95
of the capacity with P(exceed) around 0.35 whether it breaches again within 20 minutes or not (on Crane
input1-8 and 10-14, not benchmark traces, 732 warnings that started at a breach's end were followed by
one, 522 were not). What does tell them apart is the service's own recent history: how breaches there
came and went, how the load moves, how long the current risk has lasted. :class:`WarningLearner` learns
that per service, online, from what a monitoring system sees up to the current minute:

* **each minute** (:meth:`WarningLearner.update`) it takes the load, the observed p95, the forecast's
  per-step P(exceed) of the SLO capacity, the forecast mean and widest upper bound against that
  capacity, and whether the gate fires; from them and its own history it builds the features
  (:data:`FEATURES`): peak / near (steps 1-5) / far P(exceed), peak forecast mean and upper bound /
  capacity, current and 5-minute load / capacity, the trend (last 5 minutes against the 15 before),
  the 30-minute peak load / capacity, log p95 / SLO, log minutes since the last breach minute (capped
  at a day), log length of the current or last breach run, breach starts in the last hour and (log)
  six hours, whether the gate fires and (log) for how many minutes, and how the load moves: the
  standard deviation of its minute-to-minute changes over 30 minutes (over capacity), the headroom
  left (1 - the 5-minute load / capacity) in such moves (signed log), and the share of the last 30
  minutes within 5 % of the capacity;
* **its label** is whether a breach *starts* within the next ``label_minutes`` (20: the 15-minute look-ahead
  plus 5 minutes of tolerance), a breach start being a breach minute after at least ``merge_gap`` (5)
  minutes without one (closer breaches are one episode). A minute's label is only known
  ``label_minutes`` later, so a minute becomes a training example only then: the learner never trains on
  anything it could not have seen. Minutes in breach are not examples (a warning there is moot);
* **the model**: scikit-learn ``LogisticRegression`` (``C`` = 0.1) on standardised features, refitted every
  ``refit_every`` (60) minutes on the labelled examples so far (at most ``max_examples``, the newest),
  once there are ``min_examples`` (720, half a day) with ``min_positives`` (30) positives;
  its probability ``q`` is P(a breach starts within 20 minutes | this minute's features);
* **the decision**: until the model exists (the warm-up) and during a breach the gate decides. Otherwise
  a warning *starts* when the gate fires and ``q >= start_p`` (0.45), or on the learner's own word when
  ``q >= own_p`` (0.65); after a breach minute no warning fires for ``quiet_minutes`` (3), then a new
  one is decided the same way. A started warning continues while the gate fires or ``q >= own_p``, but after
  ``recheck_minutes`` (10) without a breach it is ended as soon as ``q < start_p``, so a risk that
  lingers does not hold one warning for an hour and hide the next breach under it; and a warning
  that has fired ``max_minutes`` (20, the label's window) without a breach is ended whatever ``q``
  says: its claim did not come true, and if the risk is still there the next minute starts a new
  one, which a breach soon after can be matched to.

The levels were chosen on Crane input1-8 and 10-14 (not benchmark traces) with ``opsmind bench
predict``'s replay and scorer, from start 0.3 / 0.4 / 0.5, own 0.5 / 0.6 / 0.7 (or none), recheck 10 /
15 / 20 minutes: mean warning precision 0.497 -> 0.602, recall 0.670 -> 0.746 there against the gate
alone. The movement features, ``C`` = 0.1 (from 1 / 0.1 / 0.03 / 0.01) and ``max_minutes`` = 20 (from
none / 20 / 30) were added later on the same traces: 0.602 / 0.746 -> 0.611 / 0.755 (the worst trace's
precision 0.33 -> 0.42, recall 0.53 -> 0.56). ``quiet_minutes`` = 3 (from 0 / 3 / 6) later still, on
the same traces: mean 0.611 / 0.756 -> 0.639 / 0.744, precision up on 12 of the 13, recall down on 4
(the most: input1, 0.824 -> 0.765); 6 quiet minutes lost more recall. What did not help there: a
separate start level at a breach's end, degree-2 polynomial or spline features, learning only from risky
minutes; nor
(earlier) "breach at the same time yesterday" features or gradient-boosted trees; nor P(exceed) taken from
the forecast's realised errors at each step (conformal-style) instead of its intervals (input1-4, 6, 8:
precision +0.015, recall -0.02 on average). Where the limit
lies, measured on the same traces: given the replay's true SLO capacity instead of the learned one,
the learner scores 0.605 / 0.761 (no better: the capacity is not what it lacks); with P(any step
exceeds) = 1 - prod(1 - p) as features, 0.610 / 0.747; and even with its levels chosen per trace
on that trace's own outcome (start 0.3-0.75 x own 0.5-0.95), an upper bound for this model, only one
of the 13 traces reaches 0.8 / 0.8. The misses are load noise near the capacity that the 1-15 minute
forecast cannot see (its one-step error is 1-5 % of the capacity on most of these traces, 9-31 % on
the flickering ones); a rule that knew the future load exactly would score 0.85 / 0.99 there.

:class:`LearnedWarningRule` puts a learner behind :func:`~opsmind.predict.bottleneck.warn` as its
latency-SLO rule, which is how both the predict stage and ``opsmind bench predict`` run it. A fitted
model can be saved (:meth:`WarningLearner.export_model`, a few dozen numbers) and restored after a
restart, so a restarted engine does not fall back to the gate for its half-day warm-up; the labelled
examples themselves are not kept, so its next refit waits for ``min_examples`` new ones.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from opsmind.predict.bottleneck import FloatArray, WarningGate

FEATURES = (
    "p_peak",
    "p_near",
    "p_far",
    "mean_peak",
    "upper_peak",
    "load",
    "load_5",
    "trend",
    "load_max_30",
    "log_p95",
    "log_since_breach",
    "log_breach_run",
    "starts_60",
    "log_starts_360",
    "gate",
    "log_gate_minutes",
    "vol_30",
    "log_headroom_z",
    "near_share_30",
)
LABEL_MINUTES = 20  # the label: a breach starts within this many minutes (15-minute look-ahead + 5)
MERGE_GAP = 5  # a breach minute after at least this many minutes without one starts a new breach
NEAR_STEPS = 5  # P(exceed) over forecast steps 1..5 is "near", the rest "far"
START_P = 0.45
OWN_P = 0.65
RECHECK_MINUTES = 10
# No learned warning in the first minutes after a breach minute. Most false warnings start there (on Crane
# input1-4, 6, 8, 11, 12: 33 % at a breach's last minute, 73 % within 30 minutes after one), while the load
# still settles near the capacity; a breach within merge_gap minutes is the same episode anyway. Chosen on
# Crane input1-8 and 10-14 from 0 / 3 / 6 (see the module docstring).
QUIET_MINUTES = 3
MAX_MINUTES = 20  # the label's window: a warning older than that has not come true
C = 0.1  # the logistic regression's inverse regularisation
REFIT_EVERY = 60
MIN_EXAMPLES = 720
MIN_POSITIVES = 30
MAX_EXAMPLES = 10_080  # a week of minutes (the newest)


class Classifier(Protocol):
    def fit(self, x: Any, y: Any) -> Any: ...

    def predict_proba(self, x: Any) -> Any: ...


def default_model() -> Classifier:
    """Standardised features, a logistic regression: calibrated enough for ``q`` to be read as a chance."""
    model: Classifier = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000))
    return model


@dataclass(slots=True)
class WarningLearner:
    """The latency-SLO warning rule of one service, learned online (see the module docstring). Feed it
    :meth:`observe` for minutes without a forecast (history only) and :meth:`update` every minute with
    one, in time order."""

    slo_s: float
    gate: WarningGate = field(default_factory=WarningGate)
    start_p: float = START_P
    own_p: float = OWN_P
    recheck_minutes: int = RECHECK_MINUTES
    quiet_minutes: int = QUIET_MINUTES
    # A warning that has fired this long without a breach ends (None: never), so that the next start,
    # if the risk is still there, opens a new warning a breach can be matched to.
    max_minutes: int | None = MAX_MINUTES
    label_minutes: int = LABEL_MINUTES
    merge_gap: int = MERGE_GAP
    refit_every: int = REFIT_EVERY
    # Which update of each ``refit_every`` refits: the predict stage spreads its services' refits over
    # the hour with it, rather than refitting them all in the same tick.
    refit_phase: int = 0
    min_examples: int = MIN_EXAMPLES
    min_positives: int = MIN_POSITIVES
    max_examples: int = MAX_EXAMPLES
    model_factory: Callable[[], Classifier] = default_model
    model: Classifier | None = field(default=None, init=False)
    probability: float | None = field(default=None, init=False)  # the last minute's q (None: warm-up)
    firing: bool = field(default=False, init=False)
    minute: int = field(default=-1, init=False)  # index of the last minute seen
    fits: int = field(default=0, init=False)
    _loads: deque[float] = field(default_factory=lambda: deque(maxlen=30), init=False)
    _last_load: float = field(default=0.0, init=False)
    _last_p95: float = field(default=float("nan"), init=False)
    _last_breach: int | None = field(default=None, init=False)
    _run: int = field(default=0, init=False)
    _last_run: int = field(default=0, init=False)
    _starts: deque[int] = field(default_factory=deque, init=False)  # breach starts, the last 6 hours
    _start_minutes: deque[int] = field(default_factory=deque, init=False)  # those a pending label needs
    _pending: deque[tuple[int, npt.NDArray[np.float64]]] = field(default_factory=deque, init=False)
    _x: deque[npt.NDArray[np.float64]] = field(init=False)
    _y: deque[bool] = field(init=False)
    _gate_minutes: int = field(default=0, init=False)
    _updates: int = field(default=0, init=False)
    _started: int = field(default=0, init=False)
    _after_breach: bool = field(default=False, init=False)
    # The default model as (mean, scale, coef, intercept): q straight from numpy, without sklearn's
    # per-call validation (most of the learner's time, one call a minute per service).
    _linear: tuple[FloatArray, FloatArray, FloatArray, float] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.start_p <= self.own_p <= 1.0:
            raise ValueError(f"need 0 <= start_p <= own_p <= 1, got {self.start_p} and {self.own_p}")
        if self.quiet_minutes < 0:
            raise ValueError(f"quiet_minutes must be >= 0, got {self.quiet_minutes}")
        if self.label_minutes < 1 or self.refit_every < 1 or self.min_examples < 1:
            raise ValueError("label_minutes, refit_every and min_examples must be positive")
        self._x = deque(maxlen=self.max_examples)
        self._y = deque(maxlen=self.max_examples)

    @property
    def labelled(self) -> int:
        """Training examples whose label is known (the newest ``max_examples``)."""
        return len(self._y)

    @property
    def ready(self) -> bool:
        """Whether the model decides (False: the warm-up, the gate decides)."""
        return self.model is not None

    def observe(self, load: float, p95: float) -> bool:
        """One minute of monitoring: the load (NaN when not observed) and p95 (NaN: unknown, no breach).
        Updates the history and labels the examples that are now due; whether the minute breached."""
        self.minute += 1
        t = self.minute
        if math.isfinite(load):
            self._last_load = float(load)
        self._loads.append(self._last_load)
        if math.isfinite(p95):
            self._last_p95 = float(p95)
        breach = math.isfinite(p95) and p95 > self.slo_s
        if breach:
            if self._last_breach is None or t - self._last_breach > self.merge_gap:
                self._starts.append(t)
                self._start_minutes.append(t)
            self._last_breach = t
            self._run += 1
        elif self._run:
            self._last_run, self._run = self._run, 0
        while self._starts and self._starts[0] <= t - 360:
            self._starts.popleft()
        # Examples from ``label_minutes`` ago are due: did a breach start in (u, u + label_minutes]?
        while self._pending and self._pending[0][0] <= t - self.label_minutes:
            u, x = self._pending.popleft()
            while self._start_minutes and self._start_minutes[0] <= u:
                self._start_minutes.popleft()
            due = bool(self._start_minutes) and self._start_minutes[0] <= u + self.label_minutes
            self._x.append(x)
            self._y.append(due)
        return breach

    def features(
        self,
        capacity: float,
        p_exceed: npt.ArrayLike,
        mean_peak: float,
        upper_peak: float,
        gate_firing: bool,
    ) -> npt.NDArray[np.float64]:
        """This minute's features (:data:`FEATURES`), after :meth:`observe` took it; ``mean_peak`` and
        ``upper_peak`` are the forecast's largest mean and upper bound over capacity."""
        p = np.asarray(p_exceed, dtype=np.float64)
        loads = np.asarray(self._loads, dtype=np.float64) / capacity
        recent, before = loads[-5:], loads[-20:-5]
        since = self.minute - self._last_breach if self._last_breach is not None else 1440
        p95 = self._last_p95 if math.isfinite(self._last_p95) else 1e-3
        return np.array(
            [
                float(p.max(initial=0.0)),
                float(p[:NEAR_STEPS].max(initial=0.0)),
                float(p[NEAR_STEPS:].max(initial=0.0)),
                mean_peak,
                upper_peak,
                loads[-1],
                recent.mean(),
                recent.mean() - (before.mean() if before.size else recent.mean()),
                loads.max(),
                math.log(max(p95, 1e-3) / self.slo_s),
                math.log1p(min(since, 1440)),
                math.log1p(self._run or self._last_run),
                float(sum(1 for s in self._starts if s > self.minute - 60)),
                math.log1p(len(self._starts)),
                float(gate_firing),
                math.log1p(self._gate_minutes),
                *self._movement(loads),
            ]
        )

    @staticmethod
    def _movement(loads: npt.NDArray[np.float64]) -> tuple[float, float, float]:
        """How much the load moves minute to minute (over capacity), how many such moves the headroom
        is (log), and the share of the last 30 minutes within 5 % of the capacity."""
        steps = np.diff(loads)
        vol = float(steps.std()) if steps.size >= 2 else 0.0
        headroom = 1.0 - float(loads[-5:].mean())
        z = headroom / max(vol, 1e-3)
        return vol, math.copysign(math.log1p(abs(z)), z), float(np.mean(loads >= 0.95))

    def update(
        self,
        load: float,
        p95: float,
        capacity: float,
        p_exceed: npt.ArrayLike,
        mean_peak: float,
        upper_peak: float,
        now: float | None = None,
    ) -> bool:
        """One minute with a forecast: ``load`` and ``p95`` observed in it, the SLO ``capacity`` (total),
        the forecast's per-step P(exceed) of it, its largest mean and upper bound over the capacity.
        The gate is fed the peak P(exceed) at ``now`` (seconds; default the minute index x 60).
        Whether the latency-SLO warning fires after this minute."""
        breach = self.observe(load, p95)
        peak = float(np.max(np.asarray(p_exceed, dtype=np.float64), initial=0.0))
        gate = self.gate.update(peak, 60.0 * self.minute if now is None else now)
        self._gate_minutes = self._gate_minutes + 1 if gate else 0
        x = self.features(capacity, p_exceed, mean_peak, upper_peak, gate)
        if not breach:
            self._pending.append((self.minute, x))
        if (self._updates - self.refit_phase) % self.refit_every == 0:
            self._refit()
        self._updates += 1
        if self.model is None or breach:
            self.probability = None if self.model is None else self._q(x)
            self.firing, self._started, self._after_breach = gate, self.minute, breach
            return self.firing
        q = self.probability = self._q(x)
        if self._last_breach is not None and self.minute - self._last_breach <= self.quiet_minutes:
            # Just after a breach minute: no warning yet; the next minutes decide with more of the settling
            # load seen (a breach meanwhile belongs to the same episode anyway). See QUIET_MINUTES.
            self.firing, self._started, self._after_breach = False, self.minute, False
            return False
        if self.firing and not self._after_breach:
            if not (gate or q >= self.own_p):
                self.firing = False
            elif self.minute - self._started >= self.recheck_minutes and q < self.start_p:
                self.firing = False
            elif self.max_minutes is not None and self.minute - self._started >= self.max_minutes:
                self.firing = False
        else:
            self.firing = (gate and q >= self.start_p) or q >= self.own_p
            self._started = self.minute
        self._after_breach = False
        return self.firing

    def _q(self, x: npt.NDArray[np.float64]) -> float:
        assert self.model is not None
        if self._linear is not None:
            mean, scale, coef, intercept = self._linear
            z = float(((x - mean) / scale) @ coef) + intercept
            return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        return float(self.model.predict_proba(x[None, :])[0, 1])

    def _set_model(self, model: Classifier) -> None:
        self.model = model
        steps = dict(getattr(model, "named_steps", {}))
        scaler, logit = steps.get("standardscaler"), steps.get("logisticregression")
        if len(steps) == 2 and isinstance(scaler, StandardScaler) and isinstance(logit, LogisticRegression):
            scale = np.asarray(scaler.scale_, dtype=np.float64)
            self._linear = (
                np.asarray(scaler.mean_, dtype=np.float64),
                np.where(scale > 0, scale, 1.0),
                np.asarray(logit.coef_[0], dtype=np.float64),
                float(logit.intercept_[0]),
            )
        else:
            self._linear = None

    def _refit(self) -> None:
        y = np.fromiter(self._y, dtype=bool, count=len(self._y))
        positives = int(y.sum())
        if y.size < self.min_examples or positives < self.min_positives or positives == y.size:
            return
        model = self.model_factory()
        model.fit(np.vstack(self._x), y)
        self._set_model(model)
        self.fits += 1

    def export_model(self) -> dict[str, Any] | None:
        """The fitted model's parameters, to be saved and given to :meth:`restore_model` after a restart;
        None before the first fit. Only the default model (standardised logistic regression) can be."""
        if self.model is None:
            return None
        steps = dict(getattr(self.model, "named_steps", {}))
        scaler, logit = steps.get("standardscaler"), steps.get("logisticregression")
        if not isinstance(scaler, StandardScaler) or not isinstance(logit, LogisticRegression):
            raise TypeError("only the default model (StandardScaler + LogisticRegression) can be exported")
        return {
            "features": list(FEATURES),
            "mean": [float(x) for x in scaler.mean_],
            "scale": [float(x) for x in scaler.scale_],
            "coef": [float(x) for x in logit.coef_[0]],
            "intercept": float(logit.intercept_[0]),
            "fits": self.fits,
        }

    def restore_model(self, params: dict[str, Any]) -> None:
        """Take a model saved by :meth:`export_model` (of the same :data:`FEATURES`): it decides from now
        on, until a refit on new examples replaces it. A ValueError names what does not fit."""
        names = list(params.get("features", ()))
        if names != list(FEATURES):
            raise ValueError(f"the saved model is for features {names}, this learner uses {list(FEATURES)}")
        n = len(FEATURES)
        try:
            mean, scale, coef = (np.asarray(params[k], dtype=np.float64) for k in ("mean", "scale", "coef"))
            intercept = float(params["intercept"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the saved model is incomplete or malformed: {exc}") from exc
        if mean.shape != (n,) or scale.shape != (n,) or coef.shape != (n,):
            raise ValueError(f"the saved model needs {n} means, scales and coefficients")
        if not (np.all(np.isfinite(mean)) and np.all(scale > 0) and np.all(np.isfinite(coef))):
            raise ValueError("the saved model has non-finite means or coefficients, or scales <= 0")
        if not math.isfinite(intercept):
            raise ValueError("the saved model's intercept is not finite")
        scaler = StandardScaler()
        scaler.mean_, scaler.scale_, scaler.var_ = mean, scale, scale**2
        scaler.n_features_in_, scaler.n_samples_seen_ = n, 1
        logit = LogisticRegression()
        logit.coef_, logit.intercept_ = coef[None, :], np.array([intercept])
        logit.classes_, logit.n_features_in_ = np.array([False, True]), n
        self._set_model(cast(Classifier, make_pipeline(scaler, logit)))
        self.fits = int(params.get("fits", 0))


@dataclass(slots=True)
class LearnedWarningRule:
    """A :class:`WarningLearner` as :func:`~opsmind.predict.bottleneck.warn`'s rule for the latency SLO
    (a :class:`~opsmind.predict.bottleneck.WarningRule`). The caller hands it each complete minute's load
    and p95 with :meth:`minute`, in time order; the next :meth:`decide` feeds that minute and the
    forecast to the learner. A minute followed by another before any decision (no forecast for it) is
    history only; a decision without a new minute repeats the last one."""

    learner: WarningLearner
    _minute: tuple[float, float] | None = field(default=None, init=False)

    @property
    def raise_p(self) -> float:
        return self.learner.gate.raise_p

    def minute(self, load: float, p95: float) -> None:
        if self._minute is not None:
            self.learner.observe(*self._minute)
        self._minute = (load, p95)

    def decide(
        self, probability: FloatArray, capacity: FloatArray, mean: FloatArray, upper: FloatArray, now: float
    ) -> bool:
        if self._minute is None:
            return self.learner.firing
        (load, p95), self._minute = self._minute, None
        if capacity.size == 0 or not np.all(capacity > 0):
            self.learner.observe(load, p95)  # nothing to weigh the load against: history only
            return self.learner.firing
        return self.learner.update(
            load,
            p95,
            float(capacity[0]),
            probability,
            float(np.max(mean / capacity)),
            float(np.max(upper / capacity)),
            now,
        )
