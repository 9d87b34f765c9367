"""Event bus between stages: topics, consumer groups, at-least-once delivery with explicit ack."""

from opsmind.bus.consumer import consume
from opsmind.bus.memory import MemoryBus, MemorySubscription
from opsmind.bus.protocols import Bus, Message, Subscription

__all__ = ["Bus", "MemoryBus", "MemorySubscription", "Message", "Subscription", "consume"]
