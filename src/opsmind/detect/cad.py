"""CAD OSE, the Contextual Anomaly Detector (Open Source Edition), reimplemented from its published source.

Algorithm: M. Smirnov, "Contextual Anomaly Detector - Open Source Edition" (2016,
https://github.com/smirmik/CAD), as submitted to the Numenta Anomaly Benchmark: numenta/NAB
``nab/detectors/context_ose/{cad_ose.py,context_operator.py,context_ose_detector.py}`` (MIT). This module
is our own code written from that description; the published parameters are kept (base threshold 0.75,
rest period = NAB's probationary period / 5, at most 7 facts in a partial left semi-context, at most 15
active neurons, 3 bits per normalised value).

How it works, per point:

* level: ``int((x - lo) / ((hi - lo) / 7))`` (a zero span counts as 7, so a constant series is level 0);
  its three bits become three *sensory facts* ``2 k + bit_k`` (k = 0, 1, 2), a set ``S_t``;
* the *left facts* ``L_{t-1}`` are ``S_{t-1}`` plus one "neuron" fact ``2**31 + id`` per context that was
  active at t-1 (at most 15, the most often activated, ties broken by the hashes of their facts);
* a *context* is a pair (left semi-context, right semi-context) of fact sets; the zero-level context
  ``(L_{t-1}, S_t)`` is stored every step (``new`` when it was not known);
* each stored context whose left part lies wholly in ``L_{t-1}`` is *selected*; a selected one whose right
  part lies wholly in ``S_t`` is *active* (its activation count goes up). When the zero-level context was
  new, every zero-level context whose left and right parts only partly match (left part at most 7 facts)
  proposes a *potential new context* made of the matching parts, which is stored;
* score ``(1 - active / selected + new / potential) / 2``, where ``new / potential`` is the share of the
  distinct potential contexts (plus the zero-level one) that were really new, 0 unless the zero-level
  context was new;
* reported score (NAB's CAD output rule): the score when every score of the last ``rest_period`` points
  is below the base threshold 0.75, else 0 (the history starts with one 1.0, so the first
  ``rest_period`` points report 0). This is what NAB scores.

What differs from NAB's CAD OSE, and why:

* the value range. NAB hands every detector the min and max of the *whole file* (``inputMin``/
  ``inputMax``, computed before the first point is seen). A strictly online detector cannot know them.
  Here the range is *learned in a warm-up* (``range_warmup`` learned points, 750 by default, NAB's longest
  probationary period; ``opsmind bench nab`` passes each file's probationary length) during which the
  running min/max is used; then it is frozen at the warm-up's ``[lo, hi]`` widened by ``margin * (hi -
  lo)`` on each side (values beyond clip to the extreme levels), and the warm-up is relearned with the
  frozen range so the memory is what it would have been had the range been known from the start. A
  warm-up that stayed constant waits for the first different value. Why not keep the running range: each
  new extreme re-bins every value, so the contexts learned before describe the old levels and the
  novelty that follows is noise (on NAB: 48.6 standard with the running range, 70.0 with NAB's
  whole-file range, in ``docs/benchmarks/nab.md``);
* several resolutions: one memory per margin in ``range_margins`` (default ``RANGE_MARGINS``), the
  reported score being the highest. A narrow margin resolves small changes within the usual range; a
  wide one puts the usual range in one or two levels, so that only a departure far outside it is novel,
  with few false alarms from the usual range's noise. The margins were chosen on the tuning corpus of
  ``opsmind bench nab-corpus`` (seeds 1, 3, 4, 5), never on NAB: see ``RANGE_MARGINS``. Pass
  ``value_range=(lo, hi)`` to reproduce NAB's setting when the range is honestly known in advance;
* the rest period: NAB passes ``probationaryPeriod / 5`` (150 for files of 5,000 rows or more, 3% of the
  length below that). It is a parameter here; ``opsmind bench nab`` passes NAB's value for each file, the
  file's length being a benchmark setting, not a value of the series;
* no behaviour change otherwise: contexts are keyed by their fact tuples (NAB keys them by the tuples'
  hashes; a collision is astronomically unlikely), and NAB's quirk that context id 0 is skipped whenever
  no zero-level context was created in a step (``False != 0`` is False in Python) is kept, so scores are
  the same as NAB's for the same range (checked against NAB's code on synthetic series while writing).

Edge cases: a constant series scores a flat 0.5 (its only context is id 0, which the quirk above never
selects), a step off it 1.0. NaN scores NaN and is not learned (the sequence continues from the last
learned point); an infinite value scores ``inf`` and is not learned either. Memory grows with the number
of distinct contexts (unbounded as published; here a memory is cleared past ``MAX_CONTEXTS``): see
:meth:`CadDetector.nbytes_per_series`. It is a per-series pure-Python detector (dictionary-based, about
1 ms a point for the two resolutions), not vectorised over rows and not part of the vectorised ensemble:
the detect stage can run it beside the ensemble on a bounded number of series (``detect.context``, off
by default; ``detect.context_series``), and ``opsmind bench nab`` scores it alone as ``opsmind_cad``
and with the ensemble as ``opsmind``.
"""

