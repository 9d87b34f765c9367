"""How often a service's latency-SLO warnings came true, and how many breaches were warned of: online.

An on-call engineer weighs a warning by its record: "8 of the last 10 came true" is acted on, "2 of 10" is
muted. :class:`WarningTrackRecord` keeps that record minute by minute, from what monitoring sees: whether
the warning fired after each minute, and whether the minute breached the latency SLO. The definitions are
those ``opsmind bench predict`` scores (its :func:`~opsmind.bench.predict.score_warnings` runs this same
class over a whole replay), so the figure the engine shows for a live service and the benchmark's figure
mean the same thing:

* **breach episodes**: runs of breached minutes, merged when fewer than ``merge_gap`` (5) minutes apart;
  an episode *starts* at a breached minute at least ``merge_gap`` minutes after the previous one;
* **warning episodes**: runs of consecutive minutes with the warning firing, leaving out the minutes
  inside a breach episode (a warning there is moot: the breach is already an incident) and those before
  ``start``; a warning episode starting at ``w`` *came true* when a breach episode starts at ``s`` with
  ``w < s <= w + window + tolerance`` (15 + 5 minutes: the look-ahead and some slack);
* a breach episode starting at ``s >= start + window`` (a full look-ahead of warnings was possible) was
  *warned of* when a warning episode started 1..``detect`` (30) minutes before it; its lead is ``s - w``
  for the earliest such ``w``.

Online, each fact is settled as soon as it can be and not before: whether a minute lies between two
breach runs of one episode is known ``merge_gap`` minutes after it; whether a warning came true
``window + tolerance`` minutes after it started; whether a breach was warned of once every warning that
could have counted is settled (20 minutes after it started). Memory is bounded: the flags of the last
``2 * merge_gap + 1`` minutes, the warning and breach starts of about the last ``window + tolerance +
detect`` minutes, and the last ``MAX_LEADS`` leads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

WINDOW = 15  # the warnings' look-ahead, minutes
TOLERANCE = 5  # a warning came true if a breach starts within WINDOW + TOLERANCE minutes of it
DETECT = 30  # a breach was warned of if a warning started 1..DETECT minutes before it
MERGE_GAP = 5  # breach runs fewer minutes apart than this are one episode
MAX_LEADS = 10_000  # leads kept for the median (the newest)


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """The record so far. ``precision`` = came true / warnings settled, ``recall`` = warned of / breaches
    settled; None while there is nothing to divide."""

    warnings: int
    came_true: int
    breaches: int
    warned_of: int
    median_lead_minutes: float | None

    @property
    def precision(self) -> float | None:
        return self.came_true / self.warnings if self.warnings else None

    @property
    def recall(self) -> float | None:
        return self.warned_of / self.breaches if self.breaches else None

    def summary(self, step_s: float = 60.0) -> str:
        """One line for a warning's evidence or a view's notes (``step_s``: the seconds a fed minute
        stands for, where the caller's steps are not minutes)."""
        if not self.warnings and not self.breaches:
            return "no warning or breach settled yet"
        lead_min = None if self.median_lead_minutes is None else self.median_lead_minutes * step_s / 60.0
        lead = "" if lead_min is None else f", median lead {lead_min:g} min"
        return (
            f"{self.came_true} of {self.warnings} warnings came true, "
            f"{self.warned_of} of {self.breaches} breaches warned of{lead}"
        )


class WarningTrackRecord:
    """Feed one call of :meth:`minute` per minute, in order (minute ``t`` is the ``t``-th call): whether the
    warning fired after it was observed, and whether it breached. :attr:`record` is the record so far;
    :meth:`close` settles what is left when no more minutes will come (the end of a replay)."""

    def __init__(
        self,
        start: int = 0,
        window: int = WINDOW,
        tolerance: int = TOLERANCE,
        detect: int = DETECT,
        merge_gap: int = MERGE_GAP,
    ) -> None:
        if min(window, detect, merge_gap) < 1 or tolerance < 0 or start < 0:
            raise ValueError("window, detect and merge_gap must be >= 1; tolerance and start >= 0")
        self.start, self.window, self.detect, self.merge_gap = start, window, detect, merge_gap
        self.reach = window + tolerance  # a warning at w came true if a breach starts in (w, w + reach]
        self.t = 0  # minutes fed
        keep = 2 * merge_gap + 1  # enough flags to place a minute merge_gap - 1 minutes back
        self._warn: deque[bool] = deque(maxlen=keep)
        self._breach: deque[bool] = deque(maxlen=keep)
        self._last_breach: int | None = None
        self._placed = 0  # minutes whose place in or out of a breach episode is final
        self._counted_prev = False  # whether minute _placed - 1 was a counted warning minute
        self._starts: deque[int] = deque()  # placed warning starts a pending breach may still need
        self._unsettled: deque[int] = deque()  # placed warning starts not yet settled
        self._breach_starts: deque[int] = deque()  # recent breach episode starts, to settle warnings
        self._pending: deque[int] = deque()  # scored breach episode starts not yet settled
        self.warnings = self.came_true = self.breaches = self.warned_of = 0
        self._leads: deque[int] = deque(maxlen=MAX_LEADS)

    def minute(self, warning: bool, breach: bool) -> None:
        t = self.t
        self._warn.append(bool(warning))
        self._breach.append(bool(breach))
        if breach:
            if self._last_breach is None or t - self._last_breach > self.merge_gap:
                self._breach_starts.append(t)
                if t >= self.start + self.window:
                    self._pending.append(t)
            self._last_breach = t
        self.t = t + 1
        self._place(self.t - self.merge_gap + 1)
        self._settle(self.t)

    def close(self) -> None:
        """No more minutes: place every minute and settle every breach left, with the warnings that could
        be settled (one whose look-ahead runs past the last minute is not counted: the end cut it)."""
        self._place(self.t)
        self._settle(self.t, final=True)

    @property
    def record(self) -> TrackRecord:
        lead = float(np.median(self._leads)) if self._leads else None
        return TrackRecord(self.warnings, self.came_true, self.breaches, self.warned_of, lead)

    def _flag(self, flags: deque[bool], m: int) -> bool:
        return flags[m - (self.t - len(flags))]

    def _in_breach_episode(self, m: int) -> bool:
        """Minute ``m`` breached, or lies in a gap shorter than ``merge_gap`` between two breached minutes
        (known once minute ``m + merge_gap - 1`` is, or at the end)."""
        if self._flag(self._breach, m):
            return True
        for before in range(m - 1, max(m - self.merge_gap, -1), -1):
            if self._flag(self._breach, before):
                last = min(self.t - 1, before + self.merge_gap)
                return any(self._flag(self._breach, b) for b in range(m + 1, last + 1))
        return False

    def _place(self, upto: int) -> None:
        while self._placed < upto:
            m = self._placed
            counted = m >= self.start and self._flag(self._warn, m) and not self._in_breach_episode(m)
            if counted and not self._counted_prev:
                self._starts.append(m)
                self._unsettled.append(m)
            self._counted_prev = counted
            self._placed += 1

    def _settle(self, t: int, final: bool = False) -> None:
        reach = self.reach
        # A warning start w counts once minute w + reach is known (t > w + reach), and never otherwise.
        while self._unsettled and self._unsettled[0] + reach < t:
            w = self._unsettled.popleft()
            self.warnings += 1
            self.came_true += any(w < s <= w + reach for s in self._breach_starts)
        # A breach at s is settled once every warning start before it is counted or placed out (t >= s +
        # reach, s + merge_gap - 1 placed), or at the end with what could be counted.
        while self._pending and (final or self._pending[0] + max(reach, self.merge_gap - 1) <= t):
            s = self._pending.popleft()
            self.breaches += 1
            before = [w for w in self._starts if 1 <= s - w <= self.detect and w + reach < t]
            if before:
                self.warned_of += 1
                self._leads.append(s - min(before))
        # Forget what no unsettled warning or breach can need any more.
        oldest = min(self._placed, t)
        if self._pending:
            oldest = min(oldest, self._pending[0])
        if self._unsettled:
            oldest = min(oldest, self._unsettled[0])
        while self._starts and self._starts[0] < oldest - self.detect:
            self._starts.popleft()
        while self._breach_starts and self._breach_starts[0] <= oldest:
            self._breach_starts.popleft()
