"""Time, injected everywhere so the engine can run on simulated time (a day replays in seconds).

``RealClock`` is wall-clock time. ``SimClock`` is a manual clock: ``sleep`` waits until someone calls
``advance`` past the wake-up time, so a test or a replay decides how fast time moves.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Current time as Unix seconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class RealClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class SimClock:
    """A clock that only moves when told to.

    Sleepers are kept in a heap by wake-up time; ``advance`` moves time forward step by step, waking each
    sleeper at its own time and yielding to the event loop so woken tasks run before time moves on.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    @property
    def pending_sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers in order and letting them run."""
        target = self._now + seconds
        while self._sleepers and self._sleepers[0][0] <= target:
            wake, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, wake)
            if not fut.done():
                fut.set_result(None)
            # Several yields: a woken task may await other ready futures before it sleeps again.
            for _ in range(3):
                await asyncio.sleep(0)
        self._now = target
        await asyncio.sleep(0)

    def set(self, now: float) -> None:
        """Jump to an absolute time without waking anyone (for replays that start at a given time)."""
        self._now = float(now)