from __future__ import annotations

import bisect
import math
import sys
from collections import deque
from dataclasses import dataclass
from itertools import chain

import numpy as np

from opsmind.detect.base import F64, I64, B

BASE_THRESHOLD = 0.75
REST_PERIOD = 150  # NAB: probationaryPeriod / 5, and the probationary period is at most 750 rows
MAX_LEFT_SEMI_CONTEXT = 7
MAX_ACTIVE_NEURONS = 15
NORM_VALUE_BITS = 3
NEURON_BASE = 2**31
RANGE_WARMUP = 750  # points; NAB's probationary period is at most 750 rows
# A memory holding more contexts than this (about 1 KB each) is cleared and learns again from the next
# point, with its range kept; then CAD reports nothing until its rest period has passed without a raw score
# at the base threshold. Why: as published the memory grows without bound (a noisy series adds about one
# context every two points), which a long-running engine cannot afford. 5,000 is about 5 MB a memory.
MAX_CONTEXTS = 5000
# Chosen on the trace corpus of ``opsmind bench nab-corpus`` (seeds 1, 3, 4, 5 merged, 164 files), never on
# NAB. Standard score of one margin: 0.5: 26.6, 1.0: 26.1, 1.5: 17.6, 2.0: 14.9, 3.0: 34.6 (and 22.6 with
# each file's whole range, NAB's setting). The single margins are erratic (where the level boundaries fall
# decides which noise flips a level), the pair 0.5 + 3.0 scores 38.3 and is the best or near it on each
# seed (42.2 / 36.7 / 38.8 / 43.7), so the pair it is.
RANGE_MARGINS = (0.5, 3.0)

Facts = tuple[int, ...]
Pair = tuple[Facts, Facts]


@dataclass(frozen=True)
class _Plan:
    """The outcome of one step, computed without changing the state; :meth:`_CadSeries.commit` applies it."""

    value: float
    sensed: Facts  # S_t
    zero: Pair | None  # the zero-level context (L_{t-1}, S_t); None on the first point
    zero_new: bool
    active: list[int]  # ids of the contexts that become active
    potential: list[Pair]  # potential new contexts, in NAB's order (duplicates kept)
    raw: float  # the step's anomaly score
    reported: float  # after the rest-period rule


