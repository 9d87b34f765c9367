"""A pipeline stage: a small class with start/stop and its own self-metrics.

A stage consumes one bus topic through a consumer group and handles messages one by one. A handler
error is counted and logged and the message stays pending (redelivered, then dead-lettered by
``consume``); a crash of the loop itself is restarted with backoff. Either way the stage never takes
ingestion down with it: ingestion only writes to the store and publishes, it does not wait for stages.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable

from opsmind.bus.consumer import consume
from opsmind.bus.protocols import Bus, Message, Subscription
from opsmind.clock import Clock
from opsmind.telemetry import Telemetry

log = logging.getLogger(__name__)


class Stage(ABC):
    """Base of every stage. Subclasses set ``name`` and ``topic`` and write ``handle``."""

    name: str = "stage"
    topic: str = ""

    def __init__(self, bus: Bus, clock: Clock, telemetry: Telemetry) -> None:
        self.bus = bus
        self.clock = clock
        self.telemetry = telemetry
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._processed = telemetry.counter(
            "opsmind_stage_messages_processed_total", "Messages a stage handled successfully", ("stage",)
        ).labels(self.name)
        self._errors = telemetry.counter(
            "opsmind_stage_errors_total", "Handler errors per stage", ("stage",)
        ).labels(self.name)
        self._restarts = telemetry.counter(
            "opsmind_stage_restarts_total", "Times a stage loop crashed and was restarted", ("stage",)
        ).labels(self.name)
        self._up = telemetry.gauge("opsmind_stage_up", "1 while a stage runs", ("stage",)).labels(self.name)
        self.is_running = False
        self._subscription: Subscription | None = None

    @abstractmethod
    async def handle(self, message: Message) -> None:
        """Process one message; must be idempotent (delivery is at-least-once)."""

    async def tick(self) -> None:  # noqa: B027 - optional hook, empty by default on purpose
        """Periodic work (timers), called every ``tick_interval`` seconds of the engine clock."""

    tick_interval: float | None = None

    async def start(self) -> None:
        self._stop.clear()
        if self.topic:
            # Join the group now, not inside the task: a group only sees messages published after it exists.
            self._subscription = self.bus.subscribe(self.topic, group=self.name, consumer=f"{self.name}-0")
            self._tasks.append(asyncio.create_task(self._supervise(self._consume_loop), name=self.name))
        if self.tick_interval:
            tick = asyncio.create_task(self._supervise(self._tick_loop), name=f"{self.name}-tick")
            self._tasks.append(tick)
        self.is_running = True
        self._up.set(1)

    async def stop(self) -> None:
        self._stop.set()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self.is_running = False
        self._up.set(0)

    async def _handle_counted(self, message: Message) -> None:
        try:
            await self.handle(message)
        except Exception:
            self._errors.inc()
            raise
        self._processed.inc()

    async def _consume_loop(self) -> None:
        assert self._subscription is not None
        await consume(self._subscription, self._handle_counted, stop=self._stop, telemetry=self.telemetry)

    async def _tick_loop(self) -> None:
        assert self.tick_interval
        while not self._stop.is_set():
            await self.clock.sleep(self.tick_interval)
            try:
                await self.tick()
            except Exception:
                self._errors.inc()
                log.exception("stage %s: tick failed", self.name)

    async def _supervise(self, loop: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                await loop()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._restarts.inc()
                log.exception("stage %s crashed; restarting in %.1fs", self.name, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
