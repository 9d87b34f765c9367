"""The event bus contract, after Redis Streams consumer groups.

A topic is an append-only log. A consumer group reads every message of the topic once between all of
its consumers; each delivered message stays *pending* until acked, and a pending message whose consumer
did not ack it within the ack timeout is delivered again (to any consumer of the group). Delivery is
therefore at-least-once: handlers must be idempotent (records carry ids; stores upsert by id).

Topics are bounded: when the oldest unacked message of the slowest group would be pushed out, the
producer either waits (``block``) or the message is shed and counted (``shed``). Memory never grows
without bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    topic: str
    payload: Any
    deliveries: int


class Subscription(Protocol):
    topic: str
    group: str
    consumer: str

    async def fetch(self, max_messages: int = 100, timeout: float | None = 1.0) -> list[Message]:
        """New or timed-out pending messages for this consumer; waits up to ``timeout`` seconds
        (``None`` waits forever) and returns an empty list when nothing arrived."""
        ...

    async def ack(self, *message_ids: int) -> None:
        """Mark messages as processed by this group; they will not be delivered again."""
        ...


class Bus(Protocol):
    async def publish(self, topic: str, payload: Any) -> int | None:
        """Append ``payload``; return its id, or ``None`` when it was shed because the topic is full."""
        ...

    def subscribe(self, topic: str, group: str, consumer: str = "c0") -> Subscription:
        """Join ``group`` on ``topic`` (creating the group at the topic's current end if new)."""
        ...

    async def leave(self, topic: str, group: str) -> None:
        """Delete ``group`` from ``topic``: the messages it had not acked are no longer owed to it (they
        leave the topic unless another group still owes them), and waiting and later fetches of this
        bus's subscriptions to it return ``[]`` until ``subscribe`` joins it again, at the topic's end.
        For a consumer that only wants messages while something needs them (the live hub's
        ``samples``): a group nobody reads would fill the topic and hold its producers up. Leaving a group
        that does not exist does nothing. Stop the group's consumers first, in every process: what they
        fetch meanwhile is lost to them, and on Redis a consumer in another process would create the
        group again."""
        ...

    def backlog(self, topic: str) -> int:
        """Messages of ``topic`` not yet acked by its slowest group."""
        ...

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        ...

    async def close(self) -> None: ...