class _CadSeries:
    """The context memory and sequence state of one series."""

    def __init__(
        self,
        rest_period: int = REST_PERIOD,
        value_range: tuple[float, float] | None = None,
        base_threshold: float = BASE_THRESHOLD,
        max_left: int = MAX_LEFT_SEMI_CONTEXT,
        max_active: int = MAX_ACTIVE_NEURONS,
        bits: int = NORM_VALUE_BITS,
        range_warmup: int = 0,
        range_margin: float = 0.0,
        max_contexts: int = MAX_CONTEXTS,
    ) -> None:
        if rest_period < 1:
            raise ValueError("rest_period must be >= 1")
        self.base_threshold = base_threshold
        self.max_left = max_left
        self.max_active = max_active
        self.bits = bits
        self.max_level = 2**bits - 1
        self.fixed = value_range
        self.rest_period = rest_period
        if range_warmup < 0 or not math.isfinite(range_margin) or range_margin < 0:
            raise ValueError("range_warmup and range_margin must be >= 0 (and the margin finite)")
        self.range_warmup = range_warmup
        self.range_margin = range_margin
        self.max_contexts = max_contexts
        self.resets = 0
        # The learned values of the warm-up, replayed once the range freezes; None when it never will.
        self.warmup: list[float] | None = [] if value_range is None and range_warmup > 0 else None
        self.lo = math.inf
        self.hi = -math.inf
        self._clear()

    def _clear(self) -> None:
        """An empty memory and sequence (the value range is kept)."""
        # Semi-contexts: ids in creation order; a left one maps right semi-context id -> context id.
        self.left_id: dict[Facts, int] = {}
        self.left_facts: list[Facts] = []
        self.left_ctx: list[dict[int, int]] = []
        self.left_zero: list[list[tuple[int, int]]] = []  # its zero-level contexts: (context id, right id)
        self.left_len = np.zeros(64, dtype=np.int64)
        self.left_mask = np.zeros(64, dtype=np.int64)  # its sensory facts as bits
        self.holders: dict[int, list[int]] = {}  # neuron fact -> left semi-contexts holding it
        self.right_id: dict[Facts, int] = {}
        self.right_facts: list[Facts] = []
        # Contexts: activation count, zero-level flag, sort key (hashes of its left and right facts).
        self.count: list[int] = []
        self.zero_level: list[bool] = []
        self.key: list[tuple[int, int]] = []
        self.left_facts_group: Facts = ()  # L_{t-1}
        # Left semi-contexts meeting L_{t-1}, in creation order: ids, and whether wholly inside it.
        self.crossed: list[int] = []
        self.full: list[int] = []
        self.whole: set[int] = set()
        self.history: deque[float] = deque([1.0], maxlen=self.rest_period)

    # -- the value --------------------------------------------------------------------------------------
    def level(self, x: float) -> int:
        if self.fixed is not None:
            lo, hi = self.fixed
        else:
            lo, hi = min(self.lo, x), max(self.hi, x)
        span = hi - lo
        step = (span if span != 0.0 else float(self.max_level)) / self.max_level
        q = (x - lo) / step
        if not math.isfinite(q):  # a range wider than a float holds (values near +-1e308): the nearer end
            q = 0.0 if x <= lo / 2 + hi / 2 else float(self.max_level)
        return min(max(int(q), 0), self.max_level) if self.fixed is not None else int(q)

    def sensed(self, level: int) -> Facts:
        bits = max(self.bits, level.bit_length())
        return tuple(sorted(2 * k + ((level >> k) & 1) for k in range(bits)))

    # -- the memory -------------------------------------------------------------------------------------
    def context_id(self, pair: Pair) -> int | None:
        lid = self.left_id.get(pair[0])
        rid = self.right_id.get(pair[1])
        if lid is None or rid is None:
            return None
        return self.left_ctx[lid].get(rid)

    def _new_left(self, left: Facts) -> int:
        lid = self.left_id[left] = len(self.left_facts)
        self.left_facts.append(left)
        self.left_ctx.append({})
        self.left_zero.append([])
        if lid == len(self.left_len):
            self.left_len = np.concatenate([self.left_len, np.zeros_like(self.left_len)])
            self.left_mask = np.concatenate([self.left_mask, np.zeros_like(self.left_mask)])
        self.left_len[lid] = len(left)
        mask = 0
        for f in left:
            if f < NEURON_BASE:
                mask |= 1 << f
            else:
                self.holders.setdefault(f, []).append(lid)
        self.left_mask[lid] = mask
        return lid

    def _store(self, pair: Pair, zero_level: bool) -> None:
        left, right = pair
        lid = self.left_id.get(left)
        if lid is None:
            lid = self._new_left(left)
        rid = self.right_id.get(right)
        if rid is None:
            rid = self.right_id[right] = len(self.right_facts)
            self.right_facts.append(right)
        cid = self.left_ctx[lid].get(rid)
        if cid is None:
            cid = self.left_ctx[lid][rid] = len(self.count)
            self.count.append(0)
            self.zero_level.append(zero_level)
            self.key.append((hash(left), hash(right)))
            if zero_level:
                self.left_zero[lid].append((cid, rid))
        elif zero_level and not self.zero_level[cid]:
            self.zero_level[cid] = True
            bisect.insort(self.left_zero[lid], (cid, rid))  # in creation (= NAB's dict) order

    # -- one step ---------------------------------------------------------------------------------------
    def plan(self, x: float) -> _Plan:
        """Score ``x`` (finite) as the next point, without changing the state."""
        s = self.sensed(self.level(x))
        prev = self.left_facts_group
        zero: Pair | None = (prev, s) if prev else None
        zero_new = zero is not None and self.context_id(zero) is None
        in_s = set(s)
        right_common = [tuple(f for f in facts if f in in_s) for facts in self.right_facts]
        right_whole = [len(c) == len(f) for c, f in zip(right_common, self.right_facts, strict=True)]
        # NAB skips the context created as zero-level this step (not stored yet here); with none created it
        # compares False to every id, and False == 0 skips context 0 (kept for exactness).
        skip = -1 if zero_new else 0
        active: list[int] = []
        potential: list[Pair] = []
        selected = 0
        max_left, zero_level, left_facts = self.max_left, self.zero_level, self.left_facts
        in_prev = set(prev)
        for lid in self.crossed if zero_new else self.full:
            facts = left_facts[lid]
            if lid in self.whole:  # the left semi-context lies wholly in L_{t-1}: its contexts are selected
                short = zero_new and len(facts) <= max_left
                for rid, cid in self.left_ctx[lid].items():
                    if cid == skip:
                        continue
                    selected += 1
                    rc = right_common[rid]
                    if rc:
                        if right_whole[rid]:
                            active.append(cid)
                        elif short and zero_level[cid]:
                            potential.append((facts, rc))
            else:  # partly in L_{t-1} (only looked at when the zero-level context is new)
                common: Facts | None = None
                for _, rid in self.left_zero[lid]:
                    rc = right_common[rid]
                    if rc:
                        if common is None:
                            common = tuple(f for f in facts if f in in_prev)
                        if len(common) <= max_left:
                            potential.append((common, rc))
        selected_active = len(active) / selected if selected else 0.0
        added_share = 0.0
        if zero_new:
            assert zero is not None
            distinct = set(potential)
            really_new = sum(1 for p in distinct if p != zero and self.context_id(p) is None) + 1
            added_share = really_new / len(distinct | {zero})
        raw = (1.0 - selected_active + added_share) / 2.0
        reported = raw if max(self.history) < self.base_threshold else 0.0
        return _Plan(x, s, zero, zero_new, active, potential, raw, reported)

    def commit(self, p: _Plan) -> None:
        """Learn the point ``p`` was planned for (the state must not have changed since)."""
        if p.zero is not None:
            self._store(p.zero, zero_level=True)
        count = self.count
        for cid in p.active:
            count[cid] += 1
        key = self.key
        top = sorted(p.active, key=lambda c: (count[c], key[c][0], key[c][1]))[-self.max_active :]
        group = tuple(sorted({*p.sensed, *(NEURON_BASE + c for c in top)}))
        for pair in p.potential:
            self._store(pair, zero_level=False)
        # How many facts of each left semi-context are in the new L: sensory ones by bit mask, neuron ones
        # by the lists of left semi-contexts holding each neuron fact.
        n = len(self.left_facts)
        smask = sum(1 << f for f in p.sensed)
        meet = np.bitwise_count(self.left_mask[:n] & smask).astype(np.int64)
        held = [self.holders[f] for f in group if f >= NEURON_BASE and f in self.holders]
        if held:
            meet += np.bincount(np.fromiter(chain.from_iterable(held), dtype=np.int64), minlength=n)
        whole = (meet == self.left_len[:n]) & (meet > 0)
        self.crossed = np.flatnonzero(meet).tolist()
        self.full = np.flatnonzero(whole).tolist()
        self.whole = set(self.full)
        self.left_facts_group = group
        self.history.append(p.raw)
        self.lo, self.hi = min(self.lo, p.value), max(self.hi, p.value)
        if len(self.count) > self.max_contexts:
            self._clear()  # the memory is full: start again (the range is kept)
            self.resets += 1
        if self.warmup is not None:
            self.warmup.append(p.value)
            if len(self.warmup) >= self.range_warmup and self.hi > self.lo:
                self._freeze_range()

    def _freeze_range(self) -> None:
        """End of the warm-up: fix the range to the warm-up's, widened by the margin on both sides, and
        relearn the warm-up with it, so that the memory is what it would be had the range been known from
        the first point. Until now every level used the running range."""
        assert self.warmup is not None
        values, self.warmup = self.warmup, None
        pad = self.range_margin * (self.hi - self.lo)
        self.fixed = (self.lo - pad, self.hi + pad)
        self._clear()
        for x in values:
            self.commit(self.plan(x))

    def step(self, x: float) -> float:
        p = self.plan(x)
        self.commit(p)
        return p.reported

    @property
    def contexts(self) -> int:
        return len(self.count)

    def nbytes(self) -> int:
        """A lower bound of the bytes held by the memory (``sys.getsizeof`` of its containers, tuples and
        large ints); tracemalloc measures about twice this (allocator overhead, shared objects)."""
        size = sys.getsizeof
        lists = (
            self.left_id,
            self.left_facts,
            self.left_ctx,
            self.left_zero,
            self.right_id,
            self.right_facts,
        )
        total = sum(size(c) for c in (*lists, self.count, self.zero_level, self.key, self.holders))
        total += self.left_len.nbytes + self.left_mask.nbytes
        total += sum(size(f) + sum(size(v) for v in f if v >= 256) for f in self.left_facts)
        total += sum(size(f) for f in self.right_facts)
        total += sum(size(d) + 28 * len(d) for d in self.left_ctx)  # the context ids (values)
        total += sum(size(z) + sum(size(t) + 28 for t in z) for z in self.left_zero)
        total += sum(size(k) + size(k[0]) + size(k[1]) for k in self.key)
        total += sum(size(c) for c in self.count if c >= 256)
        total += sum(size(h) + 28 * len(h) for h in self.holders.values())
        total += size(self.crossed) + size(self.full) + size(self.whole)
        total += 28 * (len(self.crossed) + len(self.full))
        total += size(self.left_facts_group) + size(self.history) + 64
        return total


