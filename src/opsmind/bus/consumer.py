"""A consumer loop over a :class:`~opsmind.bus.protocols.Subscription` with ack, retry and dead letters.

``consume`` fetches a batch, awaits ``handler`` for each message in order and acks the ones it handled.
A message whose handler raised is not acked, so the bus delivers it again once its ack timeout expired
(``BusSettings.ack_timeout_s``), possibly to another consumer of the group. A message that failed on its
``max_deliveries``-th delivery, or arrives with more deliveries than that (its consumers kept dying while
handling it), is a dead letter: it is acked so it stops blocking the topic, logged, and counted in
``opsmind_bus_dead_letters_total{topic,group}`` when a telemetry is given.

Typical use, one task per consumer::

    stop = asyncio.Event()
    task = asyncio.create_task(consume(bus.subscribe("samples", "detect", "d0"), handle, stop=stop))
    ...
    stop.set()
    await task
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from opsmind.bus.protocols import Message, Subscription
from opsmind.telemetry import Telemetry

__all__ = ["DEFAULT_MAX_DELIVERIES", "consume"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_DELIVERIES = 5


async def consume(
    sub: Subscription,
    handler: Callable[[Message], Awaitable[None]],
    *,
    batch: int = 100,
    on_error: Callable[[Message, BaseException], None] | None = None,
    stop: asyncio.Event,
    telemetry: Telemetry | None = None,
    max_deliveries: int = DEFAULT_MAX_DELIVERIES,
) -> None:
    """Handle messages of ``sub`` until ``stop`` is set or the bus closes, acking each success.

    ``stop`` is checked between batches, so the batch in hand is finished first; cancel the task for a
    hard stop (successes handled so far are still acked, the rest is redelivered later). ``on_error`` is
    called for every failed attempt; without it, failures are logged as warnings. Handlers must be
    idempotent, because delivery is at-least-once.
    """
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    if max_deliveries < 1:
        raise ValueError(f"max_deliveries must be at least 1, got {max_deliveries}")
    dead_letters = (
        telemetry.counter(
            "opsmind_bus_dead_letters_total",
            "Messages given up on after too many failed deliveries.",
            ("topic", "group"),
        )
        if telemetry is not None
        else None
    )

    def dead_letter(msg: Message, exc: BaseException | None) -> None:
        # The payload is shortened: it is there to identify the message, not to archive it.
        logger.error(
            "dead letter: message %d of topic %r given up on by group %r after %d deliveries: %.200r",
            msg.id,
            msg.topic,
            sub.group,
            msg.deliveries,
            msg.payload,
            exc_info=exc,
        )
        if dead_letters is not None:
            dead_letters.labels(topic=msg.topic, group=sub.group).inc()

    def report(msg: Message, exc: Exception) -> None:
        if on_error is None:
            logger.warning(
                "handler failed on message %d of topic %r (group %r, delivery %d)",
                msg.id,
                msg.topic,
                sub.group,
                msg.deliveries,
                exc_info=exc,
            )
            return
        try:
            on_error(msg, exc)
        except Exception:
            # A broken error hook must not stop the consumer; the original failure is still retried.
            logger.exception("on_error hook failed on message %d of topic %r", msg.id, msg.topic)

    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            # Waiting for messages and for ``stop`` together makes shutdown immediate instead of
            # costing up to one fetch timeout.
            fetching = asyncio.ensure_future(sub.fetch(batch, timeout=None))
            try:
                await asyncio.wait({fetching, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not fetching.done():
                    fetching.cancel()
            if not fetching.done() or fetching.cancelled():
                with contextlib.suppress(asyncio.CancelledError):
                    await fetching
                return
            messages = fetching.result()
            if not messages:
                return  # A fetch without timeout only comes back empty when the bus closed.
            done: list[int] = []
            try:
                for msg in messages:
                    if msg.deliveries > max_deliveries:
                        dead_letter(msg, None)
                        done.append(msg.id)
                        continue
                    try:
                        await handler(msg)
                    except Exception as exc:
                        report(msg, exc)
                        if msg.deliveries >= max_deliveries:
                            dead_letter(msg, exc)
                            done.append(msg.id)
                        continue
                    done.append(msg.id)
            finally:
                # Also on cancellation: what was handled must not be handled again needlessly.
                if done:
                    await sub.ack(*done)
    finally:
        stopped.cancel()