class _CadResolutions:
    """One series seen at several resolutions: one :class:`_CadSeries` per range margin (a single one when
    the range is given or never frozen, where margins make no difference); its reported score is the
    highest of theirs."""

    def __init__(
        self,
        rest_period: int,
        value_range: tuple[float, float] | None,
        range_warmup: int,
        range_margins: tuple[float, ...],
        max_contexts: int = MAX_CONTEXTS,
    ) -> None:
        if not range_margins:
            raise ValueError("range_margins must name at least one margin")
        if value_range is not None or range_warmup == 0:
            range_margins = range_margins[:1]
        self.members = [
            _CadSeries(
                rest_period, value_range, range_warmup=range_warmup, range_margin=m, max_contexts=max_contexts
            )
            for m in range_margins
        ]

    def plan(self, x: float) -> list[_Plan]:
        return [m.plan(x) for m in self.members]

    def commit(self, plans: list[_Plan]) -> None:
        for m, p in zip(self.members, plans, strict=True):
            m.commit(p)

    def nbytes(self) -> int:
        return sum(m.nbytes() for m in self.members)


def _reported(plans: list[_Plan]) -> float:
    return max(p.reported for p in plans)


class CadDetector:
    """CAD OSE over many series, in the detector protocol of :mod:`opsmind.detect.base` (one
    :class:`_CadResolutions` per row, in plain Python). ``score_many`` returns the reported score (in
    [0, 1]; 0 during the rest period and the first ``rest_period`` points) without changing the state;
    ``learn_many`` learns the points with ``learn`` True (reusing the plans ``score_many`` made for the same
    value). A point not learned is skipped by the sequence, as a NaN is."""

    name = "cad"

    def __init__(
        self,
        rest_period: int = REST_PERIOD,
        value_range: tuple[float, float] | None = None,
        range_warmup: int = RANGE_WARMUP,
        range_margins: tuple[float, ...] = RANGE_MARGINS,
    ) -> None:
        self.rest_period = rest_period
        self.value_range = value_range
        self.range_warmup = range_warmup
        self.range_margins = range_margins
        self.series: list[_CadResolutions] = []
        self._pending: dict[int, tuple[float, list[_Plan]]] = {}

    def _new_series(self) -> _CadResolutions:
        return _CadResolutions(self.rest_period, self.value_range, self.range_warmup, self.range_margins)

    def ensure_rows(self, n_rows: int) -> None:
        while len(self.series) < n_rows:
            self.series.append(self._new_series())

    @property
    def nbytes_per_series(self) -> int:
        """Mean lower bound of the rows' memories now, in bytes (see :meth:`_CadSeries.nbytes`); it grows with
        the distinct contexts a series shows (about 1 KB per context measured with tracemalloc)."""
        if not self.series:
            return self._new_series().nbytes()
        return sum(s.nbytes() for s in self.series) // len(self.series)

    def score_many(self, rows: I64, ts: F64, values: F64) -> F64:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        out = np.full(len(rows), np.nan)
        for i, (r, x) in enumerate(zip(rows.tolist(), values.tolist(), strict=True)):
            if math.isnan(x):
                continue
            if math.isinf(x):
                out[i] = math.inf
                continue
            plans = self.series[r].plan(x)
            self._pending[r] = (x, plans)
            out[i] = _reported(plans)
        return out

    def learn_many(self, rows: I64, ts: F64, values: F64, learn: B) -> None:
        self.ensure_rows(int(rows.max()) + 1 if len(rows) else 0)
        for r, x, ok in zip(rows.tolist(), values.tolist(), learn.tolist(), strict=True):
            pending = self._pending.pop(r, None)
            if not ok or not math.isfinite(x):
                continue
            s = self.series[r]
            s.commit(pending[1] if pending is not None and pending[0] == x else s.plan(x))


def cad_series(
    values: F64,
    rest_period: int = REST_PERIOD,
    value_range: tuple[float, float] | None = None,
    range_warmup: int = RANGE_WARMUP,
    range_margins: tuple[float, ...] = RANGE_MARGINS,
    max_contexts: int = MAX_CONTEXTS,
) -> F64:
    """The reported score for every point of one series, strictly online (each finite point is scored,
    then learned; NaN scores NaN and ``+-inf`` scores ``inf``, neither learned)."""
    s = _CadResolutions(rest_period, value_range, range_warmup, range_margins, max_contexts)
    xs = np.asarray(values, dtype=np.float64).tolist()
    out = np.full(len(xs), np.nan)
    for i, x in enumerate(xs):
        if math.isnan(x):
            continue
        if math.isinf(x):
            out[i] = math.inf
            continue
        plans = s.plan(x)
        s.commit(plans)
        out[i] = _reported(plans)
    return out
